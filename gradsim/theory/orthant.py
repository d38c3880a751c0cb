"""Orthant moments of a bivariate Gaussian: the closed forms behind every ReLU expectation.

``m_ij(rho) = E[a^i b^j 1{a > 0} 1{b > 0}]`` for ``(a, b)`` standard bivariate normal with
correlation ``rho``.  Any expectation of products of ReLU factors and their derivatives
at two inputs reduces to these: ``relu(a)^i relu(b)^j`` is ``a^i b^j`` on the positive
orthant, ``relu'(a) = 1{a > 0}``, and tangents enter linearly (Gaussian given the values),
so their moments are polynomials in ``a`` and ``b`` times orthant indicators.  Degrees
0, 1 and 2 of the arc-cosine kernels (Cho and Saul 2009) are ``m_00``, ``m_11`` and
``m_22``.  The finite-width theory needs products of up to four ReLU factors (order 4)
and their derivatives in the kernel entries.

The recursion (``docs/theory.md``, "Orthant moments"), from Stein's lemma
``E[a g(a, b)] = E[d_a g] + rho E[d_b g]`` with ``g = a^(i-1) b^j 1{a>0} 1{b>0}`` (the
derivative of an indicator is a point mass at 0, where ``b | a = 0 ~ N(0, s^2)``,
``s^2 = 1 - rho^2``)::

    m_ij = (i - 1) m_(i-2)j + rho j m_(i-1)(j-1)
           + [i = 1] s^j M_j / sqrt(2 pi) + rho [j = 0] s^(i-1) M_(i-1) / sqrt(2 pi)

with ``m_00 = (pi - arccos rho) / (2 pi)``, ``m_ji = m_ij``, and ``M_k = E[Z^k 1{Z > 0}]``
the half moments of a standard normal (``M_0 = 1/2``, ``M_1 = 1 / sqrt(2 pi)``,
``M_k = (k - 1) M_(k-2)``).  The derivative in ``rho`` is Price's theorem,
``d/drho E[f(a) g(b)] = E[f'(a) g'(b)]``::

    dm_ij/drho = i j m_(i-1)(j-1)                     (i, j >= 1)
               = j s^(j-1) M_(j-1) / sqrt(2 pi)        (i = 0, j >= 1; and symmetrically)
               = 1 / (2 pi s)                          (i = j = 0)

References
----------
Cho and Saul, "Kernel methods for deep learning", NeurIPS 2009.
Price, "A useful theorem for nonlinear devices having Gaussian inputs", IRE Trans.
Inform. Theory 4 (1958).
"""

from __future__ import annotations

import math

import numpy as np

from ..util import check_int

__all__ = ["half_moments", "orthant_moments", "orthant_moments_drho", "MAX_ORDER"]

#: Highest power of each variable (products of up to this many ReLU factors at a point).
MAX_ORDER = 8
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def half_moments(order):
    """``M_k = E[Z^k 1{Z > 0}]`` for ``k = 0 .. order``, ``Z`` standard normal.

    ``M_0 = 1/2``, ``M_1 = 1 / sqrt(2 pi)``, ``M_k = (k - 1) M_(k-2)``.
    """
    order = check_int("order", order, 0, MAX_ORDER)
    m = np.empty(order + 1)
    for k in range(order + 1):
        m[k] = 0.5 if k == 0 else (1.0 / _SQRT_2PI if k == 1 else (k - 1) * m[k - 2])
    return m


def _check_rho(rho):
    rho = np.asarray(rho, dtype=np.float64)
    if not np.all(np.isfinite(rho)) or np.any(np.abs(rho) > 1.0):
        raise ValueError("rho must contain finite numbers in [-1, 1]")
    return rho


def orthant_moments(rho, order=4):
    """``m[i, j] = E[a^i b^j 1{a > 0} 1{b > 0}]``, ``i, j = 0 .. order``.

    Parameters
    ----------
    rho : float or array_like
        Correlation(s) of the standard bivariate normal ``(a, b)``, in ``[-1, 1]``.
    order : int
        Highest power, ``0 <= order <= MAX_ORDER``.

    Returns
    -------
    ndarray, shape (order + 1, order + 1) + shape of ``rho``
        Symmetric in ``(i, j)``; for variances ``q_a, q_b`` multiply by
        ``q_a^(i/2) q_b^(j/2)``.
    """
    order = check_int("order", order, 0, MAX_ORDER)
    rho = _check_rho(rho)
    s = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
    big = np.clip(rho, -1.0, 1.0)
    half = half_moments(order)
    m = np.zeros((order + 1, order + 1) + rho.shape)
    m[0, 0] = (np.pi - np.arccos(big)) / (2.0 * np.pi)
    for total in range(1, 2 * order + 1):  # by total degree, so every term is known
        for i in range(max(0, total - order), min(order, total) + 1):
            j = total - i
            if i < j:  # m_ij = m_ji: computed from the larger index
                continue
            v = (i - 1) * m[i - 2, j] if i >= 2 else np.zeros_like(rho)
            if j >= 1:
                v = v + rho * j * m[i - 1, j - 1]
            if i == 1:
                v = v + s**j * half[j] / _SQRT_2PI
            if j == 0:
                v = v + rho * s ** (i - 1) * half[i - 1] / _SQRT_2PI
            m[i, j] = v
            m[j, i] = v
    return m


def orthant_moments_drho(rho, order=4):
    """``d m[i, j] / d rho`` (Price's theorem), same shape as :func:`orthant_moments`.

    Every entry is finite except ``(0, 0)``, ``1 / (2 pi sqrt(1 - rho^2))``, which is inf at
    ``|rho| = 1``.
    """
    order = check_int("order", order, 0, MAX_ORDER)
    rho = _check_rho(rho)
    s = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
    half = half_moments(order)
    m = orthant_moments(rho, order)
    d = np.zeros_like(m)
    with np.errstate(divide="ignore"):
        d[0, 0] = 1.0 / (2.0 * np.pi * s)
    for j in range(1, order + 1):
        d[0, j] = d[j, 0] = j * s ** (j - 1) * half[j - 1] / _SQRT_2PI
    for i in range(1, order + 1):
        for j in range(1, order + 1):
            d[i, j] = i * j * m[i - 1, j - 1]
    return d
