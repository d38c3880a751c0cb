"""Closed forms: Gaussian integrals vs quadrature, special cases, the paper model vs its own
Monte Carlo, gradient independence vs real networks."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from gradsim import NetSpec, input_gradient, network_rng, sample_network
from gradsim.compare import agrees, assert_agrees, pair_statistics
from gradsim.stats import Estimate, offdiagonal_ratio
from gradsim.theory import (
    LABELS,
    ab_moments,
    independence,
    kurtosis_identity,
    paper_model,
    paper_model_mc,
    relu_moments,
)

rhos = st.floats(-0.999, 0.999)
slopes = st.floats(-1.5, 1.5)


def _quad_moments(rho, a, b):
    """E[phi'(u)phi'(v)] and E[phi(u)phi(v)] by 1-D quadrature over u (w integrated exactly)."""
    s = math.sqrt(1 - rho * rho)

    def inner_phi(u):  # E_w[phi(rho u + s w)]
        m = rho * u
        return b * m + (a - b) * (m * stats.norm.cdf(m / s) + s * stats.norm.pdf(m / s))

    def inner_dphi(u):  # E_w[phi'(rho u + s w)]
        p = stats.norm.cdf(rho * u / s)
        return a * p + b * (1 - p)

    def phi(u):
        return a * u if u > 0 else b * u

    f = [lambda u: stats.norm.pdf(u) * phi(u) * inner_phi(u),
         lambda u, k: stats.norm.pdf(u) * k * inner_dphi(u)]
    e_phi = sum(integrate.quad(f[0], lo, hi, epsabs=1e-12)[0]
                for lo, hi in ((-np.inf, 0), (0, np.inf)))
    e_dphi = (integrate.quad(f[1], 0, np.inf, args=(a,), epsabs=1e-12)[0]
              + integrate.quad(f[1], -np.inf, 0, args=(b,), epsabs=1e-12)[0])
    return e_dphi, e_phi


@given(rhos, slopes, slopes)
def test_ab_moments_match_quadrature(rho, a, b):
    want = _quad_moments(rho, a, b)
    got = ab_moments(rho, a, b)
    np.testing.assert_allclose(got, want, atol=1e-8)


@given(rhos)
def test_relu_moments_are_ab_moments_with_slopes_one_zero(rho):
    k0, k1 = relu_moments(rho)
    dphi, phi = ab_moments(rho, 1.0, 0.0)
    assert k0 == pytest.approx(dphi, abs=1e-15) and k1 == pytest.approx(phi, abs=1e-15)


def test_relu_moments_special_angles():
    k0, k1 = relu_moments([1.0, 0.0, -1.0])
    np.testing.assert_allclose(k0, [0.5, 0.25, 0.0], atol=1e-15)
    np.testing.assert_allclose(k1, [0.5, 1 / (2 * np.pi), 0.0], atol=1e-15)


@given(st.floats(0.0, 1.0), st.floats(0.0, math.pi))
def test_partial_mirroring_factor(alpha, theta):
    """Per-layer covariance factor of P LeakyReLU_alpha: 1 - (1-alpha)^2 theta/((1+alpha^2) pi)."""
    rho = math.cos(theta)
    theta = math.acos(rho)  # the angle rho represents (cos rounds to 1 below ~1e-8)
    dphi, _ = ab_moments(rho, 1.0, alpha)
    want = 1 - (1 - alpha) ** 2 * theta / ((1 + alpha**2) * math.pi)
    assert dphi / ((1 + alpha**2) / 2) == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- the paper model (T1, T2, T4-T6)

L = np.arange(1, 31)


def test_paper_model_feedforward():
    th = paper_model(NetSpec(depth=30))
    assert th.label == LABELS["paper"]
    np.testing.assert_allclose(th.variance, 1.0, rtol=1e-14)
    np.testing.assert_allclose(th.correlation, 2.0**-L, rtol=1e-14)


def test_paper_model_resnets():
    th = paper_model(NetSpec(arch="resnet", depth=30))
    np.testing.assert_allclose(th.variance, 2.0**L, rtol=1e-13)
    np.testing.assert_allclose(th.covariance, 1.5**L, rtol=1e-13)
    np.testing.assert_allclose(th.correlation, 0.75**L, rtol=1e-13)
    th = paper_model(NetSpec(arch="resnet", depth=30, alpha=1 / math.sqrt(2)))
    np.testing.assert_allclose(th.variance, 1.0, rtol=1e-13)
    np.testing.assert_allclose(th.correlation, 0.75**L, rtol=1e-13)
    beta = 0.3
    th = paper_model(NetSpec(arch="resnet", depth=30, beta=beta))
    np.testing.assert_allclose(th.variance, (1 + beta**2) ** L, rtol=1e-13)
    np.testing.assert_allclose(th.covariance, (1 + beta**2 / 2) ** L, rtol=1e-13)
    depth = 10**4
    th = paper_model(NetSpec(arch="resnet", depth=depth, beta=1 / math.sqrt(depth)))
    assert th.correlation[-1] == pytest.approx(math.exp(-0.5), rel=1e-4)


def test_paper_model_bn_resnet_table():
    """PAPER.md section 3: correlation at L = 1, 2, 5, 10, 24, 50, 100."""
    at = [0, 1, 4, 9, 23, 49, 99]
    th = paper_model(NetSpec(arch="resnet", depth=100, batchnorm=True))
    np.testing.assert_allclose(th.variance, 1 + np.arange(1, 101), rtol=1e-13)
    np.testing.assert_allclose(th.correlation[at].round(3),
                               [0.750, 0.625, 0.451, 0.336, 0.225, 0.158, 0.112])
    th = paper_model(NetSpec(arch="resnet", depth=100, batchnorm=True, beta=0.1))
    np.testing.assert_allclose(th.correlation[at].round(3),
                               [0.995, 0.990, 0.976, 0.954, 0.898, 0.817, 0.708])
    assert th.correlation[-1] * math.sqrt(100) == pytest.approx(7.08, abs=0.01)


def test_paper_model_mirroring_limits():
    ll = paper_model(NetSpec(depth=40, activation="crelu", init="looks-linear"))
    assert np.all(ll.correlation == 1.0) and np.all(ll.variance == 1.0)
    relu = paper_model(NetSpec(depth=40))
    zero = paper_model(NetSpec(depth=40, activation="crelu", init="looks-linear", mirror=0.0))
    np.testing.assert_allclose(zero.correlation, relu.correlation, rtol=1e-14)


def test_paper_model_highway_gate_limits():
    closed = paper_model(NetSpec(arch="highway", depth=5, gate_bias=-40.0))
    np.testing.assert_allclose(closed.correlation, 1.0, rtol=1e-12)
    open_ = paper_model(NetSpec(arch="highway", depth=5, gate_bias=40.0))
    np.testing.assert_allclose(open_.correlation, 2.0 ** -np.arange(1, 6), rtol=1e-12)


@pytest.mark.parametrize("spec", [
    NetSpec(depth=5, width=10),
    NetSpec(depth=5, width=10, activation="leaky", slope_neg=-0.3),
    NetSpec(arch="resnet", depth=5, width=10, alpha=0.8, beta=0.6),
    NetSpec(arch="resnet", depth=3, width=10, branch_depth=2),
    NetSpec(arch="resnet", depth=5, width=10, batchnorm=True),
    NetSpec(depth=5, width=10, activation="crelu", init="looks-linear", mirror=0.5),
], ids=["ff", "leaky", "resnet-ab", "resnet-2", "resnet-bn", "mirror-0.5"])
def test_paper_model_matches_its_own_monte_carlo(spec):
    """T1, T2, T4, T5, T6 under the model's own assumptions, within 4 standard errors."""
    th = paper_model(spec)
    nets = 3000
    mc = paper_model_mc(spec, nets=nets, seed=20261124)
    k = mc.depth - 1
    assert mc.label == LABELS["paper-mc"]
    for name in ("variance", "covariance", "correlation"):
        est = Estimate(getattr(mc, name), getattr(mc, name + "_se"), nets)
        assert_agrees(getattr(th, name)[k], est, name=name)


