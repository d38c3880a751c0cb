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
import math

import numpy as np

from .kernels import backend as get_backend

__all__ = ["Estimate", "Moments", "Stream", "acf_rows", "power_rows", "autocorrelation",
           "lag1", "spectrum", "spectral_slope", "estimate_rows", "pair_estimates",
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


def estimate_rows(rows, what="the statistic"):
    """Mean and standard error over networks of per-network rows, undefined rows dropped.

    Parameters
    ----------
    rows : array_like, shape (nets, K)
        One row per network; a row whose first entry is ``nan`` (an undefined statistic,
        such as the autocorrelation of a constant gradient) is left out.
    what : str
        Names the statistic in the error raised when fewer than 2 rows are defined.

    Returns
    -------
    Estimate
        ``value`` and ``se`` of shape ``(K,)``; ``n`` the rows kept.
    """
    r = np.asarray(rows, dtype=np.float64)
    r = r[~np.isnan(r[:, 0])]
    if len(r) < 2:
        raise ValueError(f"{what} needs at least 2 networks where it is defined")
    return _mean_se(r)


def pair_estimates(mean, cov, n):
    """Variance, covariance and correlation of two inputs from the moments of
    ``(g_x . g_x, g_y . g_y, g_x . g_y)`` over ``n`` networks.

    The correlation ``c / sqrt(a b)`` gets a delta-method standard error: with gradient
    ``(-corr / 2a, -corr / 2b, 1 / sqrt(ab))`` of the ratio and ``cov`` the covariance of
    the three sample means, ``se^2 = grad . cov . grad``.

    Parameters
    ----------
    mean : array_like, shape (3,)
        ``(a, b, c)``: mean ``g_x . g_x``, ``g_y . g_y`` and ``g_x . g_y``.
    cov : array_like, shape (3, 3)
        Covariance of those three means (the per-network covariance divided by ``n``).
    n : int

    Returns
    -------
    dict of Estimate
        ``variance`` (at ``x``), ``covariance`` and ``correlation`` (nan where a variance
        is not positive).
    """
    a, b, c = mean
    ok = a > 0 and b > 0
    corr = c / math.sqrt(a * b) if ok else math.nan
    grad = np.array([-0.5 * corr / a, -0.5 * corr / b, 1 / math.sqrt(a * b)]) if ok else None
    corr_se = float(np.sqrt(max(grad @ cov @ grad, 0.0))) if ok else math.nan
    return {"variance": Estimate(a, math.sqrt(cov[0, 0]), n),
            "covariance": Estimate(c, math.sqrt(cov[2, 2]), n),
            "correlation": Estimate(corr, corr_se, n)}


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
    return estimate_rows(acf_rows(_per_net(grad), max_lag),
                         "the autocorrelation (of non-constant gradients)")


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
    freqs, power = power_rows(_per_net(grad))
    return freqs, _mean_se(power)


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


def _moments_from_sums(n, s2, s4, s6, s8):
    """Variance and kurtosis (about zero) with standard errors from power sums."""
    if n < 2:
        raise ValueError("moments need at least 2 networks")
    a, b = s2 / n, s4 / n
    var_a = (s4 / n - a * a) * n / (n - 1)
    var_b = (s8 / n - b * b) * n / (n - 1)
    cov_ab = (s6 / n - a * b) * n / (n - 1)
    ga, gb = -2 * b / a**3, 1 / a**2  # d(b / a^2) / d(a, b)
    kse = np.sqrt(np.maximum(ga * ga * var_a + 2 * ga * gb * cov_ab + gb * gb * var_b, 0) / n)
    return (Estimate(a, np.sqrt(np.maximum(var_a, 0) / n), n), Estimate(b / a**2, kse, n))


def point_moments(grad, point):
    """Variance ``E[g^2]`` and kurtosis ``E[g^4] / E[g^2]^2`` of df/dx at grid ``point``.

    Moments are about zero (the gradient's mean is zero by the sign symmetry of the
    weights).  The kurtosis standard error is by the delta method, which needs
    ``E[g^8]``: for heavy-tailed gradients (narrow deep nets) it is itself noisy and
    too small below about 10^4 networks.  :meth:`Moments.point_moments` gives the same
    estimates streamed over any number of networks.

    Returns
    -------
    variance, kurtosis : Estimate
    """
    g = _per_net(grad)
    x = g[:, int(point)]
    x2 = x * x
    return _moments_from_sums(x.size, x2.sum(), (x2 * x2).sum(), (x2**3).sum(),
                              (x2**4).sum())


def _rows(grad):
    """``grad`` as float64 rows ``(nets, P >= 2)`` (any number of networks, unchecked values)."""
    g = np.asarray(grad, dtype=np.float64)
    if g.ndim == 3 and g.shape[2] == 1:
        g = g[..., 0]
    if g.ndim != 2 or g.shape[1] < 2:
        raise ValueError(f"grad must have shape (nets, points >= 2), got {g.shape}")
    return g


def acf_rows(grad, max_lag=None):
    """Per-network autocorrelations (the rows :func:`autocorrelation` averages).

    Returns
    -------
    ndarray, shape (nets, max_lag + 1)
        ``nan`` rows for networks whose gradient is constant along the grid (to
        rounding: mean-removed energy at most ``1e-20`` of the raw energy).
    """
    g = _rows(grad)
    p = g.shape[1]
    max_lag = p - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < p:
        raise ValueError(f"max_lag must be in [0, {p - 1}], got {max_lag}")
    c = g - g.mean(axis=1, keepdims=True)
    denom = (c * c).sum(axis=1)
    r = np.stack([(c[:, : p - k] * c[:, k:]).sum(axis=1) for k in range(max_lag + 1)], axis=1)
    # constant up to rounding: mean-removed energy below 1e-20 of the raw energy
    flat = denom <= 1e-20 * (g * g).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat[:, None], np.nan, r / denom[:, None])


