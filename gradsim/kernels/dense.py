"""numba kernels of the dense layers: activations, batch norm, activity, moments and the
fused small-width stack.

Each function has a NumPy twin of the same name and signature in
:mod:`gradsim.kernels.dense_numpy`, which documents the maths and the array layout.
"""

from __future__ import annotations

import math

import numba

from . import JIT

__all__ = ["add_bias", "act_fwd", "act_bwd", "crelu_fwd", "crelu_bwd", "bn_fwd", "bn_bwd",
           "bn_act_fwd", "bn_act_bwd", "activity",
           "accumulate_moments", "dense_act_stack"]


@numba.jit(**JIT)
def add_bias(z, b, p):  # noqa: D103 - see dense_numpy.add_bias
    n = z.shape[0]
    for i in range(n):
        for j in range(p):
            z[i, j] += b[i]


@numba.jit(**JIT)
def act_fwd(z, p, slope_pos, slope_neg, out):  # noqa: D103 - see dense_numpy.act_fwd
    n, c = z.shape
    for i in range(n):
        for j in range(p):
            s = slope_pos if z[i, j] > 0 else slope_neg
            k = j
            while k < c:  # a stepped range() compiles to a slower loop (4x, measured)
                out[i, k] = s * z[i, k]
                k += p


@numba.jit(**JIT)
def dense_act_stack(ws, bs, s, p, slope_pos, slope_neg, work, out):  # noqa: D103
    # row by row, every inner loop contiguous and branch-free so that it vectorises
    layers, n, _ = ws.shape
    c = s.shape[1]
    src = s
    for lay in range(layers):
        dst = out if (layers - 1 - lay) % 2 == 0 else work
        for i in range(n):
            for j in range(c):
                dst[i, j] = 0.0
            for k in range(n):
                w = ws[lay, i, k]
                for j in range(c):
                    dst[i, j] += w * src[k, j]
            b = bs[lay, i]
            for j in range(p):
                dst[i, j] += b
            for m in range(p, c, p):
                for j in range(p):
                    dst[i, m + j] *= slope_pos if dst[i, j] > 0 else slope_neg
            for j in range(p):
                dst[i, j] *= slope_pos if dst[i, j] > 0 else slope_neg
        src = dst


@numba.jit(**JIT)
def act_bwd(zv, g, slope_pos, slope_neg, out):  # noqa: D103
    n, p = zv.shape
    for i in range(n):
        for j in range(p):
            s = slope_pos if zv[i, j] > 0 else slope_neg
            out[i, j] = g[i, j] * s


@numba.jit(**JIT)
def crelu_fwd(z, p, out):  # noqa: D103
    n, c = z.shape
    for i in range(n):
        for j in range(p):
            v = z[i, j]
            k = j
            while k < c:  # not a stepped range(): see act_fwd
                if v > 0:
                    out[i, k] = z[i, k]
                    out[n + i, k] = 0.0
                elif v < 0:
                    out[i, k] = 0.0
                    out[n + i, k] = -z[i, k]
                else:
                    out[i, k] = 0.0
                    out[n + i, k] = 0.0
                k += p


@numba.jit(**JIT)
def crelu_bwd(zv, g, out):  # noqa: D103
    n, p = zv.shape
    for i in range(n):
        for j in range(p):
            v = zv[i, j]
            if v > 0:
                out[i, j] = g[i, j]
            elif v < 0:
                out[i, j] = -g[n + i, j]
            else:
                out[i, j] = 0.0


@numba.jit(**JIT)
def bn_fwd(z, p, eps, through, out, inv_std):  # noqa: D103
    n, c = z.shape
    for i in range(n):
        m = 0.0
        for j in range(p):
            m += z[i, j]
        m /= p
        var = 0.0
        for j in range(p):
            d = z[i, j] - m
            var += d * d
        inv = 1.0 / math.sqrt(var / p + eps)
        inv_std[i] = inv
        for j in range(p):
            out[i, j] = (z[i, j] - m) * inv
        for b in range(p, c, p):
            if through:
                mt = 0.0
                mzt = 0.0
                for j in range(p):
                    mt += z[i, b + j]
                    mzt += out[i, j] * z[i, b + j]
                mt /= p
                mzt /= p
                for j in range(p):
                    out[i, b + j] = (z[i, b + j] - mt - out[i, j] * mzt) * inv
            else:
                for j in range(p):
                    out[i, b + j] = z[i, b + j] * inv


