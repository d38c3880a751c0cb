"""Figures: ``plot_*(..., ax=None) -> Axes`` draw arrays they are given and compute
nothing beyond what drawing needs.  :func:`new_figure` makes a figure without pyplot
(no display, no global state), so figures can be drawn from any thread or process.
"""

from __future__ import annotations

import numpy as np

__all__ = ["new_figure", "save_figure", "plot_signals", "plot_image", "plot_curves",
           "plot_errorbars"]

#: Colours for series, in order (colour-blind safe, after Okabe and Ito).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#F0E442"]


def new_figure(nrows=1, ncols=1, size=(6.4, 4.0), **kw):
    """``(fig, axes)`` from :class:`matplotlib.figure.Figure` (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save_figure(fig, stem, formats=("png", "pdf")):
    """Write ``stem.png`` and ``stem.pdf`` (atomically); returns the paths."""
    from .io import atomic_write

    paths = []
    for ext in formats:
        path = f"{stem}.{ext}"
        with atomic_write(path) as fh:
            fig.savefig(fh, format=ext, dpi=130 if ext == "png" else None)
        paths.append(path)
    return paths


def _ax(ax):
    if ax is None:
        return new_figure()[1][0, 0]
    return ax


def plot_signals(x, signals, labels, ax=None):
    """Signals stacked vertically, each scaled to unit standard deviation."""
    ax = _ax(ax)
    for k, (s, lab) in enumerate(zip(signals, labels)):
        sd = s.std() if s.std() > 0 else 1.0
        ax.plot(x, (s - s.mean()) / sd / 4 - k, lw=0.8, color=COLORS[k % len(COLORS)],
                label=lab)
        ax.text(x[0], -k + 0.35, lab, fontsize=8, va="bottom")
    ax.set_yticks([])
    ax.set_xlabel("input x")
    return ax


def plot_image(img, title, ax=None):
    """A square image such as a covariance matrix."""
    ax = _ax(ax)
    ax.imshow(img, cmap="gray_r", interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_curves(x, ys, labels, ax=None, styles=None, **kw):
    """Lines ``ys[k]`` against ``x`` (theory curves; NaNs are gaps)."""
    ax = _ax(ax)
    for k, (y, lab) in enumerate(zip(ys, labels)):
        style = (styles or {}).get(lab, {})
        ax.plot(x, y, label=lab, color=style.pop("color", COLORS[k % len(COLORS)]),
                **(style | kw))
    return ax


def plot_errorbars(x, ys, ses, labels, ax=None, colors=None, **kw):
    """Monte Carlo points with standard-error bars."""
    ax = _ax(ax)
    for k, (y, se, lab) in enumerate(zip(ys, ses, labels)):
        c = (colors or COLORS)[k % len(colors or COLORS)]
        ax.errorbar(x, y, yerr=se, fmt="o", ms=3, capsize=2, color=c, label=lab, **kw)
    return ax


def finite(a):
    """``a`` with non-finite entries as NaN (for plotting)."""
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, np.nan)
