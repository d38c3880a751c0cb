"""The paper's closed forms (independent-pattern model) against a Monte Carlo of that
model itself: variance and correlation versus depth for feedforward nets, resnets
(alpha = beta = 1; alpha = 1/sqrt 2; beta = 0.5) and batch-normalised resnets.
Targets T1, T2, T4, T5, T6."""

from __future__ import annotations

import math
import time

import numpy as np

from ..compare import zscore
from ..figures import COLORS, new_figure
from ..spec import NetSpec
from ..theory import paper_model, paper_model_mc
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS

NAME = "paper_model"
TITLE = "The paper model's closed forms against a Monte Carlo of the model itself"
DEFAULTS = {"width": 32, "depth": 20, "nets": 3000, "bn_depths": [1, 2, 5, 10, 20],
            "seed": 7}
QUICK = {"width": 16, "depth": 8, "nets": 1500, "bn_depths": [1, 4, 8]}

CASES = {  # name -> (label, spec keywords)
    "ff": ("feedforward", dict()),
    "res": ("resnet alpha = beta = 1", dict(arch="resnet")),
    "res_alpha": ("resnet alpha = 1/sqrt 2", dict(arch="resnet", alpha=1 / math.sqrt(2))),
    "res_beta": ("resnet beta = 0.5", dict(arch="resnet", beta=0.5)),
    "res_bn": ("resnet + BN", dict(arch="resnet", batchnorm=True)),
}
TARGETS = {"ff": ("T1", "variance 1, correlation 2^-L"),
           "res": ("T4", "variance 2^L, covariance (3/2)^L, correlation (3/4)^L"),
           "res_alpha": ("T5", "alpha = 1/sqrt 2: variance 1, correlation (3/4)^L"),
           "res_beta": ("T5", "beta scaling: variance (1+beta^2)^L, correlation "
                        "((1+beta^2/2)/(1+beta^2))^L"),
           "res_bn": ("T6", "BN resnet: variance 1 + beta^2 L, correlation ~ 1/sqrt L")}


def check(params):
    """Range checks."""
    for key, lo, hi in (("width", 1, 512), ("depth", 1, 200), ("nets", 2, 10**6),
                        ("bn_depths", 1, 200), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)


def run(params, progress=NULL_PROGRESS):
    """Closed forms and the model's Monte Carlo."""
    t0 = time.perf_counter()
    arrays = {}
    for k, (name, (_, kw)) in enumerate(CASES.items()):
        depths = params["bn_depths"] if name == "res_bn" else [params["depth"]]
        tick = progress.stage(f"{NAME}: {name}", len(depths))
        rows = {q: [] for q in ("variance", "correlation", "variance_se", "correlation_se")}
        closed = {q: [] for q in ("variance", "correlation")}
        for i, d in enumerate(depths):
            spec = NetSpec(depth=d, width=params["width"], **kw)
            mc = paper_model_mc(spec, nets=params["nets"], seed=params["seed"] + 100 * k + i)
            th = paper_model(spec)
            sel = slice(None) if name != "res_bn" else slice(-1, None)
            for q in rows:
                rows[q].append(getattr(mc, q))
            for q in closed:
                closed[q].append(getattr(th, q)[sel])
            tick(i + 1)
        for q, v in rows.items():
            arrays[f"{name}_mc_{q}"] = np.concatenate(v)
        for q, v in closed.items():
            arrays[f"{name}_{q}"] = np.concatenate(v)
        arrays[f"{name}_depths"] = (np.array(depths) if name == "res_bn"
                                    else np.arange(1, params["depth"] + 1))
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0})


def plot(results):
    """(a) variance, (b) correlation versus depth: closed forms and the model's MC."""
    r = results
    fig, ax = new_figure(1, 2, size=(11, 4.2))
    for j, q in enumerate(("variance", "correlation")):
        a = ax[0, j]
        for k, (name, (lab, _)) in enumerate(CASES.items()):
            c = COLORS[k % len(COLORS)]
            d = r[f"{name}_depths"]
            a.plot(d, r[f"{name}_{q}"], "-", color=c, lw=1, label=f"{lab} (closed form)")
            a.errorbar(d, r[f"{name}_mc_{q}"], yerr=r[f"{name}_mc_{q}_se"], fmt="o", ms=3,
                       color=c, capsize=1.5)
        a.set_yscale("log")
        a.set_xlabel("depth")
        a.set_ylabel(q)
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].set_title("points: Monte Carlo of the independent-pattern model", fontsize=9)
    return fig


def claims(results):
    """T1, T2, T4, T5, T6: max |z| over depths of the model's MC against its closed form."""
    r, prm = results, results.params
    out = []
    for name, (lab, _) in CASES.items():
        zs = [np.abs(zscore(r[f"{name}_mc_{q}"], r[f"{name}_{q}"], r[f"{name}_mc_{q}_se"])).max()
              for q in ("variance", "correlation")]
        target, claim = TARGETS[name]
        if name == "ff":  # T1 (variance) and T2 (correlation) as separate rows
            for t, q, z, c in (("T1", "variance", zs[0], "variance 1 at every depth"),
                               ("T2", "correlation", zs[1], "correlation 2^-L")):
                out.append(Claim(t, c, f"independent-pattern model, feedforward, width "
                                 f"{prm['width']}, {prm['nets']} nets, depths 1-{prm['depth']}",
                                 f"{r[f'ff_{q}'][-1]:.4g} at depth {prm['depth']}",
                                 f"{r[f'ff_mc_{q}'][-1]:.4g} ± {r[f'ff_mc_{q}_se'][-1]:.2g}",
                                 f"max |z| = {z:.2f}", bool(z <= 4),
                                 f"|z| <= 4 for the {q} at every depth"))
            continue
        d = r[f"{name}_depths"][-1]
        out.append(Claim(target, claim, f"independent-pattern model, {lab}, width "
                         f"{prm['width']}, {prm['nets']} nets, depths up to {d}",
                         f"var {r[f'{name}_variance'][-1]:.4g}, corr "
                         f"{r[f'{name}_correlation'][-1]:.4g} at depth {d}",
                         f"var {r[f'{name}_mc_variance'][-1]:.4g} ± "
                         f"{r[f'{name}_mc_variance_se'][-1]:.2g}, corr "
                         f"{r[f'{name}_mc_correlation'][-1]:.4g} ± "
                         f"{r[f'{name}_mc_correlation_se'][-1]:.2g}",
                         f"max |z| = {max(zs):.2f}", bool(max(zs) <= 4),
                         "|z| <= 4 for variance and correlation at every depth"))
    return out
