"""Finite width to first order in 1/n: the mean and covariance of the empirical Gram chain.

Assumption: a feedforward ReLU net with i.i.d. Gaussian weights (variance
``weight_var / fan_in``) and biases (``first_bias_var``, then ``bias_var``), widths
``n_l``, expanded to first order in ``1/n`` (valid while ``L / n`` is small).

The state of layer ``l`` at the inputs ``x_1 .. x_k`` (``k = 1`` or ``2``, 1-D inputs) is
the empirical Gram matrix ``G_l = (1/n_l) sum_i psi_i psi_i^T`` of
``psi_i = (relu(z_i(x_1)) .. relu(z_i(x_k)), relu'(z_i(x_1)) z_i'(x_1) .. )``: the
values and tangents of unit ``i``.  Given ``G_l``, the units of layer ``l + 1`` are i.i.d.
with ``zeta = (z(x_1) .., z'(x_1) ..) ~ N(0, Sigma)``,
``Sigma = weight_var G_l + bias_var e e^T`` (``e`` marks the values), so ``G`` is a
Markov chain with ``E[G_(l+1) | G_l] = F(Sigma)``, ``F(Sigma) = E[psi psi^T]``, and
``Cov(G_(l+1) | G_l) = W(Sigma) / n_(l+1)``, ``W`` the covariance of ``psi psi^T``.
Expanding ``G_l = K_l + delta_l`` with ``E[delta] = M_l`` and ``Cov(delta) = C_l``, both
``O(1/n)``::

    K_(l+1) = F(Sigma(K_l))
    M_(l+1) = J_l (weight_var M_l) + (1/2) weight_var^2 H_l[C_l]
    C_(l+1) = W(Sigma(K_l)) / n_(l+1) + weight_var^2 J_l C_l J_l^T

with ``J_l``, ``H_l`` the first and second derivatives of ``F`` at ``Sigma(K_l)``.  The
readout gives ``E[g(x) g(y)] = readout_var E[G_L]`` at the tangent entries, exactly at
any width, so the gradient covariance to first order is
``readout_var (K_L + M_L)``.  ``F`` and ``W`` are Gaussian expectations of products of
two and four ``psi`` entries: each is a product of orthant indicators and linear forms,
reduced to :mod:`gradsim.theory.orthant` moments by conditioning the tangents on the
values (Isserlis' theorem for the conditional part).  ``J`` is a central difference with
step ``1e-5`` of the state's scale, and ``H[C]`` the sum over the eigenvectors ``v`` of
``C`` of ``lambda v^T H v``, each a second central difference (step ``1e-4``;
``docs/theory.md``, "Finite width to first order").  The tangent variances are linear in ``Sigma``
(``E[1{a > 0} a'^2] = Sigma_(a'a') / 2``), so their correction is exactly 0 and the
variance of ``df/dx`` stays exactly ``readout_var`` times the infinite-width value.

References
----------
Roberts, Yaida and Hanin, *The Principles of Deep Learning Theory*, 2022, ch. 4-5.
Yaida, "Non-Gaussian processes and neural networks at finite widths", 2019.
"""

from __future__ import annotations

import itertools

import numpy as np

from .orthant import half_moments, orthant_moments

__all__ = ["gram_moments", "finite_width_gradient_covariance", "GaussianState"]


