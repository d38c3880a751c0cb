"""Helpers the experiments share: progress stages, the run's worker setting, the paper's
signals, gradients at every depth, and number formatting for the report.

Worker processes are a setting of the run, not a parameter of the experiment: they never
change a number (each network draws from its own stream ``network_rng(seed, i)``), so
they are not recorded in the results and do not enter the resume check.  ``reproduce`` and
``run_one`` set them with :func:`run_settings`; experiments read them with
:func:`run_workers` (:func:`depth_series` does so itself).

Estimates (mean and standard error over networks) come from :mod:`gradsim.stats`
(``autocorrelation``, ``estimate_rows``, ...) and every z-score from
:func:`gradsim.compare.zscore`; nothing here computes either.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from ..grids import GridSpec
from ..montecarlo import network_rng, simulate_depths
from ..nets import input_gradient, sample_network
from ..parallel import check_workers
from ..spec import NetSpec
from ..stats import brown_noise, white_noise

__all__ = ["NullProgress", "NULL_PROGRESS", "run_settings", "run_workers",
           "check_pair_scan", "paper_signals", "depth_series", "fmt", "fmt_est"]


class NullProgress:
    """Progress sink that shows nothing: ``stage(label, total)`` returns a no-op."""

    def stage(self, label, total):  # noqa: D102
        return lambda done, total=None: None


#: The default progress sink of every experiment's ``run``.
NULL_PROGRESS = NullProgress()

#: Worker processes of the current run (None: not set, one process).
_WORKERS = contextvars.ContextVar("gradsim_experiment_workers", default=None)


@contextlib.contextmanager
def run_settings(workers=None):
    """Within the block, experiments compute their networks in ``workers`` processes.

    ``workers`` is an int in [1, 256] (``ValueError`` naming it otherwise) or None (not
    set: one process).  The numbers do not depend on it.
    """
    value = None if workers is None else check_workers(workers)
    token = _WORKERS.set(value)
    try:
        yield
    finally:
        _WORKERS.reset(token)


def run_workers(default=1):
    """Worker processes set by :func:`run_settings` for this run, else ``default``."""
    value = _WORKERS.get()
    return default if value is None else value


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
    """Gradients at every depth 1 .. spec.depth, shape (nets, depth, P), computed in the
    run's worker processes (:func:`run_workers`)."""
    tick = progress.stage(label, nets)
    n = run_workers()
    g = simulate_depths(spec, grid, nets=nets, seed=seed, backend=backend, workers=n,
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


def check_pair_scan(name, params):
    """The checks a scan over widths and depths at pairs of inputs shares (``width_scan``,
    ``finite_width``): pairs ``x``, ``y`` of equal length and distinct points, a sampler
    by name, increasing ``widths`` and ``depths``."""
    if len(params["x"]) != len(params["y"]):
        raise ValueError(f"{name}: parameters x and y must have the same length, got "
                         f"{len(params['x'])} and {len(params['y'])}")
    if any(a == b for a, b in zip(params["x"], params["y"])):
        raise ValueError(f"{name}: parameters x and y must differ at every pair")
    if params["sampler"] not in ("gram", "explicit"):
        raise ValueError(f"{name}: parameter sampler must be gram or explicit, got "
                         f"{params['sampler']!r}")
    for key in ("widths", "depths"):
        v = params[key]
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"{name}: parameter {key} must be increasing, got {v}")


def pair_scan_axes(ax, sampler, nets_text, exact_label):
    """The log-log axes of ``|R_n - R_inf|`` against width that ``width_scan`` and
    ``finite_width`` share: scales, labels, title and legend."""
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("|R_n - R_inf|, R = Corr(df/dx(x), df/dx(y))")
    ax.set_title(f"R_inf: {exact_label}; Monte Carlo (sampler {sampler}), {nets_text} nets "
                 "per width", fontsize=8)
    ax.legend(fontsize=6.5)
