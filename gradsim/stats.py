"""Estimators over networks, each with a standard error, and a streaming accumulator.

Estimators take gradients along a grid, shape ``(nets, points)``, treat networks as
independent draws and return an :class:`Estimate` (mean over networks and its
standard error).  :class:`Moments` keeps running sums of ``g`` and ``g g^T`` over
networks, added one network at a time in index order (so chunking never changes them),
using the kernel ``accumulate_moments``.  Memory is ``K^2`` for ``K`` gradient entries,
whatever the number of networks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._util import get_backend

__all__ = ["Estimate", "Moments", "autocorrelation", "lag1", "spectrum", "spectral_slope",
           "point_moments", "white_noise", "brown_noise", "covariance_matrix",
           "correlation_matrix", "offdiagonal_ratio", "activity_summary"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: ``value`` and its standard error ``se`` from ``n`` networks."""

    value: np.ndarray
    se: np.ndarray
    n: int


def _per_net(grad):
    g = np.asarray(grad, dtype=np.float64)
    if g.ndim == 3 and g.shape[2] == 1:
        g = g[..., 0]
    if g.ndim != 2 or g.shape[0] < 2 or g.shape[1] < 2:
        raise ValueError(f"grad must have shape (nets >= 2, points >= 2), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grad must be finite")
    return g


def _mean_se(x):
    return Estimate(x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(x.shape[0]), x.shape[0])


def covariance_matrix(grad):
    """``C(i, j) = E[g_i g_j]`` over networks (the paper's covariance), shape ``(P, P)``."""
    g = _per_net(grad)
    n = g.shape[0]
    m1 = g.T @ g / n
    m22 = (g * g).T @ (g * g) / n
    return Estimate(m1, np.sqrt(np.maximum(m22 - m1 * m1, 0.0) / (n - 1)), n)


def correlation_matrix(grad):
    """``R(i, j) = C(i, j) / sqrt(C(i) C(j))`` with delta-method standard errors, ``(P, P)``.

    The standard error uses ``E[g_i g_j]``, ``E[g_i^2 g_j^2]`` and ``E[g_i^3 g_j]`` over
    networks; it is 0 on the diagonal, where ``R = 1`` exactly.
    """
    g = _per_net(grad)
    n = g.shape[0]
    m1 = g.T @ g / n
    m22 = (g * g).T @ (g * g) / n
    m31 = (g**3).T @ g / n
    a = np.diag(m1)
    ai, aj = a[:, None], a[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = m1 / np.sqrt(ai * aj)
        var_c = m22 - m1**2
        var_a = np.diag(m22) - a**2
        cov_ca = m31 - m1 * ai          # Cov(g_i g_j, g_i^2)
        cov_cb = m31.T - m1 * aj        # Cov(g_i g_j, g_j^2)
        cov_ab = m22 - ai * aj          # Cov(g_i^2, g_j^2)
        s = np.sqrt(ai * aj)
        var_r = (var_c / (ai * aj)
                 + r**2 / 4 * (var_a[:, None] / ai**2 + var_a[None, :] / aj**2
                               + 2 * cov_ab / (ai * aj))
                 - r * (cov_ca / (ai * s) + cov_cb / (aj * s)))
    se = np.sqrt(np.maximum(var_r, 0.0) / (n - 1))
    np.fill_diagonal(se, 0.0)
    return Estimate(r, se, n)


def offdiagonal_ratio(grad):
    """Per network, mean off-diagonal over mean diagonal of ``G G^T`` (the T3 ratio).

    Parameters
    ----------
    grad : array_like, shape (nets, P, d)
        Gradient vectors at ``P >= 2`` inputs.

    Returns
    -------
    Estimate
        Mean of the per-network ratio and its standard error.
    """
    g = np.asarray(grad, dtype=np.float64)
    if g.ndim == 2:
        g = g[..., None]
    if g.ndim != 3 or g.shape[0] < 2 or g.shape[1] < 2:
        raise ValueError(f"grad must have shape (nets >= 2, points >= 2, d), got {g.shape}")
    ip = np.einsum("npd,nqd->npq", g, g)
    p = g.shape[1]
    diag = np.einsum("npp->np", ip)
    off = (ip.sum(axis=(1, 2)) - diag.sum(axis=1)) / (p * (p - 1))
    return _mean_se(off / diag.mean(axis=1))


def activity_summary(activity):
    """Active and co-active proportions per activation site, averaged over networks.

    Parameters
    ----------
    activity : array_like, shape (nets, n_act_layers, 2)
        As recorded by ``simulate(..., activity=True)``.

    Returns
    -------
    active, coactive : Estimate
        Each of shape ``(n_act_layers,)``.
    """
    a = np.asarray(activity, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] != 2 or a.shape[0] < 2:
        raise ValueError(f"activity must have shape (nets >= 2, layers, 2), got {a.shape}")
    return _mean_se(a[..., 0]), _mean_se(a[..., 1])


def autocorrelation(grad, max_lag=None):
    """Autocorrelation along the grid, averaged over networks.

    Per network, with the network's own mean removed, the biased (standard) estimator
    ``r(k) = sum_{t < P-k} (g_t - m)(g_{t+k} - m) / sum_t (g_t - m)^2``; networks whose
    gradient is constant (``r`` undefined) are dropped.

    Parameters
    ----------
    grad : array_like, shape (nets, P)
    max_lag : int, optional
        Largest lag (default ``P - 1``).

    Returns
    -------
    Estimate
        ``value`` and ``se`` of shape ``(max_lag + 1,)``; ``value[0] = 1``.
    """
    g = _per_net(grad)
    p = g.shape[1]
    max_lag = p - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < p:
        raise ValueError(f"max_lag must be in [0, {p - 1}], got {max_lag}")
    c = g - g.mean(axis=1, keepdims=True)
    denom = (c * c).sum(axis=1)
    keep = denom > 0
    if keep.sum() < 2:
        raise ValueError("autocorrelation needs at least 2 networks with non-constant gradients")
    c, denom = c[keep], denom[keep]
    r = np.stack([(c[:, : p - k] * c[:, k:]).sum(axis=1) for k in range(max_lag + 1)], axis=1)
    return _mean_se(r / denom[:, None])


def lag1(grad):
    """Lag-1 autocorrelation (the one-number shattering summary), as an :class:`Estimate`."""
    est = autocorrelation(grad, max_lag=1)
    return Estimate(est.value[1], est.se[1], est.n)


def spectrum(grad):
    """Power spectrum along the grid: mean periodogram of the mean-removed gradient.

    Returns
    -------
    freqs : ndarray, shape (P // 2,)
        Frequencies in cycles per grid step, DC excluded.
    power : Estimate
        ``|rfft(g - m)|^2 / P`` at those frequencies, averaged over networks.
    """
    g = _per_net(grad)
    p = g.shape[1]
    c = g - g.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(c, axis=1)[:, 1:]) ** 2 / p
    return np.fft.rfftfreq(p)[1:], _mean_se(power)


