"""Figure 5: gradient correlation versus depth.

(a) Between the inputs x = -1 and y = 1 of the paper's line: Monte Carlo with error
bars for feedforward nets (with and without BN), resnets (alpha = beta = 1, a
beta-scaled resnet, with BN), highway and looks-linear nets, beside the paper model
(independent activation patterns, dotted) and the exact infinite-width curves (solid).
On the line, correlations turn negative, which the paper model cannot show.
(b) The paper's own setting for its 2^-L: high-dimensional Gaussian inputs, feedforward
+ BN, mean off-diagonal over mean diagonal gradient inner product (T3).
"""

from __future__ import annotations

import time

import numpy as np

from ..compare import pair_statistics, predict, zscore
from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..montecarlo import simulate_depths
from ..spec import NetSpec
from ..stats import offdiagonal_ratio
from ..theory import LABELS, covers, paper_model
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, depth_series, fmt, fmt_est, run_workers

NAME = "correlation"
TITLE = "Correlation versus depth: Monte Carlo, paper model, exact infinite width"
DEFAULTS = {"width": 200, "depth": 50, "nets": 80, "bn_nets": 30, "ll_nets": 10,
            "points": 256,
            "t3_depth": 8, "t3_nets": 16, "t3_dim": 200, "t3_points": 64, "t3_width": 200,
            "x": -1.0, "y": 1.0, "seed": 3}
QUICK = {"width": 32, "depth": 16, "nets": 40, "bn_nets": 8, "ll_nets": 4, "t3_depth": 4,
         "t3_nets": 8,
         "t3_dim": 100, "t3_points": 32, "t3_width": 100}

ARCHS = {  # name -> (label, spec keywords, uses the full grid for batch norm)
    "ff": ("feedforward", dict(), False),
    "ff_bn": ("feedforward + BN", dict(batchnorm=True), True),
    "res": ("resnet alpha = beta = 1", dict(arch="resnet"), False),
    "res_beta": ("resnet beta = 0.5", dict(arch="resnet", beta=0.5), False),
    "res_bn": ("resnet + BN", dict(arch="resnet", batchnorm=True), True),
    "highway": ("highway (gate bias -2)", dict(arch="highway"), False),
    "ll": ("looks-linear CReLU", dict(activation="crelu", init="looks-linear"), False),
}


def check(params):
    """Range checks."""
    for key, lo, hi in (("width", 1, 4096), ("depth", 1, 1000), ("nets", 2, 10**6),
                        ("bn_nets", 2, 10**6), ("ll_nets", 2, 10**6), ("points", 4, 8192),
                        ("t3_depth", 1, 100),
                        ("t3_nets", 2, 10**5), ("t3_dim", 1, 4096), ("t3_points", 2, 1024),
                        ("t3_width", 1, 4096),
                        ("x", -2.0, 2.0), ("y", -2.0, 2.0), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)
    if params["x"] == params["y"]:
        raise ValueError(f"{NAME}: parameters x and y must differ")


def _theory(spec, depth, x, y):
    """Paper-model and exact correlations at depths 1 .. depth; nan where the theory does
    not cover ``spec`` (:func:`gradsim.theory.covers`)."""
    paper = np.full(depth, np.nan)
    if covers(spec, "paper") is None:
        paper = paper_model(spec.replace(depth=depth)).correlation
    exact = np.full(depth, np.nan)
    if covers(spec, "exact") is None:
        exact = np.array([predict(spec.replace(depth=d), "exact", x, y)["correlation"]
                          for d in range(1, depth + 1)])
    return paper, exact


def run(params, progress=NULL_PROGRESS):
    """Pair correlations at every depth (depth taps), theory curves, and T3."""
    t0 = time.perf_counter()
    D, W, x, y = params["depth"], params["width"], params["x"], params["y"]
    arrays = {}
    for k, (name, (_, kw, full)) in enumerate(ARCHS.items()):
        spec = NetSpec(depth=D, width=W, **kw)
        if full:
            grid = GridSpec(points=params["points"])
            t = grid.points_array()[:, 0]
            i, j = int(np.argmin(np.abs(t - x))), int(np.argmin(np.abs(t - y)))
            nets = params["bn_nets"]
        else:
            grid = GridSpec(points=2, lo=min(x, y), hi=max(x, y))
            i, j = (0, 1) if x < y else (1, 0)
            nets = params["ll_nets"] if name == "ll" else params["nets"]
        g = depth_series(spec, grid, nets, params["seed"] + k, progress, f"{NAME}: {name}")
        est = [pair_statistics(g[:, d, i], g[:, d, j])["correlation"] for d in range(D)]
        arrays[f"corr_{name}"] = np.array([float(e.value) for e in est])
        arrays[f"corr_se_{name}"] = np.array([float(e.se) for e in est])
        arrays[f"paper_{name}"], arrays[f"exact_{name}"] = _theory(spec, D, x, y)
    # T3: high-dimensional inputs, feedforward + BN
    L3 = params["t3_depth"]
    spec = NetSpec(depth=L3, width=params["t3_width"], input_dim=params["t3_dim"],
                   batchnorm=True)
    grid = GridSpec(kind="gaussian", points=params["t3_points"], dim=params["t3_dim"],
                    seed=params["seed"])
    tick = progress.stage(f"{NAME}: T3", params["t3_nets"])
    workers = run_workers()
    g = simulate_depths(spec, grid, nets=params["t3_nets"], seed=params["seed"] + 99,
                        workers=workers,
                        progress=lambda done, total: tick(done))
    ratios = [offdiagonal_ratio(g[:, d]) for d in range(L3)]
    arrays["t3_ratio"] = np.array([float(r.value) for r in ratios])
    arrays["t3_ratio_se"] = np.array([float(r.se) for r in ratios])
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0,
                                          "labels": {n: v[0] for n, v in ARCHS.items()}})


