"""Figure 2: covariance images ``|(g - mean)(g - mean)^T| / var`` of the signals of
:mod:`gradients` (same networks, same seeds)."""

from __future__ import annotations

import numpy as np

from ..figures import new_figure, plot_image
from . import gradients
from .base import Results
from .common import NULL_PROGRESS
from .gradients import DEFAULTS as _G
from .gradients import QUICK as _Q
from .gradients import check as _check

NAME = "covariance"
TITLE = "Covariance images of one network's gradient"
DEFAULTS = dict(_G)
QUICK = dict(_Q)


def check(params):
    """As :func:`gradsim.experiments.gradients.check`."""
    _check(params)


def images(signals):
    """``|(g - m)(g - m)^T| / var(g)`` for each signal, shape (S, P, P)."""
    c = signals - signals.mean(axis=1, keepdims=True)
    var = np.maximum(c.var(axis=1), 1e-300)
    return np.abs(c[:, :, None] * c[:, None, :]) / var[:, None, None]


def run(params, progress=NULL_PROGRESS):
    """The images, from the signals of :func:`gradsim.experiments.gradients.run`."""
    sig = gradients.run(params, progress)
    return Results(NAME, params, {"x": sig["x"], "images": images(sig["signals"])},
                   dict(sig.meta))


def plot(results):
    """One panel per signal."""
    img = results["images"]
    fig, ax = new_figure(1, len(img), size=(2.0 * len(img), 2.4))
    for k, lab in enumerate(results.meta["labels"]):
        plot_image(np.minimum(img[k], np.quantile(img[k], 0.99)), lab, ax=ax[0, k])
    return fig


def claims(results):
    """No target of its own."""
    return []
