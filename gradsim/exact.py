"""Exact infinite-width covariance of input gradients, for any input dimension, with biases.

At infinite width the network output is a Gaussian process with kernel ``K(x, x')``
(the NNGP kernel), and its input gradient is the Gaussian process with kernel
``C_ab(x, x') = d^2 K / dx_a dx'_b``.  We carry, layer by layer and in closed form, the
kernel values on the two diagonals ``A = K(x, x)``, ``B = K(x', x')``, the cross value
``C = K(x, x')``, their first derivatives ``dA/dx``, ``dB/dx'``, ``dC/dx``, ``dC/dx'`` and
the mixed derivative ``d^2 C / dx dx'``.

For an ab-ReLU ``phi`` and pre-activations with kernel ``(A, B, C)``,
``E[phi(u) phi(v)] = S g(rho)`` with ``S = sqrt(A B)``, ``rho = C / S`` and
``g(rho) = a b rho + (a - b)^2 (sqrt(1 - rho^2) + (pi - arccos rho) rho) / (2 pi)``;
``g'(rho) = a b + (a - b)^2 (pi - arccos rho) / (2 pi)`` and
``g''(rho) = (a - b)^2 / (2 pi sqrt(1 - rho^2))``.  Then
``d^2 (S g) / dx dx' = S_xx' g + g' (S_x rho_x'^T + rho_x S_x'^T) + S g' rho_xx'
+ S g'' rho_x rho_x'^T``.  With ``u_x = A_x / 2A`` this is computed as
``S [g u_x u_y^T + g' (u_x r_y^T + r_x u_y^T + r_xy) + g'' r_x r_y^T]``, where
``r_x = C_x / S - rho u_x`` and ``r_xy = C_xy / S - (C_x u_y^T + u_x C_y^T) / S
+ rho u_x u_y^T``: no cubes of ``S`` and no cancellation between large terms.

Diagonal branch: as ``x' -> x``, ``rho_x ~ |x - x'|`` and ``g'' ~ 1 / |x - x'|``, so the
last term is ``O(|x - x'|)``: it vanishes on the diagonal, where it is set to 0
(``sqrt(1 - rho^2) = 0``), and it is kept at every other pair however close, because
it is exactly the term that makes the covariance kink there (the shallow net's
Brownian slope, :func:`gradsim.gp.shallow_diffusion`).  Where ``1 - rho^2`` is at the
level of rounding, ``r_x`` and ``r_y`` are too, so the term is ``O(eps^{3/2})``.

Covers feedforward nets and resnets (one- or two-layer branch) without batch norm,
with ReLU, ab-ReLU, looks-linear (partially mirrored) CReLU, or CReLU with independent
halves (whose kernel maps are exactly ReLU's).
"""

from __future__ import annotations

import math

import numpy as np

from ._util import check_memory, get_backend
from .spec import NetSpec
from .theory import LABELS, _growth, _slopes, _weight_scale

__all__ = ["exact_gradient_covariance", "nngp_kernel"]

LABELS.setdefault("exact", "exact infinite width (NNGP mixed derivative)")

_DIAG_TOL = 0.0


def _check(spec, x, y):
    sym = y is None
    if y is None:
        y = x
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    if spec.batchnorm or spec.arch == "highway":
        raise ValueError("exact theory covers feedforward and resnet nets without batch norm")
    out = []
    for name, v in (("x", x), ("y", y)):
        v = np.asarray(v, dtype=float)
        if v.ndim == 1 and spec.input_dim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[1] != spec.input_dim or v.shape[0] < 1:
            raise ValueError(f"{name} must have shape (points, {spec.input_dim})")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite")
        out.append(v)
    x, y = out
    d = spec.input_dim
    check_memory(8 * len(x) * len(y) * (3 * (3 + 4 * d + d * d) + 2 * d * d + 3),
                 "exact theory on this many pairs (points x points x input_dim^2)")
    return x, y, sym


def _pairs_state(spec, x, y, ii, jj):
    """Packed kernel state of the first pre-activations ``W x + b`` for the pairs
    ``(x[ii], y[jj])``: ``K = (sigma_w^2 / d) x . y + sigma_b0^2``."""
    d = spec.input_dim
    s0 = spec.weight_var / d
    fb = spec.first_bias_var
    xi, yj = x[ii], y[jj]
    st = np.empty((len(ii), 3 + 4 * d + d * d))
    st[:, 0] = s0 * np.einsum("kd,kd->k", xi, xi) + fb
    st[:, 1] = s0 * np.einsum("kd,kd->k", yj, yj) + fb
    st[:, 2] = s0 * np.einsum("kd,kd->k", xi, yj) + fb
    st[:, 3:3 + d] = 2 * s0 * xi
    st[:, 3 + d:3 + 2 * d] = 2 * s0 * yj
    st[:, 3 + 2 * d:3 + 3 * d] = s0 * yj
    st[:, 3 + 3 * d:3 + 4 * d] = s0 * xi
    st[:, 3 + 4 * d:] = s0 * np.eye(d).ravel()
    return st


