"""Exact infinite-width gradient covariance: finite differences of the NNGP kernel,
symmetry, positive semi-definiteness, special cases, and wide-network Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradsim import GridSpec, NetSpec, simulate
from gradsim.compare import assert_agrees
from gradsim.stats import covariance_matrix, estimate_rows
from gradsim.strategies import net_specs
from gradsim.theory import independence
from gradsim.theory.exact import exact_gradient_covariance, nngp_kernel

specs = net_specs(archs=("feedforward", "resnet"), batchnorm=False,
                  activations=("relu", "leaky", "crelu"), max_input_dim=2)
ll_specs = net_specs(archs=("feedforward", "resnet"), batchnorm=False, activations=("crelu",),
                     max_input_dim=2).filter(lambda s: s.init == "looks-linear")


def _fd_mixed(spec, x, y, h=1e-4):
    d = spec.input_dim
    out = np.zeros((len(x), len(y), d, d))
    for a in range(d):
        for b in range(d):
            ea, eb = np.eye(d)[a] * h, np.eye(d)[b] * h
            out[..., a, b] = (nngp_kernel(spec, x + ea, y + eb) - nngp_kernel(spec, x + ea, y - eb)
                              - nngp_kernel(spec, x - ea, y + eb)
                              + nngp_kernel(spec, x - ea, y - eb)) / (4 * h * h)
    return out


@given(st.one_of(specs, ll_specs), st.integers(0, 2**32))
def test_mixed_derivative_matches_finite_differences(spec, seed):
    spec = spec.replace(first_bias_var=max(spec.first_bias_var, 0.1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, spec.input_dim))
    y = rng.standard_normal((3, spec.input_dim))
    got = exact_gradient_covariance(spec, x, y)
    want = _fd_mixed(spec, x, y)
    scale = np.abs(got).max() + np.abs(nngp_kernel(spec, x, y)).max()
    np.testing.assert_allclose(got, want, atol=1e-5 * scale)


@given(specs, st.integers(0, 2**32))
def test_symmetric_and_positive_semidefinite(spec, seed):
    spec = spec.replace(first_bias_var=max(spec.first_bias_var, 0.1))
    x = np.random.default_rng(seed).standard_normal((6, spec.input_dim))
    c = exact_gradient_covariance(spec, x)
    d = spec.input_dim
    big = c.transpose(0, 2, 1, 3).reshape(6 * d, 6 * d)
    np.testing.assert_allclose(big, big.T, atol=1e-12 * np.abs(big).max())
    assert np.linalg.eigvalsh(big).min() > -1e-9 * np.abs(big).max()


def test_diagonal_branch_is_continuous():
    spec = NetSpec(depth=6, bias_var=0.3)
    x = np.array([[0.3]])
    on = exact_gradient_covariance(spec, x, x)[0, 0, 0, 0]
    for delta in (1e-3, 1e-4, 1e-6):
        near = exact_gradient_covariance(spec, x, x + delta)[0, 0, 0, 0]
        assert abs(near - on) < 50 * delta * abs(on)


def test_linear_and_looks_linear_nets_have_constant_gradients():
    x = GridSpec(points=9).points_array()
    for spec in (NetSpec(depth=7, activation="leaky", slope_pos=0.8, slope_neg=0.8),
                 NetSpec(depth=7, activation="crelu", init="looks-linear"),
                 NetSpec(arch="resnet", depth=5, activation="crelu", init="looks-linear")):
        c = exact_gradient_covariance(spec, x)[..., 0, 0]
        np.testing.assert_allclose(c, c[0, 0], rtol=1e-10)


def test_high_dimensional_inputs_agree_with_gradient_independence():
    """Large d, no biases beyond a small hidden one: the independence product is close."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(60)
    y = 0.6 * x + 0.8 * rng.standard_normal(60)
    spec = NetSpec(depth=2, input_dim=60, bias_var=0.1)
    c = exact_gradient_covariance(spec, np.stack([x, y]))
    ind = independence(spec, x, y)
    assert np.trace(c[0, 0]) == pytest.approx(ind.variance[-1], rel=1e-12)
    assert np.trace(c[0, 1]) == pytest.approx(ind.covariance[-1], rel=0.02)


@pytest.mark.parametrize("spec", [NetSpec(depth=3, width=256),
                                  NetSpec(arch="resnet", depth=2, width=256, beta=0.7),
                                  NetSpec(depth=3, width=128, activation="crelu")],
                         ids=["ff", "resnet", "crelu"])
