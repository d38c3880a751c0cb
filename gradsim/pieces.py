"""Piecewise-linear states along a segment, and cutting and joining them (for
:mod:`gradsim.kinks`, which carries a segment as pieces)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .families.layers import Residual

__all__ = ["State", "count_layers", "split", "joined"]


@dataclasses.dataclass
class State:
    """A piecewise-linear state: knots ``t`` ``(K+1,)``, values ``v`` ``(N, K+1)``,
    slopes ``s`` ``(N, K)``, and which knots are grid points."""

    t: np.ndarray
    v: np.ndarray
    s: np.ndarray
    grid: np.ndarray

    def refine(self, t_new, kern):
        """The same functions on the knots ``t_new`` (a superset of ``self.t``), by the
        kernel ``kern.pl_refine``."""
        if len(t_new) == len(self.t):
            return self
        last = len(self.t) - 2
        knot_piece = np.clip(np.searchsorted(self.t, t_new, side="right") - 1, 0, last)
        old = np.searchsorted(t_new, self.t)
        src = np.full(len(t_new), -1, dtype=np.int64)
        src[old] = np.arange(len(self.t))
        mid = 0.5 * (t_new[:-1] + t_new[1:])
        parent = np.clip(np.searchsorted(self.t, mid, side="right") - 1, 0, last)
        v = np.empty((self.v.shape[0], len(t_new)), dtype=self.v.dtype)
        s = np.empty((self.v.shape[0], len(t_new) - 1), dtype=self.v.dtype)
        kern.pl_refine(self.v, self.s, self.t, t_new, src, knot_piece.astype(np.int64),
                       parent.astype(np.int64), v, s)
        grid = np.zeros(len(t_new), dtype=bool)
        grid[old] = self.grid
        return State(t_new, v, s, grid)


def count_layers(layer, kind):
    """How many ``kind`` layers ``layer`` applies (inside a residual branch too)."""
    inner = layer.branch if isinstance(layer, Residual) else [layer]
    return sum(isinstance(x, kind) for x in inner)


def split(st):
    """``st`` cut at its middle knot into two states (sharing that knot), each with its
    own contiguous arrays."""
    mid = (len(st.t) - 1) // 2
    return [State(np.ascontiguousarray(st.t[sl]), np.ascontiguousarray(st.v[:, sl]),
                   np.ascontiguousarray(st.s[:, ps]), np.ascontiguousarray(st.grid[sl]))
            for sl, ps in ((slice(0, mid + 1), slice(0, mid)),
                           (slice(mid, None), slice(mid, None)))]


def joined(parts):
    """Pieces ``[(t, *rows)]`` in ``t`` order as one: knots with the shared ends once, and
    each row (values at the knots, or slopes on the pieces) concatenated alike."""
    t = np.concatenate([parts[0][0]] + [p[0][1:] for p in parts[1:]])
    out = [t]
    for k in range(1, len(parts[0])):
        on_knots = len(parts[0][k]) == len(parts[0][0])
        out.append(np.concatenate([parts[0][k]] + [p[k][1:] if on_knots else p[k]
                                                   for p in parts[1:]]))
    return out