# ---------------------------------------------------------------- gradient independence

def test_independence_at_right_angles_is_the_paper_model_at_depth_one():
    x, y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    spec = NetSpec(depth=1, input_dim=2, first_bias_var=0.0)
    th = independence(spec, x, y)
    assert th.label == LABELS["independence"]
    assert th.correlation[0] == pytest.approx(paper_model(spec).correlation[0], rel=1e-14)


@given(st.floats(-2, 2), st.floats(-2, 2), st.integers(1, 30))
def test_independence_special_cases(x, y, depth):
    lin = independence(NetSpec(depth=depth, activation="leaky", slope_neg=0.6, slope_pos=0.6),
                       [x], [y])
    np.testing.assert_allclose(lin.correlation, 1.0, rtol=1e-12)
    ll = independence(NetSpec(depth=depth, activation="crelu", init="looks-linear"), [x], [y])
    np.testing.assert_allclose(ll.correlation, 1.0, rtol=1e-12)
    np.testing.assert_allclose(ll.variance, 1.0, rtol=1e-12)
    relu = independence(NetSpec(depth=depth), [x], [y])
    zero = independence(NetSpec(depth=depth, activation="crelu", init="looks-linear",
                                mirror=0.0), [x], [y])
    np.testing.assert_allclose(zero.correlation, relu.correlation, rtol=1e-10)
    assert np.all(relu.correlation <= 1 + 1e-12) and np.all(relu.correlation >= 0)


