"""numba kernel of the Gram-space sampler: a square root of a layer input's Gram matrix.

NumPy twin of the same name in :mod:`gradsim.kernels.gram_numpy`, which documents the
maths and the array layout; the algorithm is in ``docs/theory.md`` ("Monte Carlo in Gram
space").
"""

from __future__ import annotations

import math

import numba

from . import JIT
from .gram_numpy import GRAM_TIE, GRAM_TOL

__all__ = ["gram_root"]


@numba.jit(**JIT)
def gram_root(g, work, root):  # noqa: D103 - see gram_numpy.gram_root
    m = g.shape[0]
    scale, d, done = work[0], work[1], work[2]
    for a in range(m):
        for b in range(m):
            root[a, b] = 0.0
        scale[a] = math.sqrt(g[a, a]) if g[a, a] > 0.0 else 0.0
        d[a] = 1.0 if g[a, a] > 0.0 else 0.0
        done[a] = 0.0 if g[a, a] > 0.0 else 1.0
    for a in range(m):
        for b in range(m):
            if scale[a] > 0.0 and scale[b] > 0.0:
                g[a, b] = g[a, b] / (scale[a] * scale[b])
            else:
                g[a, b] = 0.0
    tol = GRAM_TOL * m
    r = 0
    for k in range(m):
        best = tol
        for i in range(m):
            if done[i] == 0.0 and d[i] > best:
                best = d[i]
        if best <= tol:
            break
        j = -1
        for i in range(m):  # ties within GRAM_TIE go to the first column
            if done[i] == 0.0 and d[i] >= best * (1.0 - GRAM_TIE):
                j = i
                break
        done[j] = 1.0
        piv = math.sqrt(d[j])
        root[k, j] = piv
        for i in range(m):
            if done[i] == 0.0:
                s = g[j, i]
                for t in range(k):
                    s -= root[t, j] * root[t, i]
                root[k, i] = s / piv
                d[i] -= root[k, i] * root[k, i]
        r += 1
    for k in range(r):
        for a in range(m):
            root[k, a] *= scale[a]
    return r