class GaussianState:
    """Gaussian expectations of products of ``psi`` entries for ``zeta ~ N(0, Sigma)``.

    ``Sigma`` is ``2k x 2k``: values ``0 .. k-1``, tangents ``k .. 2k-1``; ``psi_p`` is
    ``relu(zeta_p)`` for a value and ``1{zeta_(p-k) > 0} zeta_p`` for a tangent.
    """

    def __init__(self, sigma):
        sigma = np.asarray(sigma, dtype=np.float64)
        k = sigma.shape[0] // 2
        self.k = k
        sv, st, svt = sigma[:k, :k], sigma[k:, k:], sigma[:k, k:]
        inv = np.linalg.inv(sv)
        self.reg = svt.T @ inv  # E[t | v] = reg v
        self.cond = st - self.reg @ svt  # Cov(t | v)
        self.q = np.diag(sv).copy()
        self.rho = float(sv[0, 1] / np.sqrt(sv[0, 0] * sv[1, 1])) if k == 2 else 1.0
        self._m = orthant_moments(self.rho, 4) if k == 2 else None
        self._mneg = orthant_moments(-self.rho, 4) if k == 2 else None
        self._half = half_moments(8)

    def _linear(self, p):
        """``(coefficients on the values, coefficients on the conditional noise)``."""
        k = self.k
        if p < k:
            c = np.zeros(k)
            c[p] = 1.0
            return c, np.zeros(k)
        r = np.zeros(k)
        r[p - k] = 1.0
        return self.reg[p - k].copy(), r

    def _poly(self, forms):
        """``E[prod_k (c_k . v + r_k . eta) | v]`` as ``{powers of v: coefficient}``."""
        if not forms:
            return {(0,) * self.k: 1.0}
        (c, r), rest = forms[0], forms[1:]
        out = {}
        for powers, coef in self._poly(rest).items():  # the first factor kept as c . v
            for j in range(self.k):
                if c[j] != 0.0:
                    key = tuple(pw + (1 if i == j else 0) for i, pw in enumerate(powers))
                    out[key] = out.get(key, 0.0) + coef * c[j]
        for idx in range(len(rest)):  # or paired with a later factor (Isserlis)
            cov = float(r @ self.cond @ rest[idx][1])
            if cov != 0.0:
                for powers, coef in self._poly(rest[:idx] + rest[idx + 1:]).items():
                    out[powers] = out.get(powers, 0.0) + coef * cov
        return out

    def _orthant(self, powers, signs):
        """``E[prod v_j^(p_j) 1{v_j > 0 for j in signs}]``."""
        k = self.k
        if k == 1:
            return self.q[0] ** (powers[0] / 2) * self._half[powers[0]]
        i, j = powers
        scale = self.q[0] ** (i / 2) * self.q[1] ** (j / 2)
        if signs == (0, 1):
            return scale * self._m[i, j]
        if signs == (0,):  # 1{a>0} (1{b>0} + 1{b<0}); b -> -b flips rho
            return scale * (self._m[i, j] + (-1) ** j * self._mneg[i, j])
        return scale * (self._m[i, j] + (-1) ** i * self._mneg[i, j])

    def expect(self, entries):
        """``E[prod_p psi_p]`` over the list ``entries`` of indices."""
        signs = tuple(sorted({p % self.k for p in entries}))
        poly = self._poly([self._linear(p) for p in entries])
        return sum(coef * self._orthant(powers, signs) for powers, coef in poly.items()
                   if coef != 0.0)


def _pairs(k):
    return [(p, q) for p in range(2 * k) for q in range(p, 2 * k)]


def _unpack(vec, k):
    s = np.zeros((2 * k, 2 * k))
    for v, (p, q) in zip(vec, _pairs(k)):
        s[p, q] = s[q, p] = v
    return s


def gram_moments(sigma):
    """``F(Sigma) = E[psi psi^T]`` (upper triangle as a vector) and ``W(Sigma)``, the
    covariance of those entries of ``psi psi^T``."""
    st = GaussianState(sigma)
    pairs = _pairs(st.k)
    f = np.array([st.expect([p, q]) for p, q in pairs])
    w = np.empty((len(pairs), len(pairs)))
    for (a, (p, q)), (b, (r, s)) in itertools.product(enumerate(pairs), repeat=2):
        if b >= a:
            w[a, b] = w[b, a] = st.expect([p, q, r, s]) - f[a] * f[b]
    return f, w


def _mean_map(vec, k):
    """``F`` alone (no fourth moments): the map the derivatives are taken of."""
    st = GaussianState(_unpack(vec, k))
    return np.array([st.expect([p, q]) for p, q in _pairs(k)])