def plot(results):
    """(a) pair correlation versus depth; (b) the T3 ratio versus 2^-L."""
    r, prm = results, results.params
    D = prm["depth"]
    depths = np.arange(1, D + 1)
    fig, ax = new_figure(1, 2, size=(12, 4.6), gridspec_kw={"width_ratios": [2, 1]})
    a, b = ax[0, 0], ax[0, 1]
    for k, (name, (lab, _, _)) in enumerate(ARCHS.items()):
        c = COLORS[k % len(COLORS)]
        a.errorbar(depths, r[f"corr_{name}"], yerr=r[f"corr_se_{name}"], fmt="o", ms=2.5,
                   capsize=1.5, color=c, label=f"{lab} (Monte Carlo)")
        a.plot(depths, r[f"paper_{name}"], ":", color=c, lw=1)
        a.plot(depths, r[f"exact_{name}"], "-", color=c, lw=1)
    a.plot([], [], "k:", label=LABELS["paper"])
    a.plot([], [], "k-", label=LABELS["exact"])
    a.set_ylim(-1.05, 1.05)
    a.axhline(0, color="gray", lw=0.5)
    a.set_xscale("log")
    a.set_xlabel("depth")
    a.set_ylabel(f"correlation of df/dx at x = {prm['x']:g} and {prm['y']:g}")
    a.legend(fontsize=6, ncol=2)
    L3 = np.arange(1, prm["t3_depth"] + 1)
    b.errorbar(L3, r["t3_ratio"], yerr=r["t3_ratio_se"], fmt="o", color=COLORS[1],
               label="feedforward + BN (Monte Carlo)")
    b.plot(L3, 2.0 ** -L3, "k:", label="2^-L (paper model)")
    b.set_yscale("log")
    b.set_xlabel("depth")
    b.set_ylabel("mean off-diagonal / mean diagonal")
    b.set_title(f"{prm['t3_dim']}-dim Gaussian inputs ({prm['t3_points']})", fontsize=9)
    b.legend(fontsize=7)
    return fig


def claims(results):
    """T3, and the paper model against exact theory on the paper's line (X1)."""
    r, prm = results, results.params
    out = []
    L3 = np.arange(1, prm["t3_depth"] + 1)
    z = zscore(r["t3_ratio"], 2.0**-L3, r["t3_ratio_se"])
    rel = r["t3_ratio"] / 2.0**-L3 - 1
    out.append(Claim("T3", "ratio of mean off-diagonal to mean diagonal gradient inner "
                     f"product ~ 2^-L (L <= {prm['t3_depth']})",
                     f"FF + BN, width {prm['t3_width']}, {prm['t3_dim']}-dim Gaussian inputs "
                     f"({prm['t3_points']}), {prm['t3_nets']} nets",
                     "2^-L (paper model)",
                     f"L={prm['t3_depth']}: " + fmt_est(r["t3_ratio"][-1], r["t3_ratio_se"][-1]),
                     f"max |z| = {np.abs(z).max():.2f}; max |rel| = {np.abs(rel).max():.1%}",
                     bool(np.all(np.abs(z) <= 4)), "|z| <= 4 at every depth"))
    D = prm["depth"]
    d = min(10, D) - 1
    v, se = r["corr_ff"][d], r["corr_se_ff"][d]
    ze = zscore(v, r["exact_ff"][d], se)
    zp = zscore(v, r["paper_ff"][d], se)
    out.append(Claim("X1", "past the paper: on the 1-D line the exact infinite-width theory "
                     "predicts the correlation; the paper model does not",
                     f"feedforward, depth {d + 1}, x = {prm['x']:g}, y = {prm['y']:g}, "
                     f"width {prm['width']}, {prm['nets']} nets",
                     f"exact {fmt(r['exact_ff'][d])}; paper {fmt(r['paper_ff'][d])}",
                     fmt_est(v, se), f"z exact = {ze:.2f}; z paper = {zp:.2f}",
                     bool(abs(ze) <= 4 and abs(zp) > 4),
                     "|z| <= 4 against exact theory and > 4 against the paper model"))
    every = {q: np.concatenate([r[f"{q}_{name}"] for name in ARCHS])
             for q in ("corr", "corr_se", "exact")}
    covered = np.isfinite(every["exact"])  # nan where exact theory does not cover the net
    zs = np.abs(zscore(every["corr"], every["exact"], every["corr_se"]))[covered]
    out.append(Claim("X2", "exact infinite-width correlation versus Monte Carlo at every "
                     "depth, nets without batch norm",
                     f"width {prm['width']}, depths 1-{D}, {prm['nets']} nets per "
                     "architecture", LABELS["exact"], "see figure",
                     f"max |z| over depths and architectures = {zs.max():.2f}" if zs.size
                     else "—",
                     None, "informational: finite-width bias grows like depth / width"))
    return out
