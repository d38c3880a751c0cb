"""Exact linear pieces of a sampled network along a segment of the input line.

On the line ``x(t) = x0 + t u``, ``t`` in ``[a, b]``, a ReLU-family network (also with
batch norm whose statistics are frozen at the grid batch) is piecewise linear in ``t``.
Its state is carried exactly as a piecewise-linear function: knots ``t_0 = a < t_1 <
.. < t_K = b``, every unit's value at the knots and its slope on each piece.

* A :class:`~gradsim.families.layers.Dense` layer maps values and slopes linearly
  (``z = W h + b``; the bias on the values only).
* Frozen batch norm is affine per unit: ``(z - mean) / sqrt(var + eps)`` with the mean
  and the (biased) variance of the values at the grid points, which are kept as knots
  (the statistics of ``bn_grad='frozen'``; :func:`gradsim.nets.forward` with
  ``stats_from`` the grid).
* An activation first finds every zero crossing inside a piece: unit ``i`` is linear
  there, ``z_i(t) = v_ij + s_ij (t - t_j)``, so a sign change between the knots ``t_j``,
  ``t_(j+1)`` is one crossing at ``t* = t_j - v_ij / s_ij``.  Every crossing becomes a
  knot (the unit's own value there is set to 0), every unit is evaluated there from its
  linear piece, and then no unit changes sign inside a piece: the activation is applied
  to the values and, by the sign at each piece's midpoint, to the slopes (ReLU,
  ab-ReLU, CReLU's two halves).
* A residual block refines its skip onto the branch's knots and adds.

The output ``f`` is then linear on every piece, with slope ``df/dt`` carried exactly (not
a difference quotient).  A knot is a *breakpoint* of ``f`` where the slope changes by
more than :data:`SLOPE_TOL` times the largest ``|df/dt|`` on the segment: a looks-linear
net (``init='looks-linear'``, ``mirror=1``) has unit crossings but no breakpoint, its
mirrored pairs cancel to rounding.  Highway gates are sigmoids, so a highway net is not
piecewise linear: it is refused here; :func:`grid_crossings` counts its ReLU crossings
on a grid instead.

The work per layer is one matrix product over the knots (``N^2 K``, BLAS) and the
refinement and activation over them (``N K``, the kernels of :mod:`gradsim.kernels.pwl`
beside their NumPy twins); the knot count grows by the crossings of each layer, and
:data:`MAX_KNOTS` bounds it.  The segment is carried as pieces of at most
:data:`PIECE_KNOTS` knots, cut in two as they grow (each piece's units are linear
functions of ``t`` on its own knots, so pieces are independent), and batch norm takes
its statistics from one forward pass on the grid batch, not from the pieces.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .families.layers import Activation, BatchNorm, Context, Dense, Residual, run_forward
from .kernels import backend as get_backend
from .nets import Network, preactivations
from .pieces import State as _State
from .pieces import count_layers as _count
from .pieces import joined as _joined
from .pieces import split as _split
from .util import check_int, check_memory, check_real

__all__ = ["Kinks", "breakpoints", "grid_adequacy", "grid_crossings", "grid_report", "PIECE_KNOTS",
           "line_points", "SLOPE_TOL", "MAX_KNOTS"]

#: A knot is a breakpoint of f where ``|jump of df/dt| > SLOPE_TOL * max |df/dt|``.
SLOPE_TOL = 1e-9
#: Most knots a segment may carry (values and slopes of every unit at each knot).
MAX_KNOTS = 2_000_000
#: A piece of the segment with more knots than this after a layer is cut in two at its
#: middle knot, and each half is carried on alone: a piece's arrays then stay at a few
#: MB (width 256: 4 MB), where freed memory is reused, instead of hundreds of MB, each a
#: new mapping whose page faults cost as much as the arithmetic; and memory is bounded.
#: A feedforward net with batch norm at width 256 and depth 20 (2 x 10^5 knots) took
#: 16.1 s in one piece and 8.9 s in pieces of 2048 here (1024 to 8192: 8.9 to 9.8 s).
PIECE_KNOTS = 2048


@dataclasses.dataclass
class Kinks:
    """The exact linear pieces of one network on ``[a, b]``.

    Attributes
    ----------
    a, b : float
        The segment.
    knots : ndarray, shape (K + 1,)
        Every knot of the state: ``a``, ``b``, the grid points and every unit crossing.
    f : ndarray, shape (K + 1,)
        ``f`` at the knots.
    slopes : ndarray, shape (K,)
        ``df/dt`` on each piece between knots (exact).
    breakpoints : ndarray, shape (B,)
        The knots where ``df/dt`` changes: the breakpoints of ``f``.
    jumps : ndarray, shape (B,)
        ``df/dt`` right minus left at each breakpoint.
    pieces : ndarray, shape (B + 1,)
        ``df/dt`` on each linear piece of ``f`` (between breakpoints).
    crossings : list of ndarray
        Per activation site, in network order: the crossing points ``t``, sorted.
    crossing_units : list of ndarray
        Per activation site: the unit of each crossing (same order).
    units : ndarray of int
        Pre-activation units at each activation site.
    tap_breakpoints, tap_jumps : list of ndarray or None
        For a net sampled with ``taps=True``: the breakpoints of every prefix's output
        and the jumps of its ``df/dt`` there (depths ``1 .. L``; the last are
        ``breakpoints`` and ``jumps``).
    tap_slope_rms : ndarray or None
        For ``taps=True``: the RMS of every prefix's ``df/dt`` over ``[a, b]``
        (``sqrt(int (df/dt)^2 dt / (b - a))``, exact on the pieces), shape ``(L,)``.
    """

    a: float
    b: float
    knots: np.ndarray
    f: np.ndarray
    slopes: np.ndarray
    breakpoints: np.ndarray
    jumps: np.ndarray
    pieces: np.ndarray
    crossings: list
    crossing_units: list
    units: np.ndarray
    tap_breakpoints: list | None = None
    tap_jumps: list | None = None
    tap_slope_rms: np.ndarray | None = None

    def crossings_per_unit(self):
        """Mean crossings per unit at each activation site, ``(sites,)``."""
        return np.array([len(c) for c in self.crossings]) / np.maximum(self.units, 1)


def line_points(spec, x0=None, direction=None):
    """The line's origin ``x0`` and direction ``u`` for ``spec.input_dim``: default ``0``
    and ``(1, .., 1) / sqrt(d)`` (gradsim's grid convention)."""
    d = spec.input_dim
    x0 = np.zeros(d) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1)
    if direction is None:
        u = np.ones(d) / np.sqrt(d)
    else:
        u = np.asarray(direction, dtype=np.float64).reshape(-1)
    for name, arr in (("x0", x0), ("direction", u)):
        if arr.shape != (d,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be {d} finite numbers (input_dim {d}), got "
                             f"{arr.shape[0]} values" if arr.shape != (d,) else
                             f"{name} must be finite")
    if not np.any(u):
        raise ValueError("direction must be nonzero")
    return x0, u


