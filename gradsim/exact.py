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
+ S g'' rho_x rho_x'^T``.  On the diagonal ``rho_x = 0`` and ``g''`` is infinite; the
last term tends to 0 (it is ``O(|x - x'|)``), which is the branch used when
``1 - rho^2 < 1e-10``.

Covers feedforward nets and resnets (one- or two-layer branch) without batch norm,
with ReLU, ab-ReLU or looks-linear (partially mirrored) CReLU.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._util import check_memory
from .spec import NetSpec
from .theory import LABELS, _slopes, _weight_scale

__all__ = ["KernelState", "exact_gradient_covariance", "nngp_kernel"]

LABELS.setdefault("exact", "exact infinite width (NNGP mixed derivative)")

_DIAG_TOL = 1e-10


@dataclasses.dataclass
class KernelState:
    """Kernel and derivatives for inputs ``x`` (P of them) against ``y`` (Q of them).

    Attributes
    ----------
    a : (P,) ``K(x, x)``;  ax : (P, d) its gradient in ``x``.
    b : (Q,) ``K(y, y)``;  by : (Q, d) its gradient in ``y``.
    c : (P, Q) ``K(x, y)``;  cx, cy : (P, Q, d) gradients in ``x`` and ``y``.
    cxy : (P, Q, d, d) mixed second derivative ``d^2 K / dx_a dy_b``.
    """

    a: np.ndarray
    ax: np.ndarray
    b: np.ndarray
    by: np.ndarray
    c: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    cxy: np.ndarray

    def scaled(self, factor, shift=0.0):
        """``factor * K + shift`` (the shift is a constant: derivatives only scale)."""
        f = factor
        return KernelState(f * self.a + shift, f * self.ax, f * self.b + shift, f * self.by,
                           f * self.c + shift, f * self.cx, f * self.cy, f * self.cxy)

    def plus(self, other):
        """Sum of two kernels of independent processes on the same inputs."""
        return KernelState(*(getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(self)))


def _input_state(x, y, var, bias_var):
    """Kernel of ``W x + b``: ``var x . y / d + bias_var``."""
    d = x.shape[1]
    s = var / d
    p, q = len(x), len(y)
    eye = np.broadcast_to(np.eye(d) * s, (p, q, d, d))
    return KernelState(
        a=s * np.einsum("pd,pd->p", x, x) + bias_var, ax=2 * s * x,
        b=s * np.einsum("qd,qd->q", y, y) + bias_var, by=2 * s * y,
        c=s * x @ y.T + bias_var,
        cx=np.broadcast_to(s * y[None, :, :], (p, q, d)).copy(),
        cy=np.broadcast_to(s * x[:, None, :], (p, q, d)).copy(),
        cxy=eye.copy())


def _g(rho, a, b):
    """g, g', g'' of the ab-ReLU (see the module docstring); g'' is set to 0 at |rho| = 1,
    where the term it multiplies vanishes."""
    theta = np.arccos(rho)
    m = (a - b) ** 2
    root = np.sqrt(np.maximum(1 - rho * rho, 0.0))
    g = a * b * rho + m * (root + (np.pi - theta) * rho) / (2 * np.pi)
    g1 = a * b + m * (np.pi - theta) / (2 * np.pi)
    g2 = np.zeros_like(root)
    np.divide(m, 2 * np.pi * root, out=g2, where=root > 0)
    return g, g1, g2


def _activate(st, scale, bias_var, a, b):
    """Kernel state of ``W phi(z) + bias`` from that of ``z``; ``W`` has scale ``scale``."""
    S = np.sqrt(np.outer(st.a, st.b))
    rho = np.clip(st.c / S, -1.0, 1.0)
    g, g1, g2 = _g(rho, a, b)
    gdiag = _g(np.ones(1), a, b)[0][0]
    # first derivatives of S = sqrt(A B) and rho = C / S
    sx = S[..., None] * (st.ax / (2 * st.a[:, None]))[:, None, :]
    sy = S[..., None] * (st.by / (2 * st.b[:, None]))[None, :, :]
    rx = st.cx / S[..., None] - rho[..., None] * (st.ax / (2 * st.a[:, None]))[:, None, :]
    ry = st.cy / S[..., None] - rho[..., None] * (st.by / (2 * st.b[:, None]))[None, :, :]
    sxy = np.einsum("pqa,pqb->pqab", sx, sy) / S[..., None, None]
    # rho_xy = C_xy / S - (C_x S_y^T + S_x C_y^T) / S^2 + 2 C S_x S_y^T / S^3 - C S_xy / S^2
    rxy = (st.cxy / S[..., None, None]
           - (np.einsum("pqa,pqb->pqab", st.cx, sy) + np.einsum("pqa,pqb->pqab", sx, st.cy))
           / (S * S)[..., None, None]
           + 2 * (st.c / S**3)[..., None, None] * np.einsum("pqa,pqb->pqab", sx, sy)
           - (st.c / (S * S))[..., None, None] * sxy)
    diag = (1 - rho * rho) < _DIAG_TOL
    sing = np.where(diag, 0.0, S * g2)
    mixed = (sxy * g[..., None, None]
             + g1[..., None, None] * (np.einsum("pqa,pqb->pqab", sx, ry)
                                      + np.einsum("pqa,pqb->pqab", rx, sy))
             + (S * g1)[..., None, None] * rxy
             + sing[..., None, None] * np.einsum("pqa,pqb->pqab", rx, ry))
    cx = sx * g[..., None] + (S * g1)[..., None] * rx
    cy = sy * g[..., None] + (S * g1)[..., None] * ry
    return KernelState(
        a=scale * st.a * gdiag + bias_var, ax=scale * gdiag * st.ax,
        b=scale * st.b * gdiag + bias_var, by=scale * gdiag * st.by,
        c=scale * S * g + bias_var, cx=scale * cx, cy=scale * cy, cxy=scale * mixed)


def _check(spec, x, y):
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
    check_memory(20 * 8 * len(x) * len(y) * spec.input_dim**2,
                 "exact theory on this many pairs (points x points x input_dim^2)")
    return x, y


def _output_state(spec, x, y):
    a, b = _slopes(spec)
    s = _weight_scale(spec)
    st = _input_state(x, y, spec.weight_var, spec.first_bias_var)
    if np.any(st.a <= 0) or np.any(st.b <= 0):
        raise ValueError("an input at 0 with no first-layer bias has no defined angle")
    if spec.arch == "feedforward":
        for _ in range(spec.depth - 1):
            st = _activate(st, s, spec.bias_var, a, b)
        head = spec.readout_var * (0.5 if spec.init == "looks-linear" else 1.0)
        return _activate(st, head, 0.0, a, b)
    for _ in range(spec.depth):
        br = st
        for _ in range(spec.branch_depth):
            br = _activate(br, s, spec.bias_var, a, b)
        st = st.plus(br.scaled(spec.beta**2)).scaled(spec.alpha**2)
    return st.scaled(spec.readout_var)


def nngp_kernel(spec, x, y):
    """Output kernel ``K(x_i, y_j) = E[f(x_i) f(y_j)]`` at infinite width, shape (P, Q)."""
    x, y = _check(spec, x, y)
    return _output_state(spec, x, y).c


def exact_gradient_covariance(spec, x, y=None):
    """``E[df/dx_a(x_i) df/dx_b(y_j)]`` at infinite width.

    Parameters
    ----------
    spec : NetSpec
    x : array_like, shape (P, d) (or (P,) when d = 1)
    y : array_like, shape (Q, d), optional
        Default ``x``.

    Returns
    -------
    ndarray, shape (P, Q, d, d)
        The covariance of the gradient vectors; for ``d = 1`` take ``[..., 0, 0]``.
    """
    x, y = _check(spec, x, y if y is not None else x)
    return _output_state(spec, x, y).cxy
