"""The slow, obvious NumPy twin of every kernel in :mod:`gradsim.kernels`.

Every function here has the same name, signature and output as its numba twin
and writes into the preallocated ``out`` arrays.  Tests assert that the two agree
on random inputs; the network code can run on either (``backend='numpy'``).

Layout shared by all kernels: a *state* is an array of shape ``(N, (1 + D) * P)``
whose first ``P`` columns are values at the ``P`` grid points and whose ``D``
following blocks of ``P`` columns are tangents (forward-mode derivatives) in
``D`` directions.  Backward kernels see cotangents of shape ``(N, P)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "act_fwd", "act_bwd", "crelu_fwd", "crelu_bwd", "bn_fwd", "bn_bwd",
    "highway_fwd", "highway_bwd", "activity", "accumulate_moments", "exact_pairs",
    "dense_act_stack",
]


def _blocks(a, p):
    """View ``(N, K * P)`` as ``(N, K, P)``."""
    return a.reshape(a.shape[0], -1, p)


def act_fwd(z, p, slope_pos, slope_neg, out):
    """ab-ReLU on values and tangents: slope ``slope_pos`` where ``z > 0``, else ``slope_neg``.

    Parameters
    ----------
    z : ndarray, shape (N, (1 + D) * P)
        Pre-activation state.
    p : int
        Number of grid points ``P``.
    slope_pos, slope_neg : float
        Slopes on the positive and non-positive side (ReLU: 1 and 0).
    out : ndarray, shape (N, (1 + D) * P)
        Activation state, written.
    """
    zb = _blocks(z, p)
    slope = np.where(zb[:, :1] > 0, slope_pos, slope_neg)
    _blocks(out, p)[...] = slope * zb


def dense_act_stack(ws, bs, s, p, slope_pos, slope_neg, work, out):
    """A stack of ``z = W h + b`` then ab-ReLU layers, fused (small widths).

    Parameters
    ----------
    ws : ndarray, shape (L, N, N)
        The layers' weights.
    bs : ndarray, shape (L, N)
        Their biases (zeros for none); added to the values only.
    s : ndarray, shape (N, (1 + D) * P)
        State entering the first layer; not modified.
    p : int
        Number of grid points ``P``.
    slope_pos, slope_neg : float
        As for :func:`act_fwd`.
    work : ndarray, shape (N, (1 + D) * P)
        Scratch space.
    out : ndarray, shape (N, (1 + D) * P)
        State after the last layer, written.
    """
    h = s
    for w, b in zip(ws, bs):
        z = w @ h
        z[:, :p] += b[:, None]
        h = np.empty_like(z)
        act_fwd(z, p, slope_pos, slope_neg, h)
    out[...] = h


def act_bwd(zv, g, slope_pos, slope_neg, out):
    """Cotangent through the ab-ReLU: ``out = g * slope(zv)``; all shapes ``(N, P)``."""
    out[...] = g * np.where(zv > 0, slope_pos, slope_neg)


def crelu_fwd(z, p, out):
    """CReLU ``[relu(z); relu(-z)]`` on values and tangents.

    ``z`` has shape ``(N, (1 + D) * P)``, ``out`` shape ``(2N, (1 + D) * P)``.
    Derivatives at ``z = 0`` are 0 in both halves.
    """
    n = z.shape[0]
    zb = _blocks(z, p)
    pos = zb[:, :1] > 0
    neg = zb[:, :1] < 0
    ob = _blocks(out, p)
    ob[:n] = np.where(pos, zb, 0.0)
    ob[n:] = np.where(neg, -zb, 0.0)


def crelu_bwd(zv, g, out):
    """Cotangent through CReLU: ``zv`` and ``out`` ``(N, P)``, ``g`` ``(2N, P)``."""
    n = zv.shape[0]
    out[...] = np.where(zv > 0, g[:n], 0.0) - np.where(zv < 0, g[n:], 0.0)


def bn_fwd(z, p, eps, through, out, inv_std):
    """Batch norm without affine part, statistics over the ``P`` value columns.

    ``zhat = (z - mean) / sqrt(var + eps)`` with the biased batch variance.  Frozen
    tangents are ``dz / sqrt(var + eps)``; ``through`` tangents also differentiate the
    mean and variance: ``(dz - mean(dz) - zhat * mean(zhat * dz)) / sqrt(var + eps)``.

    Parameters
    ----------
    z : ndarray, shape (N, (1 + D) * P)
    p : int
    eps : float
    through : bool
    out : ndarray, shape (N, (1 + D) * P)
        Normalised state, written.
    inv_std : ndarray, shape (N,)
        ``1 / sqrt(var + eps)`` per unit, written.
    """
    zb = _blocks(z, p)
    v = zb[:, 0]
    centred = v - v.mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt((centred**2).mean(axis=1) + eps)
    inv_std[...] = inv
    ob = _blocks(out, p)
    zhat = centred * inv[:, None]
    ob[:, 0] = zhat
    t = zb[:, 1:]
    if through:
        t = (t - t.mean(axis=2, keepdims=True)
             - zhat[:, None] * (zhat[:, None] * t).mean(axis=2, keepdims=True))
    ob[:, 1:] = t * inv[:, None, None]


def bn_bwd(zhat, inv_std, g, through, out):
    """Cotangent through batch norm; ``zhat``, ``g``, ``out`` ``(N, P)``, ``inv_std`` ``(N,)``."""
    if through:
        g = g - g.mean(axis=1, keepdims=True) - zhat * (g * zhat).mean(axis=1, keepdims=True)
    out[...] = g * inv_std[:, None]


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def highway_fwd(h, zt, x, p, out, gate):
    """Highway combination ``T * H + (1 - T) * x`` with ``T = sigmoid(zt)``.

    ``h``, ``zt``, ``x`` and ``out`` are states ``(N, (1 + D) * P)``; ``gate``
    ``(N, P)`` receives ``T`` at the values.  Tangent:
    ``dT (H - x) + T dH + (1 - T) dx`` with ``dT = T (1 - T) dzt``.
    """
    hb, xb, zb, ob = (_blocks(a, p) for a in (h, x, zt, out))
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


def activity(zv, out):
    """Active and co-active proportions of pre-activations ``zv`` ``(N, P)``, ``P >= 2``.

    ``out[0]`` is the fraction of (unit, point) pairs with ``z > 0``; ``out[1]`` the
    fraction of (unit, pair of distinct points) triples active at both points.
    """
    n, p = zv.shape
    a = (zv > 0).sum(axis=1).astype(np.float64)
    out[0] = a.sum() / (n * p)
    out[1] = (a * (a - 1.0)).sum() / (n * p * (p - 1.0))


def accumulate_moments(g, total, outer):
    """Add network rows in order: ``total += g[i]``, ``outer += g[i] g[i]^T``.

    ``g`` ``(M, K)``, ``total`` ``(K,)``, ``outer`` ``(K, K)``.  Rows are added one at a
    time so the sums do not depend on how networks were split into chunks.
    """
    for row in g:
        total += row
        outer += np.multiply.outer(row, row)


def _ab_g(rho, a, b):
    """``g, g', g''`` of the ab-ReLU arc-cosine map; ``g''`` is 0 where ``|rho| = 1``."""
    m = (a - b) ** 2
    root = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    t = np.pi - np.arccos(rho)
    g = a * b * rho + m * (root + t * rho) / (2 * np.pi)
    g1 = a * b + m * t / (2 * np.pi)
    g2 = np.zeros_like(root)
    np.divide(m, 2 * np.pi * root, out=g2, where=root > 0)
    return g, g1, g2


