"""Theory beside Monte Carlo: z-scores and relative errors, one harness for all checks.

:func:`compare` puts one theory value beside one estimate; :func:`pair_statistics`
estimates, from simulated gradients, the variance at ``x``, the covariance between
``x`` and ``y`` and their correlation, with standard errors; :func:`predict` gives the
same three numbers from a chosen theory; :func:`compare_spec` runs both.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .exact import exact_gradient_covariance
from .stats import Estimate
from .theory import LABELS, independence, paper_model

__all__ = ["Comparison", "compare", "assert_agrees", "pair_statistics", "predict", "MODELS",
           "compare_spec", "grid_rows"]

MODELS = ("paper", "independence", "exact")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One statistic: theory, Monte Carlo estimate, z-score and relative error."""

    name: str
    label: str
    theory: float
    estimate: float
    se: float
    z: float
    rel_error: float

    def to_dict(self):
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def compare(theory, estimate, name="", label="", theory_se=0.0):
    """``z = (estimate - theory) / se`` and ``(estimate - theory) / |theory|``.

    Parameters
    ----------
    theory : float
    estimate : Estimate
    name, label : str
        The statistic and the theory's assumption.
    theory_se : float
        Sampling error of a theory that is itself sampled (the Gaussian-process
        expectation of :func:`gradsim.gp.gp_statistics`); ``se`` then combines both.
    """
    t, v = float(theory), float(estimate.value)
    se = math.hypot(float(estimate.se), float(theory_se))
    # equal to rounding: z = 0 whatever the (rounding-level) standard error
    same = abs(v - t) <= 1e-12 * max(abs(v), abs(t))
    z = 0.0 if same else ((v - t) / se if se > 0 else math.copysign(math.inf, v - t))
    rel = (v - t) / abs(t) if t != 0 else (0.0 if same else math.inf)
    return Comparison(name, label, t, v, se, z, rel)


def assert_agrees(theory, estimate, nsigma=4.0, allowance=0.0, name=""):
    """Assert ``|estimate - theory| < nsigma * se + allowance`` (elementwise).

    ``allowance`` states a known bias (e.g. O(L/n) finite width) in the statistic's units.
    """
    t = np.asarray(theory, dtype=float)
    v, se = np.asarray(estimate.value, dtype=float), np.asarray(estimate.se, dtype=float)
    bad = ~(np.abs(v - t) < nsigma * se + allowance)
    if np.any(bad):
        raise AssertionError(f"{name}: estimate {v[bad] if v.ndim else v} vs theory "
                             f"{t[bad] if t.ndim else t} (se {se[bad] if se.ndim else se}, "
                             f"{nsigma} sigma + {allowance})")


def pair_statistics(gx, gy):
    """Variance at ``x``, covariance and correlation between ``x`` and ``y``.

    Parameters
    ----------
    gx, gy : array_like, shape (nets,) or (nets, d)
        Gradients at the two inputs; for ``d > 1`` the inner product is used.

    Returns
    -------
    dict of Estimate
        ``variance``, ``covariance`` and ``correlation`` (delta method, with the
        variance averaged over both inputs in the denominator as in ``C/sqrt(C_x C_y)``).
    """
    gx = np.asarray(gx, dtype=float).reshape(len(gx), -1)
    gy = np.asarray(gy, dtype=float).reshape(len(gy), -1)
    n = len(gx)
    if n < 2:
        raise ValueError("pair statistics need at least 2 networks")
    xx, yy, xy = (gx * gx).sum(1), (gy * gy).sum(1), (gx * gy).sum(1)
    m = np.stack([xx, yy, xy])
    mean, cov = m.mean(1), np.cov(m) / n
    a, b, c = mean
    corr = c / math.sqrt(a * b) if a > 0 and b > 0 else math.nan
    grad = np.array([-0.5 * corr / a, -0.5 * corr / b, 1 / math.sqrt(a * b)]) if a > 0 < b else 0
    corr_se = float(np.sqrt(max(grad @ cov @ grad, 0.0))) if a > 0 < b else math.nan
    return {"variance": Estimate(a, math.sqrt(cov[0, 0]), n),
            "covariance": Estimate(c, math.sqrt(cov[2, 2]), n),
            "correlation": Estimate(corr, corr_se, n)}


