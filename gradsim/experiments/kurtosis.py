"""Figure 8: finite width.  Kurtosis of df/dx versus depth for several widths, beside
the exact identity 3 prod (1 + 5/n) for bias-free He ReLU nets."""

from __future__ import annotations

import time

import numpy as np

from ..compare import zscore
from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..spec import NetSpec
from ..stats import point_moments
from ..theory import LABELS, kurtosis_identity
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, depth_series

NAME = "kurtosis"
TITLE = "Finite width: kurtosis of df/dx versus depth, beside 3 prod (1 + 5/n)"
DEFAULTS = {"widths": [10, 20, 50], "depth": 6, "nets": 8000, "check_depth": 3, "seed": 6}
QUICK = {"widths": [20, 50], "depth": 3, "nets": 1500, "check_depth": 2}


def check(params):
    """Range checks."""
    for key, lo, hi in (("widths", 1, 4096), ("depth", 1, 100), ("nets", 10, 10**7),
                        ("check_depth", 1, params["depth"]), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)


def run(params, progress=NULL_PROGRESS):
    """Kurtosis at x = 1 for each width and depth (depth taps)."""
    t0 = time.perf_counter()
    grid = GridSpec(points=2, lo=-1.0, hi=1.0)
    k, se, th = [], [], []
    for i, w in enumerate(params["widths"]):
        spec = NetSpec(depth=params["depth"], width=w, first_bias_var=0.0)
        g = depth_series(spec, grid, params["nets"], params["seed"] + i, progress,
                         f"{NAME}: width {w}")
        est = [point_moments(g[:, d], 1)[1] for d in range(params["depth"])]
        k.append([float(e.value) for e in est])
        se.append([float(e.se) for e in est])
        th.append(kurtosis_identity(spec))
    return Results(NAME, params, {"kurtosis": np.array(k), "kurtosis_se": np.array(se),
                                  "theory": np.array(th)},
                   {"seconds": time.perf_counter() - t0})


def plot(results):
    """Kurtosis versus depth, log scale."""
    r, prm = results, results.params
    fig, ax = new_figure(size=(6.4, 4.2))
    a = ax[0, 0]
    depths = np.arange(1, prm["depth"] + 1)
    for i, w in enumerate(prm["widths"]):
        c = COLORS[i % len(COLORS)]
        a.errorbar(depths, r["kurtosis"][i], yerr=r["kurtosis_se"][i], fmt="o", color=c,
                   capsize=2, label=f"width {w} (Monte Carlo, {prm['nets']} nets)")
        a.plot(depths, r["theory"][i], "-", color=c, lw=1)
    a.axhline(3, color="gray", ls=":", lw=0.8, label="Gaussian (3)")
    a.plot([], [], "k-", label=LABELS["kurtosis"] + ": 3 prod (1 + 5/n)")
    a.set_yscale("log")
    a.set_xlabel("depth")
    a.set_ylabel("kurtosis of df/dx")
    a.legend(fontsize=7)
    return fig


def claims(results):
    """The identity within 4 delta-method standard errors up to ``check_depth``."""
    r, prm = results, results.params
    L = prm["check_depth"]
    worst = float(np.abs(zscore(r["kurtosis"][:, :L], r["theory"][:, :L],
                                r["kurtosis_se"][:, :L])).max())
    return [Claim("X5", "finite width: kurtosis of df/dx is exactly 3 prod (1 + 5/n) "
                  "(bias-free He ReLU)", f"widths {prm['widths']}, depths 1-{L}, "
                  f"{prm['nets']} nets", LABELS["kurtosis"],
                  f"width {prm['widths'][-1]}, depth {L}: {r['kurtosis'][-1, L - 1]:.3f} ± "
                  f"{r['kurtosis_se'][-1, L - 1]:.2g} (theory {r['theory'][-1, L - 1]:.3f})",
                  f"max |z| = {worst:.2f}", bool(worst <= 4),
                  "|z| <= 4 (delta-method s.e.) at every width and depth <= check_depth; "
                  "deeper and narrower the tails are too heavy for the s.e.")]
