"""Finite width: the 1/n coefficient of the pair correlation of df/dx, to second order.

``R_n = Corr(df/dx(x), df/dx(y))`` over random feedforward He ReLU networks of width
``n`` with bias variance ``bias_var = 0.1`` on every layer (``NetSpec(depth, width,
first_bias_var=0.1, bias_var=0.1)``), at the pairs ``(x, y) = (-1, 1)`` and
``(0.5, -0.5)``, depths 4, 8 and 10 and widths 8, 16, 32, 64, 128, beside three theories
(:func:`gradsim.theory.finite_width.finite_width_gradient_covariance`, the empirical
Gram chain expanded in ``1/n``): the exact infinite-width value ``R_inf``, the first
order ``R_1 = R_inf + c / n`` and the second order ``R_2 = R_1 + c_2 / n^2``.  The
expansion is in ``L / n``: the first order alone is off by more than the Monte Carlo
error at ``L / n = 1/4`` with ``10^5`` networks, the second order is not.

The coefficient of ``1/n``.  ``c_MC = n (R_n - R_inf) - c_2 / n`` (the Monte Carlo
coefficient with the theory's ``1/n^2`` term removed), s.e. ``n se``, against the
first-order coefficient ``c``: ``z = (c_MC - c) / (n se) = (R_n - R_2) / se``.  The
uncorrected ``z_1 = (R_n - R_1) / se`` is reported beside it.

How it is computed.  Every network is drawn in Gram space (parameter ``sampler``,
default ``'gram'``, recorded with the parameters).  For each pair a 2-point grid holds
exactly ``x`` and ``y`` (``GridSpec(points=2, lo=min(x, y), hi=max(x, y))``; the
correlation is symmetric), and one run at the largest depth per (pair, width) gives
every depth through the tap readouts (:func:`gradsim.montecarlo.simulate_depths`).  The
correlation and its delta-method s.e. are :func:`gradsim.compare.pair_statistics`.
The networks of pair ``p`` and width index ``k`` come from
``network_rng(seed + 1000 p + k, i)``.  The theory is called once per (pair, width) at
the largest depth, at order 2; its ``cov_by_depth``, ``cov_first_by_depth`` and
``cov_inf_by_depth`` give every depth.

Sizes.  ``nets = 10^5`` networks per (pair, width), so that X8b is decided at the
default size (``docs/reproduce.md`` has the measured time).  The quick setting
(widths 8 and 32, 2000 networks) takes a few seconds.

The claims.

* X8a: over the cells (pair, depth, width) with ``L / n <= max_ratio`` (1/4), *holds*
  if every ``|z| <= 3``, *fails* otherwise (info if no cell qualifies).  The first-order
  ``z_1`` of those cells and the ``z`` of the cells beyond are listed in the score.
* X8b: over the cells with ``L / n <= valid_ratio`` (1/2) where the infinite-width
  theory is off by more than 5 s.e. (``|R_n - R_inf| > 5 se``), *holds* if every such
  cell has ``|R_n - R_2| <= 3 se``, *fails* otherwise; *info* if no cell qualifies, or
  if the run has fewer than :data:`X8B_MIN_NETS` (10^5) networks per cell.
* X8c (info): where the expansion holds, from the numbers: for every ``L / n`` of the
  run, the largest ``|z|`` of the infinite-width, first-order and second-order theories.
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
from .common import (
    NULL_PROGRESS,
    check_pair_scan,
    fmt,
    fmt_est,
    pair_scan_axes,
    run_workers,
)

NAME = "finite_width"
TITLE = ("Finite width: the 1/n coefficient of the pair correlation of df/dx against the "
         "finite-width theory to first and second order")
DEFAULTS = {"widths": [8, 16, 32, 64, 128], "depths": [4, 8, 10], "x": [-1.0, 0.5],
            "y": [1.0, -0.5], "bias_var": 0.1, "sampler": "gram", "nets": 100000,
            "max_ratio": 0.25, "valid_ratio": 0.5, "plot_pair": 0, "seed": 17}
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
                        ("max_ratio", 0.0, 10.0), ("valid_ratio", 0.0, 10.0),
                        ("plot_pair", 0, len(params["x"]) - 1),
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
    """``(R_2, R_1, R_inf)`` at depths ``1 .. depth`` (second order, first order,
    infinite width), arrays of length ``depth``."""
    t = finite_width_gradient_covariance(_spec(params, depth, width), [x, y], order=2)
    return (_corr(t["cov_by_depth"]), _corr(t["cov_first_by_depth"]),
            _corr(t["cov_inf_by_depth"]))


def run(params, progress=NULL_PROGRESS):
    """Pair correlations at every pair, depth and width, and both theories."""
    t0 = time.perf_counter()
    widths, depths = params["widths"], params["depths"]
    lmax, nets = depths[-1], int(params["nets"])
    pairs = list(zip(params["x"], params["y"]))
    P, D, K = len(pairs), len(depths), len(widths)
    corr, se, first, second = (np.empty((P, D, K)) for _ in range(4))
    exact = np.empty((P, D))
    # the profile over depth 1 .. lmax at the narrowest width (right panel)
    prof, prof_se, prof_1, prof_2, prof_inf = (np.empty((P, lmax)) for _ in range(5))
    workers = run_workers()
    idx = np.array(depths) - 1
    for p, (x, y) in enumerate(pairs):
        grid = GridSpec(points=2, lo=min(x, y), hi=max(x, y))
        for k, w in enumerate(widths):
            tick = progress.stage(f"{NAME}: x={x:g}, y={y:g}, width {w}", nets)
            g = simulate_depths(_spec(params, lmax, w), grid, nets=nets,
                                seed=params["seed"] + 1000 * p + k,
                                sampler=params["sampler"], workers=workers,
                                progress=lambda done, total, tick=tick: tick(done))
            ests = [pair_statistics(g[:, d, 0, 0], g[:, d, 1, 0])["correlation"]
                    for d in range(lmax)]
            val = np.array([float(e.value) for e in ests])
            err = np.array([float(e.se) for e in ests])
            r_2, r_1, r_inf = theory_correlations(params, lmax, w, x, y)
            corr[p, :, k], se[p, :, k] = val[idx], err[idx]
            first[p, :, k], second[p, :, k] = r_1[idx], r_2[idx]
            exact[p] = r_inf[idx]
            if k == 0:
                prof[p], prof_se[p], prof_inf[p] = val, err, r_inf
                prof_1[p], prof_2[p] = r_1, r_2
    return Results(NAME, params, {"widths": np.array(widths), "depths": np.array(depths),
                                  "corr": corr, "corr_se": se, "exact": exact,
                                  "first_order": first, "second_order": second,
                                  "profile": prof, "profile_se": prof_se,
                                  "profile_first_order": prof_1,
                                  "profile_second_order": prof_2,
                                  "profile_exact": prof_inf},
                   {"seconds": time.perf_counter() - t0})


def coefficients(results):
    """``dict`` of arrays (pair, depth, width): ``c_mc`` (``n (R_n - R_inf) - c_2 / n``),
    ``c_mc_se`` (``n se``), ``c_theory`` (``c = n (R_1 - R_inf)``), ``c2_theory``
    (``c_2 = n^2 (R_2 - R_1)``), ``z`` (``(R_n - R_2) / se``), ``z1``
    (``(R_n - R_1) / se``), ``z_inf`` (``(R_n - R_inf) / se``) and ``ratio``
    (``L / n``)."""
    r = results
    n = np.asarray(r["widths"], dtype=float)
    depth = np.asarray(r["depths"], dtype=float)
    exact = np.asarray(r["exact"])[..., None]
    c2 = n * n * (r["second_order"] - r["first_order"])
    return {"c_mc": n * (r["corr"] - exact) - c2 / n, "c_mc_se": n * r["corr_se"],
            "c_theory": n * (r["first_order"] - exact), "c2_theory": c2,
            "z": zscore(r["corr"], r["second_order"], r["corr_se"]),
            "z1": zscore(r["corr"], r["first_order"], r["corr_se"]),
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
    ``|c| / n`` (solid) and the second order ``|c / n + c_2 / n^2|`` (dashed); right:
    ``R`` against depth at the narrowest width, one pair."""
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
            a.plot(widths, np.abs(r["second_order"][p, j] - r["exact"][p, j]), "--",
                   color=c, lw=0.9)
            s += 1
    a.plot([], [], "k-", lw=0.9, label=f"|c| / n, {LABELS['finite']}")
    a.plot([], [], "k--", lw=0.9, label=LABELS["finite2"])
    pair_scan_axes(a, prm["sampler"], f"{prm['nets']}", LABELS["exact"])
    b = ax[0, 1]
    p = prm["plot_pair"]
    lmax = np.shape(r["profile"])[1]
    dd = np.arange(1, lmax + 1)
    b.errorbar(dd, r["profile"][p], yerr=r["profile_se"][p], fmt="o", color=COLORS[0],
               ms=4, capsize=2, label=f"Monte Carlo, width {int(widths[0])}")
    b.plot(dd, r["profile_first_order"][p], "-", color=COLORS[1],
           label=f"{LABELS['finite']}, width {int(widths[0])}")
    b.plot(dd, r["profile_second_order"][p], "--", color=COLORS[2],
           label=f"{LABELS['finite2']}, width {int(widths[0])}")
    b.plot(dd, r["profile_exact"][p], ":", color="k", label=LABELS["exact"])
    b.set_xlabel("depth L")
    b.set_ylabel("R = Corr(df/dx(x), df/dx(y))")
    b.set_title(f"x = {prm['x'][p]:g}, y = {prm['y'][p]:g}, width {int(widths[0])} "
                f"(L / n up to {lmax / widths[0]:.2g})", fontsize=8)
    b.legend(fontsize=7)
    return fig