def _segment(a, b, grid):
    a = check_real("a", a, -1e12, 1e12)
    b = check_real("b", b, -1e12, 1e12)
    if not b > a:
        raise ValueError(f"the segment [a, b] must have b > a, got a = {a:g}, b = {b:g}")
    g = np.zeros(0) if grid is None else np.asarray(grid, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(g)) or np.any((g < a) | (g > b)):
        raise ValueError(f"grid points must be finite and inside [a, b] = [{a:g}, {b:g}]")
    return a, b, g


def _check_net(net):
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {type(net).__name__}")
    if net.columns is not None:
        raise ValueError("breakpoints need a network drawn explicitly (sampler='explicit'): "
                         "a Gram-space network is not a function of its input")
    if net.spec.arch == "highway":
        raise ValueError("highway gates are smooth (sigmoid), so f is not piecewise linear: "
                         "use grid_crossings for its ReLU crossings")


class _Pass:
    """One piecewise-linear pass, collecting the crossings of every activation site.

    The segment is carried as pieces (:func:`breakpoints`): ``site`` and ``bn`` are the
    activation site and the batch-norm application the next layer of the current piece
    starts at; crossings are kept per site, a list of arrays (one per piece, in ``t``
    order); ``knots`` is the knot count of the whole segment (pieces share their ends).
    """

    def __init__(self, max_knots, kern, bn_stats, knots, a, b):
        self.max_knots = max_knots
        self.kern = kern
        self.bn_stats = bn_stats
        self.knots = knots
        self.a, self.b = a, b
        self.site = self.bn = 0
        self.crossings, self.crossing_units, self.units = {}, {}, {}
        # (site, t) -> slopes of the last piece left of the cut at t, for the piece right
        # of it (the left one is carried first)
        self.edges = {}

    def run(self, layers, st):
        for i, layer in enumerate(layers):
            st = self.layer(layer, st, _fresh(layers, i))
        return st

    def layer(self, layer, st, fresh=False):
        """``layer`` applied to ``st``; ``fresh``: ``st``'s arrays are the previous
        layer's own output, held nowhere else, so they may be overwritten."""
        if isinstance(layer, Dense):
            v, s = layer.w @ st.v, layer.w @ st.s
            if layer.b is not None:
                v += layer.b[:, None]
            return _State(st.t, v, s, st.grid)
        if isinstance(layer, BatchNorm):
            mean, inv = self.bn_stats[self.bn]
            self.bn += 1
            if not fresh:
                return _State(st.t, (st.v - mean[:, None]) * inv[:, None],
                              st.s * inv[:, None], st.grid)
            st.v -= mean[:, None]
            st.v *= inv[:, None]
            st.s *= inv[:, None]
            return st
        if isinstance(layer, Activation):
            return self.activation(layer, st, fresh)
        if isinstance(layer, Residual):
            out = self.run(layer.branch, st)
            skip = st.refine(out.t, self.kern)
            return _State(out.t, layer.alpha * (skip.v + layer.beta * out.v),
                          layer.alpha * (skip.s + layer.beta * out.s), out.grid)
        raise ValueError(f"breakpoints: no piecewise-linear rule for {type(layer).__name__}")

    def activation(self, layer, st, fresh=False):
        v, s, t = st.v, st.s, st.t
        left, right = v[:, :-1], v[:, 1:]
        unit, piece = np.nonzero(((left < 0) & (right > 0)) | ((left > 0) & (right < 0)))
        tc = t[piece] - left[unit, piece] / s[unit, piece]
        tc = np.clip(tc, t[piece], t[piece + 1])
        # a unit exactly 0 at a knot, changing sign across it, crosses at the knot
        zu, zk = np.nonzero(v[:, 1:-1] == 0)
        zk = zk + 1
        at = (v[zu, zk - 1] * v[zu, zk + 1]) < 0
        unit = np.concatenate([unit, zu[at]])
        tc = np.concatenate([tc, t[zk[at]]])
        site = self.site
        self.site += 1
        if t[-1] != self.b:  # a cut: the piece to the right decides its knot
            self.edges[(site, t[-1])] = s[:, -1].copy()
        if t[0] != self.a:  # the cut on the left: 0 there with the same slope sign on
            # both sides (a sign change across the knot, as for an interior knot)
            left_slope = self.edges.pop((site, t[0]))
            zu = np.nonzero((v[:, 0] == 0) & (left_slope * s[:, 0] > 0))[0]
            unit = np.concatenate([unit, zu])
            tc = np.concatenate([tc, np.full(len(zu), t[0])])
        order = np.argsort(tc, kind="stable")
        self.crossings.setdefault(site, []).append(tc[order])
        self.crossing_units.setdefault(site, []).append(unit[order])
        self.units[site] = v.shape[0]
        t_new = np.union1d(t, tc)
        self.knots += len(t_new) - len(t)
        if self.knots > self.max_knots:
            raise ValueError(f"breakpoints: {self.knots} knots exceed max_knots = "
                             f"{self.max_knots}; shorten the segment or raise max_knots")
        check_memory(4 * v.shape[0] * len(t_new) * v.itemsize,
                     f"breakpoints with {len(t_new)} knots in a piece")
        refined = st.refine(t_new, self.kern)
        if refined is st and not fresh:  # no new knot: st is the caller's
            refined = _State(st.t, st.v.copy(), st.s.copy(), st.grid)
        st = refined
        st.v[unit, np.searchsorted(t_new, tc)] = 0.0  # exactly 0 at its own crossing
        if layer.kind == "crelu":
            n, m = st.v.shape
            v, s = np.empty((2 * n, m), dtype=st.v.dtype), np.empty((2 * n, m - 1),
                                                                    dtype=st.v.dtype)
            self.kern.pl_crelu(st.v, st.s, v, s)
        else:  # in place: st is this layer's own now
            v, s = st.v, st.s
            self.kern.pl_act(st.v, st.s, float(layer.slope_pos), float(layer.slope_neg), v, s)
        return _State(st.t, v, s, st.grid)


