"""The second-order moment chain against exact answers on toy chains.

Two chains in ``d = 2`` share a nonlinear mean ``F`` (nonzero derivatives of every
order, cross terms between the coordinates) and a state-dependent noise matrix ``A(x)``:
``X' = F(X) + A(X) e``, where ``e`` is

* ``gauss``: ``N(0, I / n)`` (so ``W = A A^T`` and ``T = 0``);
* ``gamma``: the mean of ``n`` i.i.d. vectors of independent centred ``Exp(1)``
  coordinates, i.e. each coordinate ``Gamma(n, 1/n) - 1`` (``W = A A^T`` and
  ``T_abc = 2 sum_k A_ak A_bk A_ck``, fourth cumulant ``O(1/n^3)``).

Given ``X_(L-1)`` the first three conditional cumulants of ``X_L`` are known in closed
form, so the exact mean, covariance and third cumulant of ``X_L`` are integrals over
``e_1 .. e_(L-1)``: a ``2 (L - 1)``-dimensional tensor-product Gauss quadrature
(Gauss-Hermite for ``gauss``, generalised Gauss-Laguerre with ``alpha = n - 1`` for
``gamma``), exact to rounding here (checked by changing the node count).  The tests then
check that the error of the expansion is of the next order in ``1/n``.  The tolerances
were chosen so that dropping any single term of the recursion, or changing one factor
or index placement, makes at least one test fail.
"""

from functools import cache

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import roots_genlaguerre

from gradsim.theory.moment_chain import ChainLayer, propagate

X0 = np.array([0.3, 0.5])
WIDTHS = (40, 80, 160)
NODES = 16          # per dimension; 16**4 = 65536 points at L = 3
KINDS = ("gauss", "gamma")


def mean_map(x):
    x1, x2 = x[..., 0], x[..., 1]
    return np.stack([0.8 * np.exp(0.5 * x1) + 0.3 * x1 * x2,
                     np.sin(x2) + 0.4 * x1 ** 2], axis=-1)


def noise_matrix(x):
    x1, x2 = x[..., 0], x[..., 1]
    a = np.empty(x.shape[:-1] + (2, 2))
    a[..., 0, 0] = 1.0 + 0.3 * np.sin(x1 + x2)
    a[..., 0, 1] = 0.4 * np.cos(x1) * x2
    a[..., 1, 0] = 0.3 * x1 ** 2 - 0.2
    a[..., 1, 1] = 0.8 * np.exp(0.3 * x2 - 0.2 * x1)
    return a


def cov_map(x):
    a = noise_matrix(x)
    return np.einsum("...ik,...jk->...ij", a, a)


def third_map(x):
    a = noise_matrix(x)
    return 2.0 * np.einsum("...ak,...bk,...ck->...abc", a, a, a)


def _zero_third(x):
    return np.zeros((2, 2, 2))


def _noise_nodes(kind, n, nodes):
    """Nodes ``(P, 2)`` and weights ``(P,)`` of the law of ``e`` (tensor product)."""
    if kind == "gauss":
        z, w = hermegauss(nodes)
        e = z / np.sqrt(n)
    else:
        x, w = roots_genlaguerre(nodes, n - 1)   # weight x^(n-1) exp(-x): Gamma(n, 1)
        e = x / n - 1.0
    w = w / w.sum()
    e2 = np.stack(np.meshgrid(e, e, indexing="ij"), -1).reshape(-1, 2)
    return e2, np.outer(w, w).ravel()


@cache
def exact_moments(kind, n, depth, nodes=NODES):
    """Exact ``(E, Cov, k3)`` of ``X_depth`` by nested quadrature over ``X_1 ..
    X_(depth-1)`` and the closed-form conditional cumulants of the last step."""
    e2, w2 = _noise_nodes(kind, n, nodes)
    x, w = X0[None], np.ones(1)
    for _ in range(depth - 1):
        x = (mean_map(x)[:, None, :]
             + np.einsum("pij,qj->pqi", noise_matrix(x), e2)).reshape(-1, 2)
        w = (w[:, None] * w2[None]).ravel()
    f = mean_map(x)
    m = w @ f
    fc = f - m
    wx = cov_map(x)
    ew = np.einsum("p,pij->ij", w, wx)
    cov = np.einsum("p,pi,pj->ij", w, fc, fc) + ew / n
    cross = np.einsum("p,pi,pjk->ijk", w, fc, wx - ew) / n      # Cov(E[Y_i|X], Cov(Y_j, Y_k|X))
    k3 = (np.einsum("p,pi,pj,pk->ijk", w, fc, fc, fc)
          + cross + cross.transpose(1, 0, 2) + cross.transpose(1, 2, 0))
    if kind == "gamma":
        k3 = k3 + np.einsum("p,pijk->ijk", w, third_map(x)) / n ** 2
    return m, cov, k3


def _layers(kind, n, depth):
    third = third_map if kind == "gamma" else _zero_third
    return [ChainLayer(mean=mean_map, cov=cov_map, width=n, third=third)] * depth


