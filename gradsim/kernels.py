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
import numpy as np

__all__ = [
    "act_fwd", "act_bwd", "crelu_fwd", "crelu_bwd", "bn_fwd", "bn_bwd",
    "highway_fwd", "highway_bwd", "activity", "accumulate_moments", "exact_pairs",
    "dense_act_stack",
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


#: As :data:`JIT`, with the loop over independent pairs spread over threads (each pair's
#: arithmetic is the same whatever the thread count, so results do not depend on it).
PJIT = dict(JIT, parallel=True)


@numba.jit(**JIT)
def _exact_step(st, d, s, bv, a, b, tol, new):
    A, B, C = st[0], st[1], st[2]
    S = math.sqrt(A * B)
    rho = min(max(C / S, -1.0), 1.0)
    m = (a - b) ** 2
    root = math.sqrt(max(1.0 - rho * rho, 0.0))
    t = math.pi - math.acos(rho)
    g = a * b * rho + m * (root + t * rho) / (2 * math.pi)
    g1 = a * b + m * t / (2 * math.pi)
    g2 = m / (2 * math.pi * root) if (root > 0 and 1.0 - rho * rho >= tol) else 0.0
    gd = (a * a + b * b) / 2
    if rho == 1.0:  # g(1) = gd: the same expression as A's keeps C = A on the diagonal
        g = gd
    ox, oy, ocx, ocy, oxy = 3, 3 + d, 3 + 2 * d, 3 + 3 * d, 3 + 4 * d
    new[0] = s * gd * A + bv
    new[1] = s * gd * B + bv
    new[2] = s * g * S + bv
    for i in range(d):
        ux = st[ox + i] / (2 * A)
        rx = st[ocx + i] / S - rho * ux
        new[ox + i] = s * gd * st[ox + i]
        new[ocx + i] = s * S * (g * ux + g1 * rx)
        for j in range(d):
            uy = st[oy + j] / (2 * B)
            ry = st[ocy + j] / S - rho * uy
            rxy = (st[oxy + i * d + j] / S - (st[ocx + i] * uy + ux * st[ocy + j]) / S
                   + rho * ux * uy)
            new[oxy + i * d + j] = s * S * (g * (ux * uy) + g1 * (ux * ry + rx * uy + rxy)
                                            + g2 * (rx * ry))
    for j in range(d):
        uy = st[oy + j] / (2 * B)
        ry = st[ocy + j] / S - rho * uy
        new[oy + j] = s * gd * st[oy + j]
        new[ocy + j] = s * S * (g * uy + g1 * ry)


@numba.jit(**JIT)
def _exact_step1(A, B, C, ax, by, cx, cy, cxy, s, bv, a, b, tol):
    """:func:`_exact_step` for d = 1, in registers."""
    S = math.sqrt(A * B)
    rho = min(max(C / S, -1.0), 1.0)
    m = (a - b) ** 2
    q = 1.0 - rho * rho
    root = math.sqrt(max(q, 0.0))
    t = math.pi - math.acos(rho)
    g = a * b * rho + m * (root + t * rho) / (2 * math.pi)
    g1 = a * b + m * t / (2 * math.pi)
    g2 = m / (2 * math.pi * root) if (root > 0 and q >= tol) else 0.0
    gd = (a * a + b * b) / 2
    if rho == 1.0:
        g = gd
    ux = ax / (2 * A)
    uy = by / (2 * B)
    rx = cx / S - rho * ux
    ry = cy / S - rho * uy
    rxy = cxy / S - (cx * uy + ux * cy) / S + rho * ux * uy
    return (s * gd * A + bv, s * gd * B + bv, s * g * S + bv, s * gd * ax, s * gd * by,
            s * S * (g * ux + g1 * rx), s * S * (g * uy + g1 * ry),
            s * S * (g * (ux * uy) + g1 * (ux * ry + rx * uy + rxy) + g2 * (rx * ry)))


@numba.jit(**PJIT)
def _exact_pairs1(st, depth, resnet, branch, prm, bias, out):
    s, a, b, alpha2, beta2, head, tol = prm[0], prm[1], prm[2], prm[3], prm[4], prm[5], prm[6]
    for p in numba.prange(st.shape[0]):
        A, B, C, ax, by, cx, cy, cxy = (st[p, 0], st[p, 1], st[p, 2], st[p, 3], st[p, 4],
                                        st[p, 5], st[p, 6], st[p, 7])
        if not resnet:
            for k in range(depth - 1):
                A, B, C, ax, by, cx, cy, cxy = _exact_step1(A, B, C, ax, by, cx, cy, cxy,
                                                            s, bias[k], a, b, tol)
            A, B, C, ax, by, cx, cy, cxy = _exact_step1(A, B, C, ax, by, cx, cy, cxy,
                                                        head, 0.0, a, b, tol)
            h = 1.0
        else:
            for k in range(depth):
                A2, B2, C2, ax2, by2, cx2, cy2, cxy2 = A, B, C, ax, by, cx, cy, cxy
                for _ in range(branch):
                    A2, B2, C2, ax2, by2, cx2, cy2, cxy2 = _exact_step1(
                        A2, B2, C2, ax2, by2, cx2, cy2, cxy2, s, bias[k], a, b, tol)
                A = alpha2 * (A + beta2 * A2)
                B = alpha2 * (B + beta2 * B2)
                C = alpha2 * (C + beta2 * C2)
                ax = alpha2 * (ax + beta2 * ax2)
                by = alpha2 * (by + beta2 * by2)
                cx = alpha2 * (cx + beta2 * cx2)
                cy = alpha2 * (cy + beta2 * cy2)
                cxy = alpha2 * (cxy + beta2 * cxy2)
            h = head
        out[p, 0], out[p, 1], out[p, 2], out[p, 3] = h * A, h * B, h * C, h * ax
        out[p, 4], out[p, 5], out[p, 6], out[p, 7] = h * by, h * cx, h * cy, h * cxy


@numba.jit(**PJIT)
def _exact_pairs(st, d, resnet, depth, branch, prm, bias, out):
    k, n = st.shape
    s, a, b, alpha2, beta2, head, tol = prm[0], prm[1], prm[2], prm[3], prm[4], prm[5], prm[6]
    for p in numba.prange(k):
        cur = st[p].copy()
        nxt = np.empty(n)
        br = np.empty(n)
        if not resnet:
            for j in range(depth - 1):
                _exact_step(cur, d, s, bias[j], a, b, tol, nxt)
                cur, nxt = nxt, cur
            _exact_step(cur, d, head, 0.0, a, b, tol, out[p])
        else:
            for j in range(depth):
                br[:] = cur
                for _ in range(branch):
                    _exact_step(br, d, s, bias[j], a, b, tol, nxt)
                    br, nxt = nxt, br
                for i in range(n):
                    cur[i] = alpha2 * (cur[i] + beta2 * br[i])
            for i in range(n):
                out[p, i] = head * cur[i]


def exact_pairs(st, d, resnet, depth, branch, prm, bias, out):  # noqa: D103
    if d == 1:
        _exact_pairs1(st, depth, resnet, branch, prm, bias, out)
    else:
        _exact_pairs(st, d, resnet, depth, branch, prm, bias, out)
