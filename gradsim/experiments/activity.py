"""Figure 4: active and co-active proportions per layer, with and without batch norm
(feedforward, depth 50).  Target T11."""

from __future__ import annotations

import time

import numpy as np

from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..montecarlo import simulate
from ..spec import NetSpec
from ..stats import activity_summary
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, fmt, run_workers

NAME = "activity"
TITLE = "Active and co-active proportions per layer, with and without batch norm"
DEFAULTS = {"width": 200, "points": 256, "nets": 20, "depth": 50, "seed": 2}
QUICK = {"width": 64, "nets": 8, "depth": 20}


def check(params):
    """Range checks."""
    check_range(NAME, params, "width", 1, 4096)
    check_range(NAME, params, "points", 2, 8192)
    check_range(NAME, params, "nets", 2, 10**6)
    check_range(NAME, params, "depth", 1, 1000)
    check_range(NAME, params, "seed", 0, 2**63 - 1)


def run(params, progress=NULL_PROGRESS):
    """Activity of feedforward nets with and without BN."""
    t0 = time.perf_counter()
    arrays = {}
    grid = GridSpec(points=params["points"])
    workers = run_workers()
    for k, bn in enumerate((True, False)):
        key = "bn" if bn else "plain"
        spec = NetSpec(depth=params["depth"], width=params["width"], batchnorm=bn)
        tick = progress.stage(f"{NAME}: {'with' if bn else 'without'} BN", params["nets"])
        sim = simulate(spec, grid, nets=params["nets"], seed=params["seed"] + k, keep=False,
                       activity=True, workers=workers,
                       progress=lambda done, total, tick=tick: tick(done))
        act, co = activity_summary(sim.activity)
        arrays[f"active_{key}"], arrays[f"active_se_{key}"] = act.value, act.se
        arrays[f"coactive_{key}"], arrays[f"coactive_se_{key}"] = co.value, co.se
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0})


def plot(results):
    """Proportions versus layer."""
    r = results
    fig, ax = new_figure(size=(6.4, 4.0))
    a = ax[0, 0]
    layers = np.arange(1, results.params["depth"] + 1)
    for k, (key, lab) in enumerate((("bn", "with BN"), ("plain", "without BN"))):
        a.errorbar(layers, r[f"active_{key}"], yerr=r[f"active_se_{key}"], fmt="o-", ms=2.5,
                   lw=0.8, color=COLORS[k], label=f"active, {lab}")
        a.errorbar(layers, r[f"coactive_{key}"], yerr=r[f"coactive_se_{key}"], fmt="s--",
                   ms=2.5, lw=0.8, color=COLORS[k], label=f"co-active, {lab}")
    a.axhline(0.5, color="gray", lw=0.6)
    a.axhline(0.25, color="gray", lw=0.6)
    a.set_xlabel("layer")
    a.set_ylabel("proportion")
    a.set_ylim(0, 1)
    a.legend(fontsize=7)
    return fig


def claims(results):
    """T11: active ~ 1/2 everywhere; co-active ~ 1/4 with BN, climbing to ~1/2 without."""
    r, prm = results, results.params
    act = np.concatenate([r["active_bn"], r["active_plain"]])
    co_bn, co_plain = r["coactive_bn"], r["coactive_plain"]
    ok = (np.all(np.abs(act - 0.5) < 0.05) and np.all(np.abs(co_bn - 0.25) < 0.05)
          and co_plain[-1] > 0.4 and co_plain[-1] > co_plain[0] + 0.1)
    return [Claim("T11", "active ~ 1/2 everywhere; co-active ~ 1/4 with BN, climbing to ~1/2 "
                  "without", f"feedforward, width {prm['width']}, depth {prm['depth']}, "
                  f"{prm['nets']} nets", "active 1/2; co-active 1/4 (BN), -> 1/2 (no BN)",
                  f"active in [{fmt(act.min())}, {fmt(act.max())}]; co-active BN in "
                  f"[{fmt(co_bn.min())}, {fmt(co_bn.max())}]; no BN {fmt(co_plain[0])} -> "
                  f"{fmt(co_plain[-1])}", f"max |active - 1/2| = {np.abs(act - 0.5).max():.3f}",
                  bool(ok), "|active - 1/2| < 0.05 at every layer; |co-active(BN) - 1/4| < "
                  "0.05; co-active without BN > 0.4 at the last layer and up by > 0.1")]
