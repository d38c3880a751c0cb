"""Figure 7: power spectra along the grid (log-log) with their fitted slopes, for
feedforward + BN nets of increasing depth, a BN resnet, white and brown noise."""

from __future__ import annotations

import time

import numpy as np

from ..figures import COLORS, new_figure
from ..grids import GridSpec
from ..spec import NetSpec
from ..stats import brown_noise, power_rows, spectral_slope, white_noise
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, depth_series, fmt

NAME = "spectra"
TITLE = "Spectra along the grid and their log-log slopes"
DEFAULTS = {"width": 200, "points": 256, "nets": 24, "depths": [4, 24],
            "resnet_depth": 24, "fmax": 0.25, "seed": 5}
QUICK = {"width": 32, "nets": 8, "depths": [4, 24], "resnet_depth": 12}


def check(params):
    """Range checks."""
    for key, lo, hi in (("width", 1, 4096), ("points", 8, 8192), ("nets", 2, 10**6),
                        ("depths", 1, 1000), ("resnet_depth", 1, 1000), ("fmax", 0.01, 0.5),
                        ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)


def run(params, progress=NULL_PROGRESS):
    """Mean periodograms and slopes."""
    t0 = time.perf_counter()
    grid = GridSpec(points=params["points"])
    nets, W, seed = params["nets"], params["width"], params["seed"]
    # the one-hidden-layer net has no BN: with BN on a 1-D input every unit kinks at the
    # batch mean and the gradient is a single step
    g = depth_series(NetSpec(depth=1, width=W), grid, nets, seed + 2, progress,
                     f"{NAME}: one hidden layer")
    series, labels = [g[:, 0]], ["1 hidden layer, no BN"]
    D = max(params["depths"])
    g = depth_series(NetSpec(depth=D, width=W, batchnorm=True), grid, nets, seed, progress,
                     f"{NAME}: feedforward + BN")
    for d in params["depths"]:
        series.append(g[:, d - 1])
        labels.append(f"feedforward + BN, depth {d}")
    g = depth_series(NetSpec(arch="resnet", depth=params["resnet_depth"], width=W,
                             batchnorm=True), grid, nets, seed + 1, progress,
                     f"{NAME}: resnet + BN")
    series.append(g[:, -1])
    labels.append(f"resnet + BN, depth {params['resnet_depth']}")
    series += [brown_noise(nets, params["points"], seed), white_noise(nets, params["points"],
                                                                       seed)]
    labels += ["brown noise", "white noise"]
    power, slopes = [], []
    freqs = None
    for s in series:
        freqs, p = power_rows(s)
        power.append(p.mean(0))
        slopes.append(spectral_slope(freqs, p.mean(0), params["fmax"]))
    return Results(NAME, params, {"freqs": freqs, "power": np.array(power),
                                  "slopes": np.array(slopes)},
                   {"labels": labels, "seconds": time.perf_counter() - t0})


def plot(results):
    """Spectra, each normalised to unit mean power, with slopes in the legend."""
    r = results
    fig, ax = new_figure(size=(6.4, 4.4))
    a = ax[0, 0]
    for k, (p, s, lab) in enumerate(zip(r["power"], r["slopes"], r.meta["labels"])):
        ls = "--" if "noise" in lab else "-"
        a.loglog(r["freqs"], p / p.mean(), ls, color=COLORS[k % len(COLORS)], lw=1,
                 label=f"{lab}: slope {s:.2f}")
    a.axvline(r.params["fmax"], color="gray", lw=0.5)
    a.set_xlabel("frequency (cycles per grid step)")
    a.set_ylabel("power / mean power")
    a.set_title(f"slopes fitted below {r.params['fmax']:g} cycles per step", fontsize=9)
    a.legend(fontsize=7)
    return fig


def claims(results):
    """Brown ~ -2, white ~ 0; shallow nets brown, deep feedforward + BN white."""
    r = results
    lab = r.meta["labels"]
    s = dict(zip(lab, r["slopes"]))
    brown, white = s["brown noise"], s["white noise"]
    shallow = s[lab[0]]
    deep = s[lab[len(r.params["depths"])]]
    ok = abs(brown + 2) < 0.3 and abs(white) < 0.3 and shallow < -1.5 and abs(deep) < 0.5
    return [Claim("X4", "spectra: brown noise and the shallow net ~ 1/f^2; white noise and the "
                  "deep feedforward + BN net flat", f"{r.params['points']} points, "
                  f"{r.params['nets']} nets, slope below {r.params['fmax']:g}",
                  "brown -2, white 0", f"brown {fmt(brown)}, white {fmt(white)}, "
                  f"{lab[0]} {fmt(shallow)}, {lab[len(r.params['depths'])]} {fmt(deep)}",
                  "slopes", bool(ok), "|brown + 2| < 0.3, |white| < 0.3, shallow < -1.5, "
                  "|deep| < 0.5")]
