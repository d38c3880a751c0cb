"""Figure 6: looks-linear initialisation.

(a) df/dx along the grid for a deep looks-linear CReLU net (constant: the net is linear
at initialisation) beside a CReLU net with independent halves and batch norm;
(b) lag-1 autocorrelation versus depth, CReLU without mirroring against ReLU, both with
batch norm; (c) the partial-mirroring family ``[P, -alpha P]``: correlation of df/dx
at x = -1 and y = 1 at a fixed depth versus alpha, Monte Carlo beside the exact
infinite-width and gradient-independence curves.  Targets T12, T13.
"""

from __future__ import annotations

import time

import numpy as np

from ..compare import pair_statistics, predict, zscore
from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..montecarlo import network_rng
from ..nets import input_gradient, looks_linear_product, sample_network
from ..spec import NetSpec
from ..stats import autocorrelation
from ..theory import LABELS
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, depth_series, fmt, fmt_est

NAME = "looks_linear"
TITLE = "Looks-linear initialisation and the partial-mirroring family"
DEFAULTS = {"width": 200, "points": 256, "ll_depth": 64, "bn_depth": 24, "bn_nets": 16,
            "mirror_depth": 20, "mirrors": [0.0, 0.25, 0.5, 0.75, 1.0], "nets": 40,
            "seed": 4}
QUICK = {"width": 32, "ll_depth": 50, "bn_depth": 20, "bn_nets": 8, "mirror_depth": 10,
         "mirrors": [0.0, 0.5, 1.0], "nets": 30}


def check(params):
    """Range checks."""
    for key, lo, hi in (("width", 1, 4096), ("points", 8, 8192), ("ll_depth", 1, 1000),
                        ("bn_depth", 1, 1000), ("bn_nets", 2, 10**6), ("mirror_depth", 1, 1000),
                        ("mirrors", 0.0, 1.0), ("nets", 2, 10**6), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)


def run(params, progress=NULL_PROGRESS):
    """The three panels' numbers."""
    t0 = time.perf_counter()
    W, P, seed = params["width"], params["points"], params["seed"]
    grid = GridSpec(points=P)
    x = grid.points_array()
    tick = progress.stage(f"{NAME}: single nets", 2)
    ll = sample_network(NetSpec(depth=params["ll_depth"], width=W, activation="crelu",
                                init="looks-linear"), network_rng(seed, 0))
    g_ll = input_gradient(ll, x)[:, 0]
    product = float(looks_linear_product(ll)[0])
    tick(1)
    cr = sample_network(NetSpec(depth=params["ll_depth"], width=W, activation="crelu",
                                batchnorm=True), network_rng(seed, 1))
    g_cr = input_gradient(cr, x)[:, 0]
    tick(2)
    arrays = {"x": x[:, 0], "grad_ll": g_ll, "grad_crelu": g_cr, "ll_product": product}
    for k, act in enumerate(("crelu", "relu")):
        spec = NetSpec(depth=params["bn_depth"], width=W, activation=act, batchnorm=True)
        g = depth_series(spec, grid, params["bn_nets"], seed + 10 + k, progress,
                         f"{NAME}: {act} + BN")
        est = [autocorrelation(g[:, d], 1) for d in range(params["bn_depth"])]
        arrays[f"lag1_{act}"] = np.array([e.value[1] for e in est])
        arrays[f"lag1_se_{act}"] = np.array([e.se[1] for e in est])
    L = params["mirror_depth"]
    pair = GridSpec(points=2, lo=-1.0, hi=1.0)
    corr, se = [], []
    for k, m in enumerate(params["mirrors"]):
        spec = NetSpec(depth=L, width=W, activation="crelu", init="looks-linear", mirror=m)
        g = depth_series(spec, pair, params["nets"], seed + 20 + k, progress,
                         f"{NAME}: mirror {m:g}")[:, -1]
        c = pair_statistics(g[:, 0], g[:, 1])["correlation"]
        corr.append(float(c.value))
        se.append(float(c.se))
    fine = np.linspace(0.0, 1.0, 41)
    th = {m: [] for m in ("exact", "independence", "paper")}
    for m in fine:
        spec = NetSpec(depth=L, width=W, activation="crelu", init="looks-linear", mirror=m)
        for model in th:
            th[model].append(predict(spec, model, -1.0, 1.0)["correlation"])
    arrays |= {"mirrors": np.array(params["mirrors"]), "mirror_corr": np.array(corr),
               "mirror_corr_se": np.array(se), "fine": fine}
    arrays |= {f"theory_{k}": np.array(v) for k, v in th.items()}
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0})