def test_exact_against_wide_networks_on_the_line(spec):
    """1-D grid with biases: every (i, j) entry within 4 standard errors plus a 5% of the
    largest entry allowance for the O(L / n) finite-width bias; the gradient-independence
    product misses in the same setting."""
    grid = GridSpec(points=8)
    g = simulate(spec, grid, nets=120, seed=7, backend="numpy").grad
    exact = exact_gradient_covariance(spec, grid.points_array())[..., 0, 0]
    assert_agrees(exact, covariance_matrix(g), allowance=0.05 * np.abs(exact).max(),
                  name="E[g_i g_j] on the line")
    if spec.arch == "feedforward":
        xs = grid.points_array()[:, 0]
        ind = np.array([[independence(spec, [a], [b]).covariance[-1] for b in xs] for a in xs])
        assert np.abs(ind - exact).max() > 0.2 * np.abs(exact).max()


def test_exact_bad_input():
    with pytest.raises(ValueError, match="batch norm"):
        exact_gradient_covariance(NetSpec(batchnorm=True), [0.0])
    with pytest.raises(ValueError, match="shape"):
        exact_gradient_covariance(NetSpec(input_dim=2), [0.0])
    with pytest.raises(ValueError, match="finite"):
        exact_gradient_covariance(NetSpec(), [math.inf])
    with pytest.raises(ValueError, match="angle"):
        exact_gradient_covariance(NetSpec(first_bias_var=0.0), [0.0])
    with pytest.raises(ValueError, match="memory"):
        exact_gradient_covariance(NetSpec(depth=2, input_dim=200), np.ones((256, 200)))


