"""Finite width to first and second order in 1/n: the moments of the empirical Gram chain.

Assumption: a feedforward ReLU net with i.i.d. Gaussian weights (variance
``weight_var / fan_in``) and biases (``first_bias_var``, then ``bias_var``), widths
``n_l``, expanded to first or second order in ``1/n`` (valid while ``L / n`` is small).

The state of layer ``l`` at the inputs ``x_1 .. x_k`` (``k = 1`` or ``2``, 1-D inputs) is
the empirical Gram matrix ``G_l = (1/n_l) sum_i psi_i psi_i^T`` of
``psi_i = (relu(z_i(x_1)) .. relu(z_i(x_k)), relu'(z_i(x_1)) z_i'(x_1) .. )``: the
values and tangents of unit ``i``.  Given ``G_l``, the units of layer ``l + 1`` are i.i.d.
with ``zeta = (z(x_1) .., z'(x_1) ..) ~ N(0, Sigma)``,
``Sigma = weight_var G_l + bias_var e e^T`` (``e`` marks the values), so ``G`` is a
Markov chain of sample means: ``E[G_(l+1) | G_l] = F(Sigma)``, ``F(Sigma) = E[psi psi^T]``,
``Cov(G_(l+1) | G_l) = W(Sigma) / n_(l+1)`` and third cumulant ``T(Sigma) / n_(l+1)^2``
(``W``, ``T`` the covariance and third cumulant of the entries of ``psi psi^T``).
:func:`gradsim.theory.moment_chain.propagate` expands its moments; to first order::

    K_(l+1) = F(Sigma(K_l))
    M_(l+1) = J_l M_l + (1/2) H_l[C_l]
    C_(l+1) = W(Sigma(K_l)) / n_(l+1) + J_l C_l J_l^T

with ``J_l``, ``H_l`` the first and second derivatives of ``G -> F(Sigma(G))`` at
``K_l``; the second order adds the terms of :mod:`gradsim.theory.moment_chain`.  The
readout gives ``E[g(x) g(y)] = readout_var E[G_L]`` at the tangent entries, exactly at
any width, so the gradient covariance is ``readout_var (K_L + M_L)``.  ``F``, ``W`` and
``T`` are Gaussian expectations of products of two, four and six ``psi`` entries: each
is a product of orthant indicators and linear forms, reduced to
:mod:`gradsim.theory.orthant` moments by conditioning the tangents on the values
(Isserlis' theorem for the conditional part; ``docs/theory.md``, "Finite width to first
order" and "Finite width to second order").  The tangent variances are linear in
``Sigma`` (``E[1{a > 0} a'^2] = Sigma_(a'a') / 2``), so their correction is exactly 0 at
both orders and the variance of ``df/dx`` stays exactly ``readout_var`` times the
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
           "GaussianState", "MAX_FACTORS"]

#: Most ``psi`` factors in one expectation (third cumulants of the Gram entries need 6).
MAX_FACTORS = 6


class GaussianState:
    """Gaussian expectations of products of ``psi`` entries for ``zeta ~ N(0, Sigma)``.

    ``Sigma`` is ``(..., 2k, 2k)`` (a stack of covariances is evaluated at once): values
    ``0 .. k-1``, tangents ``k .. 2k-1``; ``psi_p`` is ``relu(zeta_p)`` for a value and
    ``1{zeta_(p-k) > 0} zeta_p`` for a tangent.  :meth:`expect` takes products of up to
    :data:`MAX_FACTORS` entries.
    """

    def __init__(self, sigma):
        sigma = np.asarray(sigma, dtype=np.float64)
        k = sigma.shape[-1] // 2
        self.k = k
        self.shape = sigma.shape[:-2]
        sv, st, svt = sigma[..., :k, :k], sigma[..., k:, k:], sigma[..., :k, k:]
        inv = np.linalg.inv(sv)
        self.reg = np.swapaxes(svt, -1, -2) @ inv  # E[t | v] = reg v
        self.cond = st - self.reg @ svt  # Cov(t | v)
        self.q = np.diagonal(sv, axis1=-2, axis2=-1).copy()
        if k == 2:
            rho = sv[..., 0, 1] / np.sqrt(sv[..., 0, 0] * sv[..., 1, 1])
            self._m = orthant_moments(rho, MAX_FACTORS)
            self._mneg = orthant_moments(-rho, MAX_FACTORS)
        self._half = half_moments(MAX_FACTORS)
        self._cache = {}

    def _linear(self, p):
        """``(coefficients on the values, coefficients on the conditional noise)``; the
        first is ``None`` for a unit vector ``e_p`` (a value)."""
        k = self.k
        r = np.zeros(k)
        if p < k:
            return p, r
        r[p - k] = 1.0
        return self.reg[..., p - k, :], r

    def _poly(self, entries):
        """``E[prod_p (c_p . v + r_p . eta) | v]`` over ``entries`` as
        ``{powers of v: coefficient}`` (coefficients of shape ``self.shape``)."""
        if not entries:
            return {(0,) * self.k: 1.0}
        if entries in self._cache:
            return self._cache[entries]
        (c, r), rest = self._linear(entries[0]), entries[1:]
        out = {}

        def add(key, val):
            out[key] = out[key] + val if key in out else val

        for powers, coef in self._poly(rest).items():  # the first factor kept as c . v
            for j in range(self.k):
                if isinstance(c, int):
                    if c != j:
                        continue
                    cj = 1.0
                else:
                    cj = c[..., j]
                key = tuple(pw + (1 if i == j else 0) for i, pw in enumerate(powers))
                add(key, coef * cj)
        if r.any():
            for idx, p in enumerate(rest):  # or paired with a later factor (Isserlis)
                r2 = self._linear(p)[1]
                if r2.any():
                    cov = np.einsum("i,...ij,j->...", r, self.cond, r2)
                    for powers, coef in self._poly(rest[:idx] + rest[idx + 1:]).items():
                        add(powers, coef * cov)
        self._cache[entries] = out
        return out

    def _orthant(self, powers, signs):
        """``E[prod v_j^(p_j) 1{v_j > 0 for j in signs}]``."""
        k = self.k
        if k == 1:
            return self.q[..., 0] ** (powers[0] / 2) * self._half[powers[0]]
        i, j = powers
        scale = self.q[..., 0] ** (i / 2) * self.q[..., 1] ** (j / 2)
        if signs == (0, 1):
            return scale * self._m[i, j]
        if signs == (0,):  # 1{a>0} (1{b>0} + 1{b<0}); b -> -b flips rho
            return scale * (self._m[i, j] + (-1) ** j * self._mneg[i, j])
        return scale * (self._m[i, j] + (-1) ** i * self._mneg[i, j])

    def expect(self, entries):
        """``E[prod_p psi_p]`` over the list ``entries`` of indices (shape ``self.shape``)."""
        entries = tuple(sorted(entries))
        if len(entries) > MAX_FACTORS:
            raise ValueError(f"entries: at most {MAX_FACTORS} factors, got {len(entries)}")
        signs = tuple(sorted({p % self.k for p in entries}))
        poly = self._poly(entries)
        total = np.zeros(self.shape)
        for powers, coef in poly.items():
            total = total + coef * self._orthant(powers, signs)
        return total


def _pairs(k):
    return [(p, q) for p in range(2 * k) for q in range(p, 2 * k)]


def _unpack(vec, k):
    """Unique entries ``(..., d)`` -> symmetric matrices ``(..., 2k, 2k)``."""
    vec = np.asarray(vec, dtype=np.float64)
    s = np.zeros(vec.shape[:-1] + (2 * k, 2 * k))
    for i, (p, q) in enumerate(_pairs(k)):
        s[..., p, q] = s[..., q, p] = vec[..., i]
    return s


def _mean(st, pairs):
    return np.stack([st.expect([p, q]) for p, q in pairs], axis=-1)


def _cov(st, pairs, f):
    w = np.empty(f.shape + (len(pairs),))
    for (a, (p, q)), (b, (r, s)) in itertools.product(enumerate(pairs), repeat=2):
        if b >= a:
            w[..., a, b] = w[..., b, a] = st.expect([p, q, r, s]) - f[..., a] * f[..., b]
    return w


def gram_moments(sigma):
    """``F(Sigma) = E[psi psi^T]`` (upper triangle as a vector) and ``W(Sigma)``, the
    covariance of those entries of ``psi psi^T`` (``sigma`` may be a stack)."""
    st = GaussianState(sigma)
    pairs = _pairs(st.k)
    f = _mean(st, pairs)
    return f, _cov(st, pairs, f)


def gram_third_cumulant(sigma):
    """``T(Sigma)``: the third joint cumulant of the entries of ``psi psi^T`` (upper
    triangle), ``T_abc = E[X_a X_b X_c] - E[X_a X_b] f_c - E[X_a X_c] f_b
    - E[X_b X_c] f_a + 2 f_a f_b f_c`` with ``X = psi psi^T``, ``f = E X``."""
    st = GaussianState(sigma)
    pairs = _pairs(st.k)
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


def _linear_entries(k):
    """Indices of the tangent variances, whose map is exactly linear."""
    return [i for i, (p, q) in enumerate(_pairs(k)) if p == q and p >= k]


def _layer(k, weight_var, bias_var, width):
    """The Gram chain's step in the coordinates of the unique Gram entries:
    ``Sigma(G) = weight_var G + bias_var e e^T``."""
    pairs = _pairs(k)
    e = np.array([bias_var if p < k and q < k else 0.0 for p, q in pairs])
    # at one input every entry is linear (E[relu(z)^2] = Sigma_vv / 2, and so on)
    lin = _linear_entries(k) if k == 2 else list(range(len(pairs)))
    jac = np.zeros((len(lin), len(pairs)))
    for r, i in enumerate(lin):  # E[1{a>0} a'^2] = Sigma_a'a' / 2 exactly
        jac[r, i] = 0.5 * weight_var

    def sigma(g):
        return _unpack(weight_var * np.asarray(g) + e, k)

    def unit(g):
        # the stencils stay well inside the positive-definite cone: shrink them by the
        # distance of the values' correlation from +-1
        s = sigma(g)
        gap = 1.0
        if k == 2:
            gap = 1.0 - abs(s[0, 1]) / np.sqrt(s[0, 0] * s[1, 1])
        return float(np.abs(g).max()) * min(1.0, 10.0 * gap)

    return ChainLayer(mean=lambda g: _mean(GaussianState(sigma(g)), pairs),
                      cov=lambda g: gram_moments(sigma(g))[1],
                      third=lambda g: gram_third_cumulant(sigma(g)),
                      width=width, unit=unit, linear=(lin, jac))


def finite_width_gradient_covariance(spec, points, order=1, widths=None):
    """``E[df/dx(x_i) df/dx(x_j)]`` to ``order`` (1 or 2) in ``1/n``, with its pieces.

    The readout makes ``E[df/dx(x_i) df/dx(x_j)] = readout_var E[G_L]`` at the tangent
    entries, exactly; ``E[G_L] = K_L + mu1_L (+ mu2_L)`` is
    :func:`gradsim.theory.moment_chain.propagate` on the Gram chain.

    Parameters
    ----------
    spec : NetSpec
        Feedforward ReLU, He (``init='he'``), no batch norm, ``input_dim = 1``, and
        ``first_bias_var > 0`` for two inputs (the first layer's values must not be
        perfectly correlated).
    points : sequence of 1 or 2 floats
    order : {1, 2}
        Order of the expansion in ``1/n``.
    widths : sequence of int, optional
        Widths ``n_1 .. n_L`` of the hidden layers (default ``spec.width`` for each).

    Returns
    -------
    dict
        ``K`` (infinite-width Gram mean at the last layer, ``2k x 2k``), ``M`` (its
        correction to ``order``: ``mu1``, plus ``mu2`` at order 2), ``M1`` and ``M2``
        (the two orders; ``M2`` is None at order 1), ``C`` (covariance of the unique
        Gram entries, to ``order``), ``k3`` (their third cumulant, to leading order
        ``1/n^2``; None at order 1), ``cov_inf`` and ``cov`` (gradient covariance
        ``k x k``: infinite width, and to ``order``), ``cov_by_depth``,
        ``cov_inf_by_depth`` (``(L, k, k)``: depths ``1 .. L``), ``cov_first_by_depth``
        (to first order, at any ``order``) and ``pairs`` (the order of the unique
        entries).
    """
    x = np.asarray(points, dtype=np.float64).ravel()
    k = len(x)
    if k not in (1, 2) or not np.all(np.isfinite(x)):
        raise ValueError("points must be 1 or 2 finite numbers")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if spec.arch != "feedforward" or spec.activation != "relu" or spec.batchnorm \
            or spec.init != "he" or spec.input_dim != 1:
        raise ValueError("the finite-width theory covers feedforward He ReLU nets on 1-D "
                         "inputs without batch norm")
    if widths is None:
        widths = [spec.width] * spec.depth
    widths = [int(w) for w in widths]
    if len(widths) != spec.depth or min(widths) < 1:
        raise ValueError(f"widths must be {spec.depth} positive integers (one per layer), "
                         f"got {widths}")
    sw = spec.weight_var
    pairs = _pairs(k)
    inp = np.concatenate([x, np.ones(k)])
    x0 = np.array([inp[p] * inp[q] for p, q in pairs])  # the input's "Gram matrix"
    layers = [_layer(k, sw, spec.first_bias_var, widths[0])]
    layers += [_layer(k, sw, spec.bias_var, w) for w in widths[1:]]
    chain = propagate(x0, layers, order)
    ru = spec.readout_var

    def tangent(vec):
        return ru * _unpack(vec, k)[k:, k:]

    last = chain[-1]
    m1 = last["mu1"]
    m2 = last["mu2"] if order == 2 else np.zeros_like(m1)
    full = [st["K"] + st["mu1"] + (st["mu2"] if order == 2 else 0.0) for st in chain]
    return {"K": _unpack(last["K"], k), "M": _unpack(m1 + m2, k), "M1": _unpack(m1, k),
            "M2": _unpack(m2, k) if order == 2 else None,
            "C": last["C1"] + (last["C2"] if order == 2 else 0.0), "pairs": pairs,
            "k3": last["k3"] if order == 2 else None,
            "cov_inf": tangent(last["K"]), "cov": tangent(full[-1]),
            "cov_inf_by_depth": np.array([tangent(st["K"]) for st in chain]),
            "cov_first_by_depth": np.array([tangent(st["K"] + st["mu1"]) for st in chain]),
            "cov_by_depth": np.array([tangent(v) for v in full])}
