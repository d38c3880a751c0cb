"""Gaussian-process limits of input gradients: the shallow net's brown-noise limit and
grid statistics (autocorrelation, spectrum) of any infinite-width gradient.

At infinite width (no batch norm) df/dx along a grid is a zero-mean Gaussian process
whose covariance is :func:`gradsim.exact.exact_gradient_covariance`.  Statistics that
are nonlinear in the gradient, such as the mean-removed autocorrelation estimator, have
no closed form; we estimate their expectation under the limit by sampling the Gaussian
process itself (exact sampling from the exact covariance, so the only error is the
stated sampling error).  Results carry the label ``LABELS['exact-gp']``.

Shallow nets: for one hidden layer, ``g(x) = sum_i v_i w_i 1[w_i x + b_i > 0]`` is
piecewise constant, jumping by ``+- v_i w_i`` at each kink ``t_i = -b_i / w_i``.  Its
covariance does not depend on the width, and as the width grows ``g`` tends to a
Gaussian process whose increments have variance ``E[(g(x + h) - g(x))^2] = D(x) |h| +
O(h^2)``: locally a Brownian motion (brown noise).  With ``w ~ N(0, s)``,
``b ~ N(0, sigma_b^2)`` and readout variance ``r``,
``D(x) = r E[|w|^3 p_b(-w x)] = 2 r / (pi sqrt(s sigma_b^2) lambda^2)``,
``lambda = 1 / s + x^2 / sigma_b^2`` (:func:`shallow_diffusion`).
"""

from __future__ import annotations

import math

import numpy as np

from ..stats import Estimate, acf_rows, power_rows
from ..util import check_int
from .base import LABELS, range_error, require

__all__ = ["shallow_diffusion", "gp_sample", "gp_statistics", "BLOCK"]

#: Gaussian-process draws per block in :func:`gp_statistics`.
BLOCK = 256
#: Variances times points above which a sample's sums of squares and periodogram could
#: overflow float64 (draws reach about 40 standard deviations at most, mean removal
#: doubles them): ``max / 10^4``.
_MAX_COV = float(np.finfo(np.float64).max) / 1e4
#: Variances below which a sample's squares lose precision (come near float64's
#: subnormal numbers): ``tiny * 2^52 * 10^4``.
_MIN_COV = float(np.finfo(np.float64).tiny) * 2.0**52 * 1e4



def shallow_diffusion(spec, x):
    """Local diffusion coefficient ``D(x)`` of a one-hidden-layer net's gradient.

    ``E[(g(x + h) - g(x))^2] = D(x) |h| + O(h^2)`` at any width: each kink between
    ``x`` and ``x + h`` adds ``(v w)^2``.  A brown-noise (random-walk) gradient has
    exactly this form; white noise would have ``O(1)`` increments.

    Parameters
    ----------
    spec : NetSpec
        Feedforward, ``depth = 1``, ``input_dim = 1``, ReLU, He or orthogonal init
        irrelevant (one hidden layer), first-layer bias variance ``> 0``.
    x : array_like
        Positions.

    Returns
    -------
    ndarray
        ``D(x) = 2 r / (pi sqrt(s sigma_b^2) lambda^2)``, ``lambda = 1/s + x^2/sigma_b^2``.

    References
    ----------
    Neal, "Bayesian learning for neural networks", 1996 (one hidden layer at infinite
    width is a Gaussian process); Balduzzi et al., ICML 2017 (its gradient is brown noise).
    """
    require(spec, "shallow")
    if spec.first_bias_var <= 0:
        raise ValueError("shallow_diffusion needs first_bias_var > 0 (kinks spread over x)")
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    s, fb = spec.weight_var, spec.first_bias_var
    with np.errstate(all="ignore"):  # extreme variances: checked below
        lam = 1.0 / s + x * x / fb
        out = 2.0 * spec.readout_var / (math.pi * math.sqrt(s * fb) * lam * lam)
    if not np.all(np.isfinite(out)):
        raise range_error("shallow_diffusion", "D(x) leaves float64 range", None, spec,
                          "weight_var and first_bias_var must not be extreme")
    return out