def _errors(kind, depth):
    """Per width: max-abs errors of the first- and second-order expansions."""
    rows = []
    for n in WIDTHS:
        m, cov, k3 = exact_moments(kind, n, depth)
        st = propagate(X0, _layers(kind, n, depth), order=2)[-1]
        dm = m - st["K"]
        rows.append({
            "mean1": np.abs(dm - st["mu1"]).max(),
            "mean2": np.abs(dm - st["mu1"] - st["mu2"]).max(),
            "cov1": np.abs(cov - st["C1"]).max(),
            "cov2": np.abs(cov - st["C1"] - st["C2"]).max(),
            "k3": np.abs(k3 - st["k3"]).max(),
            "size_mu2": np.abs(st["mu2"]).max(),
            "size_C2": np.abs(st["C2"]).max(),
            "size_k3": np.abs(k3).max(),
        })
    return rows


def _ratios(rows, key):
    return [a[key] / b[key] for a, b in zip(rows, rows[1:])]


# --- the quadrature itself ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_noise_nodes_reproduce_the_cumulants_of_a_mean(kind):
    n = 40
    e2, w = _noise_nodes(kind, n, NODES)
    e = e2[:, 0]
    k3 = 2.0 / n ** 2 if kind == "gamma" else 0.0
    k4 = 6.0 / n ** 3 if kind == "gamma" else 0.0
    assert abs(w @ e) < 1e-15
    assert w @ e ** 2 == pytest.approx(1.0 / n, rel=1e-12)
    assert w @ e ** 3 == pytest.approx(k3, abs=1e-16)
    assert w @ e ** 4 - 3.0 / n ** 2 == pytest.approx(k4, rel=1e-8, abs=1e-16)
    assert abs(w @ (e2[:, 0] * e2[:, 1])) < 1e-16


@pytest.mark.parametrize("kind", KINDS)
def test_quadrature_converged(kind):
    """Node count 16 vs 22 at the widest law (n = 40) and deepest chain (L = 3)."""
    for a, b in zip(exact_moments(kind, 40, 3), exact_moments(kind, 40, 3, nodes=22)):
        assert np.abs(a - b).max() < 1e-12


def test_infinite_width_chain_and_orders_agree():
    lays = _layers("gamma", 80, 3)
    two = propagate(X0, lays, order=2)
    one = propagate(X0, lays, order=1)
    k = X0
    for s2, s1 in zip(two, one):
        k = mean_map(k)
        np.testing.assert_allclose(s2["K"], k, rtol=1e-15)
        np.testing.assert_allclose(s1["mu1"], s2["mu1"], rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(s1["C1"], s2["C1"], rtol=1e-14)
    # at the first layer the law of X_1 is the noise itself: no expansion error
    m, cov, k3 = exact_moments("gamma", 80, 1)
    np.testing.assert_allclose(two[0]["K"] + two[0]["mu1"] + two[0]["mu2"], m, rtol=1e-14)
    np.testing.assert_allclose(two[0]["C1"] + two[0]["C2"], cov, rtol=1e-14)
    np.testing.assert_allclose(two[0]["k3"], k3, rtol=1e-12)


# --- the orders of the expansion errors ------------------------------------------


@pytest.mark.parametrize("depth", (2, 3))
@pytest.mark.parametrize("kind", KINDS)
def test_first_order_error_is_order_n_minus_2(kind, depth):
    rows = _errors(kind, depth)
    for key in ("mean1", "cov1"):
        for r in _ratios(rows, key):
            assert 3.6 < r < 4.4, (key, _ratios(rows, key))


@pytest.mark.parametrize("depth", (2, 3))
@pytest.mark.parametrize("kind", KINDS)
def test_second_order_error_is_order_n_minus_3(kind, depth):
    """Errors of ``K + mu1 + mu2``, ``C1 + C2`` and ``k3`` shrink by ~8 per doubling of
    ``n`` and are a small fraction of the second-order terms themselves."""
    rows = _errors(kind, depth)
    for key, size in (("mean2", "size_mu2"), ("cov2", "size_C2"), ("k3", "size_k3")):
        r = _ratios(rows, key)
        assert 6.8 < r[0] < 10.0 and 7.2 < r[1] < 9.0, (key, r)
        # n^3 * error is bounded, and far below n^2 * (second-order term)
        n3err = [row[key] * n ** 3 for row, n in zip(rows, WIDTHS)]
        assert max(n3err) < 1.4 * min(n3err), (key, n3err)
        assert rows[-1][key] < 0.06 * rows[-1][size], (key, rows[-1][key], rows[-1][size])


def test_bad_input_is_refused_with_a_message():
    import gradsim.theory.moment_chain as mc

    lay = mc.ChainLayer(mean=lambda x: x, cov=lambda x: np.ones((len(x), 1, 1)), width=4)
    with pytest.raises(ValueError, match="third cumulant"):
        mc.propagate(np.ones(1), [lay, lay], order=2)
    with pytest.raises(ValueError, match="order"):
        mc.propagate(np.ones(1), [lay], order=3)
    with pytest.raises(ValueError, match="at least one"):
        mc.propagate(np.ones(1), [], order=1)
    with pytest.raises(ValueError, match="unit"):
        mc.propagate(np.zeros(1), [lay, lay], order=1)
