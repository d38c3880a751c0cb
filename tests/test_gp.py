"""Gaussian-process limits: the shallow net's diffusion coefficient, and the expected
autocorrelation under the exact infinite-width covariance against real networks."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradsim import GridSpec, NetSpec, simulate
from gradsim.compare import assert_agrees
from gradsim.stats import brown_noise, lag1, white_noise
from gradsim.theory.exact import exact_gradient_covariance
from gradsim.theory.gp import gp_sample, gp_statistics, shallow_diffusion


@given(st.floats(-3, 3), st.floats(0.5, 4), st.floats(0.1, 4), st.floats(0.2, 3))
def test_shallow_diffusion_is_the_slope_of_the_exact_covariance(x, wv, fb, rv):
    """D(x) = lim 2 (C(x, x) - C(x, x + h)) / h from the exact depth-1 covariance."""
    spec = NetSpec(depth=1, weight_var=wv, first_bias_var=fb, readout_var=rv)
    h = 1e-5
    c = exact_gradient_covariance(spec, [[x], [x + h]], backend="numpy")[..., 0, 0]
    slope = 2 * (c[0, 0] - c[0, 1]) / h
    d = shallow_diffusion(spec, x)
    assert slope == pytest.approx(d, rel=1e-3, abs=1e-9)


def test_gp_statistics_of_reference_noises():
    """Identity covariance is white noise, min(i, j) is a random walk: the sampled
    expectations agree with the reference noises' own estimates."""
    p = 128
    i = np.arange(1, p + 1)
    for cov, ref in ((np.eye(p), white_noise(800, p, seed=2)),
                     (np.minimum.outer(i, i).astype(float), brown_noise(800, p, seed=2))):
        th = gp_statistics(cov, nets=2000, seed=1)["lag1"]
        assert_agrees(th.value, lag1(ref), theory_se=th.se, name="lag-1")
    assert gp_statistics(np.eye(p), nets=2000, seed=1)["lag1"].value < 0.0


def test_gp_statistics_are_reproducible():
    cov = exact_gradient_covariance(NetSpec(depth=2), GridSpec(points=16).points_array())
    a = gp_statistics(cov[..., 0, 0], nets=300, seed=3)
    b = gp_statistics(cov[..., 0, 0], nets=300, seed=3)
    assert np.array_equal(a["acf"].value, b["acf"].value) and a["acf"].n == 300
    assert gp_sample(cov[..., 0, 0], 5, seed=3).shape == (5, 16)


@pytest.mark.parametrize("depth", [1, 3])
def test_exact_gp_autocorrelation_matches_real_networks(depth):
    """The lag-1 autocorrelation of real width-200 nets (120 nets, 64 points) against its
    expectation under the exact infinite-width Gaussian process (T7 at depth 1), within
    4 combined standard errors.  At depth 1 the covariance is exact at any width."""
    spec = NetSpec(depth=depth, width=200)
    grid = GridSpec(points=64)
    cov = exact_gradient_covariance(spec, grid.points_array())[..., 0, 0]
    th = gp_statistics(cov, nets=4000, seed=5)["lag1"]
    g = simulate(spec, grid, nets=120, seed=9, backend="numpy").grad
    est = lag1(g)
    assert_agrees(th.value, est, theory_se=th.se, name=f"lag-1 at depth {depth}")
    if depth == 1:
        assert est.value > 0.9


def test_gp_bad_input():
    with pytest.raises(ValueError, match="depth=1"):
        shallow_diffusion(NetSpec(depth=2), 0.0)
    with pytest.raises(ValueError, match="first_bias_var"):
        shallow_diffusion(NetSpec(depth=1, first_bias_var=0.0), 0.0)
    with pytest.raises(ValueError, match="finite"):
        shallow_diffusion(NetSpec(depth=1), math.nan)
    with pytest.raises(ValueError, match="square"):
        gp_statistics(np.ones((3, 4)))
    with pytest.raises(ValueError, match="semi-definite"):
        gp_statistics(-np.eye(3))
    with pytest.raises(ValueError, match="nets"):
        gp_statistics(np.eye(3), nets=1)
    with pytest.raises(ValueError, match="constant"):
        gp_statistics(np.ones((4, 4)), nets=10)
