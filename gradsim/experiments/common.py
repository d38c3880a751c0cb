"""Helpers the experiments share: progress stages, the paper's signals, gradients at every
depth, and number formatting for the report.

Estimates (mean and standard error over networks) come from :mod:`gradsim.stats`
(``autocorrelation``, ``estimate_rows``, ...) and every z-score from
:func:`gradsim.compare.zscore`; nothing here computes either.
"""

from __future__ import annotations

import math

import numpy as np

from ..grids import GridSpec
from ..montecarlo import network_rng, simulate_depths
from ..nets import input_gradient, sample_network
from ..spec import NetSpec
from ..stats import brown_noise, white_noise

__all__ = ["NullProgress", "NULL_PROGRESS", "paper_signals", "depth_series", "fmt", "fmt_est"]


class NullProgress:
    """Progress sink that shows nothing: ``stage(label, total)`` returns a no-op."""

    def stage(self, label, total):  # noqa: D102
        return lambda done, total=None: None


#: The default progress sink of every experiment's ``run``.
NULL_PROGRESS = NullProgress()


def paper_signals(width, points, depth_ff, depth_resnet, batchnorm, seed):
    """The five signals of the paper's first figure, one network (or series) each.

    Returns
    -------
    x : ndarray, shape (P,)
    signals : ndarray, shape (5, P)
        One-hidden-layer net, deep feedforward net, deep resnet, brown noise, white noise.
    labels : list of str
    """
    grid = GridSpec(points=points)
    x = grid.points_array()
    specs = [NetSpec(depth=1, width=width),
             NetSpec(depth=depth_ff, width=width, batchnorm=batchnorm),
             NetSpec(arch="resnet", depth=depth_resnet, width=width, batchnorm=batchnorm)]
    sig = [input_gradient(sample_network(s, network_rng(seed, k)), x)[:, 0]
           for k, s in enumerate(specs)]
    sig += [brown_noise(1, points, seed)[0], white_noise(1, points, seed)[0]]
    bn = " + BN" if batchnorm else ""
    labels = ["1 hidden layer", f"feedforward, {depth_ff} layers{bn}",
              f"resnet, {depth_resnet} blocks{bn}", "brown noise", "white noise"]
    return x[:, 0], np.array(sig), labels


def depth_series(spec, grid, nets, seed, progress, label, backend="numba"):
    """Gradients at every depth 1 .. spec.depth, shape (nets, depth, P)."""
    tick = progress.stage(label, nets)
    g = simulate_depths(spec, grid, nets=nets, seed=seed, backend=backend,
                        progress=lambda done, total: tick(done))
    return g[..., 0]


def fmt(v, digits=3):
    """A number for the report."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.3e}"


def fmt_est(value, se, digits=3):
    """``value ± se`` for the report."""
    return f"{fmt(float(value), digits)} ± {fmt(float(se), 2)}"
