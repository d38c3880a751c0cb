"""Finite width to first and second order in 1/n: the moments of the empirical Gram chain.

Assumption: a feedforward ab-ReLU net (ReLU is ``(a, b) = (1, 0)``) with i.i.d.
Gaussian weights (variance ``weight_var / fan_in``, any ``weight_var``) and biases
(``first_bias_var``, then ``bias_var``), widths ``n_l``, on inputs of any dimension
``d``, expanded to first or second order in ``1/n`` (valid while ``L / n`` is small).

The state of layer ``l`` at the inputs ``x_1 .. x_k`` (``k = 1`` or ``2`` points of
``R^d``) is the empirical Gram matrix ``G_l = (1/n_l) sum_i psi_i psi_i^T`` of
``psi_i = (phi(z_i(x_1)) .. phi(z_i(x_k)), phi'(z_i(x_1)) dz_i(x_1)/dx_1 ..
phi'(z_i(x_k)) dz_i(x_k)/dx_d)``: the ``k`` values and ``k d`` tangents of unit ``i``
(tangent ``p`` belongs to value ``(p - k) // d``, direction ``(p - k) % d``), with
``phi(z) = a z 1{z > 0} + b z 1{z < 0}``.  Given ``G_l``, the units of layer ``l + 1``
are i.i.d. with ``zeta = (z(x_j) .., dz(x_j)/dx_c ..) ~ N(0, Sigma)``,
``Sigma = weight_var G_l + bias_var e e^T`` (``e`` marks the values); the first layer
has ``Sigma_1 = weight_var X_0 + first_bias_var e e^T`` with the input's "Gram matrix"
``X_0``: ``x_i . x_j / d`` between values, ``x_(i,c) / d`` between a value and a
tangent, ``delta_(cc') / d`` between tangents (``z = w . x + b``, ``Var w_c =
weight_var / d``).  So ``G`` is a Markov chain of sample means:
``E[G_(l+1) | G_l] = F(Sigma)``, ``F(Sigma) = E[psi psi^T]``,
``Cov(G_(l+1) | G_l) = W(Sigma) / n_(l+1)`` and third cumulant ``T(Sigma) / n_(l+1)^2``
(``W``, ``T`` the covariance and third cumulant of the entries of ``psi psi^T``).
:func:`gradsim.theory.moment_chain.propagate` expands its moments; to first order::

    K_(l+1) = F(Sigma(K_l))
    M_(l+1) = J_l M_l + (1/2) H_l[C_l]
    C_(l+1) = W(Sigma(K_l)) / n_(l+1) + J_l C_l J_l^T

with ``J_l``, ``H_l`` the first and second derivatives of ``G -> F(Sigma(G))`` at
``K_l``; the second order adds the terms of :mod:`gradsim.theory.moment_chain`.  The
readout gives ``E[df/dx_c(x_i) df/dx_c'(x_j)] = readout_var E[G_L]`` at the tangent
entries, exactly at any width, so the gradient covariance is ``readout_var (K_L + M_L)``.
``F``, ``W`` and ``T`` are Gaussian expectations of products of two, four and six
``psi`` entries.  Each is a sum over the signs of the values that appear (the value
``j`` carried by ``m_j`` factors weighs ``a^(m_j) 1{v_j > 0} + b^(m_j) 1{v_j < 0}``) of
an orthant indicator times linear forms, reduced to :mod:`gradsim.theory.orthant`
moments by conditioning the tangents on the values (Isserlis' theorem for the
conditional part; a negative sign is the change of variables ``v_j -> -v_j``;
``docs/theory.md``, "Finite width to first order" and "Finite width to second order").
The tangent entries of one input point are linear in ``Sigma``
(``E[phi'(v)^2 t_c t_c'] = (a^2 + b^2) / 2 Sigma_(t_c t_c')``), so their correction is
exactly 0 at both orders and the covariance of ``grad f`` at one point stays exactly the
infinite-width value; at one input every entry is linear.

References
----------
Roberts, Yaida and Hanin, *The Principles of Deep Learning Theory*, 2022, ch. 4-5.
Yaida, "Non-Gaussian processes and neural networks at finite widths", 2019.
"""

from __future__ import annotations

import itertools

import numpy as np

from .moment_chain import ChainLayer, propagate
from .orthant import half_moments, orthant_moments