def test_independence_decays_like_a_power_not_exponentially():
    """With real angles R_ff = prod (1 - theta_l / pi) decays slower than 2^-L."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    th = independence(NetSpec(depth=200, input_dim=50, first_bias_var=0.0), x, y)
    assert th.correlation[-1] > 1e3 * 2.0**-200
    slope = np.polyfit(np.log(L[9:]), np.log(th.correlation[9:30]), 1)[0]
    assert -3 < slope < -0.5


@pytest.mark.parametrize("spec", [
    NetSpec(depth=2, width=128, input_dim=60, bias_var=0.1),
    NetSpec(arch="resnet", depth=2, width=128, input_dim=60, alpha=0.9, beta=0.7),
], ids=["ff", "resnet"])
def test_independence_against_wide_networks(spec):
    """High-dimensional inputs, width 128: agreement within 4 standard errors plus a 4%
    allowance for the O(L / n) finite-width bias."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(60)
    y = 0.6 * x + 0.8 * rng.standard_normal(60)
    nets = 150
    g = np.array([input_gradient(sample_network(spec, network_rng(5, i)), np.stack([x, y]),
                                 mode="reverse") for i in range(nets)])
    th = independence(spec, x, y)
    est = pair_statistics(g[:, 0], g[:, 1])
    for name in ("variance", "covariance"):
        want = getattr(th, name)[-1]
        assert_agrees(want, est[name], allowance=0.04 * abs(want), name=name)


def test_theory_bad_input():
    with pytest.raises(ValueError, match="batch norm"):
        independence(NetSpec(batchnorm=True), [0.0], [1.0])
    with pytest.raises(ValueError, match="shape"):
        independence(NetSpec(), [0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        independence(NetSpec(), [math.nan], [1.0])
    with pytest.raises(ValueError, match="nets"):
        paper_model_mc(NetSpec(depth=2), nets=1)
    with pytest.raises(ValueError, match="bias-free"):
        kurtosis_identity(NetSpec(depth=2))


def test_kurtosis_identity_values():
    k = kurtosis_identity(NetSpec(depth=3, width=5, first_bias_var=0.0))
    np.testing.assert_allclose(k, [6.0, 12.0, 24.0], rtol=1e-15)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_t3_high_dimensional_ratio_is_two_to_minus_depth(depth):
    """T3: feedforward + BN, width 200, 200-dim Gaussian inputs: the ratio of the mean
    off-diagonal to the mean diagonal gradient inner product is 2^-L, within 4 standard
    errors over networks.  64 inputs: batch-norm centring over a batch of P inputs
    correlates them by about -1/(P - 1), which biases the ratio low on small batches."""
    from gradsim import GridSpec

    x = GridSpec(kind="gaussian", points=64, dim=200, seed=3).points_array()
    spec = NetSpec(depth=depth, width=200, input_dim=200, batchnorm=True)
    g = np.array([input_gradient(sample_network(spec, network_rng(0, i)), x, mode="reverse",
                                 backend="numpy") for i in range(20)])
    assert_agrees(2.0**-depth, offdiagonal_ratio(g), name=f"T3 ratio at depth {depth}")


def test_kurtosis_identity_against_streamed_monte_carlo():
    """Bias-free He ReLU net, width 20, depth 2: 3 (1 + 5/20)^2 = 4.6875.  3000 networks
    streamed (no gradients kept); within 4 delta-method standard errors of the identity
    and more than 4 away from the Gaussian value 3.  (The delta method needs E[g^8]; at
    width 10 it is unreliable below about 10^4 networks, hence width 20 here.)"""
    from gradsim import GridSpec, simulate

    spec = NetSpec(depth=2, width=20, first_bias_var=0.0)
    sim = simulate(spec, GridSpec(points=2, lo=-1.0, hi=1.0), nets=3000, seed=0, keep=False,
                   moments=True, backend="numpy", chunk=100)
    assert sim.grad is None
    var, kurt = sim.moments.point_moments(1)
    assert_agrees(kurtosis_identity(spec)[-1], kurt, name="kurtosis identity")
    assert_agrees(paper_model(spec).variance[-1], var, name="variance")
    assert not agrees(3.0, kurt)


def test_crelu_with_independent_halves_has_relu_theory():
    """T13 at infinite width: CReLU without mirroring has ReLU's kernel maps exactly."""
    for model in (paper_model, lambda sp: independence(sp, [-1.0], [0.5])):
        a = model(NetSpec(depth=6, activation="crelu"))
        b = model(NetSpec(depth=6))
        np.testing.assert_array_equal(a.correlation, b.correlation)