def _linear_entries(k):
    """Indices of the tangent variances, whose map is exactly linear."""
    return [i for i, (p, q) in enumerate(_pairs(k)) if p == q and p >= k]


def finite_width_gradient_covariance(spec, points):
    """``E[df/dx(x_i) df/dx(x_j)]`` to first order in ``1/n``, with its pieces.

    Parameters
    ----------
    spec : NetSpec
        Feedforward ReLU, He (``init='he'``), no batch norm, ``input_dim = 1``, and
        ``first_bias_var > 0`` for two inputs (the first layer's values must not be
        perfectly correlated).
    points : sequence of 1 or 2 floats

    Returns
    -------
    dict
        ``K`` (infinite-width Gram mean at the last layer, ``2k x 2k``), ``M`` (its
        ``1/n`` correction), ``C`` (covariance of the unique Gram entries), ``cov_inf``
        and ``cov`` (gradient covariance ``k x k``: infinite width, and to first
        order), and ``pairs`` (the order of the unique entries).
    """
    x = np.asarray(points, dtype=np.float64).ravel()
    k = len(x)
    if k not in (1, 2) or not np.all(np.isfinite(x)):
        raise ValueError("points must be 1 or 2 finite numbers")
    if spec.arch != "feedforward" or spec.activation != "relu" or spec.batchnorm \
            or spec.init != "he" or spec.input_dim != 1:
        raise ValueError("the finite-width theory covers feedforward He ReLU nets on 1-D "
                         "inputs without batch norm")
    sw, sb0, sb = spec.weight_var, spec.first_bias_var, spec.bias_var
    e = np.concatenate([np.ones(k), np.zeros(k)])
    inp = np.concatenate([x, np.ones(k)])
    pairs = _pairs(k)
    lin = _linear_entries(k)
    sigma = sw * np.outer(inp, inp) + sb0 * np.outer(e, e)
    f, w = gram_moments(sigma)
    K, M, C = f, np.zeros_like(f), w / spec.width
    ru = spec.readout_var
    by_depth = [(_unpack(K, k)[k:, k:], _unpack(K + M, k)[k:, k:])]
    for _ in range(spec.depth - 1):
        base = np.array([sw * K[i] + (sb if p < k and q < k else 0.0)
                         for i, (p, q) in enumerate(pairs)])
        f, w = gram_moments(_unpack(base, k))
        h = 1e-5 * np.abs(base).max()
        jac = np.empty((len(f), len(f)))
        for j in range(len(f)):
            d = np.zeros(len(f))
            d[j] = h
            jac[:, j] = (_mean_map(base + d, k) - _mean_map(base - d, k)) / (2 * h)
        lam, vecs = np.linalg.eigh(C)
        hess = np.zeros(len(f))
        for lv, v in zip(lam, vecs.T):
            step = 10 * h / max(np.abs(v).max(), 1e-300)
            second = (_mean_map(base + step * v, k) - 2 * f
                      + _mean_map(base - step * v, k)) / step**2
            hess += lv * second
        for i in lin:  # E[1{a>0} a'^2] = Sigma_a'a' / 2 exactly
            jac[i] = 0.0
            jac[i, i] = 0.5
            hess[i] = 0.0
        M = sw * (jac @ M) + 0.5 * sw * sw * hess
        C = w / spec.width + sw * sw * (jac @ C @ jac.T)
        K = f
        by_depth.append((_unpack(K, k)[k:, k:], _unpack(K + M, k)[k:, k:]))
    full_k, full_m = _unpack(K, k), _unpack(M, k)
    return {"K": full_k, "M": full_m, "C": C, "pairs": pairs,
            "cov_inf": ru * full_k[k:, k:], "cov": ru * (full_k + full_m)[k:, k:],
            "cov_inf_by_depth": ru * np.array([a for a, _ in by_depth]),
            "cov_by_depth": ru * np.array([b for _, b in by_depth])}
