"""NumPy twins of the highway kernels in :mod:`gradsim.kernels.highway` (same names,
signatures and outputs; states laid out as in :mod:`gradsim.kernels.dense_numpy`)."""

from __future__ import annotations

import numpy as np

from .dense_numpy import blocks

__all__ = ["highway_fwd", "highway_bwd"]


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def highway_fwd(h, zt, x, p, out, gate):
    """Highway combination ``T * H + (1 - T) * x`` with ``T = sigmoid(zt)``.

    ``h``, ``zt``, ``x`` and ``out`` are states ``(N, (1 + D) * P)``; ``gate``
    ``(N, P)`` receives ``T`` at the values.  Tangent:
    ``dT (H - x) + T dH + (1 - T) dx`` with ``dT = T (1 - T) dzt``.
    """
    hb, xb, zb, ob = (blocks(a, p) for a in (h, x, zt, out))
    t = _sigmoid(zb[:, 0])
    gate[...] = t
    ob[:, 0] = t * hb[:, 0] + (1.0 - t) * xb[:, 0]
    tt = t[:, None]
    ob[:, 1:] = (tt * (1.0 - tt) * zb[:, 1:] * (hb[:, :1] - xb[:, :1])
                 + tt * hb[:, 1:] + (1.0 - tt) * xb[:, 1:])


def highway_bwd(g, gate, hv, xv, gh, gx, gzt):
    """Cotangents of the highway combination; every array ``(N, P)``.

    Writes ``gh = g T``, ``gx = g (1 - T)`` and ``gzt = g (H - x) T (1 - T)``.
    """
    gh[...] = g * gate
    gx[...] = g * (1.0 - gate)
    gzt[...] = g * (hv - xv) * gate * (1.0 - gate)
