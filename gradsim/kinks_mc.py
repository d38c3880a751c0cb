"""Monte Carlo of the exact linear pieces: crossings, breakpoints and jumps of many nets.

Network ``i`` is drawn from ``network_rng(seed, i)`` with tap readouts
(:func:`gradsim.nets.sample_network`, ``taps=True``; the taps are drawn after every other
parameter, so the network is the one :func:`gradsim.montecarlo.simulate` draws), and
:func:`gradsim.kinks.breakpoints` gives its unit crossings at every activation site and
the breakpoints of every prefix's output.  Per network and prefix depth it records:

* ``per_unit``: crossings per unit at each activation site;
* ``breakpoints``: breakpoints of the depth-``l`` prefix's ``f`` on ``[a, b]``;
* ``jump_abs``: the mean ``|jump|`` of ``df/dt`` at them, and ``slope_rms``, the RMS of
  ``df/dt`` over ``[a, b]`` (length-weighted), so ``jump_abs / slope_rms`` is a jump
  size in units of the typical slope;
* ``jump_s11``, ``jump_s2``: ``sum_k j_k j_(k+1)`` and ``sum_k j_k^2`` over successive
  breakpoints (``k`` with a successor), whose ratio of sums over networks is the lag-1
  correlation of successive jumps;
* ``lag1``: the lag-1 autocorrelation numerator and denominator of the grid gradient
  (``grid_points`` equally spaced points on ``[a, b]``, centred per network as in
  :func:`gradsim.stats.acf_rows`), beside it;
* ``several``: grid intervals holding more than one breakpoint of the full net
  (:func:`gradsim.kinks.grid_adequacy`).

The same seed gives the same numbers whatever ``chunk`` and ``workers``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import work
from .kinks import MAX_KNOTS, breakpoints, grid_adequacy, line_points
from .montecarlo import network_rng
from .nets import input_gradient_by_depth, sample_network
from .parallel import check_workers, ordered_map
from .spec import NetSpec
from .util import check_int

__all__ = ["KinkStats", "simulate_kinks"]

_FIELDS = ("per_unit", "breakpoints", "jump_abs", "slope_rms", "jump_s11", "jump_s2",
           "lag1_num", "lag1_den", "several")


@dataclasses.dataclass
class KinkStats:
    """Per-network records of :func:`simulate_kinks` (arrays with ``nets`` rows).

    Attributes
    ----------
    spec : NetSpec
    a, b : float
    grid_points : int
    seed : int
    x0, direction : ndarray, shape (d,)
        The line.
    units : ndarray of int, shape (sites,)
    per_unit : ndarray, shape (nets, sites)
    breakpoints, jump_abs, slope_rms, jump_s11, jump_s2, lag1_num, lag1_den : ndarray
        Shape ``(nets, depth)``.
    several : ndarray, shape (nets,)
    """

    spec: NetSpec
    a: float
    b: float
    grid_points: int
    seed: int
    x0: np.ndarray
    direction: np.ndarray
    units: np.ndarray
    per_unit: np.ndarray
    breakpoints: np.ndarray
    jump_abs: np.ndarray
    slope_rms: np.ndarray
    jump_s11: np.ndarray
    jump_s2: np.ndarray
    lag1_num: np.ndarray
    lag1_den: np.ndarray
    several: np.ndarray

    @staticmethod
    def mean_se(x):
        """Mean over networks and its standard error, along axis 0."""
        x = np.asarray(x, dtype=float)
        return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(len(x))

    @staticmethod
    def ratio(num, den):
        """``sum num / sum den`` over networks and its delta-method standard error."""
        num, den = np.asarray(num, float), np.asarray(den, float)
        n = len(num)
        r = num.sum(axis=0) / den.sum(axis=0)
        res = num - r * den
        se = np.sqrt((res**2).sum(axis=0) / (n - 1) / n) / den.mean(axis=0)
        return r, se


def _task(spec, a, b, points, seed, start, stop, max_knots, x0, u):
    depth = spec.depth
    grid = np.linspace(a, b, points)
    x = x0[None, :] + grid[:, None] * u[None, :]
    rows = {k: [] for k in _FIELDS}
    units = None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(start, stop):
            net = sample_network(spec, network_rng(seed, i), taps=True)
            k = breakpoints(net, a, b, grid=grid, x0=x0, direction=u, max_knots=max_knots)
            units = k.units
            rows["per_unit"].append(k.crossings_per_unit())
            rows["several"].append(grid_adequacy(k, grid)["several"])
            rows["slope_rms"].append(k.tap_slope_rms)
            nb, ja, s11, s2 = (np.empty(depth) for _ in range(4))
            for d, jumps in enumerate(k.tap_jumps):
                nb[d] = len(jumps)
                ja[d] = np.abs(jumps).mean() if len(jumps) else 0.0
                s11[d] = float(jumps[:-1] @ jumps[1:]) if len(jumps) > 1 else 0.0
                s2[d] = float(jumps[:-1] @ jumps[:-1]) if len(jumps) > 1 else 0.0
            rows["breakpoints"].append(nb)
            rows["jump_abs"].append(ja)
            rows["jump_s11"].append(s11)
            rows["jump_s2"].append(s2)
            g = input_gradient_by_depth(net, x) @ u  # (depth, points)
            c = g - g.mean(axis=1, keepdims=True)
            rows["lag1_num"].append((c[:, :-1] * c[:, 1:]).sum(axis=1))
            rows["lag1_den"].append((c * c).sum(axis=1))
    return units, {k: np.array(v) for k, v in rows.items()}


def simulate_kinks(spec, a=-2.0, b=2.0, nets=20, seed=0, *, grid_points=256, x0=None,
                   direction=None, chunk=None, workers=1, max_knots=MAX_KNOTS,
                   progress=None):
    """Exact crossings, breakpoints and jumps of ``nets`` networks on ``[a, b]``.

    Parameters
    ----------
    spec : NetSpec
        Not highway (:func:`gradsim.kinks.breakpoints`).
    a, b : float
        The segment of the line (:func:`gradsim.kinks.line_points`).
    nets : int
    seed : int
    grid_points : int
        The grid (equally spaced on ``[a, b]``): batch-norm statistics, the grid
        gradient's lag-1 autocorrelation and the grid adequacy.
    x0, direction : array_like, optional
        The line ``x(t) = x0 + t direction`` (default :func:`gradsim.kinks.line_points`).
    chunk, workers : int
        Networks per task and worker processes (the numbers do not depend on either).
    max_knots : int
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    KinkStats
    """
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    if spec.arch == "highway":
        raise ValueError("highway gates are smooth (sigmoid), so f is not piecewise linear: "
                         "simulate_kinks covers feedforward nets and resnets")
    nets = check_int("nets", nets, 2, 10**7)
    x0, u = line_points(spec, x0, direction)
    if not (np.isfinite(a) and np.isfinite(b) and b > a):
        raise ValueError(f"the segment [a, b] must have finite a < b, got a = {a}, b = {b}")
    seed = check_int("seed", seed, 0, 2**63 - 1)
    points = check_int("grid_points", grid_points, 2, 10**6)
    workers = check_workers(workers)
    chunk = check_int("chunk", chunk if chunk is not None else max(1, -(-nets // (4 * workers))),
                      1, nets)
    work.record(nets, nets * work.network_gaussians(spec, taps=True))
    starts = range(0, nets, chunk)
    tasks = ((spec, a, b, points, seed, s, min(s + chunk, nets), max_knots, x0, u)
             for s in starts)
    parts, units = [], None
    for s, (got, part) in zip(starts, ordered_map(_task, tasks, workers)):
        parts.append(part)
        units = got
        if progress is not None:
            progress(min(s + chunk, nets), nets)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in _FIELDS}
    return KinkStats(spec, float(a), float(b), points, seed, x0, u, np.asarray(units), **cat)
