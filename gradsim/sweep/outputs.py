"""A finished sweep's summary: ``summary.csv``, ``summary.json`` and one figure per
statistic, made from the cell records alone."""

from __future__ import annotations

import csv
import io
import itertools
import math
import os

import numpy as np

from ..figures import COLORS, new_figure, plot_curves, plot_errorbars, save_figure
from ..util import atomic_write
from .store import write_json

__all__ = ["write_outputs"]

#: Line style of each theory in the figures.
_STYLES = {"exact": "--", "paper": ":", "independence": "-."}
_YLABELS = {"variance": "E[g(x)^2]", "covariance": "E[g(x) g(y)]",
            "correlation": "correlation of g(x), g(y)", "lag1": "lag-1 autocorrelation"}


def _columns(sweep):
    cols = []
    for s in sweep.statistics:
        cols += [s, f"{s}_se"]
        for m in sweep.theory:
            cols += [f"{s}_{m}", f"{s}_{m}_z"]
    return cols


def _csv_row(sweep, rec):
    row = [rec["id"], *(rec["params"][n] for n, _ in sweep.axes), rec["nets"], rec["seed"]]
    for s in sweep.statistics:
        est = rec["estimates"][s]
        row += [est["value"], est["se"]]
        for m in sweep.theory:
            th = rec["theory"][m][s]
            row += [th["theory"], th["z"]] if th["covered"] else ["not covered", None]
    return ["" if v is None else v for v in row]


def write_outputs(out, sweep, records):
    """``summary.csv``, ``summary.json`` and ``fig_<statistic>.<format>``; returns names.

    ``records`` are the cell records of every cell of ``sweep``, in cell order.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cell", *(n for n, _ in sweep.axes), "nets", "seed", *_columns(sweep)])
    writer.writerows(_csv_row(sweep, r) for r in records)
    with atomic_write(os.path.join(out, "summary.csv")) as fh:
        fh.write(buf.getvalue().encode())
    keep = ("id", "params", "seed", "nets", "estimates", "theory", "seconds")
    write_json(os.path.join(out, "summary.json"), {
        "sweep": sweep.digest, "axes": [[n, list(v)] for n, v in sweep.axes],
        "statistics": list(sweep.statistics), "theory": list(sweep.theory),
        "pair_index": list(sweep.pair_index), "cells": [{k: r[k] for k in keep}
                                                         for r in records],
        "skipped": [{"index": i, "params": p, "reason": why} for i, p, why in sweep.skipped],
    }, indent=1)
    names = ["summary.csv", "summary.json"]
    for stat in sweep.statistics if sweep.figures else ():
        fig = _figure(sweep, stat, records)
        names += [os.path.basename(p) for p in save_figure(fig, os.path.join(out, f"fig_{stat}"),
                                                             sweep.figures)]
    return names


def _series(sweep, stat, records):
    """What :func:`_figure` draws: x positions, tick labels (None for a numeric axis) and,
    per combination of the other axes, ``(label, value, se, {model: theory})`` arrays."""
    names = [n for n, _ in sweep.axes]
    xvals = dict(sweep.axes)[sweep.x_axis]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xvals)
    xs = np.array(xvals if numeric else range(len(xvals)), dtype=float)
    by_key = {tuple(r["params"][n] for n in names): r for r in records}
    others = [(n, v) for n, v in sweep.axes if n != sweep.x_axis]
    lines = []
    for combo in itertools.product(*(v for _, v in others)):
        fixed = dict(zip((n for n, _ in others), combo))
        recs = [by_key.get(tuple((fixed | {sweep.x_axis: x})[n] for n in names))
                for x in xvals]
        y, se = (np.array([_get(r, ("estimates", stat, f)) for r in recs], dtype=float)
                 for f in ("value", "se"))
        th = {m: np.array([_get(r, ("theory", m, stat, "theory")) for r in recs], dtype=float)
              for m in sweep.theory}
        lines.append((", ".join(f"{n}={v}" for n, v in fixed.items()) or stat, y, se, th))
    return xs, None if numeric else [str(v) for v in xvals], lines


def _figure(sweep, stat, records):
    """``stat`` against the x axis: Monte Carlo with standard errors, one colour per
    combination of the other axes; covered theories as lines in the same colour."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    xs, ticks, lines = _series(sweep, stat, records)
    fig, axs = new_figure(size=(6.4, 4.2))
    ax = plot_errorbars(xs, [ln[1] for ln in lines], [ln[2] for ln in lines],
                        [ln[0] for ln in lines], ax=axs[0, 0])
    models = []
    for m in sweep.theory:
        drawn = [k for k, ln in enumerate(lines) if np.isfinite(ln[3][m]).any()]
        styles = {f"_{m}{k}": {"ls": _STYLES[m], "color": COLORS[k % len(COLORS)]}
                  for k in drawn}
        plot_curves(xs, [lines[k][3][m] for k in drawn], list(styles), ax=ax, styles=styles,
                    lw=1)
        models += [m] if drawn else []
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], color="k", ls=_STYLES[m], label=f"theory: {m}") for m in models]
    ax.legend(handles=handles, fontsize=7)
    if ticks is not None:
        ax.set_xticks(xs, ticks)
    elif all(isinstance(v, int) for v in dict(sweep.axes)[sweep.x_axis]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if stat == "variance" and all((ln[1][np.isfinite(ln[1])] > 0).all() for ln in lines):
        ax.set_yscale("log")
    ax.set_xlabel(sweep.x_axis)
    ax.set_ylabel(_YLABELS[stat])
    return fig


def _get(record, path):
    """``record[path[0]][path[1]]...`` or NaN where missing or null (a gap in a line)."""
    for key in path:
        if not isinstance(record, dict) or record.get(key) is None:
            return math.nan
        record = record[key]
    return record
