"""Figure 3: autocorrelation along the grid versus lag, and lag-1 versus depth, for
feedforward nets (with and without batch norm) and batch-normalised resnets with
beta = 1 and beta = 0.1, beside white and brown noise; the exact infinite-width
expectation for nets without batch norm.  Targets T7, T8, T9, T10, T14, T15."""

from __future__ import annotations

import time

import numpy as np

from ..compare import zscore
from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..spec import NetSpec
from ..stats import autocorrelation, brown_noise, white_noise
from ..theory.exact import exact_gradient_covariance
from ..theory.gp import gp_statistics
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, depth_series, fmt, fmt_est

NAME = "autocorrelation"
TITLE = "Autocorrelation versus lag and lag-1 versus depth"
DEFAULTS = {"width": 200, "points": 256, "nets": 24, "depth": 50,
            "shown_depths": [2, 4, 8, 16, 24, 50], "max_lag": 40, "gp_nets": 2000,
            "theory_depths": [1, 2, 4, 8, 16, 24, 50], "seed": 1}
QUICK = {"width": 32, "nets": 8, "depth": 24, "shown_depths": [2, 4, 8, 24],
         "max_lag": 16, "gp_nets": 400, "theory_depths": [1, 4, 24]}

FAMILIES = {  # name -> (label, spec keywords)
    "ff_bn": ("feedforward + BN", dict(batchnorm=True)),
    "ff": ("feedforward, no BN", dict()),
    "res1": ("resnet + BN, beta = 1", dict(arch="resnet", batchnorm=True)),
    "res01": ("resnet + BN, beta = 0.1", dict(arch="resnet", batchnorm=True, beta=0.1)),
}


def check(params):
    """Range checks."""
    check_range(NAME, params, "width", 1, 4096)
    check_range(NAME, params, "points", 8, 8192)
    check_range(NAME, params, "nets", 2, 10**6)
    check_range(NAME, params, "depth", 1, 1000)
    check_range(NAME, params, "shown_depths", 1, params["depth"])
    check_range(NAME, params, "theory_depths", 1, params["depth"])
    check_range(NAME, params, "max_lag", 1, params["points"] - 1)
    check_range(NAME, params, "gp_nets", 2, 10**6)
    check_range(NAME, params, "seed", 0, 2**63 - 1)


def run(params, progress=NULL_PROGRESS):
    """Gradients at every depth for each family (depth taps), their ACFs, and theory."""
    t0 = time.perf_counter()
    p, w, nets, depth, lag = (params[k] for k in ("points", "width", "nets", "depth", "max_lag"))
    grid = GridSpec(points=p)
    arrays = {}
    for k, (name, (_, kw)) in enumerate(FAMILIES.items()):
        spec = NetSpec(depth=depth, width=w, **kw)
        g = depth_series(spec, grid, nets, params["seed"] + k, progress, f"{NAME}: {name}")
        lag1 = [autocorrelation(g[:, d], 1) for d in range(depth)]
        arrays[f"lag1_{name}"] = np.array([e.value[1] for e in lag1])
        arrays[f"lag1_se_{name}"] = np.array([e.se[1] for e in lag1])
        if name == "ff_bn":
            shown = [d - 1 for d in params["shown_depths"]]
        elif name == "ff":  # the one-hidden-layer net (no BN: with BN on a 1-D input every
            shown = [0, depth - 1]  # unit kinks at the batch mean) and the deepest
        else:
            shown = [depth - 1]
        acf = [autocorrelation(g[:, d], lag) for d in shown]
        arrays[f"acf_{name}"] = np.array([e.value for e in acf])
        arrays[f"acf_se_{name}"] = np.array([e.se for e in acf])
    for name, fn in (("white", white_noise), ("brown", brown_noise)):
        est = autocorrelation(fn(nets, p, seed=params["seed"]), lag)
        arrays[f"acf_{name}"], arrays[f"acf_se_{name}"] = est.value[None], est.se[None]
        arrays[f"lag1_{name}"], arrays[f"lag1_se_{name}"] = est.value[1], est.se[1]
    tick = progress.stage(f"{NAME}: exact theory", len(params["theory_depths"]))
    th, th_se = [], []
    for i, d in enumerate(params["theory_depths"]):
        cov = exact_gradient_covariance(NetSpec(depth=d, width=w), grid.points_array())
        st = gp_statistics(cov[..., 0, 0], nets=params["gp_nets"], seed=params["seed"],
                           max_lag=1)
        th.append(st["lag1"].value)
        th_se.append(st["lag1"].se)
        tick(i + 1)
    arrays["theory_depths"] = np.array(params["theory_depths"])
    arrays["gp_lag1_ff"], arrays["gp_lag1_se_ff"] = np.array(th), np.array(th_se)
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0})