__all__ = ["gram_moments", "gram_third_cumulant", "finite_width_gradient_covariance",
           "GaussianState", "MAX_FACTORS", "MAX_DERIVATIVE_BYTES", "derivative_bytes",
           "size_refusal"]

#: Most ``psi`` factors in one expectation (third cumulants of the Gram entries need 6).
MAX_FACTORS = 6
#: Most memory the derivatives of the expansion may take (:func:`derivative_bytes`);
#: larger requests are refused.
MAX_DERIVATIVE_BYTES = 2 * 2**30
#: Floats of the ``(..., N, N)`` covariances one call of a layer's maps holds at once
#: (stencil points are evaluated in chunks of ``_CHUNK_FLOATS // N^2`` rows).
_CHUNK_FLOATS = 1 << 22


class GaussianState:
    """Gaussian expectations of products of ``psi`` entries for ``zeta ~ N(0, Sigma)``.

    ``Sigma`` is ``(..., k (1 + d), k (1 + d))`` (a stack of covariances is evaluated at
    once): values ``0 .. k-1``, then the tangents ``k + j d + c`` of value ``j`` in
    direction ``c``; ``psi_p`` is ``phi(zeta_p)`` for a value and
    ``phi'(zeta_j) zeta_p`` for a tangent of value ``j = (p - k) // d``, with the
    ab-ReLU ``phi(z) = a z 1{z > 0} + b z 1{z < 0}``.  :meth:`expect` takes products of
    up to ``factors`` entries.

    Parameters
    ----------
    sigma : array_like, shape (..., k (1 + d), k (1 + d))
        ``k = 1`` or ``2``.
    dim : int
        The input dimension ``d`` (tangents per value).
    slopes : (float, float)
        ``(a, b)``; ReLU is ``(1, 0)``.
    factors : int
        Most factors in one product (``<= MAX_FACTORS``); fewer need lower orthant
        moments (the same numbers, less memory on large stacks).
    """

    def __init__(self, sigma, dim=1, slopes=(1.0, 0.0), factors=MAX_FACTORS):
        sigma = np.asarray(sigma, dtype=np.float64)
        d = int(dim)
        size = sigma.shape[-1]
        if d < 1 or size % (1 + d) or size // (1 + d) not in (1, 2):
            raise ValueError(f"sigma: {size} x {size} is not k (1 + d) for k = 1, 2 and "
                             f"d = {dim}")
        if not 1 <= factors <= MAX_FACTORS:
            raise ValueError(f"factors must be in [1, {MAX_FACTORS}], got {factors!r}")
        k = size // (1 + d)
        self.k, self.d, self.factors = k, d, int(factors)
        self.a, self.b = float(slopes[0]), float(slopes[1])
        self.shape = sigma.shape[:-2]
        sv, st, svt = sigma[..., :k, :k], sigma[..., k:, k:], sigma[..., :k, k:]
        inv = np.linalg.inv(sv)
        self.reg = np.swapaxes(svt, -1, -2) @ inv  # E[t | v] = reg v
        self.cond = st - self.reg @ svt  # Cov(t | v)
        self.q = np.diagonal(sv, axis1=-2, axis2=-1).copy()
        if k == 2:
            rho = sv[..., 0, 1] / np.sqrt(sv[..., 0, 0] * sv[..., 1, 1])
            self._m = orthant_moments(rho, self.factors)
            self._mneg = orthant_moments(-rho, self.factors)
        self._half = half_moments(self.factors)
        self._cache = {}
        self._ortho = {}

    def owner(self, p):
        """The value index ``j`` of entry ``p`` (``p`` itself for a value)."""
        return p if p < self.k else (p - self.k) // self.d

    def _poly(self, entries):
        """``E[prod_p (c_p . v + eta_p) | v]`` over ``entries`` as
        ``{powers of v: coefficient}`` (coefficients of shape ``self.shape``): a value is
        ``v_p``; a tangent is ``reg_p . v + eta_p``, ``eta ~ N(0, cond)`` given ``v``."""
        if not entries:
            return {(0,) * self.k: 1.0}
        if entries in self._cache:
            return self._cache[entries]
        k = self.k
        first, rest = entries[0], entries[1:]
        out = {}

        def add(key, val):
            out[key] = out[key] + val if key in out else val

        for powers, coef in self._poly(rest).items():  # the first factor kept as c . v
            for j in range(k):
                if first < k:
                    if first != j:
                        continue
                    cj = 1.0
                else:
                    cj = self.reg[..., first - k, j]
                key = tuple(pw + (1 if i == j else 0) for i, pw in enumerate(powers))
                add(key, coef * cj)
        if first >= k:
            for idx, p in enumerate(rest):  # or paired with a later factor (Isserlis)
                if p >= k:
                    cov = self.cond[..., first - k, p - k]
                    for powers, coef in self._poly(rest[:idx] + rest[idx + 1:]).items():
                        add(powers, coef * cov)
        self._cache[entries] = out
        return out

    def _sign_terms(self, counts):
        """Per value ``j``: ``[(sign, weight)]`` of ``prod phi-factors`` on ``s_j v_j > 0``:
        ``(+1, a^m), (-1, b^m)`` for a value carried by ``m > 0`` factors (zero weights
        dropped), ``(+1, 1), (-1, 1)`` for one that does not appear."""
        out = []
        for m in counts:
            if m:
                out.append([(s, w) for s, w in ((1, self.a ** m), (-1, self.b ** m))
                            if w != 0.0])
            else:
                out.append([(1, 1.0), (-1, 1.0)])
        return out

    def _orthant(self, powers, counts):
        """``E[prod_j v_j^(p_j) w_j(v_j)]``, ``w_j = a^(m_j) 1{v_j > 0} + b^(m_j) 1{v_j < 0}``
        (``w_j = 1`` for ``m_j = 0``): on the orthant of signs ``s``,
        ``E[prod v_j^(p_j) 1{s_j v_j > 0}] = prod s_j^(p_j) q^(p/2) m_p(s_0 s_1 rho)``."""
        key = (powers, counts)
        if key in self._ortho:
            return self._ortho[key]
        terms = self._sign_terms(counts)
        total = None
        if self.k == 1:
            p = powers[0]
            scale = self.q[..., 0] ** (p / 2)
            for s, w in terms[0]:
                t = self._half[p] if s > 0 or p % 2 == 0 else -self._half[p]
                t = t if w == 1.0 else w * t
                total = t if total is None else total + t
        else:
            i, j = powers
            scale = self.q[..., 0] ** (i / 2) * self.q[..., 1] ** (j / 2)
            for (s0, w0), (s1, w1) in itertools.product(*terms):
                base = self._m if s0 * s1 > 0 else self._mneg
                t = base[i, j]
                if (s0 if i % 2 else 1) * (s1 if j % 2 else 1) < 0:
                    t = -t
                w = w0 * w1
                t = t if w == 1.0 else w * t
                total = t if total is None else total + t
        if total is None:  # a = b = 0
            total = 0.0
        out = scale * total
        self._ortho[key] = out
        return out

    def expect(self, entries):
        """``E[prod_p psi_p]`` over the list ``entries`` of indices (shape ``self.shape``)."""
        entries = tuple(sorted(entries))
        if len(entries) > self.factors:
            raise ValueError(f"entries: at most {self.factors} factors, got {len(entries)}")
        counts = [0] * self.k
        for p in entries:
            counts[self.owner(p)] += 1
        counts = tuple(counts)
        poly = self._poly(entries)
        total = np.zeros(self.shape)
        for powers, coef in poly.items():
            total = total + coef * self._orthant(powers, counts)
        return total