@given(st.one_of(specs, ll_specs), st.integers(0, 2**32))
def test_numba_kernel_agrees_with_numpy_twin(spec, seed):
    """Both backends, the symmetric (upper-triangle) path against explicit pairs, and the
    isotropy of the diagonal blocks: at one input the gradient covariance is c I exactly."""
    spec = spec.replace(first_bias_var=max(spec.first_bias_var, 0.1))
    x = np.random.default_rng(seed).standard_normal((4, spec.input_dim))
    fast = exact_gradient_covariance(spec, x)
    twin = exact_gradient_covariance(spec, x, backend="numpy")
    full = exact_gradient_covariance(spec, x, x.copy(), backend="numpy")
    scale = np.abs(twin).max()
    np.testing.assert_allclose(fast, twin, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(full, twin, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_array_equal(fast, fast.transpose(1, 0, 3, 2))
    d = spec.input_dim
    for i in range(len(x)):
        block = twin[i, i]
        np.testing.assert_allclose(block, block[0, 0] * np.eye(d), atol=1e-8 * scale)
    k_fast, k_twin = nngp_kernel(spec, x), nngp_kernel(spec, x, backend="numpy")
    np.testing.assert_allclose(k_fast, k_twin, rtol=1e-9, atol=1e-12 * np.abs(k_twin).max())


def test_kernel_threads_do_not_change_results():
    import numba
    spec = NetSpec(depth=40, bias_var=0.1)
    x = GridSpec(points=33).points_array()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = exact_gradient_covariance(spec, x)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = exact_gradient_covariance(spec, x)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_deep_nets_stay_in_range_through_the_common_scale():
    """Bias-free nets are homogeneous in the weight variance: scaling it by 1.5 scales the
    covariance by 1.5^L and leaves correlations alone.  At L = 2000 the covariance itself
    leaves floating-point range (refused, naming the depth: 1.5^1751 > 1.8e308), the
    scaled form does not."""
    x = np.array([[-1.0], [0.5], [1.0]])
    he = NetSpec(depth=2000, first_bias_var=0.0)
    big = he.replace(weight_var=3.0)
    c_he, ls_he = exact_gradient_covariance(he, x, log_scale=True)
    c_big, ls_big = exact_gradient_covariance(big, x, log_scale=True)
    assert ls_he == 0.0 and ls_big > 709
    assert np.all(np.isfinite(c_big))
    with pytest.raises(ValueError, match=r"overflows float64 at depth ~1751 of 2000 for "
                                         r"arch=feedforward, depth=2000, weight_var=3"):
        exact_gradient_covariance(big, x)

    def corr(c):
        v = np.sqrt(np.diag(c[..., 0, 0]))
        return c[..., 0, 0] / np.outer(v, v)

    np.testing.assert_allclose(corr(c_big), corr(c_he), rtol=1e-9)
    np.testing.assert_allclose(np.log(c_big[..., 0, 0] / c_he[..., 0, 0]) + ls_big,
                               2000 * np.log(1.5), rtol=1e-9)
    ind_he = independence(he, [-1.0], [1.0])
    ind_big = independence(big, [-1.0], [1.0], log_scale=True)
    np.testing.assert_allclose(ind_big.correlation, ind_he.correlation, rtol=1e-9)
    np.testing.assert_allclose(ind_big.log_scale - np.log(ind_he.variance),
                               np.arange(1, 2001) * np.log(1.5), rtol=1e-9)
    resnet = NetSpec(arch="resnet", depth=2000, bias_var=0.1)
    c, ls = exact_gradient_covariance(resnet, x, log_scale=True)
    assert np.all(np.isfinite(c))
    assert np.isfinite(independence(resnet, [-1.0], [1.0], log_scale=True).correlation).all()


@pytest.mark.parametrize("spec", [NetSpec(depth=3, width=256, input_dim=3, bias_var=0.1),
                                  NetSpec(arch="resnet", depth=2, width=256, input_dim=3,
                                          beta=0.7)], ids=["ff", "resnet"])
def test_exact_against_wide_networks_on_gaussian_inputs(spec):
    """3-dim Gaussian inputs: E[grad f(x_i) . grad f(x_j)] (6 x 6) within 4 standard errors
    plus 5% of the largest entry for the O(L / n) finite-width bias."""
    grid = GridSpec(kind="gaussian", points=6, dim=3, seed=2)
    g = simulate(spec, grid, nets=120, seed=8, backend="numpy").grad
    exact = np.einsum("pqaa->pq", exact_gradient_covariance(spec, grid.points_array()))
    est = estimate_rows(np.einsum("npd,nqd->npq", g, g).reshape(len(g), -1))
    assert_agrees(exact.ravel(), est, allowance=0.05 * np.abs(exact).max(),
                  name="E[grad f(x_i) . grad f(x_j)]")
    assert np.abs(exact - np.diag(np.diag(exact))).max() > 0.05 * np.abs(exact).max()


def _kernel_60_digits(spec, x, y):
    """``K(x, y) = E[f(x) f(y)]`` at infinite width in 60-digit arithmetic, written from
    the definitions (each layer ``K <- sigma_w^2 E[phi(u) phi(v)] + sigma_b^2``, the resnet
    block ``K <- alpha^2 (K + beta^2 (sigma_w^2 E[phi phi] + sigma_b^2))``), not from the
    library's kernel program."""
    import mpmath as mp

    a, b = ((1, 0) if spec.activation == "relu" else (spec.slope_pos, spec.slope_neg))
    a, b = mp.mpf(a), mp.mpf(b)

    def e(A, B, C):  # E[phi(u) phi(v)], (u, v) with covariance [[A, C], [C, B]]
        S = mp.sqrt(A * B)
        rho = min(max(C / S, mp.mpf(-1)), mp.mpf(1))
        return S * (a * b * rho + (a - b) ** 2 * (mp.sqrt(1 - rho * rho)
                                                  + (mp.pi - mp.acos(rho)) * rho) / (2 * mp.pi))

    wv, b0, bv, rv = (mp.mpf(v) for v in (spec.weight_var, spec.first_bias_var,
                                          spec.bias_var, spec.readout_var))
    A, B, C = wv * x * x + b0, wv * y * y + b0, wv * x * y + b0
    if spec.arch == "feedforward":
        for _ in range(spec.depth - 1):
            A, B, C = wv * e(A, A, A) + bv, wv * e(B, B, B) + bv, wv * e(A, B, C) + bv
        return rv * e(A, B, C)
    al, be = mp.mpf(spec.alpha), mp.mpf(spec.beta)
    for _ in range(spec.depth):
        A, B, C = (al**2 * (K + be**2 * (wv * e(*KK) + bv))
                   for K, KK in ((A, (A, A, A)), (B, (B, B, B)), (C, (A, B, C))))
    return rv * C


def _against_60_digits(spec, pairs):
    """The covariance of df/dx at each pair (off the diagonal) against the mixed
    derivative of the 60-digit kernel (mpmath's numerical differentiation at 60 digits:
    independent of the library's derivative formulas and its arc-cosine)."""
    import mpmath as mp

    mp.mp.dps = 60
    for x, y in pairs:
        ref = mp.diff(lambda u, v: _kernel_60_digits(spec, u, v), (mp.mpf(x), mp.mpf(y)),
                      (1, 1))
        for backend in ("numba", "numpy"):
            c, ls = exact_gradient_covariance(spec, np.array([[x], [y]]), log_scale=True,
                                              backend=backend)
            got = c[0, 1, 0, 0] * np.exp(ls)
            assert abs(got - float(ref)) <= 1e-10 * abs(float(ref)), (spec, x, y, backend)


@pytest.mark.parametrize("spec", [
    NetSpec(depth=50, bias_var=0.1),
    NetSpec(depth=20, activation="leaky", slope_neg=0.2),
    NetSpec(arch="resnet", depth=30),
    NetSpec(arch="resnet", depth=30, beta=0.3, bias_var=0.2),
], ids=["ff-bias", "ab-relu", "resnet", "resnet-beta-bias"])
def test_exact_agrees_with_60_digit_references(spec):
    _against_60_digits(spec, [(-1.0, 1.0), (0.3, 0.35), (-0.5, 1.5)])


@pytest.mark.slow
def test_exact_at_depth_1000_agrees_with_60_digit_references():
    """J4's depth: 1000 layers of rounding and arc-cosines still within 1e-10."""
    _against_60_digits(NetSpec(depth=1000), [(-1.0, 1.0), (0.5, 0.6)])
