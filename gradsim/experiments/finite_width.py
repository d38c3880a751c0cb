"""Finite width to first order: the 1/n coefficient of the pair correlation of df/dx.

``R_n = Corr(df/dx(x), df/dx(y))`` over random feedforward He ReLU networks of width
``n`` with bias variance ``bias_var = 0.1`` on every layer (``NetSpec(depth, width,
first_bias_var=0.1, bias_var=0.1)``), at the pairs ``(x, y) = (-1, 1)`` and
``(0.5, -0.5)``, depths 4 and 8 and widths 8, 16, 32, 64, 128, beside two theories:
the exact infinite-width value ``R_inf`` and the first-order value ``R_fw``
(:func:`gradsim.theory.finite_width.finite_width_gradient_covariance`: the empirical
Gram chain expanded to first order in ``1/n``, valid while ``L / n`` is small).  The
coefficient of ``1/n`` is compared directly: ``c_MC = n (R_n - R_inf)`` with standard
error ``n se`` against ``c_theory = n (R_fw - R_inf)``, so
``z = (c_MC - c_theory) / (n se) = (R_n - R_fw) / se``.

How it is computed.  Every network is drawn in Gram space (parameter ``sampler``,
default ``'gram'``, recorded with the parameters).  For each pair a 2-point grid holds
exactly ``x`` and ``y`` (``GridSpec(points=2, lo=min(x, y), hi=max(x, y))``; the
correlation is symmetric), and one run at the largest depth per (pair, width) gives
every depth through the tap readouts (:func:`gradsim.montecarlo.simulate_depths`).  The
correlation and its delta-method s.e. are :func:`gradsim.compare.pair_statistics`.
The networks of pair ``p`` and width index ``k`` come from
``network_rng(seed + 1000 p + k, i)``.  The theory is called once per (pair, width) at
the largest depth; its ``cov_by_depth`` and ``cov_inf_by_depth`` give every depth.

Sizes.  ``nets`` networks per (pair, width).  Measured with 2 workers on a 2-core
machine with another job running: 20000 networks of depth 8 took 10.0 s at width 8 and
15.7 s at width 128 (load about 4), and the whole run at ``nets = 30000`` took 89 s
(about 3 ms per network of ``nets`` over the 10 runs), so 10^5 would take about 5
minutes; the default is ``nets = 70000`` (about 3.5 minutes; see ``docs/reproduce.md``
for the measured time), and X8b is informational at the default size.  The quick
setting (widths 8 and 32, 2000 networks) takes about 5 s.

The claims.

* X8a: over the cells (pair, depth, width) with ``L / n <= max_ratio`` (1/4), *holds*
  if every ``|z| <= 3``, *fails* otherwise (info if no cell qualifies).  The cells
  with ``L / n > max_ratio``, where the expansion is not expected to hold, are listed
  with their ``z`` in the score, so the report says from the numbers whether it fails
  there.
* X8b: over the cells where the infinite-width theory is off by more than 5 s.e.
  (``|R_n - R_inf| > 5 se``), *holds* if every such cell has ``|R_n - R_fw| <= 3 se``,
  *fails* otherwise; *info* if no cell qualifies, or if the run has fewer than
  :data:`X8B_MIN_NETS` (10^5) networks per cell (as at the default size, where the
  numbers are still reported).
"""

from __future__ import annotations

import time

import numpy as np

from ..compare import pair_statistics, zscore
from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..montecarlo import simulate_depths
from ..spec import NetSpec
from ..theory import LABELS
from ..theory.finite_width import finite_width_gradient_covariance
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, check_pair_scan, chunk_for, fmt, fmt_est, run_workers

NAME = "finite_width"
TITLE = ("Finite width: the 1/n coefficient of the pair correlation of df/dx against the "
         "first-order theory")
DEFAULTS = {"widths": [8, 16, 32, 64, 128], "depths": [4, 8], "x": [-1.0, 0.5],
            "y": [1.0, -0.5], "bias_var": 0.1, "sampler": "gram", "nets": 70000,
            "max_ratio": 0.25, "plot_pair": 0, "seed": 17}
