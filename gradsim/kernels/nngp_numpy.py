"""NumPy twin of :mod:`gradsim.kernels.nngp`: the kernel program on every pair at once.

The exact infinite-width theory (:mod:`gradsim.theory.exact`) carries, for each input
pair ``(x, y)``, the kernel state of :func:`~gradsim.kernels.arccos.pair_layout`: the
values ``A = K(x, x)``, ``B = K(y, y)``, ``C = K(x, y)``, their first derivatives and the
mixed derivative ``d^2 C / dx dy``.  A ``STEP`` (the activation, then a weight of scale
``s`` and bias variance ``b_v``) maps it, with ``S = sqrt(A B)``, ``rho = C / S`` and
``(g, g', g'')`` of :func:`~gradsim.kernels.arccos.ab_map`, to

* ``A <- s g_d A + b_v``, ``B <- s g_d B + b_v``, ``C <- s S g(rho) + b_v`` with
  ``g_d = (a^2 + b^2) / 2 = g(1)``; ``dA/dx <- s g_d dA/dx`` (likewise ``dB/dy``);
* ``dC/dx <- s S (g u_x + g' r_x)`` and ``d^2 C / dx dy <- s S [g u_x u_y^T
  + g' (u_x r_y^T + r_x u_y^T + r_xy) + g'' r_x r_y^T]``, where ``u_x = A_x / 2A``,
  ``r_x = C_x / S - rho u_x`` and ``r_xy = C_xy / S - (C_x u_y^T + u_x C_y^T) / S
  + rho u_x u_y^T`` (the mixed derivative of ``S g(rho)`` without cubes of ``S``).

``SAVE``, ``MIX`` and ``SCALE`` are linear (see :data:`~gradsim.kernels.arccos.OPS`).
"""

from __future__ import annotations

import numpy as np

from .arccos import MIX, SAVE, SCALE, STEP, pair_layout
from .arccos import ab_map_array as _ab

__all__ = ["run_program"]

def _step(st, d, s, bv, a, b):
    """One ``STEP`` of states ``st`` ``(size, K)``; returns the new states."""
    lay = pair_layout(d)
    A, B, C = st[lay.A], st[lay.B], st[lay.C]
    ax, by = st[lay.ax:lay.by], st[lay.by:lay.cx]
    cx, cy = st[lay.cx:lay.cy], st[lay.cy:lay.cxy]
    cxy = st[lay.cxy:].reshape(d, d, -1)
    S = np.sqrt(A * B)
    rho = np.minimum(np.maximum(C / S, -1.0), 1.0)
    g, g1, g2 = _ab(rho, a, b)
    gd = (a * a + b * b) / 2
    ux, uy = ax / (2 * A), by / (2 * B)
    rx, ry = cx / S - rho * ux, cy / S - rho * uy
    outer = np.einsum
    rxy = (cxy / S - (outer("ak,bk->abk", cx, uy) + outer("ak,bk->abk", ux, cy)) / S
           + rho * outer("ak,bk->abk", ux, uy))
    mixed = S * (g * outer("ak,bk->abk", ux, uy)
                 + g1 * (outer("ak,bk->abk", ux, ry) + outer("ak,bk->abk", rx, uy) + rxy)
                 + g2 * outer("ak,bk->abk", rx, ry))
    new = np.empty_like(st)
    new[lay.A] = s * gd * A + bv
    new[lay.B] = s * gd * B + bv
    new[lay.C] = s * g * S + bv
    new[lay.ax:lay.by] = s * gd * ax
    new[lay.by:lay.cx] = s * gd * by
    new[lay.cx:lay.cy] = s * S * (g * ux + g1 * rx)
    new[lay.cy:lay.cxy] = s * S * (g * uy + g1 * ry)
    new[lay.cxy:] = s * mixed.reshape(d * d, -1)
    return new


def run_program(st, d, codes, x1, x2, a, b, out):
    """Run a kernel program on the states of ``K`` pairs.

    Parameters
    ----------
    st : ndarray, shape (3 + 4 d + d^2, K)
        The pairs' states (:func:`~gradsim.kernels.arccos.pair_layout` down the rows) after
        the first layer; not modified.
    d : int
        Input dimension.
    codes : ndarray of int64, shape (O,)
        The program's op codes (:data:`~gradsim.kernels.arccos.OPS`).
    x1, x2 : ndarray, shape (O,)
        Each op's arguments: ``STEP`` scale and bias variance, ``MIX`` ``alpha^2`` and
        ``beta^2``, ``SCALE`` factor.
    a, b : float
        Slopes of the ab-ReLU.
    out : ndarray, shape (3 + 4 d + d^2, K)
        The states after the program, written.
    """
    cur, skip = st, None
    for code, v1, v2 in zip(codes, x1, x2):
        if code == STEP:
            cur = _step(cur, d, v1, v2, a, b)
        elif code == SAVE:
            skip = cur
        elif code == MIX:
            cur = v1 * (skip + v2 * cur)
        elif code == SCALE:
            cur = v1 * cur
    out[...] = cur
