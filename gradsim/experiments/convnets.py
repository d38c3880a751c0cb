"""Convolutional nets on real digits: shattering of d f(x(t)) / dt along a line between two
8 x 8 digit images, versus depth, for a plain ReLU convnet, the same with batch norm, a
batch-normalised residual convnet (beta = 1) and a CReLU looks-linear convnet.

The line is ``x(t) = x0 + t (x1 - x0)``: ``x0`` and ``x1`` are digit images (pixels in
[0, 1], scikit-learn's digits; without scikit-learn :func:`run` raises its ImportError),
so ``t = 0`` is one digit and ``t = 1`` the other.  ``t`` runs over the midpoints of
``points`` equal cells of [-1, 1] (``points`` even), which avoids ``t = 0`` and ``t = 1``,
where ``x(t)`` is a digit whose background has whole 3 x 3 patches exactly 0 where the
direction is not, so that every unit they feed sits exactly on its kink (and ``t = -1``;
see ``docs/convnets.md``).  Each network's prefixes of every depth are read
off one pass (depth taps), so curves over depth share weights within a family.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import work
from ..compare import zscore
from ..conv import ConvSpec, directional_derivative_by_depth, sample_conv
from ..figures import COLORS, new_figure
from ..montecarlo import network_rng
from ..parallel import ordered_map
from ..stats import acf_rows, autocorrelation, white_noise
from ..train.data import digit_images
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, fmt, fmt_est, run_workers

NAME = "convnets"
TITLE = "Convolutional nets on digits: lag-1 of d f(x(t)) / dt versus depth"
DEFAULTS = {"channels": 8, "kernel": 3, "points": 256, "nets": 8,
            "depths": [2, 5, 10, 20, 50], "image": 0, "target": 1, "seed": 12}
QUICK = {"points": 128, "nets": 6, "depths": [2, 5, 10, 20]}
#: Optional modules this experiment needs -> the extra that installs them.
REQUIRES = {"sklearn": "digits"}

FAMILIES = {  # name -> (label, ConvSpec keywords)
    "plain": ("plain ReLU convnet", dict()),
    "plain_bn": ("plain ReLU convnet + BN", dict(batchnorm=True)),
    "resnet_bn": ("residual convnet + BN, beta = 1", dict(arch="resnet", batchnorm=True)),
    "ll": ("CReLU looks-linear convnet", dict(activation="crelu", init="looks-linear")),
}

#: A family's derivative counts as constant along the line when its largest deviation
#: from its first value is below this fraction of its largest magnitude.
FLAT = 1e-10


def check(params):
    """Range checks; ``points`` must be even (see the module docstring)."""
    for key, lo, hi in (("channels", 1, 256), ("kernel", 1, 15), ("points", 4, 8192),
                        ("nets", 2, 10**6), ("depths", 1, 1000), ("image", 0, 1796),
                        ("target", 0, 1796), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)
    if params["kernel"] % 2 == 0:
        raise ValueError(f"{NAME}: parameter kernel must be odd, got {params['kernel']}")
    if params["points"] % 2:
        raise ValueError(f"{NAME}: parameter points must be even, got {params['points']}")
    if params["image"] == params["target"]:
        raise ValueError(f"{NAME}: parameters image and target must differ")
    if sorted(set(params["depths"])) != list(params["depths"]):
        raise ValueError(f"{NAME}: parameter depths must be strictly increasing")


def line(params):
    """``x0``, ``d = x1 - x0`` (each ``(1, 8, 8)``) and ``t`` ``(points,)`` of the run."""
    images, _ = digit_images()
    x0, x1 = images[params["image"]], images[params["target"]]
    p = params["points"]
    t = -1.0 + (2.0 * np.arange(p) + 1.0) / p
    return x0[None], (x1 - x0)[None], t


def lag1_rows(g):
    """Per-network lag-1 autocorrelations of rows ``(nets, P)``; a constant row is 1.

    A derivative constant along the line (a looks-linear net) has an undefined
    autocorrelation (:func:`gradsim.stats.acf_rows` gives nan); it is perfectly
    correlated, so we count it as 1.
    """
    r = acf_rows(g, 1)[:, 1]
    return np.where(np.isnan(r), 1.0, r)


def _family(params, k, kw, x0, d, t, progress, label):
    """Derivatives ``(nets, len(depths), P)`` of one family, one tapped net at a time."""
    depths = params["depths"]
    spec = ConvSpec(dims=2, depth=max(depths), channels=params["channels"],
                    kernel=params["kernel"], input_shape=(8, 8), **kw)
    tick = progress.stage(label, params["nets"])
    out = np.empty((params["nets"], len(depths), t.size))
    rows = [v - 1 for v in depths]
    # Gaussians: every layer's kernels (channels^2 kernel^dims), the readout not counted
    work.record(params["nets"], params["nets"] * spec.depth * spec.channels**2
                * spec.kernel**spec.dims)
    tasks = ((spec, params["seed"] + k, n, x0, d, t, rows) for n in range(params["nets"]))
    for n, g in enumerate(ordered_map(_one_net, tasks, run_workers())):
        out[n] = g
        tick(n + 1)
    return out


def _one_net(spec, seed, n, x0, d, t, rows):
    """Net ``n`` of stream ``seed``: its derivatives at the tapped depths ``rows``."""
    net = sample_conv(spec, network_rng(seed, n), taps=True)
    return directional_derivative_by_depth(net, x0, d, t)[rows]


def run(params, progress=NULL_PROGRESS):
    """Directional derivatives of every family at every depth; lag-1 with standard errors."""
    t0 = time.perf_counter()
    x0, d, t = line(params)
    nets = params["nets"]
    arrays = {"t": t, "depths": np.array(params["depths"])}
    for k, (name, (_, kw)) in enumerate(FAMILIES.items()):
        g = _family(params, k, kw, x0, d, t, progress, f"{NAME}: {name}")
        lag = np.array([lag1_rows(g[:, j]) for j in range(g.shape[1])])  # (depths, nets)
        dev, scale = np.abs(g - g[..., :1]).max(axis=2), np.abs(g).max(axis=2)
        spread = np.divide(dev, scale, out=np.zeros_like(dev), where=scale > 0)
        # mean and s.e. over nets along axis 1, as recorded (no row is dropped here, so
        # not stats.estimate_rows, whose column sums round differently from 8 nets on)
        arrays[f"lag1_{name}"] = lag.mean(axis=1)
        arrays[f"lag1_se_{name}"] = lag.std(axis=1, ddof=1) / math.sqrt(nets)
        arrays[f"spread_{name}"] = spread.max(axis=0)
        arrays[f"example_{name}"] = g[0, -1]
    white = autocorrelation(white_noise(nets, t.size, seed=params["seed"]), 1)
    arrays["lag1_white"], arrays["lag1_se_white"] = white.value[1], white.se[1]
    return Results(NAME, params, arrays, {"seconds": time.perf_counter() - t0,
                                          "labels": {k: v[0] for k, v in FAMILIES.items()}})


def plot(results):
    """(a) lag-1 versus depth per family; (b) one derivative per family at the deepest depth."""
    r, prm = results, results.params
    fig, ax = new_figure(1, 2, size=(11, 4.2))
    a, b = ax[0]
    depths = r["depths"]
    for k, (name, (label, _)) in enumerate(FAMILIES.items()):
        a.errorbar(depths, r[f"lag1_{name}"], yerr=r[f"lag1_se_{name}"], fmt="o-", ms=3,
                   lw=1, capsize=2, color=COLORS[k], label=label)
        g = r[f"example_{name}"]
        # a constant curve stays flat: rounding is not blown up to full scale
        scale = max(np.abs(g - g.mean()).max(), 1e-3 * np.abs(g).max(), 1e-300)
        b.plot(r["t"], (g - g.mean()) / scale / 2.2 - k, color=COLORS[k], lw=0.8)
        b.text(r["t"][0], -k + 0.5, f"{label} (constant)" if name == "ll" else label,
               fontsize=7, va="top")
    a.axhline(float(r["lag1_white"]), color="k", ls=":", lw=0.8, label="white noise")
    a.set_xscale("log")
    a.set_xticks(depths, labels=[str(int(v)) for v in depths])
    a.minorticks_off()
    a.set_xlabel("depth (conv layers or residual blocks)")
    a.set_ylabel("lag-1 autocorrelation of d f(x(t)) / dt")
    a.set_title(f"digit {prm['image']} -> digit {prm['target']}, {prm['points']} points, "
                f"{prm['nets']} nets, {prm['channels']} channels", fontsize=9)
    a.legend(fontsize=7, loc="lower left")
    b.set_yticks([])
    b.set_ylim(-len(FAMILIES) + 0.4, 0.7)
    b.set_xlabel("t  (x(t) = x0 + t (x1 - x0))")
    b.set_title(f"one net per family, depth {int(depths[-1])}, centred and scaled",
                fontsize=9)
    return fig


def claims(results):
    """Verdicts from the numbers: shattering with depth, resnet intermediate, LL constant."""
    r, prm = results, results.params
    depths = [int(v) for v in r["depths"]]
    lo, hi = depths[0], depths[-1]
    setting = (f"8 x 8 digits {prm['image']} -> {prm['target']}, {prm['channels']} channels, "
               f"{prm['points']} points, {prm['nets']} nets")

    def lag(name, j):
        return float(r[f"lag1_{name}"][j]), float(r[f"lag1_se_{name}"][j])

    out = []
    for target, name in (("CV1", "plain"), ("CV2", "plain_bn")):
        (a, ae), (b, be) = lag(name, 0), lag(name, -1)
        z = zscore(a, b, ae, theory_se=be)
        out.append(Claim(target, f"{FAMILIES[name][0]}: lag-1 falls with depth", setting,
                         f"depth {hi} < depth {lo}",
                         f"depth {lo}: {fmt_est(a, ae)}; depth {hi}: {fmt_est(b, be)}",
                         f"z = {z:.1f}", bool(z >= 3), "drop of at least 3 s.e."))
    (p, pe), (s, se), (ll, lle) = lag("plain_bn", -1), lag("resnet_bn", -1), lag("ll", -1)
    z1, z2 = zscore(s, p, se, theory_se=pe), zscore(ll, s, lle, theory_se=se)
    out.append(Claim("CV3", "residual + BN intermediate: plain + BN < resnet + BN < "
                     "looks-linear", f"{setting}, depth {hi}", "ordering",
                     f"{fmt(p)} < {fmt(s)} < {fmt(ll)}", f"gaps {z1:.1f}, {z2:.1f} s.e.",
                     bool(z1 >= 3 and z2 >= 3), "each gap at least 3 s.e."))
    spread = float(np.max(r["spread_ll"]))
    out.append(Claim("CV4", "looks-linear convnet: d f(x(t)) / dt constant along the line at "
                     "every depth (the net is linear at init)", setting, "constant; lag-1 = 1",
                     f"max |g - g_0| / max |g| = {spread:.1e}; lag-1 {fmt(ll)}", "relative",
                     bool(spread < FLAT), f"relative spread < {FLAT:g} at every depth"))
    return out
