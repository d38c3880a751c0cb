r"""Expected zero crossings of the pre-activations along a line, at infinite width (Rice).

Along the input line ``x(t) = x0 + t u``, ``t`` in ``[a, b]``, every pre-activation unit
``z(t)`` of an activation site is, at infinite width, a centred Gaussian process.  With

* ``K(t) = Var z(t)``,
* ``K_t(t) = Cov(z(t), z'(t)) = K'(t) / 2`` and
* ``C(t) = Var z'(t)`` (``z' = dz/dt``),

the Rice formula (Rice 1944/45; for non-stationary processes as in Cramer and
Leadbetter 1967) gives the expected number of zeros of one unit on ``[a, b]``:

.. math::

    E[N] = \frac{1}{\pi} \int_a^b \frac{\sqrt{K(t) C(t) - K_t(t)^2}}{K(t)}\, dt .

It is invariant under ``z -> c z``, so the common growth per block by which the kernel
program divides its state (:class:`~gradsim.families.hooks.KernelPlan`) drops out.

Where the kernels come from.  The exact infinite-width theory (:mod:`.exact`) runs the
family's kernel program on pair states (:func:`~gradsim.kernels.arccos.pair_layout`); the
state entering each ``STEP`` is (up to that positive scale) the kernel of the
pre-activations the ``STEP``'s activation is applied to.  On the diagonal pair
``(x(t), x(t))``: ``K = A``, ``K_t = (1/2) dA/dx . u`` and ``C = u^T (d^2 C / dx dy) u``.
Every op of the program maps the derivative blocks linearly, so the program is replayed
here on the directional state (the ``d = 1`` layout, derivatives along ``u``, which is
the projection of the full state onto ``u``), with the NumPy ``STEP``
(:func:`gradsim.kernels.nngp_numpy.run_program` on one ``STEP`` at a time) at quadrature
nodes in ``t``.

One ``STEP`` per activation site, in network order (the order of
:func:`gradsim.nets.preactivations`):

* feedforward: the ``STEP`` of block ``l + 1`` (``l < L``) applies the activation to
  ``z_l``; the readout ``STEP`` (the head) applies it to ``z_L``, the last site: it counts;
* resnet: per block, ``branch_depth`` ``STEP`` ops: the first applies the activation to the
  stream ``x_{l-1}``, the second (two-layer branch) to ``W_1 act(x_{l-1}) + b_1``; the head
  is a ``SCALE`` (no activation);
* ReLU, ab-ReLU, CReLU with independent halves (ReLU's kernel maps) and looks-linear CReLU
  (the ab-ReLU with slopes ``(1, mirror)``) alike.

Each site has ``width`` pre-activation units (CReLU doubles the features, not the units:
``relu(z)`` and ``relu(-z)`` switch at the same ``t``, one crossing per unit).

A closed form to check against.  On the diagonal every op is affine
(``A <- s g(1) A + b_v``, ``dA/dx <- s g(1) dA/dx``, ``d^2 C / dx dy <- s g(1) d^2 C / dx dy``
for an ab-ReLU, and ``SAVE``/``MIX``/``SCALE`` are linear), so at every site
``K(t) = alpha (t - t_*)^2 + beta`` is a quadratic in ``t`` with its minimum at the point
``t_*`` of the line nearest the origin, ``C = alpha``, ``K_t = alpha (t - t_*)``, and the
crossing density is the Cauchy density of scale ``w = sqrt(beta / alpha)``:
``E[N] = (atan((b - t_*) / w) - atan((a - t_*) / w)) / pi``.  Hidden biases only widen
``w`` layer after layer; without them every site has the first layer's ``w``.  The
quadrature below does not use this (it integrates what the program gives), and the
tests check it against it.

References
----------
S. O. Rice, "Mathematical analysis of random noise", Bell Syst. Tech. J. 23 (1944) 282-332
and 24 (1945) 46-156.
H. Cramer and M. R. Leadbetter, "Stationary and related stochastic processes", Wiley 1967.
B. Hanin and D. Rolnick, "Complexity of linear regions in deep networks", ICML 2019.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.arccos import MIX, SAVE, SCALE, STEP, pair_layout
from ..kernels.nngp_numpy import run_program
from ..spec import NetSpec
from .base import kernel_plan
from .exact import covers as exact_covers

__all__ = ["LABEL", "DEFAULT_NODES", "rice_crossings", "line_kernels"]

#: Label of every result of :func:`rice_crossings`.
LABEL = "Rice formula, infinite width"

#: Gauss-Legendre nodes per panel of :func:`rice_crossings` (converged to about 1e-14
#: relative on the graded panels, measured in ``tests/test_rice.py``).
DEFAULT_NODES = 32

# panels grow by this factor away from the point of the line nearest the origin
_GRADE = 4.0
# a line through the origin to within this many ulps of its terms has K = 0 there
_ULPS = 8.0


def _fail(message):
    return ValueError(f"rice: {message}")


def _check_spec(spec):
    if not isinstance(spec, NetSpec):
        kind = type(spec).__name__
        if kind == "ConvSpec":
            raise _fail("conv nets are not covered: the exact infinite-width theory is for "
                        "dense feedforward nets and resnets (a NetSpec)")
        raise _fail(f"spec must be a NetSpec, got {kind}")
    reason = exact_covers(spec)
    if reason is not None:
        raise _fail(f"not covered by the exact infinite-width theory: {reason}")


def _vector(name, value, d):
    try:
        v = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise _fail(f"{name} must be {d} real numbers, got {value!r}") from None
    v = v.reshape(-1) if v.ndim <= 1 else None
    if v is None or v.shape != (d,):
        raise _fail(f"{name} must have length input_dim = {d}, got shape {np.shape(value)}")
    if not np.all(np.isfinite(v)):
        raise _fail(f"{name} must be finite, got {v}")
    return v


def _line(spec, x0, direction):
    """``(x0, u)`` of the line ``x(t) = x0 + t u``, validated (defaults: the grid's)."""
    d = spec.input_dim
    x0 = np.zeros(d) if x0 is None else _vector("x0", x0, d)
    if direction is None:
        u = np.full(d, 1.0 / math.sqrt(d))
    else:
        u = _vector("direction", direction, d)
        if not np.any(u != 0):
            raise _fail("direction must be nonzero")
        with np.errstate(over="ignore", under="ignore"):
            uu = float(u @ u)
        if not (math.isfinite(uu) and uu > 0):
            raise _fail(f"direction must have a finite, nonzero squared length, got {uu}")
    return x0, u


def _nearest(spec, x0, u):
    """``(t_*, w)``: the point of the line nearest the origin and the first layer's Cauchy
    scale ``w = sqrt(|x(t_*)|^2 + first_bias_var d / weight_var) / |u|`` (``K`` of the first
    pre-activations is ``(weight_var / d) |u|^2 ((t - t_*)^2 + w^2)``); ``w = 0`` where the
    line passes through the origin (to rounding) without a first-layer bias."""
    uu = float(u @ u)
    ts = -float(x0 @ u) / uu
    r = x0 + ts * u
    m = float(r @ r)
    noise = _ULPS * np.finfo(float).eps * (float(np.abs(x0).max()) + abs(ts) * float(
        np.abs(u).max()))
    if spec.first_bias_var == 0 and math.sqrt(m) <= noise * math.sqrt(len(u)):
        m = 0.0
    return ts, math.sqrt((m + spec.first_bias_var * spec.input_dim / spec.weight_var) / uu)


def _initial_state(spec, t, x0, u):
    """Directional pair states (``d = 1`` layout) of the first pre-activations on the
    diagonal pairs ``(x(t), x(t))``: ``K = s0 |x|^2 + sigma_b0^2``, ``dK/dt = 2 s0 x . u``,
    the cross derivatives ``s0 x . u`` and the mixed derivative ``s0 |u|^2``
    (``s0 = weight_var / d``)."""
    lay = pair_layout(1)
    s0 = spec.weight_var / spec.input_dim
    x = x0[None, :] + t[:, None] * u[None, :]
    xx = np.einsum("kd,kd->k", x, x)
    xu = x @ u
    st = np.empty((lay.size, len(t)))
    st[lay.A] = st[lay.B] = st[lay.C] = s0 * xx + spec.first_bias_var
    st[lay.ax] = st[lay.by] = 2 * s0 * xu
    st[lay.cx] = st[lay.cy] = s0 * xu
    st[lay.cxy] = s0 * float(u @ u)
    return st


def _one_step(st, scale, bias_var, a, b):
    """One ``STEP`` of the directional states ``st`` (the NumPy twin's program of one op)."""
    out = np.empty_like(st)
    run_program(st, 1, np.array([STEP], dtype=np.int64), np.array([scale]),
                np.array([bias_var]), a, b, out)
    return out


def _replay(spec, st):
    """The states entering every ``STEP`` of the program, with their log scales.

    Mirrors :func:`gradsim.kernels.nngp_numpy.run_program` op by op.  Returns a list of
    ``(state, log_scale)``, one per ``STEP`` in program order: the true kernel is the
    state times ``exp(log_scale)``, the log of the growth divided out before the
    ``STEP``'s block (feedforward: blocks ``1 .. l``; resnet: blocks ``1 .. l - 1``).
    """
    plan = kernel_plan(spec)
    blocks = list(plan.blocks) + [plan.head]
    logs = list(plan.log_growth) + [0.0]
    cur, skip, seen = st, None, []
    with np.errstate(all="ignore"):  # out of range: refused by the caller
        for k, ops in enumerate(blocks):
            log_scale = math.fsum(logs[:k]) if k < len(plan.blocks) else plan.log_scale
            for code, v1, v2 in ops:
                if not (math.isfinite(v1) and math.isfinite(v2)):
                    raise _fail("the kernel program's coefficients are not finite (biases "
                                "divided by a growth past float64 range); reduce the depth")
                if code == STEP:
                    seen.append((cur, log_scale))
                    cur = _one_step(cur, v1, v2, plan.a, plan.b)
                elif code == SAVE:
                    skip = cur
                elif code == MIX:
                    cur = v1 * (skip + v2 * cur)
                elif code == SCALE:
                    cur = v1 * cur
                else:
                    raise _fail(f"unknown kernel op code {code}")
    return seen


def line_kernels(spec, t, x0=None, direction=None):
    """``K``, ``K_t`` and ``C`` of every activation site along ``x(t) = x0 + t u``.

    Parameters
    ----------
    spec : NetSpec
        Covered by the exact theory (:func:`gradsim.theory.exact.covers`).
    t : array_like, shape (P,)
        Finite positions on the line.
    x0, direction : array_like, shape (input_dim,), optional
        As for :func:`rice_crossings`.

    Returns
    -------
    dict
        ``K``, ``K_t``, ``C``: ndarrays of shape ``(sites, P)``, the variance of a unit,
        its covariance with its ``t``-derivative and the variance of that derivative, each
        divided by ``exp(log_scale)``; ``log_scale``: ndarray ``(sites,)``, the log of the
        program's growth divided out at each site (0 for the first).

    Raises
    ------
    ValueError
        Message starting with ``'rice:'``: a spec the exact theory does not cover, a bad
        line, or a program that leaves float64 range.
    """
    _check_spec(spec)
    t = np.asarray(t, dtype=float).reshape(-1)
    if not np.all(np.isfinite(t)):
        raise _fail("t must be finite")
    x0, u = _line(spec, x0, direction)
    lay = pair_layout(1)
    with np.errstate(all="ignore"):  # out of range: refused below
        seen = _replay(spec, _initial_state(spec, t, x0, u))
    sites = spec.n_act_layers
    if len(seen) != sites:  # every STEP applies the activation to one site's inputs
        raise _fail(f"the kernel program of arch={spec.arch!r} has {len(seen)} STEPs for "
                    f"{sites} activation sites")
    k = np.array([s[lay.A] for s, _ in seen])
    kt = np.array([s[lay.ax] / 2 for s, _ in seen])
    c = np.array([s[lay.cxy] for s, _ in seen])
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(kt)) and np.all(np.isfinite(c))):
        raise _fail("the kernel program is not finite on the segment (past float64 range "
                    "even divided by its growth per block); reduce the inputs, weight_var, "
                    "slopes or depth")
    return {"K": k, "K_t": kt, "C": c, "log_scale": np.array([s for _, s in seen])}