def _pairs(size):
    """The unique entries ``(p, q)``, ``p <= q``, of a symmetric ``size x size`` matrix."""
    return [(p, q) for p in range(size) for q in range(p, size)]


def _unpack(vec, size):
    """Unique entries ``(..., D)`` -> symmetric matrices ``(..., size, size)``."""
    vec = np.asarray(vec, dtype=np.float64)
    s = np.zeros(vec.shape[:-1] + (size, size))
    p, q = np.triu_indices(size)  # row by row: the order of _pairs
    s[..., q, p] = vec
    s[..., p, q] = vec
    return s


def _mean(st, pairs):
    return np.stack([st.expect([p, q]) for p, q in pairs], axis=-1)


def _cov(st, pairs, f):
    w = np.empty(f.shape + (len(pairs),))
    for (a, (p, q)), (b, (r, s)) in itertools.product(enumerate(pairs), repeat=2):
        if b >= a:
            w[..., a, b] = w[..., b, a] = st.expect([p, q, r, s]) - f[..., a] * f[..., b]
    return w


def gram_moments(sigma, dim=1, slopes=(1.0, 0.0)):
    """``F(Sigma) = E[psi psi^T]`` (upper triangle as a vector) and ``W(Sigma)``, the
    covariance of those entries of ``psi psi^T`` (``sigma`` may be a stack; ``dim`` and
    ``slopes`` as for :class:`GaussianState`)."""
    st = GaussianState(sigma, dim, slopes, factors=4)
    pairs = _pairs(st.k * (1 + st.d))
    f = _mean(st, pairs)
    return f, _cov(st, pairs, f)


