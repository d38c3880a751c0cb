"""numba kernel of the Gram-space sampler: a square root of a layer input's Gram matrix.

NumPy twin of the same name in :mod:`gradsim.kernels.gram_numpy`, which documents the
maths and the array layout; the algorithm is in ``docs/theory.md`` ("Monte Carlo in Gram
space").
"""

from __future__ import annotations

import math

import numba

from . import JIT
from .gram_numpy import GRAM_HIGH, GRAM_LOW, GRAM_TIE, GRAM_TOL

__all__ = ["gram_root", "gram_stack"]


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



@numba.jit(**JIT)
def gram_stack(ws, bs, s, p, slope_pos, slope_neg, us, states, gwork, out):  # noqa: D103
    layers, n, k = ws.shape
    m = s.shape[1]
    depth = layers + 1
    first = depth - us.shape[0]  # the first depth (0-based) with a readout
    h, z = states[0], states[1]
    g, root, work = gwork[:m], gwork[m:2 * m], gwork[2 * m:]
    for i in range(n):
        for c in range(m):
            h[i, c] = s[i, c]
    for lay in range(depth):
        kk = us.shape[1] if lay == layers else k
        use_root = n > kk
        if use_root:
            top = 0.0
            for a in range(m):
                for b in range(a, m):
                    acc = 0.0
                    for i in range(n):
                        acc += h[i, a] * h[i, b]
                    g[a, b] = acc
                    g[b, a] = acc
                v = g[a, a]
                if top == top and not top >= v:  # a nan, once met, stays the top
                    top = v
            if not ((GRAM_LOW < top < GRAM_HIGH) or top == 0.0):
                return lay
            gram_root(g, work, root)
        if lay >= first:
            r = lay - first
            for c in range(m):
                out[r, c] = 0.0
            if use_root:
                for t in range(kk):
                    u = us[r, t]
                    for c in range(m):
                        out[r, c] += u * root[t, c]
            else:
                for i in range(n):
                    u = us[r, i]
                    for c in range(m):
                        out[r, c] += u * h[i, c]
        if lay == layers:
            break
        for i in range(n):
            for c in range(m):
                z[i, c] = 0.0
            if use_root:
                for t in range(k):
                    w = ws[lay, i, t]
                    for c in range(m):
                        z[i, c] += w * root[t, c]
            else:
                for t in range(n):
                    w = ws[lay, i, t]
                    for c in range(m):
                        z[i, c] += w * h[t, c]
            b = bs[lay, i]
            for j in range(p):
                z[i, j] += b
        for i in range(n):  # after every row of z: the explicit product reads h
            for j in range(p):
                sl = slope_pos if z[i, j] > 0 else slope_neg
                c = j
                while c < m:  # not a stepped range(): see dense.act_fwd
                    h[i, c] = sl * z[i, c]
                    c += p
    return -1