@numba.jit(**JIT)
def bn_bwd(zhat, inv_std, g, through, out):  # noqa: D103
    n, p = g.shape
    for i in range(n):
        inv = inv_std[i]
        if through:
            mg = 0.0
            mgz = 0.0
            for j in range(p):
                mg += g[i, j]
                mgz += g[i, j] * zhat[i, j]
            mg /= p
            mgz /= p
            for j in range(p):
                out[i, j] = (g[i, j] - mg - zhat[i, j] * mgz) * inv
        else:
            for j in range(p):
                out[i, j] = g[i, j] * inv


@numba.jit(**JIT)
def bn_act_fwd(z, p, eps, through, slope_pos, slope_neg, out, inv_std, zhat):  # noqa: D103
    # one row at a time, in place if out is z: the row's values are read (statistics),
    # then normalised into out; each tangent block is read, then written from out's
    # normalised values; the values are activated last.  Every expression is the one of
    # bn_fwd then act_fwd, in the same types, so the result is theirs bit for bit.
    n, c = z.shape
    keep = zhat.shape[0] > 0
    for i in range(n):
        m = 0.0
        for j in range(p):
            m += z[i, j]
        m /= p
        var = 0.0
        for j in range(p):
            d = z[i, j] - m
            var += d * d
        inv = 1.0 / math.sqrt(var / p + eps)
        inv_std[i] = inv
        for j in range(p):
            out[i, j] = (z[i, j] - m) * inv
        for b in range(p, c, p):
            if through:
                mt = 0.0
                mzt = 0.0
                for j in range(p):
                    mt += z[i, b + j]
                    mzt += out[i, j] * z[i, b + j]
                mt /= p
                mzt /= p
                for j in range(p):
                    out[i, b + j] = (z[i, b + j] - mt - out[i, j] * mzt) * inv
            else:
                for j in range(p):
                    out[i, b + j] = z[i, b + j] * inv
            for j in range(p):
                out[i, b + j] *= slope_pos if out[i, j] > 0 else slope_neg
        for j in range(p):
            if keep:
                zhat[i, j] = out[i, j]
            out[i, j] *= slope_pos if out[i, j] > 0 else slope_neg


@numba.jit(**JIT)
def bn_act_bwd(zhat, inv_std, g, through, slope_pos, slope_neg, out):  # noqa: D103
    n, p = g.shape
    for i in range(n):
        inv = inv_std[i]
        for j in range(p):
            out[i, j] = g[i, j] * (slope_pos if zhat[i, j] > 0 else slope_neg)
        if through:
            mg = 0.0
            mgz = 0.0
            for j in range(p):
                mg += out[i, j]
                mgz += out[i, j] * zhat[i, j]
            mg /= p
            mgz /= p
            for j in range(p):
                out[i, j] = (out[i, j] - mg - zhat[i, j] * mgz) * inv
        else:
            for j in range(p):
                out[i, j] = out[i, j] * inv


@numba.jit(**JIT)
def activity(zv, out):  # noqa: D103
    n, p = zv.shape
    act = 0.0
    co = 0.0
    for i in range(n):
        a = 0.0
        for j in range(p):
            if zv[i, j] > 0:
                a += 1.0
        act += a
        co += a * (a - 1.0)
    out[0] = act / (n * p)
    out[1] = co / (n * p * (p - 1.0))


@numba.jit(**JIT)
def accumulate_moments(g, total, outer):  # noqa: D103
    m, k = g.shape
    for r in range(m):
        for i in range(k):
            gi = g[r, i]
            total[i] += gi
            for j in range(k):
                outer[i, j] += gi * g[r, j]
