"""The slow, obvious NumPy twins of the dense kernels in :mod:`gradsim.kernels.dense`.

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

__all__ = ["add_bias", "act_fwd", "act_bwd", "crelu_fwd", "crelu_bwd", "bn_fwd", "bn_bwd",
           "bn_act_fwd", "bn_act_bwd", "activity",
           "accumulate_moments", "dense_act_stack"]


def blocks(a, p):
    """View ``(N, K * P)`` as ``(N, K, P)``."""
    return a.reshape(a.shape[0], -1, p)


def add_bias(z, b, p):
    """Add the bias to the values (the first ``p`` columns of each row), in place.

    Parameters
    ----------
    z : ndarray, shape (N, (1 + D) * P)
        Pre-activation state, updated.
    b : ndarray, shape (N,)
    p : int
        Number of grid points ``P``.
    """
    z[:, :p] += b[:, None]


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
    zb = blocks(z, p)
    slope = np.where(zb[:, :1] > 0, slope_pos, slope_neg)
    blocks(out, p)[...] = slope * zb


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
    zb = blocks(z, p)
    pos = zb[:, :1] > 0
    neg = zb[:, :1] < 0
    ob = blocks(out, p)
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
    zb = blocks(z, p)
    v = zb[:, 0]
    centred = v - v.mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt((centred**2).mean(axis=1) + eps)
    inv_std[...] = inv
    ob = blocks(out, p)
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


def bn_act_fwd(z, p, eps, through, slope_pos, slope_neg, out, inv_std, zhat):
    """Batch norm then the ab-ReLU in one pass: :func:`bn_fwd` then :func:`act_fwd`.

    ``out`` may be ``z`` itself (in place).  The numba twin makes one pass per row over
    values and tangents with no temporary array and gives the two kernels' result bit
    for bit (the same expressions in the same types; statistics accumulate in float64
    for float32 states, as in :func:`bn_fwd`).

    Parameters
    ----------
    z : ndarray, shape (N, (1 + D) * P)
        Pre-normalisation state.
    p : int
    eps : float
    through : bool
        As for :func:`bn_fwd`.
    slope_pos, slope_neg : float
        As for :func:`act_fwd`.
    out : ndarray, shape (N, (1 + D) * P)
        Activation state, written (may be ``z``).
    inv_std : ndarray, shape (N,)
        ``1 / sqrt(var + eps)`` per unit, written.
    zhat : ndarray, shape (N, P) or (0, 0)
        The normalised values (what reverse mode keeps), written unless empty.
    """
    bn = np.empty_like(z)
    bn_fwd(z, p, eps, through, bn, inv_std)
    if zhat.shape[0]:
        zhat[...] = bn[:, :p]
    act_fwd(bn, p, slope_pos, slope_neg, out)


def bn_act_bwd(zhat, inv_std, g, through, slope_pos, slope_neg, out):
    """Cotangent back through the ab-ReLU, then batch norm: :func:`act_bwd` then
    :func:`bn_bwd` (``zhat`` is both the activation's input and the normalised values);
    shapes as for :func:`bn_bwd`."""
    ga = np.empty_like(g)
    act_bwd(zhat, g, slope_pos, slope_neg, ga)
    bn_bwd(zhat, inv_std, ga, through, out)


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
