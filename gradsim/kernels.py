"""numba kernels: small private loops on preallocated arrays.

Each function has a NumPy twin of the same name and signature in
:mod:`gradsim.reference`, which documents the maths and the array layout.  No
validation, allocation or random numbers happen here; the callers in
:mod:`gradsim.nets` and :mod:`gradsim.montecarlo` do that.  All numba options live in
:data:`JIT`.
"""

from __future__ import annotations

import math

import numba

__all__ = [
    "act_fwd", "act_bwd", "crelu_fwd", "crelu_bwd", "bn_fwd", "bn_bwd",
    "highway_fwd", "highway_bwd", "activity", "accumulate_moments",
]

#: The one place numba options are set: compiled once and cached, GIL released,
#: no fast-math (results must agree with the NumPy twins to rounding).
JIT = dict(nopython=True, nogil=True, cache=True, fastmath=False)


@numba.jit(**JIT)
def act_fwd(z, p, slope_pos, slope_neg, out):  # noqa: D103 - see reference.act_fwd
    n, c = z.shape
    for i in range(n):
        for j in range(p):
            s = slope_pos if z[i, j] > 0 else slope_neg
            for k in range(j, c, p):
                out[i, k] = s * z[i, k]


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
            for k in range(j, c, p):
                if v > 0:
                    out[i, k] = z[i, k]
                    out[n + i, k] = 0.0
                elif v < 0:
                    out[i, k] = 0.0
                    out[n + i, k] = -z[i, k]
                else:
                    out[i, k] = 0.0
                    out[n + i, k] = 0.0


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
            for k in range(p + j, c, p):
                out[i, k] = dt * zt[i, k] * diff + t * h[i, k] + (1.0 - t) * x[i, k]


@numba.jit(**JIT)
def highway_bwd(g, gate, hv, xv, gh, gx, gzt):  # noqa: D103
    n, p = g.shape
    for i in range(n):
        for j in range(p):
            t = gate[i, j]
            gh[i, j] = g[i, j] * t
            gx[i, j] = g[i, j] * (1.0 - t)
            gzt[i, j] = g[i, j] * (hv[i, j] - xv[i, j]) * t * (1.0 - t)


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
