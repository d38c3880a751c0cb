"""NumPy twin of :mod:`gradsim.kernels.pwl`: piecewise-linear states along a segment.

A state (:mod:`gradsim.kinks`) is every unit's value ``v`` ``(N, K + 1)`` at the knots
``t`` ``(K + 1,)`` and its slope ``s`` ``(N, K)`` on each piece.

* ``pl_refine`` puts the same functions on the knots ``t_new`` ``(M + 1,)``, a superset of
  ``t``: a knot that is old knot ``j`` (``src[k] = j``) keeps ``v[:, j]`` exactly, a new
  knot in old piece ``p = knot_piece[k]`` (``src[k] = -1``) gets
  ``v[:, p] + s[:, p] (t_new[k] - t[p])``; new piece ``k`` lies in old piece
  ``piece_parent[k]`` and keeps its slope.
* ``pl_act`` applies an ab-ReLU (slopes ``a`` for ``z > 0``, ``b`` otherwise) to a state
  in which no unit changes sign inside a piece: to the values, and to the slopes by the
  sign of ``v[:, k] + v[:, k + 1]`` (twice the value at the piece's midpoint); ``out_v``
  and ``out_s`` may be ``v`` and ``s`` (in place).
* ``pl_crelu`` does the same for CReLU: rows ``relu(z)`` then ``relu(-z)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pl_refine", "pl_act", "pl_crelu"]


def pl_refine(v, s, t, t_new, src, knot_piece, piece_parent, out_v, out_s):
    """Refine ``(v, s)`` on ``t`` to ``(out_v, out_s)`` on ``t_new`` (see the module)."""
    old = src >= 0
    out_v[:, old] = v[:, src[old]]
    p = knot_piece[~old]
    out_v[:, ~old] = v[:, p] + s[:, p] * (t_new[~old] - t[p])
    out_s[:] = s[:, piece_parent]


def pl_act(v, s, a, b, out_v, out_s):
    """ab-ReLU of a state whose units keep their sign on each piece."""
    mid = v[:, :-1] + v[:, 1:]
    out_s[:] = s * np.where(mid > 0, a, b)
    out_v[:] = np.where(v > 0, a * v, b * v)


def pl_crelu(v, s, out_v, out_s):
    """CReLU of such a state: ``out_v`` ``(2N, K + 1)``, rows ``relu(z)`` then ``relu(-z)``."""
    n = v.shape[0]
    mid = v[:, :-1] + v[:, 1:]
    out_v[:n] = np.maximum(v, 0.0)
    out_v[n:] = np.maximum(-v, 0.0)
    out_s[:n] = s * (mid > 0)
    out_s[n:] = -s * (mid < 0)