QUICK = {"widths": [8, 32], "nets": 2000}

#: X8a: |z| of the coefficient at most this where L / n <= max_ratio.
COEF_NSIGMA = 3.0
#: X8b: cells where the infinite-width theory is off by more than this many s.e. ...
OFF_NSIGMA = 5.0
#: ... must be within this many s.e. of the first-order theory.
FW_NSIGMA = 3.0
#: X8b is decided only with at least this many networks per cell.
X8B_MIN_NETS = 10**5


def check(params):
    """Range checks."""
    for key, lo, hi in (("widths", 1, 2**14), ("depths", 1, 64), ("x", -2.0, 2.0),
                        ("y", -2.0, 2.0), ("bias_var", 1e-6, 10.0), ("nets", 3, 10**8),
                        ("max_ratio", 0.0, 10.0), ("plot_pair", 0, len(params["x"]) - 1),
                        ("seed", 0, 2**62)):
        check_range(NAME, params, key, lo, hi)
    check_pair_scan(NAME, params)


def _spec(params, depth, width):
    b = params["bias_var"]
    return NetSpec(depth=depth, width=width, first_bias_var=b, bias_var=b)


def _corr(cov):
    """Correlations ``cov[..., 0, 1] / sqrt(cov[..., 0, 0] cov[..., 1, 1])``."""
    cov = np.asarray(cov, dtype=float)
    return cov[..., 0, 1] / np.sqrt(cov[..., 0, 0] * cov[..., 1, 1])


def theory_correlations(params, depth, width, x, y):
    """``(R_fw, R_inf)`` at depths ``1 .. depth``, arrays of length ``depth``."""
    t = finite_width_gradient_covariance(_spec(params, depth, width), [x, y])
    return _corr(t["cov_by_depth"]), _corr(t["cov_inf_by_depth"])


def run(params, progress=NULL_PROGRESS):
    """Pair correlations at every pair, depth and width, and both theories."""
    t0 = time.perf_counter()
    widths, depths = params["widths"], params["depths"]
    lmax, nets = depths[-1], int(params["nets"])
    pairs = list(zip(params["x"], params["y"]))
    P, D, K = len(pairs), len(depths), len(widths)
    corr, se, first = (np.empty((P, D, K)) for _ in range(3))
    exact = np.empty((P, D))
    # the profile over depth 1 .. lmax at the narrowest width (right panel)
    prof, prof_se, prof_fw, prof_inf = (np.empty((P, lmax)) for _ in range(4))
    workers = run_workers()
    idx = np.array(depths) - 1
    for p, (x, y) in enumerate(pairs):
        grid = GridSpec(points=2, lo=min(x, y), hi=max(x, y))
        for k, w in enumerate(widths):
            tick = progress.stage(f"{NAME}: x={x:g}, y={y:g}, width {w}", nets)
            g = simulate_depths(_spec(params, lmax, w), grid, nets=nets,
                                seed=params["seed"] + 1000 * p + k,
                                sampler=params["sampler"], workers=workers,
                                chunk=chunk_for(nets, workers),
                                progress=lambda done, total, tick=tick: tick(done))
            ests = [pair_statistics(g[:, d, 0, 0], g[:, d, 1, 0])["correlation"]
                    for d in range(lmax)]
            val = np.array([float(e.value) for e in ests])
            err = np.array([float(e.se) for e in ests])
            r_fw, r_inf = theory_correlations(params, lmax, w, x, y)
            corr[p, :, k], se[p, :, k], first[p, :, k] = val[idx], err[idx], r_fw[idx]
            exact[p] = r_inf[idx]
            if k == 0:
                prof[p], prof_se[p], prof_fw[p], prof_inf[p] = val, err, r_fw, r_inf
    return Results(NAME, params, {"widths": np.array(widths), "depths": np.array(depths),
                                  "corr": corr, "corr_se": se, "exact": exact,
                                  "first_order": first, "profile": prof,
                                  "profile_se": prof_se, "profile_first_order": prof_fw,
                                  "profile_exact": prof_inf},
                   {"seconds": time.perf_counter() - t0})