def _fresh(layers, i):
    """True when the input of ``layers[i]`` is the output of a dense layer or a batch norm
    before it in ``layers``: a new state no one else holds."""
    return i > 0 and type(layers[i - 1]) in (Dense, BatchNorm)


def _kinks_of(slopes, knots, tol):
    jump = np.diff(slopes)
    scale = float(np.abs(slopes).max()) if slopes.size else 0.0
    kink = np.abs(jump) > tol * scale
    pieces = np.concatenate([slopes[:1], slopes[1:][kink]]) if slopes.size else slopes
    return knots[1:-1][kink], jump[kink], pieces


def breakpoints(net, a, b, grid=None, x0=None, direction=None, max_knots=MAX_KNOTS,
                backend="numba"):
    """The exact breakpoints of ``f`` and crossings of every unit on ``[a, b]``.

    Parameters
    ----------
    net : Network
        Drawn explicitly; feedforward, resnet or post-activation resnet, with ReLU,
        ab-ReLU or CReLU (looks-linear too), with or without batch norm.  Not highway.
    a, b : float
        The segment ``a < b`` of the line ``x(t) = x0 + t u``.
    grid : array_like, optional
        Grid points in ``[a, b]``, kept as knots.  Batch norm takes its (frozen)
        statistics from them, so nets with batch norm need at least 2.
    x0, direction : array_like, optional
        The line (default :func:`line_points`).
    max_knots : int
        Refuse (``ValueError``) a segment needing more knots.
    backend : {'numba', 'numpy'}
        The kernels of :mod:`gradsim.kernels.pwl` or their NumPy twins (the same numbers).

    Returns
    -------
    Kinks
    """
    _check_net(net)
    a, b, g = _segment(a, b, grid)
    max_knots = check_int("max_knots", max_knots, 2, 10**9)
    spec = net.spec
    if spec.batchnorm and len(np.unique(g)) < 2:
        raise ValueError("batch norm takes its statistics from the grid: pass a grid of at "
                         "least 2 points in [a, b]")
    x0, u = line_points(spec, x0, direction)
    t = np.union1d([a, b], g)
    grid_mask = np.isin(t, g)
    if spec.batchnorm:
        # every grid point counts once in the statistics, as in a grid batch of distinct
        # points; a repeated grid point would count more than once there
        if len(g) != len(np.unique(g)):
            raise ValueError("grid points must be distinct for batch-norm statistics")
    dt = net.dtype
    kern = get_backend(backend)
    stats = _bn_statistics(net, x0, u, np.unique(g), kern) if spec.batchnorm else []
    v0 = (x0[:, None] + u[:, None] * t[None, :]).astype(dt)
    s0 = np.repeat(u[:, None], len(t) - 1, axis=1).astype(dt)
    run = _Pass(max_knots, kern, stats, len(t), a, b)
    readouts = (net.taps or []) + [net.readout]
    taps = net.taps is not None
    layers, bounds = net.layers, set(net.bounds)
    tap_at = {b_: k for k, b_ in enumerate(net.bounds)}
    sites = np.cumsum([0] + [_count(x, Activation) for x in layers])
    bns = np.cumsum([0] + [_count(x, BatchNorm) for x in layers])
    tap_parts = [[] for _ in readouts] if taps else None
    final = []
    # the segment as pieces: a piece with more than PIECE_KNOTS knots after a layer is
    # cut in two and each half carried on alone, the left one first (so every list
    # below fills in t order)
    todo = [(0, _State(t, v0, s0, grid_mask))]
    while todo:
        i, st = todo.pop()
        run.site, run.bn = int(sites[i]), int(bns[i])
        while i < len(layers):
            st = run.layer(layers[i], st, _fresh(layers, i) and i > 0)
            if taps and i in bounds:
                tap_parts[tap_at[i]].append((st.t, readouts[tap_at[i]] @ st.s))
            i += 1
            if i < len(layers) and len(st.t) - 1 > PIECE_KNOTS:
                left, right = _split(st)
                todo.append((i, right))
                st = left
        final.append((st.t, net.readout @ st.v, net.readout @ st.s))
    tap_bp, tap_jump, tap_rms = ([], [], []) if taps else (None, None, None)
    for parts in tap_parts or []:
        kt, sl = _joined(parts)
        where, jump, _ = _kinks_of(sl, kt, SLOPE_TOL)
        tap_bp.append(where)
        tap_jump.append(jump)
        tap_rms.append(np.sqrt(float((sl * sl) @ np.diff(kt)) / (b - a)))
    knots, f, slopes = _joined(final)
    bp, jumps, pieces = _kinks_of(slopes, knots, SLOPE_TOL)
    n_sites = int(sites[-1])
    crossings = [np.concatenate(run.crossings[k]) for k in range(n_sites)]
    units_of = [np.concatenate(run.crossing_units[k]) for k in range(n_sites)]
    return Kinks(a, b, knots, f, slopes, bp, jumps, pieces, crossings, units_of,
                 np.array([run.units[k] for k in range(n_sites)]), tap_bp, tap_jump,
                 None if tap_rms is None else np.array(tap_rms))


