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
           "point_moments", "white_noise", "brown_noise"]


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