def coefficients(results):
    """``dict`` of arrays (pair, depth, width): ``c_mc``, ``c_mc_se``, ``c_theory``,
    ``z`` (``(R_n - R_fw) / se``), ``z_inf`` (``(R_n - R_inf) / se``) and ``ratio``
    (``L / n``)."""
    r = results
    n = np.asarray(r["widths"], dtype=float)
    depth = np.asarray(r["depths"], dtype=float)
    exact = np.asarray(r["exact"])[..., None]
    return {"c_mc": n * (r["corr"] - exact), "c_mc_se": n * r["corr_se"],
            "c_theory": n * (r["first_order"] - exact),
            "z": zscore(r["corr"], r["first_order"], r["corr_se"]),
            "z_inf": zscore(r["corr"], exact, r["corr_se"]),
            "ratio": np.broadcast_to(depth[:, None] / n, r["corr"].shape)}


def _cells(results, mask):
    prm = results.params
    P, D, K = np.shape(results["corr"])
    return [(p, j, k, f"x={prm['x'][p]:g}, y={prm['y'][p]:g}, L={prm['depths'][j]}, "
             f"n={prm['widths'][k]}")
            for p in range(P) for j in range(D) for k in range(K) if mask[p, j, k]]


def plot(results):
    """Left: ``|R_n - R_inf|`` against ``n`` (log-log) with the first-order line
    ``|c_theory| / n``; right: ``R`` against depth at the narrowest width, one pair."""
    r, prm = results, results.params
    widths = np.asarray(r["widths"], dtype=float)
    co = coefficients(results)
    fig, ax = new_figure(1, 2, size=(11.0, 4.6))
    a = ax[0, 0]
    s = 0
    npairs, ndepths = np.shape(r["exact"])
    for p in range(npairs):
        for j, d in enumerate(prm["depths"]):
            c = COLORS[s % len(COLORS)]
            n = widths * 1.04 ** (s - (npairs * ndepths - 1) / 2)  # side by side
            diff = np.abs(r["corr"][p, j] - r["exact"][p, j])
            a.errorbar(n, diff, yerr=r["corr_se"][p, j], fmt="o", color=c, ms=4, capsize=2,
                       label=f"MC x = {prm['x'][p]:g}, y = {prm['y'][p]:g}, depth {d}")
            a.plot(widths, np.abs(co["c_theory"][p, j]) / widths, "-", color=c, lw=0.9)
            s += 1
    a.plot([], [], "k-", lw=0.9, label=f"|c_theory| / n, {LABELS['finite']}")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("width n")
    a.set_ylabel("|R_n - R_inf|, R = Corr(df/dx(x), df/dx(y))")
    a.set_title(f"R_inf: {LABELS['exact']}; Monte Carlo (sampler {prm['sampler']}), "
                f"{prm['nets']} nets per width", fontsize=8)
    a.legend(fontsize=6.5)
    b = ax[0, 1]
    p = prm["plot_pair"]
    lmax = np.shape(r["profile"])[1]
    dd = np.arange(1, lmax + 1)
    b.errorbar(dd, r["profile"][p], yerr=r["profile_se"][p], fmt="o", color=COLORS[0],
               ms=4, capsize=2, label=f"Monte Carlo, width {int(widths[0])}")
    b.plot(dd, r["profile_first_order"][p], "-", color=COLORS[1],
           label=f"{LABELS['finite']}, width {int(widths[0])}")
    b.plot(dd, r["profile_exact"][p], "--", color="k", label=LABELS["exact"])
    b.set_xlabel("depth L")
    b.set_ylabel("R = Corr(df/dx(x), df/dx(y))")
    b.set_title(f"x = {prm['x'][p]:g}, y = {prm['y'][p]:g}, width {int(widths[0])} "
                f"(L / n up to {lmax / widths[0]:.2g})", fontsize=8)
    b.legend(fontsize=7)
    return fig


