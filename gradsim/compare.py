"""Theory beside Monte Carlo, in standard errors: one harness for every check.

:func:`zscore` is the one z-score of gradsim (experiments' claims, sweeps, the report and
the tests all use it, through :func:`compare` and :func:`assert_agrees`);
:func:`pair_statistics` estimates, from simulated gradients, the variance at ``x``, the
covariance between ``x`` and ``y`` and their correlation, with standard errors;
:func:`predict` gives the same three numbers from a chosen theory; :func:`compare_spec`
runs both for every theory that covers a spec.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .stats import lag1, pair_estimates, point_moments
from .theory import LABELS, covers
from .theory.exact import defined_at, exact_gradient_covariance
from .theory.finite import kurtosis_identity
from .theory.gp import gp_statistics
from .theory.gradient_independence import independence
from .theory.paper import paper_model

__all__ = ["Comparison", "zscore", "compare", "agrees", "assert_agrees", "pair_statistics",
           "predict", "MODELS", "compare_spec", "grid_rows"]

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


def zscore(value, theory, se, theory_se=0.0):
    """``z = (value - theory) / sqrt(se^2 + theory_se^2)``, elementwise.

    ``z = 0`` where the two agree to rounding (relative ``1e-12``), whatever the
    (rounding-level) standard error; ``+-inf`` where they differ and the combined
    standard error is 0; ``nan`` where an input is ``nan``.

    Parameters
    ----------
    value, theory, se : array_like
        The estimate, the theory and the estimate's standard error (broadcast together).
    theory_se : array_like
        Sampling error of a theory that is itself sampled (the Gaussian-process
        expectation of :func:`gradsim.theory.gp.gp_statistics`).

    Returns
    -------
    ndarray (a float for scalar inputs)
    """
    v, t = np.asarray(value, dtype=float), np.asarray(theory, dtype=float)
    s = np.hypot(np.asarray(se, dtype=float), np.asarray(theory_se, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        same = np.abs(v - t) <= 1e-12 * np.maximum(np.abs(v), np.abs(t))
        z = np.where(same, 0.0, np.where(s > 0, (v - t) / s, np.copysign(np.inf, v - t)))
    z = np.where(np.isnan(v) | np.isnan(t), np.nan, z)
    return float(z) if z.ndim == 0 else z


def compare(theory, estimate, name="", label="", theory_se=0.0):
    """``z`` (:func:`zscore`) and ``(estimate - theory) / |theory|`` of one statistic.

    Parameters
    ----------
    theory : float
    estimate : Estimate
    name, label : str
        The statistic and the theory's assumption.
    theory_se : float
        Sampling error of a sampled theory; ``se`` then combines both.
    """
    t, v = float(theory), float(estimate.value)
    se = math.hypot(float(estimate.se), float(theory_se))
    z = zscore(v, t, se)
    rel = (v - t) / abs(t) if t != 0 else (0.0 if z == 0 else math.inf)
    return Comparison(name, label, t, v, se, z, rel)


def agrees(theory, estimate, nsigma=4.0, allowance=0.0, theory_se=0.0):
    """``|estimate - theory| < nsigma * se + allowance`` elementwise (bool array), or equal
    to rounding (:func:`zscore` 0), with ``se`` combining the estimate's and a sampled
    theory's errors, and ``allowance`` a known bias (e.g. O(L/n) finite width) in the
    statistic's units."""
    t = np.asarray(theory, dtype=float)
    v = np.asarray(estimate.value, dtype=float)
    se = np.hypot(np.asarray(estimate.se, dtype=float), np.asarray(theory_se, dtype=float))
    return (np.asarray(zscore(v, t, se)) == 0) | (np.abs(v - t) < nsigma * se + allowance)


def assert_agrees(theory, estimate, nsigma=4.0, allowance=0.0, name="", theory_se=0.0):
    """Assert :func:`agrees` everywhere; the message lists the entries that do not."""
    ok = agrees(theory, estimate, nsigma, allowance, theory_se)
    if not np.all(ok):
        bad = ~ok
        t = np.broadcast_to(np.asarray(theory, dtype=float), ok.shape)
        v = np.broadcast_to(np.asarray(estimate.value, dtype=float), ok.shape)
        se = np.broadcast_to(np.asarray(estimate.se, dtype=float), ok.shape)
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
        As :func:`gradsim.stats.pair_estimates` (delta-method correlation error).
    """
    gx = np.asarray(gx, dtype=float).reshape(len(gx), -1)
    gy = np.asarray(gy, dtype=float).reshape(len(gy), -1)
    n = len(gx)
    if n < 2:
        raise ValueError("pair statistics need at least 2 networks")
    m = np.stack([(gx * gx).sum(1), (gy * gy).sum(1), (gx * gy).sum(1)])
    return pair_estimates(m.mean(1), np.cov(m) / n, n)


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
    elif model == "independence":
        th = independence(spec, x, y)
    else:
        xs = np.stack([np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)])
        c, ls = exact_gradient_covariance(spec, xs, log_scale=True)
        var, cov, vy = np.trace(c[0, 0]), np.trace(c[0, 1]), np.trace(c[1, 1])
        corr = cov / math.sqrt(var * vy)
        with np.errstate(over="ignore"):
            var, cov = var * np.exp(ls), cov * np.exp(ls)
        return {"model": LABELS["exact"], "depth": spec.depth, "variance": float(var),
                "covariance": float(cov), "correlation": float(corr)}
    return {"model": th.label, "depth": spec.depth, "variance": float(th.variance[-1]),
            "covariance": float(th.covariance[-1]), "correlation": float(th.correlation[-1])}


def compare_spec(spec, grad_x, grad_y, x, y, models=MODELS):
    """Rows of :class:`Comparison` for every model that covers ``spec``.

    Models that do not cover the spec (``gradsim.theory.covers``: for example exact
    theory with batch norm) are skipped.  The paper model describes inputs with
    independent patterns, so its covariance is compared as such; expect it to miss on
    nearby inputs.
    """
    est = pair_statistics(grad_x, grad_y)
    rows = []
    for model in models:
        if covers(spec, model) is not None:
            continue
        pred = predict(spec, model, x, y)
        for name in ("variance", "covariance", "correlation"):
            rows.append(compare(pred[name], est[name], name, pred["model"]))
    return rows


def grid_rows(spec, grid, grad, point, gp_nets=4000, seed=0):
    """Rows for statistics along the whole grid: lag-1 autocorrelation and kurtosis.

    * ``lag1``: the mean lag-1 autocorrelation of the nets against its expectation under
      the exact infinite-width Gaussian process (:func:`gradsim.theory.gp.gp_statistics`,
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
    rows = []
    x = grid.points_array()
    if (spec.input_dim == 1 and grid.points >= 3 and covers(spec, "exact") is None
            and defined_at(spec, x)):
        th = gp_statistics(exact_gradient_covariance(spec, x)[..., 0, 0], nets=gp_nets,
                           seed=seed)
        rows.append(compare(th["lag1"].value, lag1(grad), "lag1", th["label"],
                            theory_se=th["lag1"].se))
    if spec.input_dim == 1 and covers(spec, "kurtosis") is None:
        rows.append(compare(kurtosis_identity(spec)[-1], point_moments(grad, point)[1],
                            "kurtosis", LABELS["finite"]))
    return rows
