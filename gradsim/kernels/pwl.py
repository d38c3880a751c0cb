"""numba kernels of the piecewise-linear states of :mod:`gradsim.kinks`.

Each function has a NumPy twin of the same name and signature in
:mod:`gradsim.kernels.pwl_numpy`, which documents the maths and the array layout.  The
loops run over units in ``prange`` (each unit writes only its own rows), one pass over
the knots per unit.
"""

from __future__ import annotations

import numba

from . import PJIT

__all__ = ["pl_refine", "pl_act", "pl_crelu"]


@numba.jit(**PJIT)
def pl_refine(v, s, t, t_new, src, knot_piece, piece_parent, out_v, out_s):  # noqa: D103
    n = v.shape[0]
    m = t_new.shape[0]
    for i in numba.prange(n):
        for k in range(m):
            j = src[k]
            if j >= 0:
                out_v[i, k] = v[i, j]
            else:
                p = knot_piece[k]
                out_v[i, k] = v[i, p] + s[i, p] * (t_new[k] - t[p])
        for k in range(m - 1):
            out_s[i, k] = s[i, piece_parent[k]]


@numba.jit(**PJIT)
def pl_act(v, s, a, b, out_v, out_s):  # noqa: D103 - see pwl_numpy.pl_act
    n, m = v.shape
    for i in numba.prange(n):
        for k in range(m - 1):
            out_s[i, k] = s[i, k] * (a if v[i, k] + v[i, k + 1] > 0 else b)
        for k in range(m):
            x = v[i, k]
            out_v[i, k] = a * x if x > 0 else b * x


@numba.jit(**PJIT)
def pl_crelu(v, s, out_v, out_s):  # noqa: D103 - see pwl_numpy.pl_crelu
    n, m = v.shape
    for i in numba.prange(n):
        for k in range(m - 1):
            mid = v[i, k] + v[i, k + 1]
            out_s[i, k] = s[i, k] if mid > 0 else 0.0
            out_s[n + i, k] = -s[i, k] if mid < 0 else 0.0
        for k in range(m):
            x = v[i, k]
            out_v[i, k] = x if x > 0 else 0.0
            out_v[n + i, k] = -x if x < 0 else 0.0
