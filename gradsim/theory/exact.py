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

The network is its family's kernel program (:class:`~gradsim.families.hooks.KernelPlan`:
per layer a ``STEP`` of the map above, residual blocks as ``SAVE``/``MIX``), run on every
pair by :func:`gradsim.kernels.nngp.run_program` or its NumPy twin.  Covers feedforward
nets and resnets (one- or two-layer branch) without batch norm, with ReLU, ab-ReLU,
looks-linear (partially mirrored) CReLU, or CReLU with independent halves (whose kernel
maps are exactly ReLU's); ``covers(spec)`` says why any other spec is not covered.

References
----------
Cho and Saul, "Kernel methods for deep learning", NeurIPS 2009.
Neal, "Bayesian learning for neural networks", 1996.
Lee et al., "Deep neural networks as Gaussian processes", ICLR 2018.
Matthews et al., "Gaussian process behaviour in wide deep neural networks", ICLR 2018.
"""

from __future__ import annotations

import numpy as np

from ..kernels import backend as get_backend
from ..kernels.arccos import pair_layout
from ..util import check_memory
from .base import LOG_MAX, LOG_TINY, kernel_plan, range_error, require
from .base import covers as _covers

__all__ = ["exact_gradient_covariance", "nngp_kernel", "covers", "defined_at", "NO_ANGLE",
           "overflow_depth", "scale_by"]

_TINY = float(np.finfo(np.float64).tiny)

#: Why the theory is undefined at an input (see :func:`defined_at`).
NO_ANGLE = "an input at 0 with no first-layer bias has no defined angle"


def covers(spec):
    """None if the exact infinite-width theory covers ``spec``, else why not."""
    return _covers(spec, "exact")


def _check(spec, x, y):
    sym = y is None
    if y is None:
        y = x
    require(spec, "exact")
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
    check_memory(8 * len(x) * len(y) * (3 * pair_layout(d).size + 2 * d * d + 3),
                 "exact theory on this many pairs (points x points x input_dim^2)")
    return x, y, sym


def defined_at(spec, x):
    """True unless an input of ``x`` ``(P, d)`` has no angle: zero first-layer kernel
    ``(sigma_w^2 / d) |x|^2 + sigma_b0^2`` (an input at 0 without a first-layer bias)."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    with np.errstate(over="ignore"):  # a huge input has an (infinite) angle
        return not len(x) or bool(np.min(spec.weight_var / spec.input_dim * (x * x).sum(1)
                                         + spec.first_bias_var) > 0)


def _pairs_state(spec, x, y, ii, jj):
    """Kernel states ``(size, K)`` of the first pre-activations ``W x + b`` for the pairs
    ``(x[ii], y[jj])``: ``K = (sigma_w^2 / d) x . y + sigma_b0^2`` (rows as in
    :func:`~gradsim.kernels.arccos.pair_layout`)."""
    d = spec.input_dim
    lay = pair_layout(d)
    s0 = spec.weight_var / d
    fb = spec.first_bias_var
    xi, yj = x[ii], y[jj]
    st = np.empty((lay.size, len(ii)))
    st[lay.A] = s0 * np.einsum("kd,kd->k", xi, xi) + fb
    st[lay.B] = s0 * np.einsum("kd,kd->k", yj, yj) + fb
    st[lay.C] = s0 * np.einsum("kd,kd->k", xi, yj) + fb
    st[lay.ax:lay.by] = 2 * s0 * xi.T
    st[lay.by:lay.cx] = 2 * s0 * yj.T
    st[lay.cx:lay.cy] = s0 * yj.T
    st[lay.cy:lay.cxy] = s0 * xi.T
    st[lay.cxy:] = s0 * np.eye(d).ravel()[:, None]
    return st


def _output(spec, x, y, symmetric, backend):
    """``(K, d^2 K / dx dy, plan)``: the output's kernel (P, Q) and mixed derivative
    (P, Q, d, d), both divided by ``exp(plan.log_scale)``, and the kernel program.

    The family's kernel program carries the state divided by a common growth per block,
    so deep nets stay in floating-point range (a plain resnet's variance is ``2^L``).
    Where even the scaled state leaves range (huge inputs, slopes or weight variances),
    a ``ValueError``.
    """
    kern = get_backend(backend)
    if not (defined_at(spec, x) and defined_at(spec, y)):
        raise ValueError(NO_ANGLE)
    p, q, d = len(x), len(y), spec.input_dim
    if symmetric:
        ii, jj = np.triu_indices(p)
    else:
        ii, jj = (m.ravel() for m in np.indices((p, q)))
    plan = kernel_plan(spec)
    lay = pair_layout(d)
    hint = "reduce the inputs, weight_var, slopes or depth"
    with np.errstate(all="ignore"):  # the NumPy twin past range: inf or nan, refused below
        st = _pairs_state(spec, x, y, ii, jj)
        ab = st[lay.A] * st[lay.B]
        if not np.all((ab >= _TINY) & (ab < np.inf)):  # S = sqrt(A B) would be 0 or inf
            raise range_error("exact theory", "the first layer's kernel "
                              "(weight_var |x|^2 / d + first_bias_var) is out of range for "
                              "its products (1.5e-154 to 1.3e154)", None, spec, hint)
        out = np.empty_like(st)
        try:
            kern.run_program(st, d, *plan.program(), plan.a, plan.b, out)
        except (ArithmeticError, SystemError):  # a 0 kernel (numba's prange: SystemError)
            out[:] = np.nan
    if not np.all(np.isfinite(out)):
        raise range_error("exact theory", "the kernel program is not finite (a kernel at 0, "
                          "or past float64 range even divided by its growth per block)",
                          None, spec, hint)
    c = np.empty((p, q))
    cxy = np.empty((p, q, d, d))
    c[ii, jj] = out[lay.C]
    cxy[ii, jj] = out[lay.cxy:].T.reshape(-1, d, d)
    if symmetric:
        c[jj, ii] = out[lay.C]
        cxy[jj, ii] = out[lay.cxy:].T.reshape(-1, d, d).transpose(0, 2, 1)
        k = np.arange(p)
        cxy[k, k] = (cxy[k, k] + cxy[k, k].transpose(0, 2, 1)) / 2  # symmetric up to rounding
    return c, cxy, plan


def scale_by(v, log_scale):
    """``v * exp(log_scale)`` (``inf`` where it overflows), also where ``exp(log_scale)``
    alone would leave range while the product does not (in two halves then)."""
    with np.errstate(over="ignore", under="ignore"):
        if LOG_TINY < log_scale < LOG_MAX:
            return v * np.exp(log_scale)
        half = np.exp(log_scale / 2)
        with np.errstate(invalid="ignore"):
            return np.where(v == 0, v, v * half * half)


def overflow_depth(spec, log_value, plan=None):
    """About where a quantity of the exact theory leaves float64 range: the first depth
    ``l`` at which ``log_value`` (the log of its size divided by the program's scale, at
    the output) plus the log of the program's growth over blocks ``1 .. l`` passes the
    log of the largest float64; ``spec.depth`` if none does.

    The program's state divided by its growth is about constant over depth for bias-free
    nets, so this is the depth within a block or two; an estimate otherwise.
    """
    plan = kernel_plan(spec) if plan is None else plan
    over = np.nonzero(log_value + np.cumsum(plan.log_growth) > LOG_MAX)[0]
    return int(over[0]) + 1 if over.size else spec.depth


def nngp_kernel(spec, x, y=None, *, backend="numba", log_scale=False):
    """Output kernel ``K(x_i, y_j) = E[f(x_i) f(y_j)]`` at infinite width.

    Parameters
    ----------
    spec : NetSpec
        Feedforward or resnet, no batch norm.
    x : array_like, shape (P, d) (or (P,) when d = 1)
    y : array_like, shape (Q, d), optional
        Default ``x``.
    backend : {'numba', 'numpy'}
    log_scale : bool
        Return ``(K, log_scale)`` with the true kernel ``K * exp(log_scale)``, as for
        :func:`exact_gradient_covariance`.

    Returns
    -------
    ndarray, shape (P, Q)

    Raises
    ------
    ValueError
        Without ``log_scale``, where the kernel overflows float64 (the message names the
        depth, about).

    References
    ----------
    Neal, "Bayesian learning for neural networks", 1996; Lee et al., "Deep neural networks
    as Gaussian processes", ICLR 2018; Matthews et al., "Gaussian process behaviour in wide
    deep neural networks", ICLR 2018; Cho and Saul, "Kernel methods for deep learning",
    NeurIPS 2009.
    """
    x, y, sym = _check(spec, x, y)
    c, _, plan = _output(spec, x, y, sym, backend)
    return (c, plan.log_scale) if log_scale else _unscale(spec, c, plan, "output kernel")


def _unscale(spec, v, plan, what):
    """``v * exp(plan.log_scale)``, or the ``ValueError`` naming the depth where that
    leaves floating-point range."""
    if plan.log_scale == 0:
        return v
    out = scale_by(v, plan.log_scale)
    if not np.all(np.isfinite(out)):
        peak = float(np.log(np.abs(v).max()))
        raise range_error("exact theory", f"the {what} overflows float64",
                          overflow_depth(spec, peak, plan), spec,
                          "pass log_scale=True for the values divided by exp(log_scale) "
                          "(correlations stay finite; gradsim theory prints the log10 "
                          "variance)", approximate=True)
    return out


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

    Raises
    ------
    ValueError
        Without ``log_scale``, where the covariance overflows float64: the message names
        the depth where the range runs out (about: the first depth where the scaled
        output times the program's growth passes the largest float64).  With or without
        it, where even the scaled program leaves range (huge inputs or slopes).

    References
    ----------
    Lee et al., ICLR 2018, and Matthews et al., ICLR 2018 (the NNGP kernel, as in
    :func:`nngp_kernel`); Cho and Saul, NeurIPS 2009 (the arc-cosine map); its mixed
    derivative is derived in ``docs/theory.md``.
    """
    x, y, sym = _check(spec, x, y)
    _, cxy, plan = _output(spec, x, y, sym, backend)
    return (cxy, plan.log_scale) if log_scale else _unscale(spec, cxy, plan, "covariance")