def gram_third_cumulant(sigma, dim=1, slopes=(1.0, 0.0)):
    """``T(Sigma)``: the third joint cumulant of the entries of ``psi psi^T`` (upper
    triangle), ``T_abc = E[X_a X_b X_c] - E[X_a X_b] f_c - E[X_a X_c] f_b
    - E[X_b X_c] f_a + 2 f_a f_b f_c`` with ``X = psi psi^T``, ``f = E X``."""
    st = GaussianState(sigma, dim, slopes)
    pairs = _pairs(st.k * (1 + st.d))
    f = _mean(st, pairs)
    second = _cov(st, pairs, f) + f[..., :, None] * f[..., None, :]
    d = len(pairs)
    t = np.empty(f.shape[:-1] + (d, d, d))
    for a, b, c in itertools.combinations_with_replacement(range(d), 3):
        m3 = st.expect(list(pairs[a] + pairs[b] + pairs[c]))
        v = (m3 - second[..., a, b] * f[..., c] - second[..., a, c] * f[..., b]
             - second[..., b, c] * f[..., a] + 2 * f[..., a] * f[..., b] * f[..., c])
        for perm in set(itertools.permutations((a, b, c))):
            t[(Ellipsis,) + perm] = v
    return t


def _linear_entries(k, d):
    """Indices of the tangent entries of one input point (``(j, c), (j, c')``), whose map
    is exactly linear."""
    def owner(p):
        return (p - k) // d
    return [i for i, (p, q) in enumerate(_pairs(k * (1 + d)))
            if p >= k and q >= k and owner(p) == owner(q)]


def derivative_bytes(k, d, order):
    """The memory the expansion's derivatives take, about, with ``D = N (N + 1) / 2``
    unique Gram entries of ``N = k (1 + d)``: at order 2 the fourth-derivative tensor,
    ``8 D^5`` bytes (the peak is about 3.5 times that: its stencil's evaluations, 1.7 GB
    at ``D = 36``); at order 1 the second-derivative tensor and its stencil's points and
    evaluations, ``8 * 7 D^3`` (3.2 GB peak at ``D = 325``, with the chunks' working
    memory)."""
    n = k * (1 + d)
    size = n * (n + 1) // 2
    return 8 * size**5 if order == 2 else 8 * 7 * size**3


def size_refusal(k, d, order):
    """None if the expansion to ``order`` at ``k`` points in ``d`` dimensions fits
    :data:`MAX_DERIVATIVE_BYTES` (:func:`derivative_bytes`), else why not."""
    need = derivative_bytes(k, d, order)
    if need <= MAX_DERIVATIVE_BYTES:
        return None
    n = k * (1 + d)
    what = "D^5 floats of fourth derivatives" if order == 2 else \
        "7 D^3 floats of second derivatives and their stencil"
    return (f"the finite-width theory to order={order} at input dimension {d} "
            f"({k} point{'s' if k > 1 else ''}) needs {what}, D = {n * (n + 1) // 2} Gram "
            f"entries: {need / 2**30:.3g} GiB, over the {MAX_DERIVATIVE_BYTES / 2**30:g} GiB "
            f"limit; use {'order=1 or ' if order == 2 else ''}fewer input dimensions")