def _factor(cov):
    cov = np.asarray(cov, dtype=float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 2:
        raise ValueError(f"cov must be a square (P, P) matrix with P >= 2, got {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("cov must be finite")
    top = float(np.abs(np.diagonal(cov)).max())
    if top > _MAX_COV / cov.shape[0]:
        raise ValueError(f"cov has variances up to {top:.3g}: the samples' sums of squares "
                         f"would overflow float64 (at most {_MAX_COV / cov.shape[0]:.3g} for "
                         f"{cov.shape[0]} points); divide cov by a constant (the "
                         "autocorrelation does not change)")
    if 0 < top < _MIN_COV:
        raise ValueError(f"cov has variances of at most {top:.3g}, below float64's normal "
                         "range for its samples; multiply cov by a constant (the "
                         "autocorrelation does not change)")
    with np.errstate(over="ignore", invalid="ignore"):
        w, v = np.linalg.eigh((cov + cov.T) / 2)
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(v))):
        raise ValueError("cov: its eigendecomposition leaves float64 range")
    if w.min() < -1e-8 * max(abs(w).max(), 1e-300):
        raise ValueError("cov is not positive semi-definite")
    return v * np.sqrt(np.maximum(w, 0.0))


def gp_sample(cov, nets, seed=0):
    """``nets`` draws of a zero-mean Gaussian process with covariance ``cov`` (P, P).

    Uses the symmetric square root from an eigendecomposition (so rank-deficient
    covariances, like a looks-linear net's constant gradient, work).  Draws come from
    ``numpy.random.default_rng(seed)``.

    Returns
    -------
    ndarray, shape (nets, P)
    """
    nets = check_int("nets", nets, 1, 10**7)
    seed = check_int("seed", seed, 0)
    f = _factor(cov)
    z = np.random.default_rng(seed).standard_normal((nets, f.shape[1]))
    return z @ f.T


def gp_statistics(cov, nets=4000, seed=0, max_lag=None):
    """Expected autocorrelation estimator and spectrum under a Gaussian-process gradient.

    Parameters
    ----------
    cov : array_like, shape (P, P)
        Covariance of the gradient along the grid, e.g.
        ``exact_gradient_covariance(spec, grid.points_array())[..., 0, 0]``.
    nets : int
        Gaussian-process draws; the standard errors shrink as ``1 / sqrt(nets)``.
    seed : int
    max_lag : int, optional
        Default ``P - 1``.  Draws are made in fixed blocks of :data:`BLOCK` rows (memory
        ``BLOCK * P``), so the numbers depend only on ``cov``, ``nets`` and ``seed``.

    Returns
    -------
    dict
        ``label``, ``acf`` (:class:`Estimate` over lags, the estimator of
        :func:`gradsim.stats.autocorrelation`), ``lag1`` (Estimate), ``freqs`` and
        ``power`` (Estimate, as :func:`gradsim.stats.spectrum`).
    """
    nets = check_int("nets", nets, 2, 10**7)
    seed = check_int("seed", seed, 0)
    f = _factor(cov)
    rng = np.random.default_rng(seed)
    acf, power = [], []
    freqs = None
    for start in range(0, nets, BLOCK):
        m = min(BLOCK, nets - start)
        g = rng.standard_normal((m, f.shape[1])) @ f.T
        acf.append(acf_rows(g, max_lag))
        freqs, p = power_rows(g)
        power.append(p)
    acf, power = np.concatenate(acf), np.concatenate(power)
    acf = acf[~np.isnan(acf[:, 0])]
    n = len(acf)
    if n < 2:
        raise ValueError("the covariance gives constant gradients: autocorrelation undefined")
    a = Estimate(acf.mean(0), acf.std(0, ddof=1) / math.sqrt(n), n)
    lag = Estimate(a.value[1], a.se[1], n) if a.value.size > 1 else None
    pw = Estimate(power.mean(0), power.std(0, ddof=1) / math.sqrt(len(power)), len(power))
    return {"label": LABELS["exact-gp"], "acf": a, "lag1": lag, "freqs": freqs, "power": pw}