def power_rows(grad):
    """Per-network periodograms (the rows :func:`spectrum` averages), DC excluded.

    Returns
    -------
    freqs : ndarray, shape (P // 2,)
    power : ndarray, shape (nets, P // 2)
    """
    g = _rows(grad)
    p = g.shape[1]
    c = g - g.mean(axis=1, keepdims=True)
    return np.fft.rfftfreq(p)[1:], np.abs(np.fft.rfft(c, axis=1)[:, 1:]) ** 2 / p


class Stream:
    """Streaming mean and standard error of a per-network vector statistic.

    Rows are added one network at a time in index order, so the sums, and the
    estimate, do not depend on how networks were split into chunks.  Rows containing
    ``nan`` (an undefined statistic, e.g. the autocorrelation of a constant gradient) are
    counted in :attr:`dropped` and left out, as the batch estimators do.

    Parameters
    ----------
    size : int
        Length of each row.
    """

    def __init__(self, size):
        self.count = 0
        self.dropped = 0
        self.total = np.zeros(size)
        self.squares = np.zeros(size)

    def update(self, rows):
        """Add rows, shape ``(m, size)``, in order."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.total.size:
            raise ValueError(f"rows must have shape (m, {self.total.size}), got {rows.shape}")
        for row in rows:
            if np.isnan(row).any():
                self.dropped += 1
                continue
            self.total += row
            self.squares += row * row
            self.count += 1
        return self

    def estimate(self):
        """:class:`Estimate` of the mean row (needs 2 rows)."""
        n = self.count
        if n < 2:
            raise ValueError("a streamed estimate needs at least 2 networks")
        mean = self.total / n
        var = np.maximum(self.squares - n * mean * mean, 0.0) / (n - 1)
        return Estimate(mean, np.sqrt(var / n), n)


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
    powers : ndarray, shape (4, K)
        ``sum_n g_n^2, g_n^4, g_n^6, g_n^8`` entrywise, for :meth:`point_moments`.
    """

    def __init__(self, size, backend="numba"):
        self.count = 0
        self.total = np.zeros(size)
        self.outer = np.zeros((size, size))
        self.powers = np.zeros((4, size))
        self._kern = get_backend(backend)

    def update(self, g):
        """Add networks, shape ``(m, K)``, in row order."""
        g = np.ascontiguousarray(g, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.total.size:
            raise ValueError(f"g must have shape (m, {self.total.size}), got {g.shape}")
        self._kern.accumulate_moments(g, self.total, self.outer)
        for row in g:
            sq = row * row
            self.powers += np.stack([sq, sq * sq, sq**3, sq**4])
        self.count += g.shape[0]
        return self

    def point_moments(self, index):
        """Variance and kurtosis of entry ``index``, as :func:`point_moments` computes them.

        Returns
        -------
        variance, kurtosis : Estimate
        """
        index = int(index)
        if not 0 <= index < self.total.size:
            raise ValueError(f"index must be in [0, {self.total.size - 1}], got {index}")
        return _moments_from_sums(self.count, *self.powers[:, index])

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