def _bn_statistics(net, x0, u, g, kern):
    """The (mean, 1 / sqrt(var + eps)) of every batch-norm application, in network order,
    over the grid batch ``x0 + g u`` (the statistics ``bn_grad='frozen'`` holds fixed)."""
    x = (x0[None, :] + g[:, None] * u[None, :]).astype(net.dtype)
    ctx = Context(len(g), kern, bn_record=[])
    run_forward(net.layers, np.ascontiguousarray(x.T), ctx)
    return ctx.bn_record


def grid_adequacy(kinks, grid):
    """How many grid intervals hold more than one breakpoint of ``f``.

    A grid gradient is one number per grid point; an interval between grid points that
    holds two or more breakpoints hides pieces of ``f`` the grid cannot see.

    Returns
    -------
    dict
        ``intervals`` (grid intervals), ``empty``, ``one`` and ``several`` (intervals
        with 0, 1 and more than 1 breakpoint), ``hidden`` (breakpoints beyond the first
        in an interval) and ``fraction_several``.
    """
    g = np.sort(np.asarray(grid, dtype=np.float64).reshape(-1))
    if g.size < 2:
        raise ValueError("grid must have at least 2 points")
    idx = np.searchsorted(g, kinks.breakpoints, side="right") - 1
    idx = idx[(idx >= 0) & (idx < g.size - 1)]
    counts = np.bincount(idx, minlength=g.size - 1)
    several = int((counts > 1).sum())
    return {"intervals": int(g.size - 1), "empty": int((counts == 0).sum()),
            "one": int((counts == 1).sum()), "several": several,
            "hidden": int(np.maximum(counts - 1, 0).sum()),
            "fraction_several": several / (g.size - 1)}


