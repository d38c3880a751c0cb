"""Figure 1: df/dx along the 1-D grid for a shallow, a deep feedforward and a deep
resnet, beside brown and white noise (one network or series each)."""

from __future__ import annotations

import time

import numpy as np

from ..figures import new_figure, plot_signals
from .base import Results, check_range
from .common import NULL_PROGRESS, paper_signals

NAME = "gradients"
TITLE = "Gradients along the line: shallow, deep feedforward, deep resnet, brown, white"
DEFAULTS = {"width": 200, "points": 256, "depth_ff": 24, "depth_resnet": 50,
            "batchnorm": True, "seed": 0}
QUICK = {"width": 64, "points": 128, "depth_ff": 12, "depth_resnet": 12}


def check(params):
    """Range checks (ValueError naming the parameter)."""
    check_range(NAME, params, "width", 1, 4096)
    check_range(NAME, params, "points", 4, 8192)
    check_range(NAME, params, "depth_ff", 1, 1000)
    check_range(NAME, params, "depth_resnet", 1, 1000)
    check_range(NAME, params, "seed", 0, 2**63 - 1)


def run(params, progress=NULL_PROGRESS):
    """One network each; returns the signals."""
    t0 = time.perf_counter()
    tick = progress.stage(NAME, 1)
    x, sig, labels = paper_signals(params["width"], params["points"], params["depth_ff"],
                                   params["depth_resnet"], params["batchnorm"], params["seed"])
    tick(1)
    return Results(NAME, params, {"x": x, "signals": sig},
                   {"labels": labels, "seconds": time.perf_counter() - t0})


def plot(results):
    """Signals stacked, each at unit standard deviation."""
    fig, ax = new_figure(size=(6.4, 5.0))
    plot_signals(results["x"], results["signals"], results.meta["labels"], ax=ax[0, 0])
    ax[0, 0].set_title("df/dx along the line (each scaled to unit s.d.)", fontsize=9)
    return fig


def claims(results):
    """No target of its own (the figure illustrates T7, T8 and T14)."""
    return []


def signal_lag1(results):
    """Lag-1 autocorrelation of each signal (for the tutorial)."""
    from ..stats import acf_rows

    return acf_rows(np.asarray(results["signals"]), 1)[:, 1]
