"""Estimators on processes with known answers: white noise, random walks, AR(1)."""

import numpy as np
import pytest

from gradsim.compare import assert_agrees, zscore
from gradsim.stats import (
    activity_summary,
    autocorrelation,
    brown_noise,
    correlation_matrix,
    covariance_matrix,
    lag1,
    offdiagonal_ratio,
    point_moments,
    spectral_slope,
    spectrum,
    white_noise,
)


def test_white_noise_lag1_is_zero():
    """T14: white lag-1 ~ 0 (within 4 standard errors plus the -1/P estimator bias)."""
    assert_agrees(-1 / 256, lag1(white_noise(400, 256, seed=1)), name="white lag-1")
    acf = autocorrelation(white_noise(400, 256, seed=2), max_lag=10)
    assert acf.value[0] == pytest.approx(1.0)
    want = np.where(np.arange(11) == 0, 1.0, -1 / 256)
    assert_agrees(want, acf, allowance=1e-12, name="white autocorrelation")


def test_brown_noise_lag1_is_near_one():
    """T14: brown lag-1 ~ 0.98 on 256 points."""
    est = lag1(brown_noise(400, 256, seed=3))
    assert 0.97 < est.value < 0.995 and est.se < 0.002


def test_ar1_autocorrelation():
    rng = np.random.default_rng(4)
    phi, nets, p = 0.7, 200, 2048
    x = np.zeros((nets, p))
    e = rng.standard_normal((nets, p))
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, p):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    acf = autocorrelation(x, max_lag=3)
    want = phi ** np.arange(4)
    # the mean-removed biased estimator is low by O((1 + phi) / ((1 - phi) P)) ~ 0.003 here
    assert_agrees(want, acf, allowance=0.01, name="AR(1) autocorrelation")


def test_spectral_slopes():
    freqs, power = spectrum(white_noise(200, 256, seed=5))
    assert abs(spectral_slope(freqs, power)) < 0.15
    freqs, power = spectrum(brown_noise(200, 256, seed=6))
    assert -2.3 < spectral_slope(freqs, power) < -1.7
    # Parseval: total periodogram power equals the sum of squares of the mean-removed signal
    g = white_noise(3, 64, seed=7)
    c = g - g.mean(axis=1, keepdims=True)
    full = np.abs(np.fft.fft(c, axis=1)) ** 2 / 64
    np.testing.assert_allclose(full.sum(axis=1), (c * c).sum(axis=1), rtol=1e-12)


def test_point_moments_of_gaussians():
    g = white_noise(20000, 4, seed=8) * 2.0
    var, kurt = point_moments(g, 1)
    assert_agrees(4.0, var, name="variance")
    assert_agrees(3.0, kurt, name="kurtosis")


def test_constant_gradients_are_dropped_or_refused():
    g = np.vstack([np.ones(8), white_noise(3, 8, seed=0)])
    assert autocorrelation(g).n == 3
    with pytest.raises(ValueError, match="non-constant"):
        autocorrelation(np.ones((3, 8)))
    with pytest.raises(ValueError, match="shape"):
        lag1(np.ones(8))
    with pytest.raises(ValueError, match="finite"):
        lag1(np.full((3, 8), np.nan))
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(white_noise(3, 8), max_lag=8)


def _correlated(n, p, rho, seed):
    """n draws of a Gaussian p-vector with covariance rho^|i-j| (scaled by 2)."""
    idx = np.arange(p)
    cov = 2.0 * rho ** np.abs(idx[:, None] - idx[None, :])
    return np.random.default_rng(seed).multivariate_normal(np.zeros(p), cov, size=n), cov


def test_covariance_and_correlation_matrices_on_known_gaussians():
    g, cov = _correlated(4000, 6, 0.7, seed=11)
    # 36 entries each: 4.5 standard errors
    assert_agrees(cov, covariance_matrix(g), nsigma=4.5, name="covariance matrix")
    r = correlation_matrix(g)
    np.testing.assert_allclose(np.diag(r.value), 1.0, rtol=1e-14)
    assert np.all(np.diag(r.se) == 0)
    # the diagonal is 1 to rounding, with standard error 0: the allowance covers rounding
    assert_agrees(cov / 2.0, r, nsigma=4.5, allowance=1e-14, name="correlation matrix")


def test_correlation_standard_error_is_calibrated():
    """Across 200 independent experiments the z-scores of one entry have unit spread."""
    zs = []
    for seed in range(200):
        g, cov = _correlated(300, 2, 0.5, seed=100 + seed)
        r = correlation_matrix(g)
        zs.append(zscore(r.value[0, 1], 0.5, r.se[0, 1]))
    assert 0.85 < np.std(zs) < 1.15


def test_offdiagonal_ratio_and_activity_summary():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((50, 8, 30))
    assert_agrees(0.0, offdiagonal_ratio(g), name="off-diagonal ratio of independent draws")
    same = np.repeat(rng.standard_normal((50, 1, 30)), 8, axis=1)
    assert offdiagonal_ratio(same).value == pytest.approx(1.0)
    act = np.stack([np.full((5, 3), 0.5), np.full((5, 3), 0.25)], axis=-1)
    active, coactive = activity_summary(act)
    np.testing.assert_allclose(active.value, 0.5)
    np.testing.assert_allclose(coactive.value, 0.25)
    with pytest.raises(ValueError, match="activity"):
        activity_summary(np.zeros((5, 3)))


def test_streamed_statistics_equal_the_batch_estimators_whatever_the_chunking():
    from gradsim import GridSpec, NetSpec, simulate
    from gradsim.stats import autocorrelation, point_moments, spectrum

    spec = NetSpec(depth=3, width=16)
    runs = [simulate(spec, GridSpec(points=24), nets=30, seed=4, chunk=c, acf=True,
                     spectrum=True, moments=True, backend="numpy") for c in (1, 7, 30)]
    for r in runs[1:]:
        for name in ("acf", "spectrum"):
            a, b = getattr(r, name), getattr(runs[0], name)
            assert np.array_equal(a.total, b.total) and np.array_equal(a.squares, b.squares)
        assert np.array_equal(r.moments.powers, runs[0].moments.powers)
    r = runs[1]
    for est, ref in ((r.acf.estimate(), autocorrelation(r.grad)),
                     (r.spectrum.estimate(), spectrum(r.grad)[1]),
                     (r.moments.point_moments(3)[1], point_moments(r.grad, 3)[1])):
        np.testing.assert_allclose(est.value, ref.value, rtol=1e-12)
        np.testing.assert_allclose(est.se, ref.se, rtol=1e-8, atol=1e-15)
        assert est.n == ref.n == 30


def test_stream_drops_undefined_rows_and_rejects_bad_shapes():
    from gradsim.stats import Stream, acf_rows

    rows = acf_rows(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 0.0], [0.0, 1.0, 3.0]]))
    assert np.isnan(rows[0]).all()
    s = Stream(3).update(rows)
    assert (s.count, s.dropped) == (2, 1)
    np.testing.assert_allclose(s.estimate().value, np.nanmean(rows, axis=0))
    with pytest.raises(ValueError, match="shape"):
        s.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        Stream(3).update(rows[:2]).estimate()