def _exact_step(st, d, s, bv, a, b, tol):
    """One layer ``W phi(z) + bias`` of the packed kernel state (see :func:`exact_pairs`)."""
    A, B, C = st[:, 0], st[:, 1], st[:, 2]
    ax, by = st[:, 3:3 + d], st[:, 3 + d:3 + 2 * d]
    cx, cy = st[:, 3 + 2 * d:3 + 3 * d], st[:, 3 + 3 * d:3 + 4 * d]
    cxy = st[:, 3 + 4 * d:].reshape(-1, d, d)
    S = np.sqrt(A * B)
    rho = np.minimum(np.maximum(C / S, -1.0), 1.0)
    g, g1, g2 = _ab_g(rho, a, b)
    g2 = np.where(1.0 - rho * rho < tol, 0.0, g2)
    gd = (a * a + b * b) / 2
    # g(1) = gd exactly: with C = A computed as A is, a pair at one input keeps rho = 1
    # (an ulp below 1, arccos would put sqrt(eps) errors into g and g')
    g = np.where(rho == 1.0, gd, g)
    ux = ax / (2 * A[:, None])
    uy = by / (2 * B[:, None])
    rx = cx / S[:, None] - rho[:, None] * ux
    ry = cy / S[:, None] - rho[:, None] * uy
    outer = np.einsum
    rxy = (cxy / S[:, None, None]
           - (outer("ka,kb->kab", cx, uy) + outer("ka,kb->kab", ux, cy)) / S[:, None, None]
           + rho[:, None, None] * outer("ka,kb->kab", ux, uy))
    mixed = S[:, None, None] * (g[:, None, None] * outer("ka,kb->kab", ux, uy)
                                + g1[:, None, None] * (outer("ka,kb->kab", ux, ry)
                                                       + outer("ka,kb->kab", rx, uy) + rxy)
                                + g2[:, None, None] * outer("ka,kb->kab", rx, ry))
    new = np.empty_like(st)
    new[:, 0] = s * gd * A + bv
    new[:, 1] = s * gd * B + bv
    new[:, 2] = s * g * S + bv
    new[:, 3:3 + d] = s * gd * ax
    new[:, 3 + d:3 + 2 * d] = s * gd * by
    new[:, 3 + 2 * d:3 + 3 * d] = s * S[:, None] * (g[:, None] * ux + g1[:, None] * rx)
    new[:, 3 + 3 * d:3 + 4 * d] = s * S[:, None] * (g[:, None] * uy + g1[:, None] * ry)
    new[:, 3 + 4 * d:] = s * mixed.reshape(len(st), d * d)
    return new


