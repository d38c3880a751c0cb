"""The 1/n theory of the empirical Gram chain: exact identities and Gaussian expectations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradsim import NetSpec
from gradsim.theory.exact import exact_gradient_covariance
from gradsim.theory.finite_width import (
    GaussianState,
    finite_width_gradient_covariance,
    gram_moments,
)


def _sigma(seed, k):
    """A random covariance of values and tangents, full rank."""
    a = np.random.default_rng(seed).standard_normal((2 * k, 2 * k + 2))
    return a @ a.T / (2 * k + 2)


def _psi(zeta, k):
    v, t = zeta[:, :k], zeta[:, k:]
    return np.concatenate([np.maximum(v, 0.0), (v > 0) * t], axis=1)


@pytest.mark.parametrize("k, seed", [(1, 0), (2, 1), (2, 2)])
def test_expectations_equal_monte_carlo(k, seed):
    """Every product of two and of four psi entries against 4 * 10^5 Gaussian draws,
    within 5 standard errors (fixed seed)."""
    sigma = _sigma(seed, k)
    st = GaussianState(sigma)
    zeta = np.random.default_rng(seed + 10).multivariate_normal(np.zeros(2 * k), sigma,
                                                                size=400_000)
    psi = _psi(zeta, k)
    worst = 0.0
    for order in (2, 4):
        for idx in itertools.combinations_with_replacement(range(2 * k), order):
            sample = np.prod(psi[:, list(idx)], axis=1)
            se = sample.std() / np.sqrt(len(sample))
            z = (st.expect(list(idx)) - sample.mean()) / se
            worst = max(worst, abs(z))
    assert worst <= 5, worst


def test_gram_covariance_is_symmetric_and_positive():
    f, w = gram_moments(_sigma(3, 2))
    np.testing.assert_allclose(w, w.T, rtol=0, atol=0)
    assert np.linalg.eigvalsh(w).min() > -1e-12


@pytest.mark.parametrize("depth", [1, 4])
@pytest.mark.parametrize("pair", [(-1.0, 1.0), (0.5, -0.5)])
def test_leading_order_is_the_exact_infinite_width_theory(depth, pair):
    spec = NetSpec(depth=depth, width=16, first_bias_var=0.1, bias_var=0.1)
    r = finite_width_gradient_covariance(spec, pair)
    exact = exact_gradient_covariance(spec, np.array(pair)[:, None])[:, :, 0, 0]
    np.testing.assert_allclose(r["cov_inf"], exact, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_single_input_matches_the_kurtosis_identity_to_first_order(depth):
    """Bias-free He ReLU, one input: E||x_L||^4 / (E||x_L||^2)^2 = prod (1 + 5/n_l), so the
    relative variance of the Gram entries is sum 5/n_l to first order, for the values and
    for the tangents (the kurtosis of df/dx is 3 prod (1 + 5/n))."""
    n = 40
    spec = NetSpec(depth=depth, width=n, first_bias_var=0.0)
    r = finite_width_gradient_covariance(spec, [1.0])
    pairs, C, K = r["pairs"], r["C"], r["K"]
    for p in (0, 1):
        i = pairs.index((p, p))
        assert C[i, i] / K[p, p] ** 2 == pytest.approx(5 * depth / n, rel=1e-9)
    np.testing.assert_array_equal(r["M"][1, 1], 0.0)


@pytest.mark.parametrize("spec", [NetSpec(depth=4, width=8, first_bias_var=0.1, bias_var=0.1),
                                  NetSpec(depth=5, width=32)])
def test_gradient_variance_has_no_correction(spec):
    """The variance of df/dx is preserved at every width: its correction is exactly 0."""
    r = finite_width_gradient_covariance(spec, [-1.0, 1.0])
    assert r["M"][2, 2] == 0.0 and r["M"][3, 3] == 0.0
    np.testing.assert_array_equal(np.diag(r["cov"]), np.diag(r["cov_inf"]))


def test_refuses_what_it_does_not_cover():
    for spec in (NetSpec(depth=2, batchnorm=True), NetSpec(arch="resnet", depth=2),
                 NetSpec(depth=2, activation="leaky")):
        with pytest.raises(ValueError, match="feedforward He ReLU"):
            finite_width_gradient_covariance(spec, [-1.0, 1.0])
    with pytest.raises(ValueError, match="points"):
        finite_width_gradient_covariance(NetSpec(depth=2), [0.0, 1.0, 2.0])


def test_predict_and_the_theory_command(capsys):
    from gradsim.cli.main import main
    from gradsim.compare import predict

    spec = NetSpec(depth=3, width=16, first_bias_var=0.1, bias_var=0.1)
    want = finite_width_gradient_covariance(spec, [-1.0, 1.0])["cov"]
    got = predict(spec, "finite", [-1.0], [1.0])
    assert got["covariance"] == pytest.approx(want[0, 1], rel=1e-12)
    assert got["variance"] == pytest.approx(want[0, 0], rel=1e-12)
    assert got["model"] == "finite width, first order in 1/n"
    same = predict(spec, "finite", [0.5], [0.5])
    assert same["correlation"] == pytest.approx(1.0, rel=1e-12)
    code = main(["theory", "--depth", "3", "--width", "16", "--batchnorm", "--model", "finite"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "finite-width theory covers" in err


@pytest.mark.slow
def test_finite_width_theory_meets_monte_carlo_where_infinite_width_does_not():
    """Width 16, depth 4, biases 0.1 on every layer, (x, y) = (-1, 1), 20000 Gram-space
    networks (seed 5): the exact infinite-width covariance is off by more than 5 standard
    errors, the first-order theory within 3."""
    from gradsim import GridSpec, simulate

    spec = NetSpec(depth=4, width=16, first_bias_var=0.1, bias_var=0.1)
    g = simulate(spec, GridSpec(points=2, lo=-1.0, hi=1.0), nets=20000, seed=5,
                 sampler="gram").grad[:, :, 0]
    prod = g[:, 0] * g[:, 1]
    est, se = prod.mean(), prod.std() / np.sqrt(len(prod))
    r = finite_width_gradient_covariance(spec, [-1.0, 1.0])
    assert abs(r["cov_inf"][0, 1] - est) > 5 * se
    assert abs(r["cov"][0, 1] - est) < 3 * se


def test_single_input_second_order_is_the_exact_identity_expanded():
    """One input, no biases, widths 7, 20, 13, 40: the Gram value G_L = G_0 prod S_l with
    independent S_l (mean 1, variance 5/n_l, third cumulant 44/n_l^2), so to second order
    the relative variance is e_1 + e_2 (e_1 = sum 5/n_l, e_2 = sum_(l<m) 25/(n_l n_m)),
    the relative third cumulant sum 44/n_l^2 + sum_(l<m) 150/(n_l n_m), and the mean has
    no correction at any order; the tangents alike."""
    widths = [7, 20, 13, 40]
    spec = NetSpec(depth=4, width=10, first_bias_var=0.0)
    r = finite_width_gradient_covariance(spec, [1.0], order=2, widths=widths)
    pairs, K = r["pairs"], r["K"]
    e1 = sum(5 / n for n in widths)
    e2 = sum(25 / (a * b) for a, b in itertools.combinations(widths, 2))
    t3 = sum(44 / n**2 for n in widths) + sum(150 / (a * b)
                                              for a, b in itertools.combinations(widths, 2))
    for p in (0, 1):
        i = pairs.index((p, p))
        assert r["C"][i, i] / K[p, p] ** 2 == pytest.approx(e1 + e2, rel=1e-7)
        assert r["k3"][i, i, i] / K[p, p] ** 3 == pytest.approx(t3, rel=1e-9)
    np.testing.assert_array_equal(r["M"], 0.0)
    first = finite_width_gradient_covariance(spec, [1.0], order=1, widths=widths)
    i = pairs.index((0, 0))
    assert first["C"][i, i] / K[0, 0] ** 2 == pytest.approx(e1, rel=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_variance_of_df_dx_has_no_correction_at_either_order(order):
    spec = NetSpec(depth=5, width=8, first_bias_var=0.1, bias_var=0.1)
    r = finite_width_gradient_covariance(spec, [-1.0, 1.0], order=order)
    np.testing.assert_array_equal(np.diag(r["cov"]), np.diag(r["cov_inf"]))
    np.testing.assert_array_equal(np.diagonal(r["cov_by_depth"], axis1=1, axis2=2),
                                  np.diagonal(r["cov_inf_by_depth"], axis1=1, axis2=2))


def test_second_order_term_scales_as_one_over_n_squared():
    """The orders separate: M1 n and M2 n^2 do not depend on n (same K at every width),
    and the first-order part at order 2 is the order-1 result."""
    out = {}
    for n in (16, 64):
        spec = NetSpec(depth=6, width=n, first_bias_var=0.1, bias_var=0.1)
        out[n] = finite_width_gradient_covariance(spec, [-1.0, 1.0], order=2)
        one = finite_width_gradient_covariance(spec, [-1.0, 1.0], order=1)
        np.testing.assert_allclose(out[n]["M1"], one["M"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(16 * out[16]["M1"], 64 * out[64]["M1"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(16**2 * out[16]["M2"], 64**2 * out[64]["M2"], rtol=1e-6,
                               atol=1e-9)
    assert abs(out[16]["M2"][2, 3]) > 1e-4  # a second order that is there


def test_order_and_widths_are_checked():
    spec = NetSpec(depth=3, width=8, first_bias_var=0.1)
    with pytest.raises(ValueError, match="order"):
        finite_width_gradient_covariance(spec, [-1.0, 1.0], order=3)
    with pytest.raises(ValueError, match="widths"):
        finite_width_gradient_covariance(spec, [-1.0, 1.0], widths=[8, 8])
    with pytest.raises(ValueError, match="widths"):
        finite_width_gradient_covariance(spec, [-1.0, 1.0], widths=[8, 0, 8])


@pytest.mark.slow
def test_second_order_meets_monte_carlo_at_depth_over_width_one_half():
    """Width 16, depth 8 (L/n = 1/2), biases 0.1, (x, y) = (-1, 1), 40000 Gram-space
    networks (seed 11): the correlation is more than 5 s.e. off the infinite-width theory
    and within 3 s.e. of the second-order theory."""
    from gradsim import GridSpec, simulate
    from gradsim.compare import pair_statistics

    spec = NetSpec(depth=8, width=16, first_bias_var=0.1, bias_var=0.1)
    g = simulate(spec, GridSpec(points=2, lo=-1.0, hi=1.0), nets=40000, seed=11,
                 sampler="gram").grad[:, :, 0]
    est = pair_statistics(g[:, 0], g[:, 1])["correlation"]
    r = finite_width_gradient_covariance(spec, [-1.0, 1.0], order=2)
    corr = {key: r[key][0, 1] for key in ("cov", "cov_inf")}
    z = {key: (float(est.value) - v) / float(est.se) for key, v in corr.items()}
    assert abs(z["cov_inf"]) > 5 and abs(z["cov"]) < 3, z