def spectral_slope(freqs, power, fmax=0.25):
    """Least-squares slope of log power against log frequency for ``freqs <= fmax``.

    White noise gives about 0, brown noise (a random walk) about -2.
    """
    freqs = np.asarray(freqs, dtype=float)
    value = getattr(power, "value", power)
    sel = (freqs > 0) & (freqs <= fmax) & (np.asarray(value) > 0)
    if sel.sum() < 2:
        raise ValueError("spectral_slope needs at least 2 positive frequencies below fmax")
    return float(np.polyfit(np.log(freqs[sel]), np.log(np.asarray(value)[sel]), 1)[0])


def point_moments(grad, point):
    """Variance ``E[g^2]`` and kurtosis ``E[g^4] / E[g^2]^2`` of df/dx at grid ``point``.

    Moments are about zero (the gradient's mean is zero by the sign symmetry of the
    weights).  The kurtosis standard error is by the delta method.

    Returns
    -------
    variance, kurtosis : Estimate
    """
    g = _per_net(grad)
    x = g[:, int(point)]
    n = x.size
    m2, m4 = x**2, x**4
    a, b = m2.mean(), m4.mean()
    cov = np.cov(np.stack([m2, m4]))
    grad_k = np.array([-2 * b / a**3, 1 / a**2])  # d(b/a^2)/d(a, b)
    kurt_se = float(np.sqrt(grad_k @ cov @ grad_k / n))
    return (Estimate(a, m2.std(ddof=1) / np.sqrt(n), n), Estimate(b / a**2, kurt_se, n))


def white_noise(nets, points, seed=0):
    """Reference white noise, shape ``(nets, points)``: i.i.d. standard normal."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return rng.standard_normal((nets, points))


def brown_noise(nets, points, seed=0):
    """Reference brown noise, shape ``(nets, points)``: random walks (cumulated white noise)."""
    return np.cumsum(white_noise(nets, points, seed), axis=1)


class Moments:
    """Streaming first and second moments of a ``K``-vector over networks.

    Parameters
    ----------
    size : int
        ``K``, the length of each network's (flattened) gradient.
    backend : {'numba', 'numpy'}
        Kernel used to add networks.

    Attributes
    ----------
    count : int
        Networks added.
    total : ndarray, shape (K,)
        ``sum_n g_n``.
    outer : ndarray, shape (K, K)
        ``sum_n g_n g_n^T``.
    """

    def __init__(self, size, backend="numba"):
        self.count = 0
        self.total = np.zeros(size)
        self.outer = np.zeros((size, size))
        self._kern = get_backend(backend)

    def update(self, g):
        """Add networks, shape ``(m, K)``, in row order."""
        g = np.ascontiguousarray(g, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.total.size:
            raise ValueError(f"g must have shape (m, {self.total.size}), got {g.shape}")
        self._kern.accumulate_moments(g, self.total, self.outer)
        self.count += g.shape[0]
        return self

    @property
    def mean(self):
        """``E[g]``, shape ``(K,)``."""
        return self.total / self.count

    @property
    def second_moment(self):
        """``E[g g^T]``, shape ``(K, K)``: the paper's covariance ``C(i, j)``."""
        return self.outer / self.count

    @property
    def covariance(self):
        """Unbiased centred covariance over networks, shape ``(K, K)`` (needs 2 networks)."""
        if self.count < 2:
            raise ValueError("covariance needs at least 2 networks")
        m = self.mean
        return (self.outer - self.count * np.multiply.outer(m, m)) / (self.count - 1)

    @property
    def correlation(self):
        """``C(i, j) / sqrt(C(i) C(j))`` from the second moment, shape ``(K, K)``."""
        c = self.second_moment
        d = np.sqrt(np.diag(c))
        with np.errstate(invalid="ignore", divide="ignore"):
            return c / np.multiply.outer(d, d)