def claims(results):
    """X8a: the 1/n coefficient agrees with the first-order theory where ``L / n`` is
    small; X8b: where the infinite-width theory is off, the first-order theory is not."""
    r, prm = results, results.params
    co = coefficients(results)
    z, z_inf = np.asarray(co["z"]), np.asarray(co["z_inf"])
    inside = co["ratio"] <= prm["max_ratio"]
    nets = int(prm["nets"])
    setting = (f"feedforward He ReLU, bias variance {prm['bias_var']:g} on every layer, "
               f"depths {', '.join(map(str, prm['depths']))}, widths "
               f"{', '.join(map(str, prm['widths']))}, {nets} nets per (pair, width), "
               f"sampler {prm['sampler']}")
    theory = f"{LABELS['finite']} (valid while L / n is small); R_inf: {LABELS['exact']}"
    out = []

    cells = _cells(results, inside)
    est = "; ".join(f"{lab}: c_MC = {fmt_est(co['c_mc'][p, j, k], co['c_mc_se'][p, j, k])}"
                    f" vs c_theory = {fmt(co['c_theory'][p, j, k])}"
                    for p, j, k, lab in cells)
    outside = "; ".join(f"{lab}: z = {z[p, j, k]:.2f}"
                        for p, j, k, lab in _cells(results, ~inside))
    rule = (f"over the cells with L / n <= {prm['max_ratio']:g}: holds if every "
            f"|c_MC - c_theory| / (n s.e.) <= {COEF_NSIGMA:g}")
    if cells:
        worst = float(np.abs(z[inside]).max())
        passed, criterion = bool(worst <= COEF_NSIGMA), rule
        score = f"max |z| = {worst:.2f} over {len(cells)} cells"
    else:
        passed, criterion = None, f"informational: undecided, no cell qualifies ({rule})"
        score = "no cell with L / n <= max_ratio"
    score += (f"; L / n > {prm['max_ratio']:g}, where the expansion is not expected to "
              f"hold: {outside}" if outside else "")
    out.append(Claim(
        "X8a", f"the 1/n coefficient n (R_n - R_inf) agrees with the first-order theory "
        f"within {COEF_NSIGMA:g} s.e. where L/n <= {prm['max_ratio']:g}", setting, theory,
        est or "no cell", score, passed, criterion))

    off = np.abs(z_inf) > OFF_NSIGMA
    cells = _cells(results, off)
    est = "; ".join(f"{lab}: R_n = {fmt_est(r['corr'][p, j, k], r['corr_se'][p, j, k])}, "
                    f"R_fw = {fmt(r['first_order'][p, j, k])}, R_inf = "
                    f"{fmt(r['exact'][p, j])}" for p, j, k, lab in cells)
    rule = (f"over the cells with |R_n - R_inf| > {OFF_NSIGMA:g} s.e.: holds if every "
            f"|R_n - R_fw| <= {FW_NSIGMA:g} s.e.")
    if cells:
        worst = float(np.abs(z[off]).max())
        score = (f"{len(cells)} cells off the infinite-width theory (max |z_inf| = "
                 f"{float(np.abs(z_inf[off]).max()):.2f}); max |R_n - R_fw| / s.e. = "
                 f"{worst:.2f}")
    else:
        score = f"no cell with |R_n - R_inf| > {OFF_NSIGMA:g} s.e."
    if nets < X8B_MIN_NETS:
        passed, criterion = None, (f"informational: undecided, {nets} nets per cell, fewer "
                                   f"than {X8B_MIN_NETS} (otherwise: {rule})")
    elif not cells:
        passed, criterion = None, f"informational: undecided, no cell qualifies ({rule})"
    else:
        passed, criterion = bool(worst <= FW_NSIGMA), rule
    out.append(Claim(
        "X8b", f"where the infinite-width theory is off by more than {OFF_NSIGMA:g} s.e., "
        f"the first-order theory is within {FW_NSIGMA:g} s.e.", setting, theory,
        est or "no cell", score, passed, criterion))
    return out
