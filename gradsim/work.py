"""Counting the work a run does: networks simulated and Gaussians drawn.

The Monte Carlo entry points (:func:`gradsim.montecarlo.simulate` and
:func:`~gradsim.montecarlo.simulate_depths`, :func:`gradsim.kinks_mc.simulate_kinks`,
the experiments that map networks over workers) call :func:`record` in the calling
process once per run, and :func:`counting` collects what was recorded inside a block, so
``gradsim reproduce`` can show each experiment's share of the networks and Gaussians
beside its share of the time.  Counting never changes a number.

Gaussians are counted from the parameter count of a network as it is drawn (its
family's ``parameter_count``: the weights, biases and readout, with tap readouts;
in Gram space each weight of fan-in ``F`` has ``min(F, m)`` columns on ``m`` state
columns), an estimate within a readout or a bias vector of the draw.
"""

from __future__ import annotations

import contextlib

__all__ = ["record", "counting", "network_gaussians"]

_OPEN = []  # the dicts of the counting blocks now open, innermost last


def record(networks, gaussians=0.0):
    """Add ``networks`` networks and ``gaussians`` Gaussians to every open block."""
    for tally in _OPEN:
        tally["networks"] += int(networks)
        tally["gaussians"] += float(gaussians)


@contextlib.contextmanager
def counting():
    """A block that counts the work recorded inside it.

    Yields
    ------
    dict
        ``networks`` and ``gaussians``, filled in as the block runs.
    """
    tally = {"networks": 0, "gaussians": 0.0}
    _OPEN.append(tally)
    try:
        yield tally
    finally:
        _OPEN.remove(tally)


def network_gaussians(spec, columns=None, taps=False):
    """About how many Gaussians drawing one network of ``spec`` takes.

    Parameters
    ----------
    spec : NetSpec
    columns : int, optional
        For a network drawn in Gram space: the state's columns ``m`` (every weight keeps
        ``min(fan_in, m)`` of its columns).
    taps : bool
        Also the tap readouts (``depth - 1`` more readouts).

    Returns
    -------
    float
    """
    count = float(spec.family.parameter_count(spec))
    if columns is not None:
        count *= min(1.0, columns / spec.features)
    if taps:
        count += (spec.depth - 1) * min(spec.features, columns or spec.features)
    return count