def predict(spec, model, x, y):
    """Variance at ``x``, covariance and correlation of ``x`` and ``y`` from ``model``.

    ``model='paper'`` ignores the inputs (two inputs with independent activation
    patterns).  For ``d > 1`` the inner product ``E[grad f(x) . grad f(y)]`` is used.

    Returns
    -------
    dict
        ``model`` (the label), ``depth``, ``variance``, ``covariance``, ``correlation``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if model == "paper":
        th = paper_model(spec)
        var, cov = th.variance[-1], th.covariance[-1]
        label = th.label
    elif model == "independence":
        th = independence(spec, x, y)
        var, cov = th.variance[-1], th.covariance[-1]
        label = th.label
    else:
        xs = np.stack([np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)])
        c, ls = exact_gradient_covariance(spec, xs, log_scale=True)
        var, cov, vy = np.trace(c[0, 0]), np.trace(c[0, 1]), np.trace(c[1, 1])
        corr = cov / math.sqrt(var * vy)
        with np.errstate(over="ignore"):
            var, cov = var * np.exp(ls), cov * np.exp(ls)
        return {"model": LABELS["exact"], "depth": spec.depth, "variance": float(var),
                "covariance": float(cov), "correlation": float(corr)}
    return {"model": label, "depth": spec.depth, "variance": float(var),
            "covariance": float(cov), "correlation": float(th.correlation[-1])}


def compare_spec(spec, grad_x, grad_y, x, y, models=MODELS):
    """Rows of :class:`Comparison` for every model that covers ``spec``.

    Models that do not cover the spec (for example exact theory with batch norm) are
    skipped.  The paper model describes inputs with independent patterns, so its
    covariance is compared as such; expect it to miss on nearby inputs.
    """
    est = pair_statistics(grad_x, grad_y)
    rows = []
    for model in models:
        try:
            pred = predict(spec, model, x, y)
        except ValueError:
            continue
        for name in ("variance", "covariance", "correlation"):
            rows.append(compare(pred[name], est[name], name, pred["model"]))
    return rows


def grid_rows(spec, grid, grad, point, gp_nets=4000, seed=0):
    """Rows for statistics along the whole grid: lag-1 autocorrelation and kurtosis.

    * ``lag1``: the mean lag-1 autocorrelation of the nets against its expectation under
      the exact infinite-width Gaussian process (:func:`gradsim.gp.gp_statistics`,
      ``gp_nets`` draws, ``seed``), when exact theory covers ``spec`` and ``d = 1``;
    * ``kurtosis``: at grid ``point``, against the finite-width identity
      ``3 prod (1 + 5 / n)`` when it covers ``spec`` (bias-free He ReLU feedforward).

    Parameters
    ----------
    spec : NetSpec
    grid : GridSpec
    grad : ndarray, shape (nets, P, d)
    point : int
    """
    from .gp import gp_statistics
    from .stats import lag1, point_moments
    from .theory import kurtosis_identity

    rows = []
    if spec.input_dim == 1 and grid.points >= 3:
        try:
            cov = exact_gradient_covariance(spec, grid.points_array())[..., 0, 0]
        except ValueError:
            cov = None
        if cov is not None:
            th = gp_statistics(cov, nets=gp_nets, seed=seed)
            rows.append(compare(th["lag1"].value, lag1(grad), "lag1", th["label"],
                                theory_se=th["lag1"].se))
    try:
        k = kurtosis_identity(spec)[-1]
    except ValueError:
        k = None
    if k is not None and spec.input_dim == 1:
        rows.append(compare(k, point_moments(grad, point)[1], "kurtosis", LABELS["finite"]))
    return rows