def plot(results):
    """(a) ACF versus lag; (b) lag-1 versus depth with the exact expectation."""
    r, prm = results, results.params
    fig, ax = new_figure(1, 2, size=(11, 4.2))
    a, b = ax[0, 0], ax[0, 1]
    lags = np.arange(prm["max_lag"] + 1)
    cmap = [COLORS[0]] * len(prm["shown_depths"])
    for i, d in enumerate(prm["shown_depths"]):
        alpha = 0.3 + 0.7 * (i + 1) / len(prm["shown_depths"])
        a.plot(lags, r["acf_ff_bn"][i], color=cmap[i], alpha=alpha, lw=1,
               label=f"FF+BN depth {d}" if i in (0, len(cmap) - 1) else None)
    for name, c in (("ff", COLORS[1]), ("res1", COLORS[2]), ("res01", COLORS[3])):
        a.plot(lags, r[f"acf_{name}"][-1], color=c, lw=1.5,
               label=f"{FAMILIES[name][0]}, depth {prm['depth']}")
    a.plot(lags, r["acf_ff"][0], color=COLORS[4], lw=1.5, label="1 hidden layer, no BN")
    a.plot(lags, r["acf_brown"][0], "k--", lw=1, label="brown noise")
    a.plot(lags, r["acf_white"][0], "k:", lw=1, label="white noise")
    a.set_xlabel("lag (grid steps)")
    a.set_ylabel("autocorrelation")
    a.set_title(f"mean over {prm['nets']} nets", fontsize=9)
    a.legend(fontsize=7)
    depths = np.arange(1, prm["depth"] + 1)
    for k, name in enumerate(FAMILIES):
        b.errorbar(depths, r[f"lag1_{name}"], yerr=r[f"lag1_se_{name}"], fmt="o", ms=2.5,
                   capsize=1.5, color=COLORS[k], label=FAMILIES[name][0])
    b.plot(r["theory_depths"], r["gp_lag1_ff"], "-", color=COLORS[1],
           label="exact infinite width, no BN (GP samples)")
    b.axhline(float(r["lag1_brown"]), color="k", ls="--", lw=0.8, label="brown noise")
    b.axhline(float(r["lag1_white"]), color="k", ls=":", lw=0.8, label="white noise")
    b.set_xscale("log")
    b.set_xlabel("depth")
    b.set_ylabel("lag-1 autocorrelation")
    b.legend(fontsize=7)
    return fig


def claims(results):
    """T7, T8, T9, T10, T14, T15, with verdicts from the numbers."""
    r, prm = results, results.params
    D, P, N, W = prm["depth"], prm["points"], prm["nets"], prm["width"]
    lag = {k: (float(r[f"lag1_{k}"][-1]), float(r[f"lag1_se_{k}"][-1])) for k in FAMILIES}
    out = []
    # T7: one hidden layer
    s1, s1e = float(r["lag1_ff"][0]), float(r["lag1_se_ff"][0])
    td = list(r["theory_depths"])
    if 1 in td:
        g1, g1e = float(r["gp_lag1_ff"][td.index(1)]), float(r["gp_lag1_se_ff"][td.index(1)])
        z = zscore(s1, g1, s1e, theory_se=g1e)
        out.append(Claim("T7", "one hidden layer: gradient is brown noise (lag-1 ~ 0.99)",
                         f"width {W}, {P}-point grid, {N} nets",
                         f"{fmt(g1, 4)} (exact GP limit)", fmt_est(s1, s1e, 4), f"z = {z:.2f}",
                         abs(z) <= 4 and s1 >= 0.95,
                         "|z| <= 4 against the exact limit and lag-1 >= 0.95"))
    d24 = min(24, D)
    v, e = float(r["lag1_ff_bn"][d24 - 1]), float(r["lag1_se_ff_bn"][d24 - 1])
    out.append(Claim("T8", "deep feedforward + BN: lag-1 falls to ~0 by depth 16-24",
                     f"width {W}, depth {d24}, {N} nets", "~0 (paper)", fmt_est(v, e),
                     f"|lag-1| = {abs(v):.3f}", abs(v) < 0.1, "|lag-1| < 0.1"))
    (a, ae), (b, be), (c, ce) = lag["ff_bn"], lag["res1"], lag["res01"]
    ok = a < b < c and c > 0.9
    out.append(Claim("T9", "resnet + BN intermediate (beta = 1); beta = 0.1 stays near 1",
                     f"depth {D}, {N} nets", "FF+BN < resnet beta=1 < beta=0.1; beta=0.1 > 0.9",
                     f"{fmt(a)} < {fmt(b)} < {fmt(c)}",
                     f"gaps {zscore(b, a, be, ae):.1f}, {zscore(c, b, ce, be):.1f} s.e.", ok,
                     "ordering holds and beta = 0.1 lag-1 > 0.9"))
    f, fe = lag["ff"]
    if D in td:
        g, ge = float(r["gp_lag1_ff"][td.index(D)]), float(r["gp_lag1_se_ff"][td.index(D)])
        z = zscore(f, g, fe, theory_se=ge)
        out.append(Claim("T10", "feedforward without BN does not whiten on the 1-D grid "
                         "(lag-1 ~ 0.8 at depth 50)", f"width {W}, depth {D}, {N} nets",
                         f"{fmt(g, 4)} (exact GP limit)", fmt_est(f, fe, 4), f"z = {z:.2f}",
                         abs(z) <= 4 and f > 0.5,
                         "|z| <= 4 against the exact limit and lag-1 > 0.5"))
    wv, we = float(r["lag1_white"]), float(r["lag1_se_white"])
    bv, be2 = float(r["lag1_brown"]), float(r["lag1_se_brown"])
    zw = zscore(wv, -1 / P, we)
    out.append(Claim("T14", "noise references: white lag-1 ~ 0; brown lag-1 ~ 0.98",
                     f"{P} points, {N} series", f"white {fmt(-1 / P)}, brown >= 0.95",
                     f"white {fmt_est(wv, we)}, brown {fmt_est(bv, be2)}",
                     f"white z = {zw:.2f}", abs(zw) <= 4 and bv >= 0.95,
                     "white within 4 s.e. of -1/P (the mean-removed estimator's bias); "
                     "brown >= 0.95"))
    order = a < b < c < s1
    out.append(Claim("T15", "decay ordering: FF+BN fastest, then resnet+BN beta=1, then "
                     "beta=0.1, then shallow", f"lag-1 at depth {D}; shallow = 1 layer",
                     "FF+BN < res beta=1 < res beta=0.1 < shallow",
                     f"{fmt(a)} < {fmt(b)} < {fmt(c)} < {fmt(s1)}", "ordering", order,
                     "strict ordering of the measured lag-1 values"))
    return out
