"""Kinks along the line: exact linear pieces against depth and width, beside the Rice formula.

On the segment ``t`` in ``[a, b] = [-2, 2]`` of the input line, every network is cut
into its exact linear pieces (:func:`gradsim.kinks.breakpoints`, many networks by
:func:`gradsim.kinks_mc.simulate_kinks`; network ``i`` of family ``f`` from
``network_rng(seed + 100 f, i)``, with tap readouts, so one depth-``L`` run gives every
depth ``1 .. L``).  Families (parameter ``families``; width ``width``, depth ``depth``):

* ``ff``: feedforward He ReLU (first-layer bias variance 1, as ``NetSpec``'s default);
* ``ff_bn``: the same with batch norm (statistics frozen at the ``grid_points`` grid);
* ``resnet``: resnet, ``beta = 1``, no batch norm;
* ``resnet_bn``, ``resnet_bn_b01``: resnet with batch norm, ``beta = 1`` and ``0.1``;
* ``looks_linear``: CReLU with looks-linear initialisation (``mirror = 1``).

``ff`` and ``resnet`` (the Rice claims) get ``nets`` networks each, the others
``nets_other``: a feedforward net with batch norm shatters, its crossings per unit grow
about exponentially with depth (135 per unit at depth 20, width 256: 1.8 x 10^5 knots,
23 s per network here, against 2 s for ``ff``).  Per family and depth: crossings per
unit at each activation site, breakpoints of ``f`` (of the depth-``l`` prefix), the
jump size of ``df/dt`` in units of its RMS, the
correlation of successive jumps, and the lag-1 autocorrelation of the grid gradient
(``grid_points`` equally spaced points) beside it; the grid adequacy (intervals holding
more than one breakpoint).  A width scan (feedforward, depth ``scan_depth``, widths
``widths``, ``scan_nets`` networks from ``network_rng(seed + 1000 + k, i)``) shows the
finite-width deviation from the Rice formula.  The teaching panel is one network of
width ``teach_width`` at each depth of ``teach_depths`` (seed ``seed``, network 0): its
``f`` and ``df/dt`` with the exact breakpoints marked.

Theory (:func:`gradsim.theory.rice.rice_crossings`, label "Rice formula, infinite
width"): the expected zeros of one pre-activation unit,
``(1/pi) int sqrt(K C - K_t^2) / K dt``, from the exact infinite-width kernels along the
line; where the exact theory does not cover a family (batch norm) the rows are
Monte Carlo only.

The claims.

* K1, K2: crossings per unit of ``ff`` and ``resnet`` at every depth ``1 .. depth``
  (width ``width`` >= 256) within 3 s.e. of the Rice formula: *holds* if every ``|z| <=
  3``; *info* below width 256 (the issue's condition) or without the family.
* K3 (info): the finite-width deviation: crossings per unit against width at
  ``scan_depth``, beside Rice.
* K4: a looks-linear net has no breakpoint at all (every network, every depth) while its
  units cross: *holds* or *fails*; *info* without the family.
* K5 (info): breakpoints of ``f`` per neuron against depth (Hanin and Rolnick: the
  count grows with the number of neurons, not exponentially with depth).
* K6 (info): the jumps and shattering: relative jump size, successive-jump correlation
  and the grid gradient's lag-1 autocorrelation at the deepest depth.
* K7 (info): grid adequacy of the ``grid_points`` grid at the deepest depth.
"""

from __future__ import annotations

import time

import numpy as np

from ..compare import zscore
from ..figures import COLORS, new_figure
from ..kinks import breakpoints
from ..kinks_mc import KinkStats, simulate_kinks
from ..montecarlo import network_rng
from ..nets import sample_network
from ..spec import NetSpec
from ..theory import covers
from ..theory.rice import LABEL as RICE
from ..theory.rice import rice_crossings
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, fmt, fmt_est, run_workers

NAME = "kinks"
TITLE = ("Kinks along the line: exact linear pieces, crossings per unit against the Rice "
         "formula, and the jumps of df/dt")
FAMILIES = ("ff", "ff_bn", "resnet", "resnet_bn", "resnet_bn_b01", "looks_linear")
DEFAULTS = {"families": list(FAMILIES), "depth": 20, "width": 256, "nets": 40,
            "nets_other": 6,
            "widths": [16, 32, 64, 128, 256], "scan_depth": 10, "scan_nets": 40,
            "teach_depths": [2, 20], "teach_width": 16, "a": -2.0, "b": 2.0,
            "grid_points": 256, "seed": 23}