def _panels(a, b, ts, h):
    """Panel edges on ``[a, b]``: ``t_*`` (if inside) and ``t_* +- h G^k``, ``G = 4``,
    so that every panel is at least a third of its length away from ``t_*`` (where the
    integrand's complex singularities ``t_* +- i w`` lie) or ends there."""
    edges = [a, b]
    if a < ts < b:
        edges.append(ts)
    far = max(abs(a - ts), abs(b - ts))
    if h > 0 and far > h:
        steps = np.arange(int(math.ceil(math.log(far / h) / math.log(_GRADE))) + 1)
        for e in (ts + h * _GRADE**steps, ts - h * _GRADE**steps):
            edges.extend(e[(e > a) & (e < b)].tolist())
    return np.unique(edges)


def _nodes(edges, nodes):
    """Composite Gauss-Legendre nodes and weights on the panels ``edges``."""
    xg, wg = np.polynomial.legendre.leggauss(nodes)
    lo, hi = edges[:-1, None], edges[1:, None]
    half = (hi - lo) / 2
    return ((lo + hi) / 2 + half * xg).ravel(), (half * wg).ravel()


def _breakpoint_free(spec):
    """Why ``f`` has no breakpoint although its units cross, or None."""
    rule = spec.activation_rule
    if rule.a == rule.b:
        return ("looks-linear (mirror = 1)" if rule.mirrored
                else "the activation is linear (slope_pos = slope_neg)")
    if spec.arch == "resnet" and spec.beta == 0:
        return "beta = 0: the residual branches do not reach the output"
    return None


