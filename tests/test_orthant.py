"""Orthant moments of a bivariate normal against scipy quadrature, and their identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from gradsim.theory.orthant import half_moments, orthant_moments, orthant_moments_drho

RHOS = [-0.95, -0.6, -0.1, 0.0, 0.3, 0.8, 0.97]


def _quad(i, j, rho):
    """E[a^i b^j; a > 0, b > 0] by 2-D quadrature: b = rho a + s w, w standard normal,
    over a > 0 and w > -rho a / s."""
    s = math.sqrt(1.0 - rho * rho)

    def f(w, a):
        b = rho * a + s * w
        return a**i * b**j * math.exp(-0.5 * (a * a + w * w)) / (2.0 * math.pi)

    val, err = integrate.dblquad(f, 0.0, 12.0, lambda a: -rho * a / s, lambda a: 12.0,
                                 epsabs=1e-13, epsrel=1e-12)
    return val, err


def test_half_moments():
    want = [0.5, 1 / math.sqrt(2 * math.pi), 0.5, 2 / math.sqrt(2 * math.pi), 1.5,
            8 / math.sqrt(2 * math.pi)]
    np.testing.assert_allclose(half_moments(5), want, rtol=1e-15)


@pytest.mark.parametrize("rho", RHOS)
def test_orthant_moments_equal_quadrature(rho):
    m = orthant_moments(rho, 4)
    for i in range(5):
        for j in range(5):
            val, err = _quad(i, j, rho)
            assert abs(m[i, j] - val) <= 1e-9 * max(1.0, abs(val)) + 10 * err, (i, j, m[i, j],
                                                                                 val)


def test_arc_cosine_kernels_of_degree_0_1_2():
    """Cho and Saul: m_nn = J_n(theta) / (2 pi) with J_0 = pi - theta,
    J_1 = sin + (pi - theta) cos, J_2 = 3 sin cos + (pi - theta)(1 + 2 cos^2)."""
    rho = np.linspace(-1, 1, 41)
    t = np.arccos(rho)
    m = orthant_moments(rho, 2)
    np.testing.assert_allclose(m[0, 0], (np.pi - t) / (2 * np.pi), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(m[1, 1], (np.sin(t) + (np.pi - t) * rho) / (2 * np.pi),
                               rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(
        m[2, 2], (3 * np.sin(t) * rho + (np.pi - t) * (1 + 2 * rho**2)) / (2 * np.pi),
        rtol=1e-13, atol=1e-16)


def test_limits_and_symmetry():
    """rho = 1: a = b, so m_ij = M_(i+j); rho = -1: b = -a, the open orthant has
    probability 0, so m_ij = 0; symmetric in (i, j)."""
    half = half_moments(8)
    m = orthant_moments(1.0, 4)
    for i in range(5):
        for j in range(5):
            assert m[i, j] == pytest.approx(half[i + j], rel=1e-14, abs=1e-16)
    np.testing.assert_allclose(orthant_moments(-1.0, 4), 0.0, atol=1e-15)
    m = orthant_moments(np.array(RHOS), 6)
    np.testing.assert_array_equal(m, np.swapaxes(m, 0, 1))


@pytest.mark.parametrize("rho", RHOS)
def test_drho_is_prices_theorem_and_the_finite_difference(rho):
    d = orthant_moments_drho(rho, 4)
    h = 1e-6
    fd = (orthant_moments(rho + h, 4) - orthant_moments(rho - h, 4)) / (2 * h)
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-9)


def test_bad_input_names_the_parameter():
    for bad in (1.5, float("nan"), [0.2, float("inf")]):
        with pytest.raises(ValueError, match="rho"):
            orthant_moments(bad)
    with pytest.raises(ValueError, match="order"):
        orthant_moments(0.1, 9)
    with pytest.raises(ValueError, match="order"):
        orthant_moments(0.1, -1)