def _plan(spec, a, b):
    """Kernel parameters, per-layer biases and the log of the common scale factor.

    Every layer multiplies the whole kernel state by about the same factor ``f``
    (:func:`gradsim.theory._growth`), so deep nets would leave floating-point range.  The
    recursion is homogeneous apart from the biases, so the state is carried divided by
    ``f^l`` and the biases divided by the same; ``f = 1`` (He feedforward nets, for one)
    changes nothing.
    """
    s = _weight_scale(spec)
    resnet = spec.arch == "resnet"
    f = _growth(spec, a, b)
    lf = math.log(f)
    if resnet:
        head = spec.readout_var
        prm = [s, a, b, spec.alpha**2 / f, spec.beta**2, head]
        bias = spec.bias_var * np.exp(-lf * np.arange(spec.depth))
        log_scale = spec.depth * lf
    else:
        head = spec.readout_var * (0.5 if spec.init == "looks-linear" else 1.0)
        prm = [s / f, a, b, spec.alpha**2, spec.beta**2, head]
        bias = spec.bias_var * np.exp(-lf * np.arange(1, spec.depth + 1))
        log_scale = (spec.depth - 1) * lf
    return np.array(prm + [_DIAG_TOL]), bias, log_scale


def _output(spec, x, y, symmetric, backend):
    """``(K, d^2 K / dx dy, log_scale)``: the output's kernel (P, Q) and mixed
    derivative (P, Q, d, d), both divided by ``exp(log_scale)``."""
    kern = get_backend(backend)
    a, b = _slopes(spec)
    if min(len(x), len(y)) and (np.min(spec.weight_var / spec.input_dim
                                       * np.concatenate([(x * x).sum(1), (y * y).sum(1)])
                                       + spec.first_bias_var) <= 0):
        raise ValueError("an input at 0 with no first-layer bias has no defined angle")
    p, q, d = len(x), len(y), spec.input_dim
    if symmetric:
        ii, jj = np.triu_indices(p)
    else:
        ii, jj = (m.ravel() for m in np.indices((p, q)))
    st = _pairs_state(spec, x, y, ii, jj)
    prm, bias, log_scale = _plan(spec, a, b)
    out = np.empty_like(st)
    kern.exact_pairs(st, d, spec.arch == "resnet", spec.depth, spec.branch_depth, prm, bias,
                     out)
    c = np.empty((p, q))
    cxy = np.empty((p, q, d, d))
    c[ii, jj] = out[:, 2]
    cxy[ii, jj] = out[:, 3 + 4 * d:].reshape(-1, d, d)
    if symmetric:
        c[jj, ii] = out[:, 2]
        cxy[jj, ii] = out[:, 3 + 4 * d:].reshape(-1, d, d).transpose(0, 2, 1)
        k = np.arange(p)
        cxy[k, k] = (cxy[k, k] + cxy[k, k].transpose(0, 2, 1)) / 2  # symmetric up to rounding
    return c, cxy, log_scale


def nngp_kernel(spec, x, y=None, *, backend="numba"):
    """Output kernel ``K(x_i, y_j) = E[f(x_i) f(y_j)]`` at infinite width.

    Parameters
    ----------
    spec : NetSpec
        Feedforward or resnet, no batch norm.
    x : array_like, shape (P, d) (or (P,) when d = 1)
    y : array_like, shape (Q, d), optional
        Default ``x``.
    backend : {'numba', 'numpy'}

    Returns
    -------
    ndarray, shape (P, Q)
    """
    x, y, sym = _check(spec, x, y)
    c, _, log_scale = _output(spec, x, y, sym, backend)
    return _unscale(c, log_scale)


def _unscale(v, log_scale):
    """``v * exp(log_scale)``, ``inf`` where that leaves floating-point range."""
    if log_scale == 0:
        return v
    with np.errstate(over="ignore"):
        return v * np.exp(log_scale)


def exact_gradient_covariance(spec, x, y=None, *, backend="numba", log_scale=False):
    """``E[df/dx_a(x_i) df/dx_b(y_j)]`` at infinite width.

    Assumption: infinite width (every hidden layer's width to infinity, Gaussian
    weights), so the output is the Gaussian process of :func:`nngp_kernel` and the
    gradient's covariance is its mixed second derivative.  Exact at any depth, for any
    input dimension and with biases; no independence assumption.

    Parameters
    ----------
    spec : NetSpec
        Feedforward or resnet, no batch norm; ReLU, ab-ReLU or CReLU.
    x : array_like, shape (P, d) (or (P,) when d = 1)
    y : array_like, shape (Q, d), optional
        Default ``x``; then only the upper triangle of pairs is computed and the rest
        is filled by symmetry, so the result is exactly symmetric.
    backend : {'numba', 'numpy'}
        The numba kernel (threads over pairs) or its NumPy twin; they agree to rounding.
    log_scale : bool
        Return ``(cov, log_scale)`` with the true covariance ``cov * exp(log_scale)``;
        for nets so deep that the covariance itself leaves floating-point range
        (correlations are ratios of ``cov`` entries and stay finite).

    Returns
    -------
    ndarray, shape (P, Q, d, d)
        The covariance of the gradient vectors; for ``d = 1`` take ``[..., 0, 0]``.
        Entries beyond floating-point range are ``inf`` (see ``log_scale``).
    """
    x, y, sym = _check(spec, x, y)
    _, cxy, ls = _output(spec, x, y, sym, backend)
    return (cxy, ls) if log_scale else _unscale(cxy, ls)
