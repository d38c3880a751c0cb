"""Gradient independence with mean-field angles.

Assumption: in the backward pass the weights are independent of the forward pass (exact
for the weights' own contribution at infinite width and large input dimension).  The
pre-activation kernels follow the mean-field map ``q <- s E[phi(u)^2] + sigma_b^2``,
``c <- s sqrt(q q') E[phi(u) phi(v)] + sigma_b^2``, and every layer multiplies the
gradient inner product by ``s E[phi'(u) phi'(v)]`` at its own angle.  The network is read
from its family's kernel program (:class:`~gradsim.families.hooks.KernelPlan`), the same
description the exact theory runs.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.arccos import MIX, SAVE, SCALE, STEP, ab_map
from .base import LOG_TINY, kernel_plan, over_depth, range_error, require
from .base import covers as _covers

__all__ = ["independence", "closed_form", "covers"]


def covers(spec):
    """None if gradient independence covers ``spec``, else why not."""
    return _covers(spec, "independence")


def _run(ops, state, a, b):
    """Apply kernel ops to ``[q1, q2, c, F_var, F_cov]``: the kernel of the two inputs and
    the gradient factors, which combine as the kernel does (``MIX``, ``SCALE``) and pick
    up ``s E[phi'^2]`` and ``s E[phi'(u) phi'(v)]`` at each ``STEP``."""
    gd = ab_map(1.0, a, b)[0]
    g1d = ab_map(1.0, a, b)[1]
    skip = None
    for code, x1, x2 in ops:
        q1, q2, c, fv, fc = state
        if code == STEP:
            root = math.sqrt(q1 * q2)
            g, g1, _ = ab_map(c / root, a, b)
            state = [x1 * gd * q1 + x2, x1 * gd * q2 + x2, x1 * g * root + x2,
                     fv * x1 * g1d, fc * x1 * g1]
        elif code == SAVE:
            skip = list(state)
        elif code == MIX:
            state = [x1 * (s0 + x2 * v) for s0, v in zip(skip, state)]
        elif code == SCALE:
            state = [x1 * v for v in state]
    return state


def independence(spec, x, y, *, log_scale=False):
    """Gradient covariance under gradient independence, with mean-field angles.

    Feedforward and resnets (one- or two-layer branch) without batch norm, ReLU,
    ab-ReLU or looks-linear CReLU (``covers``).  For feedforward nets the gradient inner
    product ``E[grad f(x) . grad f(y)]`` is ``readout_var * sigma_w^2 *
    prod_l s E[phi'(u_l) phi'(v_l)] / s`` (``R_ff = prod_l (1 - theta_l / pi)`` for ReLU at
    He), for resnets ``readout_var * sigma_w^2 * prod_l alpha^2 (1 + beta^2 prod_branch s
    E[phi' phi'])``.  At ``theta_l = pi / 2`` this is the paper model.  On a 1-D input with
    biases it can be wrong (use the exact infinite-width theory there).

    Parameters
    ----------
    spec : NetSpec
    x, y : array_like, shape (d,)
        The two inputs.
    log_scale : bool
        Return the finite log-scale form (``Theory.log_scale`` the log of the variance,
        ``variance`` 1, ``covariance`` the correlation), for nets so deep that the
        variance leaves floating-point range.

    Returns
    -------
    Theory
        Labelled ``LABELS['independence']``; ``variance`` is at ``x``.

    Raises
    ------
    ValueError
        Without ``log_scale``, where the variance or covariance overflows float64 (the
        message names the depth); with or without it, where the kernel or the gradient
        factors leave float64's normal range (a zero or subnormal kernel, say from a tiny
        ``weight_var`` or ``readout_var``), which would make the correlation meaningless.

    References
    ----------
    Schoenholz, Gilmer, Ganguli and Sohl-Dickstein, "Deep information propagation",
    ICLR 2017; Yang, "Scaling limits of wide neural networks with weight sharing", 2019.
    """
    return over_depth("independence", spec, *closed_form(spec, x, y), log_scale)


class _OutOfRange(Exception):
    """A kernel or gradient factor left float64's normal range at block ``depth``."""

    def __init__(self, depth):
        super().__init__(depth)
        self.depth = depth


_TINY = math.exp(LOG_TINY)


def closed_form(spec, x, y):
    """``(variance, covariance, correlation, log variance)`` over depth; the variance and
    covariance are ``inf`` where they overflow, the other two stay finite."""
    require(spec, "independence")
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if x.shape != (spec.input_dim,) or y.shape != x.shape:
        raise ValueError(f"x and y must have shape ({spec.input_dim},)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    sw, d = spec.weight_var, spec.input_dim
    with np.errstate(over="ignore"):  # huge inputs: an infinite kernel, refused below
        q1 = float(sw * x @ x / d + spec.first_bias_var)
        q2 = float(sw * y @ y / d + spec.first_bias_var)
        c = float(sw * x @ y / d + spec.first_bias_var)
    if q1 <= 0 or q2 <= 0:
        raise ValueError("an input with zero norm and no first-layer bias has no angle")
    plan = kernel_plan(spec)
    # the gradient factors are renormalised after every block (log_var keeps the scale),
    # so they stay in range however deep: a plain resnet's variance is 2^L
    state, log_var = [q1, q2, c, 1.0, 1.0], 0.0
    L = spec.depth
    log_v, corr = np.empty(L), np.empty(L)
    try:
        if not (_TINY <= q1 * q2 < math.inf and math.isfinite(c)):
            raise _OutOfRange(1)
        for k, block in enumerate(plan.blocks):
            state = _run(block, state, plan.a, plan.b)
            *_, fv, fc = _run(plan.head, state, plan.a, plan.b)
            if not (_TINY <= fv < math.inf and math.isfinite(fc) and _TINY <= state[3] < math.inf
                    and all(_TINY <= q < math.inf for q in state[:2])):
                raise _OutOfRange(k + 1)
            corr[k] = fc / fv
            log_v[k] = log_var + math.log(fv) + math.fsum(plan.log_growth[:k + 1])
            log_var += math.log(state[3])
            state[3:] = [1.0, state[4] / state[3]]
    except (_OutOfRange, ZeroDivisionError, OverflowError) as exc:
        raise range_error("gradient independence", "the kernel or the gradient factors "
                          "leave float64's normal range",
                          exc.depth if isinstance(exc, _OutOfRange) else None, spec) from None
    with np.errstate(over="ignore", divide="ignore"):  # out of range: inf (or 0 for corr 0)
        var = sw * np.exp(log_v)
        cov = np.sign(corr) * sw * np.exp(log_v + np.log(np.abs(corr)))
    return var, cov, corr, math.log(sw) + log_v