def rice_crossings(spec, a, b, x0=None, direction=None, nodes=DEFAULT_NODES):
    r"""Expected zero crossings of the pre-activations on a segment, at infinite width.

    For each activation site ``l`` (the sites of :func:`gradsim.nets.preactivations`, in
    network order) the expected number of zeros of one pre-activation unit ``z(t)`` on
    the segment ``x(t) = x0 + t u``, ``t`` in ``[a, b]``, by the Rice formula

    .. math::

        E[N_l] = \frac{1}{\pi} \int_a^b \frac{\sqrt{K C - K_t^2}}{K}\, dt,

    with ``K = Var z``, ``K_t = Cov(z, z')`` and ``C = Var z'`` read off the exact
    infinite-width kernel program (:func:`line_kernels`).  The expected number of
    breakpoints of ``f`` on the segment is ``sum_l n_l E[N_l]`` (``n_l = width`` units
    per site): at infinite width every crossing of a unit kinks ``f`` there (Hanin and
    Rolnick 2019; at finite width an upper bound in law, since a kink can be hidden behind
    units all inactive there), except where ``f`` is linear although its units cross
    (looks-linear with ``mirror = 1``, ``slope_pos = slope_neg``, a resnet with
    ``beta = 0``): 0 there.  A CReLU unit's two features switch at the same ``t``, so a
    unit counts once.

    Parameters
    ----------
    spec : NetSpec
        Feedforward or resnet (one- or two-layer branch) without batch norm: ReLU,
        ab-ReLU (``activation='leaky'``), CReLU, looks-linear CReLU (any ``mirror``).
    a, b : float
        The segment, finite with ``a < b``.
    x0 : array_like, shape (input_dim,), optional
        A point of the line; default the origin.
    direction : array_like, shape (input_dim,), optional
        ``u``, nonzero and finite (not normalised: ``t`` is in its units); default
        ``(1, ..., 1) / sqrt(d)``, the direction of :class:`gradsim.grids.GridSpec`'s
        line grid (for ``d = 1`` simply ``x = t``).
    nodes : int
        Gauss-Legendre nodes per panel.  The segment is cut at the point ``t_*`` of the
        line nearest the origin and into panels growing by 4 away from it, from the
        first layer's Cauchy scale ``w`` (``sqrt(K / C)`` at ``t_*``), so that the
        integrand's singularities, at ``t_* +- i w`` and farther, stay a third of a panel
        away: the default converges to about 1e-14 relative (the rounding of
        ``K C - K_t^2`` is about ``eps ((b - a) / w)^2`` relative at the far end).

    Returns
    -------
    dict
        ``per_unit``: ndarray ``(sites,)``, expected zeros of one unit on ``[a, b]``;
        ``units``: ndarray of int ``(sites,)``, the units ``n_l`` per site;
        ``per_layer``: ``units * per_unit``;
        ``breakpoints``: float, expected breakpoints of ``f`` on ``[a, b]``;
        ``t``, ``weights``: the quadrature nodes ``(P,)`` and weights;
        ``density``: ndarray ``(sites, P)``, the crossing density of one unit at the
        nodes, ``sqrt(K C - K_t^2) / (pi K)`` (so ``per_unit = density @ weights``);
        ``linear``: why ``f`` has no breakpoints, or None;
        ``label``: :data:`LABEL`.

    Raises
    ------
    ValueError
        Message starting with ``'rice:'``: a spec the exact theory does not cover (batch
        norm, highway, post-resnet, conv), a segment with non-finite ends or ``b <= a``,
        a bad ``x0`` or ``direction``, or a kernel ``K = 0`` on the segment (no
        first-layer bias and the line through the origin: every first-layer unit is 0
        there and the integrand is singular at ``x = 0``; or a program that zeroes the
        units, as ``alpha = 0``).

    References
    ----------
    S. O. Rice, "Mathematical analysis of random noise", Bell Syst. Tech. J. 23 (1944)
    282-332 and 24 (1945) 46-156; H. Cramer and M. R. Leadbetter, "Stationary and related
    stochastic processes", Wiley 1967 (the formula for non-stationary processes);
    B. Hanin and D. Rolnick, "Complexity of linear regions in deep networks", ICML 2019.

    Examples
    --------
    >>> from gradsim import NetSpec
    >>> r = rice_crossings(NetSpec(depth=1), -2.0, 2.0)
    >>> round(float(r["per_unit"][0]), 6)  # P(-b/w in [-2, 2]), Cauchy of scale 1/sqrt(2)
    0.783653
    """
    _check_spec(spec)
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise _fail(f"the segment end {name} must be a real number, got {v!r}")
        if not math.isfinite(v):
            raise _fail(f"the segment end {name} must be finite, got {v!r}")
    a, b = float(a), float(b)
    if not b > a:
        raise _fail(f"the segment needs a < b, got [{a}, {b}]")
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or not (
            2 <= nodes <= 10_000):
        raise _fail(f"nodes must be an integer in [2, 10000], got {nodes!r}")
    x0, u = _line(spec, x0, direction)
    ts, w = _nearest(spec, x0, u)
    if w == 0 and a <= ts <= b:
        raise _fail(f"the kernel K is 0 at t = {ts:.6g} on the segment: without a "
                    "first-layer bias (first_bias_var = 0) the line passes through the "
                    "origin there, every first-layer unit is 0 at x = 0 and the Rice "
                    "integrand is singular; give first_bias_var > 0 or a line that misses "
                    "the origin")
    h = w if w > 0 else min(abs(a - ts), abs(b - ts))
    t, wt = _nodes(_panels(a, b, ts, h), int(nodes))
    kern = line_kernels(spec, t, x0, u)
    k, kt, c = kern["K"], kern["K_t"], kern["C"]
    if not np.all(k > 0):
        site = int(np.nonzero(~np.all(k > 0, axis=1))[0][0]) + 1
        raise _fail(f"the kernel K is 0 at activation site {site} on the segment (the "
                    "units are identically 0: no bias and a zero stream, e.g. alpha = 0 or "
                    "zero slopes); the Rice formula needs K > 0")
    density = np.sqrt(np.maximum(k * c - kt * kt, 0.0)) / (math.pi * k)
    per_unit = density @ wt
    units = np.full(len(per_unit), spec.width, dtype=np.int64)
    per_layer = units * per_unit
    linear = _breakpoint_free(spec)
    return {"per_unit": per_unit, "units": units, "per_layer": per_layer,
            "breakpoints": 0.0 if linear else float(math.fsum(per_layer)),
            "t": t, "weights": wt, "density": density, "linear": linear, "label": LABEL}