def _range_row(results, co):
    """X8c: the largest |z| of each theory at every L / n of the run."""
    z = {"infinite width": co["z_inf"], "first order": co["z1"], "second order": co["z"]}
    ratios = np.unique(np.round(co["ratio"], 12))
    parts = []
    for q in ratios:
        cells = np.isclose(co["ratio"], q, rtol=1e-9, atol=0)
        parts.append(f"L/n = {q:g} ({int(cells.sum())} cells): " + ", ".join(
            f"{k} {float(np.abs(v[cells]).max()):.2f}" for k, v in z.items()))
    held = [q for q in ratios
            if float(np.abs(co["z"][np.isclose(co["ratio"], q, rtol=1e-9, atol=0)]).max())
            <= FW_NSIGMA]
    return "; ".join(parts), held


def claims(results):
    """X8a: the 1/n coefficient agrees with the theory where ``L / n`` is small; X8b:
    where the infinite-width theory is off, the second-order theory is not; X8c (info):
    where the expansion holds."""
    r, prm = results, results.params
    co = coefficients(results)
    z, z1, z_inf = np.asarray(co["z"]), np.asarray(co["z1"]), np.asarray(co["z_inf"])
    inside = co["ratio"] <= prm["max_ratio"]
    valid = co["ratio"] <= prm["valid_ratio"]
    nets = int(prm["nets"])
    setting = (f"feedforward He ReLU, bias variance {prm['bias_var']:g} on every layer, "
               f"depths {', '.join(map(str, prm['depths']))}, widths "
               f"{', '.join(map(str, prm['widths']))}, {nets} nets per (pair, width), "
               f"sampler {prm['sampler']}")
    theory = (f"{LABELS['finite']} and {LABELS['finite2']} (expansion in L / n); "
              f"R_inf: {LABELS['exact']}")
    out = []

    cells = _cells(results, inside)
    est = "; ".join(f"{lab}: c_MC = {fmt_est(co['c_mc'][p, j, k], co['c_mc_se'][p, j, k])}"
                    f" vs c = {fmt(co['c_theory'][p, j, k])} (c_2 = "
                    f"{fmt(co['c2_theory'][p, j, k])})" for p, j, k, lab in cells)
    outside = "; ".join(f"{lab}: z = {z[p, j, k]:.2f}"
                        for p, j, k, lab in _cells(results, ~inside))
    rule = (f"over the cells with L / n <= {prm['max_ratio']:g}: holds if every "
            f"|c_MC - c| / (n s.e.) <= {COEF_NSIGMA:g}, c_MC = n (R_n - R_inf) - c_2 / n")
    if cells:
        worst = float(np.abs(z[inside]).max())
        passed, criterion = bool(worst <= COEF_NSIGMA), rule
        score = (f"max |z| = {worst:.2f} over {len(cells)} cells (without the c_2 / n "
                 f"term, max |z_1| = {float(np.abs(z1[inside]).max()):.2f})")
    else:
        passed, criterion = None, f"informational: undecided, no cell qualifies ({rule})"
        score = "no cell with L / n <= max_ratio"
    score += (f"; L / n > {prm['max_ratio']:g}: {outside}" if outside else "")
    out.append(Claim(
        "X8a", f"the 1/n coefficient of the pair correlation agrees with the finite-width "
        f"theory within {COEF_NSIGMA:g} s.e. where L/n <= {prm['max_ratio']:g}", setting,
        theory, est or "no cell", score, passed, criterion))

    off = (np.abs(z_inf) > OFF_NSIGMA) & valid
    cells = _cells(results, off)
    est = "; ".join(f"{lab}: R_n = {fmt_est(r['corr'][p, j, k], r['corr_se'][p, j, k])}, "
                    f"R_2 = {fmt(r['second_order'][p, j, k])}, R_1 = "
                    f"{fmt(r['first_order'][p, j, k])}, R_inf = {fmt(r['exact'][p, j])}"
                    for p, j, k, lab in cells)
    rule = (f"over the cells with L / n <= {prm['valid_ratio']:g} and |R_n - R_inf| > "
            f"{OFF_NSIGMA:g} s.e.: holds if every |R_n - R_2| <= {FW_NSIGMA:g} s.e.")
    if cells:
        worst = float(np.abs(z[off]).max())
        score = (f"{len(cells)} cells off the infinite-width theory (max |z_inf| = "
                 f"{float(np.abs(z_inf[off]).max()):.2f}); max |R_n - R_2| / s.e. = "
                 f"{worst:.2f} (first order: max |R_n - R_1| / s.e. = "
                 f"{float(np.abs(z1[off]).max()):.2f})")
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
        "X8b", f"where the infinite-width theory is off by more than {OFF_NSIGMA:g} s.e. "
        f"(L/n <= {prm['valid_ratio']:g}), the second-order theory is within "
        f"{FW_NSIGMA:g} s.e.", setting, theory, est or "no cell", score, passed, criterion))

    table, held = _range_row(results, co)
    held_txt = (", ".join(f"{q:g}" for q in held) if held else "none")
    out.append(Claim(
        "X8c", "where the expansion in L/n holds: the largest |z| of each theory at every "
        "L/n", setting, theory, table,
        f"second order within {FW_NSIGMA:g} s.e. at L/n = {held_txt}", None,
        "informational: describes the range of the expansion (max |z| over the cells at "
        "each L/n; |z| > 3 there says the expansion fails)"))
    return out