def grid_crossings(net, t, x0=None, direction=None, backend="numba"):
    """Sign changes of every activation site's units between successive points ``t``:
    a lower bound on the crossings, exact where the grid resolves them (for highway
    nets, whose gates are smooth; any net drawn explicitly).

    ``backend`` is as for :func:`gradsim.nets.preactivations`.

    Returns
    -------
    ndarray, shape (sites,)
        Mean sign changes per unit at each activation site.
    """
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if t.size < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("t must be at least 2 increasing finite points")
    x0, u = line_points(net.spec, x0, direction)
    x = x0[None, :] + t[:, None] * u[None, :]
    pre = preactivations(net, x, backend=backend, stats_from=x if net.spec.batchnorm else None)
    return np.array([((z[:, :-1] > 0) != (z[:, 1:] > 0)).sum() / z.shape[0] for z in pre])


#: Networks and most knots :func:`grid_report` looks at (a quick check, not a study).
REPORT_NETS, REPORT_MAX_KNOTS = 4, 200_000


def grid_report(spec, grid, seed, nets=REPORT_NETS, max_knots=REPORT_MAX_KNOTS):
    """Grid adequacy of a line grid for the first ``nets`` networks of ``seed``.

    The networks ``network_rng(seed, i)`` (those :func:`gradsim.montecarlo.simulate`
    draws explicitly) are cut into their exact pieces on the grid's segment
    ``[lo, hi]``, with the grid points as knots, and :func:`grid_adequacy` counts the grid
    intervals holding more than one breakpoint of ``f``.

    Returns
    -------
    dict or str
        ``nets``, ``intervals``, ``several`` and ``hidden`` (means over the networks) and
        ``breakpoints`` (mean); or, where the check does not apply, why not (a grid other
        than a line, a highway or convolutional net, a net needing more than
        ``max_knots`` knots: then its grid is far too coarse).
    """
    from .montecarlo import network_rng
    from .nets import sample_network
    from .spec import NetSpec

    if not isinstance(spec, NetSpec) or spec.arch == "highway":
        return "f is not piecewise linear (highway gates) or not a dense net"
    if grid.kind != "line":
        return f"the grid is not a line ({grid.kind})"
    t = np.linspace(grid.lo, grid.hi, grid.points)
    rows = []
    for i in range(nets):
        net = sample_network(spec, network_rng(seed, i))
        try:
            k = breakpoints(net, grid.lo, grid.hi, grid=t, max_knots=max_knots)
        except ValueError as exc:
            if "max_knots" in str(exc):
                return (f"network {i} has more than {max_knots} knots on [{grid.lo:g}, "
                        f"{grid.hi:g}]: the grid of {grid.points} points is far too coarse")
            raise
        ad = grid_adequacy(k, t)
        rows.append((ad["several"], ad["hidden"], len(k.breakpoints)))
    several, hidden, count = np.mean(rows, axis=0)
    return {"nets": nets, "intervals": grid.points - 1, "several": float(several),
            "hidden": float(hidden), "breakpoints": float(count)}