QUICK = {"depth": 6, "width": 64, "nets": 6, "nets_other": 3, "widths": [16, 64],
         "scan_depth": 4,
         "scan_nets": 6, "teach_depths": [2, 6]}

#: The families of K1 and K2 (``nets`` networks each; the others ``nets_other``).
RICE_FAMILIES = ("ff", "resnet")
#: K1, K2: ``|z|`` at most this.
NSIGMA = 3.0
#: K1, K2 are decided at this width and above.
RICE_MIN_WIDTH = 256


def family_spec(name, depth, width):
    """The NetSpec of family ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"kinks: unknown family {name!r}; choose from {', '.join(FAMILIES)}")
    kw = {"ff": {}, "ff_bn": {"batchnorm": True, "bn_grad": "frozen"},
          "resnet": {"arch": "resnet"},
          "resnet_bn": {"arch": "resnet", "batchnorm": True, "bn_grad": "frozen"},
          "resnet_bn_b01": {"arch": "resnet", "batchnorm": True, "bn_grad": "frozen",
                            "beta": 0.1},
          "looks_linear": {"activation": "crelu", "init": "looks-linear"}}[name]
    return NetSpec(depth=depth, width=width, **kw)


def check(params):
    """Range checks."""
    for key, lo, hi in (("depth", 1, 64), ("width", 2, 4096), ("nets", 2, 10**5),
                        ("nets_other", 2, 10**5),
                        ("widths", 2, 4096), ("scan_depth", 1, 64), ("scan_nets", 2, 10**5),
                        ("teach_depths", 1, 64), ("teach_width", 2, 1024),
                        ("a", -100.0, 100.0), ("b", -100.0, 100.0),
                        ("grid_points", 2, 10**5), ("seed", 0, 2**62)):
        check_range(NAME, params, key, lo, hi)
    if not params["b"] > params["a"]:
        raise ValueError(f"{NAME}: parameters a < b needed, got a = {params['a']}, "
                         f"b = {params['b']}")
    for f in params["families"]:
        family_spec(f, 1, 2)
    if len(set(params["families"])) != len(params["families"]):
        raise ValueError(f"{NAME}: parameter families lists a family twice")


def _rice(spec, a, b):
    """``(per_unit (sites,), units)`` of the Rice formula, or None where not covered."""
    if covers(spec, "exact") is not None:
        return None
    r = rice_crossings(spec, a, b)
    return np.asarray(r["per_unit"], float), np.asarray(r["units"], float)


def _teach(params, depth):
    spec = family_spec("ff", depth, params["teach_width"])
    net = sample_network(spec, network_rng(params["seed"], 0))
    return breakpoints(net, params["a"], params["b"])


def run(params, progress=NULL_PROGRESS):
    """Every family at every depth, the width scan and the teaching networks."""
    t0 = time.perf_counter()
    fams, L, a, b = params["families"], params["depth"], params["a"], params["b"]
    F = len(fams)
    workers = run_workers()
    out = {k: np.full((F, L), np.nan) for k in (
        "per_unit", "per_unit_se", "rice_per_unit", "breakpoints", "breakpoints_se",
        "rice_breakpoints", "jump_rel", "jump_rel_se", "jump_corr", "jump_corr_se",
        "lag1", "lag1_se")}
    out["several"], out["several_se"] = np.full(F, np.nan), np.full(F, np.nan)
    out["zero_breakpoint_nets"] = np.zeros(F)
    for i, name in enumerate(fams):
        spec = family_spec(name, L, params["width"])
        nets = params["nets"] if name in RICE_FAMILIES else params["nets_other"]
        tick = progress.stage(f"{NAME}: {name}, depth {L}, width {params['width']}", nets)
        ks = simulate_kinks(spec, a, b, nets=nets, seed=params["seed"] + 100 * i,
                            grid_points=params["grid_points"], workers=workers,
                            progress=lambda done, total, tick=tick: tick(done))
        _summarise(out, i, ks)
        if name == "looks_linear":  # f is linear: no jumps, df/dt constant (undefined)
            for key in ("jump_corr", "jump_corr_se", "lag1", "lag1_se"):
                out[key][i] = np.nan
        rice = _rice(spec, a, b)
        if rice is not None:
            per, units = rice
            out["rice_per_unit"][i] = per
            out["rice_breakpoints"][i] = (0.0 if name == "looks_linear"
                                          else np.cumsum(per * units))
    W, D = len(params["widths"]), params["scan_depth"]
    scan, scan_se = np.empty((W, D)), np.empty((W, D))
    scan_rice = np.full((W, D), np.nan)
    for k, w in enumerate(params["widths"]):
        spec = family_spec("ff", D, w)
        tick = progress.stage(f"{NAME}: width scan, width {w}", params["scan_nets"])
        ks = simulate_kinks(spec, a, b, nets=params["scan_nets"], seed=params["seed"] + 1000 + k,
                            grid_points=params["grid_points"], workers=workers,
                            progress=lambda done, total, tick=tick: tick(done))
        scan[k], scan_se[k] = KinkStats.mean_se(ks.per_unit)
        rice = _rice(spec, a, b)
        if rice is not None:
            scan_rice[k] = rice[0]
    out |= {"scan": scan, "scan_se": scan_se, "scan_rice": scan_rice,
            "widths": np.array(params["widths"])}
    for j, d in enumerate(params["teach_depths"]):
        k = _teach(params, d)
        out |= {f"teach{j}_knots": k.knots, f"teach{j}_f": k.f,
                f"teach{j}_slopes": k.slopes, f"teach{j}_breakpoints": k.breakpoints}
    return Results(NAME, params, out, {"seconds": time.perf_counter() - t0})


def _summarise(out, i, ks):
    out["per_unit"][i], out["per_unit_se"][i] = KinkStats.mean_se(ks.per_unit)
    out["breakpoints"][i], out["breakpoints_se"][i] = KinkStats.mean_se(ks.breakpoints)
    rel = np.where(ks.slope_rms > 0, ks.jump_abs / np.where(ks.slope_rms > 0, ks.slope_rms, 1),
                   0.0)
    out["jump_rel"][i], out["jump_rel_se"][i] = KinkStats.mean_se(rel)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["jump_corr"][i], out["jump_corr_se"][i] = KinkStats.ratio(ks.jump_s11, ks.jump_s2)
        out["lag1"][i], out["lag1_se"][i] = KinkStats.ratio(ks.lag1_num, ks.lag1_den)
    out["several"][i], out["several_se"][i] = KinkStats.mean_se(ks.several)
    out["zero_breakpoint_nets"][i] = float((ks.breakpoints == 0).all(axis=1).sum())


def plot(results):
    """Top left: crossings per unit against depth, Monte Carlo and Rice; top right:
    against width; bottom left: jump correlation and lag-1 autocorrelation against
    depth; bottom right: one network's f and df/dt, shallow and deep."""
    r, prm = results, results.params
    fig, ax = new_figure(2, 2, size=(11.5, 8.5))
    dd = np.arange(1, prm["depth"] + 1)
    a = ax[0, 0]
    for i, name in enumerate(prm["families"]):
        c = COLORS[i % len(COLORS)]
        a.errorbar(dd, r["per_unit"][i], yerr=r["per_unit_se"][i], fmt="o", ms=3, capsize=2,
                   color=c, label=f"MC {name}")
        if np.isfinite(r["rice_per_unit"][i]).all():
            a.plot(dd, r["rice_per_unit"][i], "-", color=c, lw=1)
    a.plot([], [], "k-", lw=1, label=RICE)
    a.set_yscale("log")
    a.set_xlabel("activation site (depth)")
    a.set_ylabel(f"zero crossings per unit on [{prm['a']:g}, {prm['b']:g}]")
    a.set_title(f"width {prm['width']}; {prm['nets']} nets (ff, resnet), "
                f"{prm['nets_other']} (others)", fontsize=8)
    a.legend(fontsize=6.5)
    b = ax[0, 1]
    widths = np.asarray(r["widths"], float)
    for j in sorted({0, prm["scan_depth"] // 2, prm["scan_depth"] - 1}):
        c = COLORS[j % len(COLORS)]
        b.errorbar(widths, r["scan"][:, j], yerr=r["scan_se"][:, j], fmt="o", ms=3,
                   capsize=2, color=c, label=f"MC ff, site {j + 1}")
        b.plot(widths, r["scan_rice"][:, j], "--", color=c, lw=1)
    b.plot([], [], "k--", lw=1, label=RICE)
    b.set_xscale("log", base=2)
    b.set_xlabel("width n")
    b.set_ylabel("zero crossings per unit")
    b.set_title(f"feedforward, depth {prm['scan_depth']}: finite-width deviation",
                fontsize=8)
    b.legend(fontsize=6.5)
    c_ = ax[1, 0]
    for i, name in enumerate(prm["families"]):
        if name == "looks_linear":
            continue
        c = COLORS[i % len(COLORS)]
        c_.errorbar(dd, r["jump_corr"][i], yerr=r["jump_corr_se"][i], fmt="o", ms=3,
                    capsize=2, color=c, label=f"{name}: successive jumps of df/dt")
        c_.plot(dd, r["lag1"][i], "-", color=c, lw=1)
    c_.plot([], [], "k-", lw=1, label=f"lag-1 autocorrelation, {prm['grid_points']}-point grid")
    c_.axhline(0, color="0.6", lw=0.6)
    c_.set_xlabel("depth")
    c_.set_ylabel("correlation")
    c_.legend(fontsize=6)
    d_ = ax[1, 1]
    for j, depth in enumerate(prm["teach_depths"]):
        kn, f, sl = r[f"teach{j}_knots"], r[f"teach{j}_f"], r[f"teach{j}_slopes"]
        bp = r[f"teach{j}_breakpoints"]
        c = COLORS[j % len(COLORS)]
        scale = float(np.abs(sl).max()) or 1.0
        d_.plot(kn, f / (float(np.abs(f).max()) or 1.0) + 2.5 * j, "-", color=c, lw=1,
                label=f"f (scaled), depth {depth}: {len(bp)} breakpoints")
        d_.step(kn[:-1], sl / scale + 2.5 * j - 1.2, where="post", color=c, lw=0.7,
                alpha=0.8, label=f"df/dt (scaled), depth {depth}")
        d_.plot(bp, np.interp(bp, kn, f) / (float(np.abs(f).max()) or 1.0) + 2.5 * j, "|",
                color="k", ms=4)
    d_.set_xlabel("t")
    d_.set_yticks([])
    d_.set_title(f"one feedforward net of width {prm['teach_width']}: exact breakpoints "
                 "marked", fontsize=8)
    d_.legend(fontsize=6)
    return fig


def _rice_claim(results, target, name, label):
    r, prm = results, results.params
    fams = prm["families"]
    setting = (f"{label}, width {prm['width']}, depths 1-{prm['depth']}, {prm['nets']} nets, "
               f"segment [{prm['a']:g}, {prm['b']:g}]")
    claim = (f"crossings per unit of {label} agree with the Rice formula within "
             f"{NSIGMA:g} s.e. at every depth (width >= {RICE_MIN_WIDTH})")
    if name not in fams:
        return Claim(target, claim, setting, RICE, "family not run", "—", None,
                     "informational: undecided, the family was not run")
    i = fams.index(name)
    z = zscore(r["per_unit"][i], r["rice_per_unit"][i], r["per_unit_se"][i])
    est = "; ".join(f"L={d + 1}: {fmt_est(r['per_unit'][i, d], r['per_unit_se'][i, d])} vs "
                    f"{fmt(r['rice_per_unit'][i, d])}" for d in range(prm["depth"]))
    worst = float(np.nanmax(np.abs(z)))
    score = f"max |z| = {worst:.2f} over {prm['depth']} depths"
    rule = f"holds if every |z| <= {NSIGMA:g}"
    if prm["width"] < RICE_MIN_WIDTH:
        return Claim(target, claim, setting, RICE, est, score, None,
                     f"informational: undecided, width {prm['width']} < {RICE_MIN_WIDTH} "
                     f"(otherwise: {rule})")
    return Claim(target, claim, setting, RICE, est, score, bool(worst <= NSIGMA), rule)


def claims(results):
    """K1-K7 (see the module docstring)."""
    r, prm = results, results.params
    fams, L = prm["families"], prm["depth"]
    out = [_rice_claim(results, "K1", "ff", "feedforward He ReLU"),
           _rice_claim(results, "K2", "resnet", "resnet (beta = 1)")]

    D = prm["scan_depth"]
    z = zscore(r["scan"][:, -1], r["scan_rice"][:, -1], r["scan_se"][:, -1])
    rel = r["scan"][:, -1] / r["scan_rice"][:, -1] - 1
    est = "; ".join(f"n={w}: {fmt_est(r['scan'][k, -1], r['scan_se'][k, -1])} vs "
                    f"{fmt(r['scan_rice'][k, -1])} (z = {z[k]:.2f}, {100 * rel[k]:+.1f}%)"
                    for k, w in enumerate(prm["widths"]))
    out.append(Claim("K3", f"finite-width deviation of the crossings per unit at depth {D}",
                     f"feedforward He ReLU, depth {D}, widths "
                     f"{', '.join(map(str, prm['widths']))}, {prm['scan_nets']} nets",
                     RICE, est, f"|z| from {np.nanmin(np.abs(z)):.2f} to "
                     f"{np.nanmax(np.abs(z)):.2f}", None,
                     "informational: shows the deviation at narrow widths"))

    if "looks_linear" in fams:
        i = fams.index("looks_linear")
        zero, nets = int(r["zero_breakpoint_nets"][i]), prm["nets_other"]
        crossing = float(np.nanmin(r["per_unit"][i]))
        passed = bool(zero == nets and crossing > 0)
        out.append(Claim("K4", "a looks-linear net has no breakpoint, though its units cross",
                         f"CReLU, looks-linear (mirror 1), width {prm['width']}, depths "
                         f"1-{L}, {nets} nets", "exact: [P, -P] CReLU(z) = P z",
                         f"{zero} of {nets} nets without any breakpoint at every depth; "
                         f"crossings per unit {fmt(crossing)} or more",
                         f"{zero}/{nets} nets", passed,
                         "holds if every network has 0 breakpoints at every depth and "
                         "the units cross"))
    else:
        out.append(Claim("K4", "a looks-linear net has no breakpoint", "—", "—",
                         "family not run", "—", None, "informational: undecided"))

    rows = []
    for i, name in enumerate(fams):
        per_neuron = r["breakpoints"][i] / (prm["width"] * np.arange(1, L + 1))
        rows.append(f"{name}: {fmt(per_neuron[0])} at depth 1, {fmt(per_neuron[L // 2])} at "
                    f"{L // 2 + 1}, {fmt(per_neuron[-1])} at {L}")
    out.append(Claim("K5", "breakpoints of f grow with the number of neurons, not "
                     "exponentially with depth (Hanin and Rolnick)",
                     f"width {prm['width']}, {prm['nets']} nets (ff, resnet), "
                     f"{prm['nets_other']} (others)",
                     f"{RICE} (sum of n_l times the crossings per unit)",
                     "breakpoints per neuron: " + "; ".join(rows), "—", None,
                     "informational"))

    rows = []
    for i, name in enumerate(fams):
        if name == "looks_linear":
            continue
        rows.append(f"{name}: jump/RMS slope "
                    f"{fmt_est(r['jump_rel'][i, -1], r['jump_rel_se'][i, -1])}, "
                    f"successive-jump correlation "
                    f"{fmt_est(r['jump_corr'][i, -1], r['jump_corr_se'][i, -1])}, lag-1 "
                    f"{fmt_est(r['lag1'][i, -1], r['lag1_se'][i, -1])}")
    out.append(Claim("K6", f"the jumps of df/dt at depth {L}: size, correlation of "
                     "successive jumps, and the grid's lag-1 autocorrelation",
                     f"width {prm['width']}, {prm['grid_points']}-point grid", "—",
                     "; ".join(rows), "—", None, "informational"))

    rows = "; ".join(f"{name}: {fmt_est(r['several'][i], r['several_se'][i])}"
                     for i, name in enumerate(fams))
    out.append(Claim("K7", f"grid adequacy: intervals of the {prm['grid_points']}-point grid "
                     f"holding more than one breakpoint at depth {L}",
                     f"width {prm['width']}, segment [{prm['a']:g}, {prm['b']:g}]", "—",
                     rows, f"of {prm['grid_points'] - 1} intervals", None,
                     "informational: a grid whose intervals hold several breakpoints "
                     "cannot resolve the pieces of f"))
    return out
