"""numba kernel of the exact infinite-width theory: a kernel program run on the packed
kernel states of many input pairs.

:func:`run_program` applies a program of :data:`~gradsim.kernels.arccos.OPS` (built by an
architecture family, see :class:`gradsim.families.hooks.KernelPlan`) to every pair.  Pairs
are processed in blocks of :data:`BLOCK` (structure of arrays: one row per quantity of
:func:`~gradsim.kernels.arccos.pair_layout`, one column per pair), the blocks spread over
threads; each pair's arithmetic does not depend on the block or thread that computes it.
The NumPy twin, with the maths written out, is :mod:`gradsim.kernels.nngp_numpy`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import JIT, PJIT
from .arccos import MIX, SAVE, SCALE, STEP
from .arccos import ab_map_theta as _ab_map_theta
from .arccos import acos as _acos
from .arccos import pair_layout as _pair_layout

__all__ = ["run_program"]

#: Pairs per block: a block's states stay in cache across the whole program.
BLOCK = 64

ab_map_theta = numba.jit(**JIT)(_ab_map_theta)
pair_layout = numba.jit(**JIT)(_pair_layout)
acos = numba.jit(inline="always", **JIT)(_acos)


@numba.jit(**JIT)
def _step(st, d, s, bv, a, b, new, work):
    """``STEP``: activation then a weight of scale ``s`` and bias variance ``bv``.

    Three passes over the block's pairs: the correlations, their arc-cosines (a loop of
    one branch-free function, which the compiler vectorises), then the maps; ``work``
    ``(3, pairs)`` holds ``S``, ``rho`` and ``theta`` between them."""
    lay = pair_layout(d)
    gd = (a * a + b * b) / 2
    k = st.shape[1]
    for p in range(k):
        S = math.sqrt(st[lay.A, p] * st[lay.B, p])
        work[0, p] = S
        work[1, p] = min(max(st[lay.C, p] / S, -1.0), 1.0)
    for p in range(k):
        work[2, p] = acos(work[1, p])
    for p in range(k):
        A, B = st[lay.A, p], st[lay.B, p]
        S, rho = work[0, p], work[1, p]
        g, g1, g2 = ab_map_theta(rho, work[2, p], a, b)
        new[lay.A, p] = s * gd * A + bv
        new[lay.B, p] = s * gd * B + bv
        new[lay.C, p] = s * g * S + bv
        for i in range(d):
            axi, cxi = st[lay.ax + i, p], st[lay.cx + i, p]
            ux = axi / (2 * A)
            rx = cxi / S - rho * ux
            new[lay.ax + i, p] = s * gd * axi
            new[lay.cx + i, p] = s * S * (g * ux + g1 * rx)
            for j in range(d):
                byj, cyj = st[lay.by + j, p], st[lay.cy + j, p]
                uy = byj / (2 * B)
                ry = cyj / S - rho * uy
                rxy = (st[lay.cxy + i * d + j, p] / S - (cxi * uy + ux * cyj) / S
                       + rho * ux * uy)
                new[lay.cxy + i * d + j, p] = s * S * (g * (ux * uy)
                                                       + g1 * (ux * ry + rx * uy + rxy)
                                                       + g2 * (rx * ry))
        for j in range(d):
            byj = st[lay.by + j, p]
            uy = byj / (2 * B)
            ry = st[lay.cy + j, p] / S - rho * uy
            new[lay.by + j, p] = s * gd * byj
            new[lay.cy + j, p] = s * S * (g * uy + g1 * ry)


@numba.jit(**PJIT)
def run_program(st, d, codes, x1, x2, a, b, out):  # noqa: D103 - see nngp_numpy
    n, k = st.shape
    blocks = (k + BLOCK - 1) // BLOCK
    for blk in numba.prange(blocks):
        lo = blk * BLOCK
        hi = min(k, lo + BLOCK)
        cur = np.empty((n, hi - lo))
        nxt = np.empty((n, hi - lo))
        skip = np.empty((n, hi - lo))
        work = np.empty((3, hi - lo))
        cur[:, :] = st[:, lo:hi]
        for o in range(codes.shape[0]):
            code = codes[o]
            if code == STEP:
                _step(cur, d, x1[o], x2[o], a, b, nxt, work)
                cur, nxt = nxt, cur
            elif code == SAVE:
                skip[:, :] = cur
            elif code == MIX:
                for i in range(n):
                    for p in range(hi - lo):
                        cur[i, p] = x1[o] * (skip[i, p] + x2[o] * cur[i, p])
            elif code == SCALE:
                for i in range(n):
                    for p in range(hi - lo):
                        cur[i, p] = x1[o] * cur[i, p]
        out[:, lo:hi] = cur