def _chunked(func, size):
    """``func`` on a stack of states, ``_CHUNK_FLOATS // size^2`` rows at a time (the rows
    are independent: the same numbers as in one call)."""
    rows = max(1, _CHUNK_FLOATS // size**2)

    def run(g):
        g = np.asarray(g)
        if g.ndim < 2 or len(g) <= rows:
            return func(g)
        return np.concatenate([func(g[i:i + rows]) for i in range(0, len(g), rows)])
    return run


def _layer(k, d, slopes, weight_var, bias_var, width):
    """The Gram chain's step in the coordinates of the unique Gram entries:
    ``Sigma(G) = weight_var G + bias_var e e^T``."""
    size = k * (1 + d)
    pairs = _pairs(size)
    a, b = slopes
    e = np.array([bias_var if p < k and q < k else 0.0 for p, q in pairs])
    # at one input every entry is linear (E[phi(z)^2] = (a^2 + b^2) / 2 Sigma_vv, ...)
    lin = _linear_entries(k, d) if k == 2 else list(range(len(pairs)))
    gain = 0.5 * (a * a + b * b)
    jac = np.zeros((len(lin), len(pairs)))
    for r, i in enumerate(lin):  # E[phi'(a)^2 a'_c a'_c'] = (a^2 + b^2) / 2 Sigma_c c'
        jac[r, i] = gain * weight_var

    def sigma(g):
        return _unpack(weight_var * np.asarray(g) + e, size)

    def unit(g):
        # the stencils stay well inside the positive-definite cone: shrink them by the
        # distance of the values' correlation from +-1
        s = sigma(g)
        gap = 1.0
        if k == 2:
            gap = 1.0 - abs(s[0, 1]) / np.sqrt(s[0, 0] * s[1, 1])
        return float(np.abs(g).max()) * min(1.0, 10.0 * gap)

    def mean(g):
        return _mean(GaussianState(sigma(g), d, slopes, factors=2), pairs)

    def cov(g):
        return gram_moments(sigma(g), d, slopes)[1]

    return ChainLayer(mean=_chunked(mean, size), cov=_chunked(cov, size),
                      third=lambda g: gram_third_cumulant(sigma(g), d, slopes),
                      width=width, unit=unit, linear=(lin, jac))


def _inputs(spec, points):
    """``points`` as ``(k, d)``: ``(k,)`` (or a number) is ``k`` points when
    ``input_dim = 1``."""
    d = spec.input_dim
    x = np.asarray(points, dtype=np.float64)
    if x.ndim <= 1 and d == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2 or x.shape[0] not in (1, 2) or x.shape[1] != d \
            or not np.all(np.isfinite(x)):
        raise ValueError(f"points must be 1 or 2 finite points of shape (k, {d})"
                         + (" (or k numbers)" if d == 1 else "") + f", got shape {x.shape}")
    return x


def finite_width_gradient_covariance(spec, points, order=1, widths=None):
    """``E[df/dx_c(x_i) df/dx_c'(x_j)]`` to ``order`` (1 or 2) in ``1/n``, with its pieces.

    The readout makes ``E[df/dx_c(x_i) df/dx_c'(x_j)] = readout_var E[G_L]`` at the
    tangent entries, exactly; ``E[G_L] = K_L + mu1_L (+ mu2_L)`` is
    :func:`gradsim.theory.moment_chain.propagate` on the Gram chain.

    Parameters
    ----------
    spec : NetSpec
        Feedforward, ReLU or ab-ReLU (``activation='leaky'``, slopes ``slope_pos``,
        ``slope_neg``), Gaussian weights (``init='he'``, any ``weight_var``), no batch
        norm, any ``input_dim``.  At two points their first-layer pre-activations must
        not be perfectly correlated (equal points, or collinear ones without a
        first-layer bias, are refused).
    points : array_like, shape (k, d), or (k,) when ``d = 1``
        ``k = 1`` or ``2`` input points.
    order : {1, 2}
        Order of the expansion in ``1/n``.  The derivative tensors have ``D^3`` (order 1)
        or ``D^5`` (order 2) entries, ``D = N (N + 1) / 2``, ``N = k (1 + d)``; where
        they (with the stencil, at order 1) pass :data:`MAX_DERIVATIVE_BYTES`
        (:func:`derivative_bytes`; two points: order 2 beyond ``d = 3``, order 1 beyond
        ``d = 11``) a ``ValueError`` naming ``order`` and the input dimension.
    widths : sequence of int, optional
        Widths ``n_1 .. n_L`` of the hidden layers (default ``spec.width`` for each).

    Returns
    -------
    dict
        ``K`` (infinite-width Gram mean at the last layer, ``N x N``, values then
        tangents), ``M`` (its correction to ``order``: ``mu1``, plus ``mu2`` at order 2),
        ``M1`` and ``M2`` (the two orders; ``M2`` is None at order 1), ``C`` (covariance
        of the unique Gram entries, to ``order``), ``k3`` (their third cumulant, to
        leading order ``1/n^2``; None at order 1), ``cov_inf`` and ``cov`` (gradient
        covariance: infinite width, and to ``order``), ``cov_by_depth``,
        ``cov_inf_by_depth`` (depths ``1 .. L`` stacked first), ``cov_first_by_depth`` (to
        first order, at any order) and ``pairs`` (the order of the unique entries).
        The gradient covariances are ``k x k`` for ``d = 1`` and ``k d x k d`` ordered
        (point, direction) for ``d > 1``: entry ``(i d + c, j d + c')`` is
        ``E[df/dx_c(x_i) df/dx_c'(x_j)]``, so ``cov.reshape(k, d, k, d)`` gives the
        blocks of :func:`gradsim.theory.exact.exact_gradient_covariance`.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if spec.arch != "feedforward" or spec.activation not in ("relu", "leaky") \
            or spec.batchnorm or spec.init != "he":
        raise ValueError("the finite-width theory covers feedforward He ReLU and ab-ReLU "
                         "(leaky) nets with Gaussian weights (init='he') without batch norm")
    x = _inputs(spec, points)
    k, d = x.shape
    refusal = size_refusal(k, d, order)
    if refusal is not None:
        raise ValueError(refusal)
    if widths is None:
        widths = [spec.width] * spec.depth
    widths = [int(w) for w in widths]
    if len(widths) != spec.depth or min(widths) < 1:
        raise ValueError(f"widths must be {spec.depth} positive integers (one per layer), "
                         f"got {widths}")
    rule = spec.activation_rule
    slopes = (rule.a, rule.b)
    sw = spec.weight_var
    size = k * (1 + d)
    pairs = _pairs(size)
    vecs = np.concatenate([x, np.tile(np.eye(d), (k, 1))])  # values x_j, tangents e_c
    x0 = np.array([vecs[p] @ vecs[q] / d for p, q in pairs])  # the input's "Gram matrix"
    s1 = sw * x0[[pairs.index((j, j)) for j in range(k)]] + spec.first_bias_var
    if k == 2:
        s01 = sw * x0[pairs.index((0, 1))] + spec.first_bias_var
    if not np.all(s1 > 0) or (k == 2 and not abs(s01) < np.sqrt(s1[0] * s1[1])):
        raise ValueError("points: the first layer's pre-activations at the points must have "
                         "positive variance and, at two points, not be perfectly "
                         "correlated (equal points, or collinear ones with "
                         "first_bias_var = 0): pass one point or distinct ones")
    layers = [_layer(k, d, slopes, sw, spec.first_bias_var, widths[0])]
    layers += [_layer(k, d, slopes, sw, spec.bias_var, w) for w in widths[1:]]
    chain = propagate(x0, layers, order)
    ru = spec.readout_var

    def tangent(vec):
        return ru * _unpack(vec, size)[k:, k:]

    last = chain[-1]
    m1 = last["mu1"]
    m2 = last["mu2"] if order == 2 else np.zeros_like(m1)
    full = [st["K"] + st["mu1"] + (st["mu2"] if order == 2 else 0.0) for st in chain]
    return {"K": _unpack(last["K"], size), "M": _unpack(m1 + m2, size),
            "M1": _unpack(m1, size), "M2": _unpack(m2, size) if order == 2 else None,
            "C": last["C1"] + (last["C2"] if order == 2 else 0.0), "pairs": pairs,
            "k3": last["k3"] if order == 2 else None,
            "cov_inf": tangent(last["K"]), "cov": tangent(full[-1]),
            "cov_inf_by_depth": np.array([tangent(st["K"]) for st in chain]),
            "cov_first_by_depth": np.array([tangent(st["K"] + st["mu1"]) for st in chain]),
            "cov_by_depth": np.array([tangent(v) for v in full])}