def plot(results):
    """Three panels."""
    r, prm = results, results.params
    fig, ax = new_figure(1, 3, size=(14, 4.0))
    a, b, c = ax[0]
    for k, (key, lab) in enumerate((("grad_ll", f"looks-linear CReLU, depth {prm['ll_depth']}"),
                                    ("grad_crelu", "CReLU + BN, no mirroring"))):
        g = r[key]
        a.plot(r["x"], g / max(np.abs(g).max(), 1e-300), color=COLORS[k], lw=1, label=lab)
    a.set_xlabel("input x")
    a.set_ylabel("df/dx / max |df/dx|")
    a.legend(fontsize=7)
    depths = np.arange(1, prm["bn_depth"] + 1)
    for k, act in enumerate(("crelu", "relu")):
        b.errorbar(depths, r[f"lag1_{act}"], yerr=r[f"lag1_se_{act}"], fmt="o-", ms=3,
                   lw=0.8, capsize=1.5, color=COLORS[k], label=f"{act.upper()} + BN")
    b.set_xlabel("depth")
    b.set_ylabel("lag-1 autocorrelation")
    b.legend(fontsize=7)
    c.errorbar(r["mirrors"], r["mirror_corr"], yerr=r["mirror_corr_se"], fmt="o", color="k",
               capsize=2, label="Monte Carlo")
    for k, model in enumerate(("exact", "independence", "paper")):
        c.plot(r["fine"], r[f"theory_{model}"], color=COLORS[k + 2], label=LABELS[model])
    c.set_xlabel("mirroring alpha ([P, -alpha P])")
    c.set_ylabel(f"correlation at x = -1, 1, depth {prm['mirror_depth']}")
    c.legend(fontsize=6)
    return fig


def claims(results):
    """T12 and T13."""
    r, prm = results, results.params
    g = r["grad_ll"]
    spread = float(np.abs(g - g[0]).max() / abs(g[0]))
    rel = float(abs(g[0] - r["ll_product"]) / abs(r["ll_product"]))
    out = [Claim("T12", "looks-linear init: df/dx identical at all points to rounding, equal "
                 "to u^T W_L ... W_1", f"depth {prm['ll_depth']}, width {prm['width']}, "
                 f"{prm['points']} points", "constant = u^T W_L ... W_1",
                 f"spread {spread:.1e}; vs product {rel:.1e}", "relative",
                 spread < 1e-10 and rel < 1e-10,
                 "max |g - g_0| / |g_0| < 1e-10 and |g_0 - product| / |product| < 1e-10")]
    a, ae = float(r["lag1_crelu"][-1]), float(r["lag1_se_crelu"][-1])
    b, be = float(r["lag1_relu"][-1]), float(r["lag1_se_relu"][-1])
    z = zscore(a, b, ae, theory_se=be)
    out.append(Claim("T13", "CReLU without mirroring shatters like ReLU (with BN)",
                     f"depth {prm['bn_depth']}, width {prm['width']}, {prm['bn_nets']} nets each",
                     f"ReLU + BN {fmt_est(b, be)}", f"CReLU + BN {fmt_est(a, ae)}",
                     f"z = {z:.2f}", bool(abs(z) <= 4 and abs(a) < 0.2),
                     "|z| <= 4 between the two and |lag-1 CReLU| < 0.2"))
    k = np.argmin(np.abs(r["fine"][:, None] - r["mirrors"][None]), axis=0)
    zs = zscore(r["mirror_corr"], r["theory_exact"][k], r["mirror_corr_se"])
    out.append(Claim("X3", "partial mirroring interpolates ReLU and looks-linear",
                     f"depth {prm['mirror_depth']}, x = -1, y = 1, {prm['nets']} nets per alpha",
                     LABELS["exact"], ", ".join(fmt(v) for v in r["mirror_corr"]),
                     f"max |z| = {np.abs(zs).max():.2f}", None,
                     "informational: alpha = 1 is exactly 1, alpha = 0 is ReLU"))
    return out