def exact_pairs(st, d, resnet, depth, branch, prm, bias, out):
    """Carry the infinite-width kernel state of ``K`` input pairs through a network.

    Parameters
    ----------
    st : ndarray, shape (K, 3 + 4 d + d^2)
        Packed state of the first layer's pre-activations for each pair ``(x, y)``:
        ``[K(x,x), K(y,y), K(x,y), dK(x,x)/dx (d), dK(y,y)/dy (d), dK(x,y)/dx (d),
        dK(x,y)/dy (d), d^2 K(x,y)/dx dy (d x d, row-major)]``.
    d : int
        Input dimension.
    resnet : bool
        Residual ``x <- alpha^2 (x + beta^2 branch(x))`` blocks (``depth`` of them, each
        branch ``branch`` layers), else a feedforward net of ``depth`` activations.
    depth, branch : int
    prm : ndarray, shape (7,)
        ``[s, a, b, alpha^2, beta^2, head, tol]``: weight scale, ab-ReLU slopes,
        residual scalings, the readout's scale and the diagonal tolerance on
        ``1 - rho^2`` below which ``g''`` is dropped.  The caller may divide ``s``
        (feedforward) or ``alpha^2`` (resnet) by a common growth factor per layer to keep
        the state in floating-point range; ``bias`` then carries the same scaling.
    bias : ndarray, shape (depth,)
        Hidden bias variance added by each layer (feedforward) or by each branch layer
        of each block (resnet).
    out : ndarray, shape (K, 3 + 4 d + d^2)
        The state of the output ``f``, written.
    """
    s, a, b, alpha2, beta2, head, tol = prm
    if not resnet:
        for k in range(depth - 1):
            st = _exact_step(st, d, s, bias[k], a, b, tol)
        out[...] = _exact_step(st, d, head, 0.0, a, b, tol)
        return
    for k in range(depth):
        br = st
        for _ in range(branch):
            br = _exact_step(br, d, s, bias[k], a, b, tol)
        st = alpha2 * (st + beta2 * br)
    out[...] = head * st
