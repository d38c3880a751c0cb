"""numba kernels of the highway block: the gate combination ``T * H + (1 - T) * x`` and
its cotangents.  NumPy twins of the same names in :mod:`gradsim.kernels.highway_numpy`.
"""

from __future__ import annotations

import math

import numba

from . import JIT

__all__ = ["highway_fwd", "highway_bwd"]


@numba.jit(**JIT)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@numba.jit(**JIT)
def highway_fwd(h, zt, x, p, out, gate):  # noqa: D103
    n, c = h.shape
    for i in range(n):
        for j in range(p):
            t = _sigmoid(zt[i, j])
            gate[i, j] = t
            diff = h[i, j] - x[i, j]
            out[i, j] = t * h[i, j] + (1.0 - t) * x[i, j]
            dt = t * (1.0 - t)
            k = p + j
            while k < c:  # not a stepped range(): see dense.act_fwd
                out[i, k] = dt * zt[i, k] * diff + t * h[i, k] + (1.0 - t) * x[i, k]
                k += p


@numba.jit(**JIT)
def highway_bwd(g, gate, hv, xv, gh, gx, gzt):  # noqa: D103
    n, p = g.shape
    for i in range(n):
        for j in range(p):
            t = gate[i, j]
            gh[i, j] = g[i, j] * t
            gx[i, j] = g[i, j] * (1.0 - t)
            gzt[i, j] = g[i, j] * (hv[i, j] - xv[i, j]) * t * (1.0 - t)
