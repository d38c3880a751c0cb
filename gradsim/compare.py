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
from .theory.base import LOG_MAX, LOG_TINY, check_range, describe, range_error, require
from .theory.exact import defined_at, exact_gradient_covariance, overflow_depth, scale_by
from .theory.finite import kurtosis_identity
from .theory.finite_width import finite_width_gradient_covariance
from .theory.gp import gp_statistics
from .theory.gradient_independence import closed_form as independence_closed_form
from .theory.paper import closed_form as paper_closed_form

__all__ = ["Comparison", "zscore", "compare", "agrees", "assert_agrees", "pair_statistics",
           "predict", "MODELS", "compare_spec", "grid_rows"]

MODELS = ("paper", "independence", "exact", "finite", "finite2")


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

    Raises
    ------
    ValueError
        For fewer than 2 networks, and for gradients so large that the statistics
        leave float64 range (their standard errors need fourth powers: ``|g|`` below
        about ``1e77``).
    """
    gx = np.asarray(gx, dtype=float).reshape(len(gx), -1)
    gy = np.asarray(gy, dtype=float).reshape(len(gy), -1)
    n = len(gx)
    if n < 2:
        raise ValueError("pair statistics need at least 2 networks")
    with np.errstate(over="ignore", invalid="ignore"):
        m = np.stack([(gx * gx).sum(1), (gy * gy).sum(1), (gx * gy).sum(1)])
        c = np.cov(m) / n
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        top = max(float(np.abs(gx).max()), float(np.abs(gy).max()))
        raise ValueError(f"pair statistics: gradients up to {top:.3g} in magnitude are out "
                         "of float64 range for the variance and its standard error "
                         "(fourth powers overflow)")
    return pair_estimates(m.mean(1), c, n)


_LN10 = math.log(10)


def _independence_form(spec, x, y):
    var, cov, corr, log_var = independence_closed_form(spec, x, y)
    with np.errstate(divide="ignore"):  # a correlation of 0: log |cov| = -inf
        return var, cov, corr, log_var, log_var + np.log(np.abs(corr))


#: The closed forms over depth behind ``predict``: ``(variance, covariance, correlation,
#: log variance, log |covariance|)``, the first two ``inf`` where they overflow.
_CLOSED_FORMS = {"paper": lambda spec, x, y: paper_closed_form(spec),
                 "independence": _independence_form}
_WHAT = {"paper": "paper model", "independence": "gradient independence"}


def predict(spec, model, x, y, *, log_scale=False):
    """Variance at ``x``, covariance and correlation of ``x`` and ``y`` from ``model``.

    ``model='paper'`` ignores the inputs (two inputs with independent activation
    patterns).  For ``d > 1`` the inner product ``E[grad f(x) . grad f(y)]`` is used.

    Parameters
    ----------
    spec : NetSpec
    model : {'paper', 'independence', 'exact', 'finite', 'finite2'}
        ``'finite'`` and ``'finite2'``: the finite-width theory to first and to second
        order in ``1/n``
        (:func:`gradsim.theory.finite_width.finite_width_gradient_covariance`).
    x, y : array_like, shape (d,)
    log_scale : bool
        Also give ``log10_variance`` and ``log10_abs_covariance`` (None for a covariance
        of 0), finite however deep the net; ``variance`` and ``covariance`` are then
        None where they leave float64 range (the correlation stays finite).

    Returns
    -------
    dict
        ``model`` (the label), ``depth``, ``variance``, ``covariance``, ``correlation``
        (and the two logs with ``log_scale``).

    Raises
    ------
    ValueError
        Without ``log_scale``, where the variance or covariance overflows float64 (the
        message names the depth where the range runs out).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if model == "exact":
        var, cov, corr, log_var, log_cov = _exact_pair(spec, x, y, log_scale)
    elif model in ("finite", "finite2"):
        var, cov, corr, log_var, log_cov = _finite_pair(spec, x, y, model)
    else:
        v, c, r, lv, lc = _CLOSED_FORMS[model](spec, x, y)
        if not (log_scale or (np.isfinite(v[-1]) and np.isfinite(c[-1]))):
            check_range(_WHAT[model], spec, v, c, lv)  # names the first depth out of range
        var, cov, corr, log_var, log_cov = v[-1], c[-1], r[-1], lv[-1], lc[-1]
    out = {"model": LABELS[model], "depth": spec.depth,
           "variance": float(var) if np.isfinite(var) else None,
           "covariance": float(cov) if np.isfinite(cov) else None,
           "correlation": float(corr)}
    if log_scale:
        out |= {"log10_variance": float(log_var / _LN10),
                "log10_abs_covariance": (float(log_cov / _LN10) if np.isfinite(log_cov)
                                         else None)}
    return out


def _finite_pair(spec, x, y, model="finite"):
    """As :func:`_exact_pair` from the finite-width theory to first (``'finite'``) or
    second (``'finite2'``) order: the variance ``sum_c E[df/dx_c(x)^2]``, the covariance
    ``sum_c E[df/dx_c(x) df/dx_c(y)]`` (traces of the ``d x d`` blocks) and their
    correlation; equal points are computed as one."""
    require(spec, model)
    d = spec.input_dim
    pts = [np.asarray(v, float).reshape(-1) for v in (x, y)]
    for name, v in zip("xy", pts):
        if v.size != d:
            raise ValueError(f"{name} must have {d} coordinate{'s' if d > 1 else ''} "
                             f"(input_dim), got {v.size}")
    pts = np.stack(pts[:1] if np.array_equal(pts[0], pts[1]) else pts)
    c = finite_width_gradient_covariance(spec, pts, order=2 if model == "finite2" else 1)["cov"]
    k = len(pts)
    blocks = c.reshape(k, d, k, d)
    var, cov, vy = (np.trace(blocks[i, :, j, :]) for i, j in ((0, 0), (0, -1), (-1, -1)))
    if not (np.isfinite(c).all() and var > 0 and vy > 0):
        raise ValueError(f"finite-width theory: the gradient variance is not a positive "
                         f"finite number for {describe(spec, False)}")
    corr = cov / math.sqrt(var * vy)
    with np.errstate(divide="ignore"):
        return var, cov, corr, math.log(var), np.log(abs(cov))


def _exact_pair(spec, x, y, log_scale):
    """``(variance, covariance, correlation, log variance, log |covariance|)`` at the
    last depth from the exact theory (variance and covariance ``inf`` beyond range)."""
    xs = np.stack([np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)])
    # three pairs: the NumPy twin is as quick, and a one-pair answer (gradsim theory)
    # then starts without importing numba (about half a second)
    c, ls = exact_gradient_covariance(spec, xs, log_scale=True, backend="numpy")
    var, cov, vy = np.trace(c[0, 0]), np.trace(c[0, 1]), np.trace(c[1, 1])
    if not (var > 0 and vy > 0):
        raise ValueError(f"exact theory: the gradient variance is 0 at an input for "
                         f"{describe(spec, False)}, so the correlation is undefined")
    if min(var, vy) < math.exp(LOG_TINY):
        raise range_error("exact theory", "the gradient variance, divided by the program's "
                          "growth, is below float64's normal range (the correlation would "
                          "lose its precision)", None, spec)
    with np.errstate(over="ignore", under="ignore"):
        prod = var * vy
    if math.isfinite(prod) and prod >= math.exp(LOG_TINY):
        corr = cov / math.sqrt(var * vy)
    else:  # the product alone leaves range
        corr = cov / math.sqrt(var) / math.sqrt(vy)
    with np.errstate(divide="ignore"):
        log_var, log_cov = math.log(var) + ls, np.log(abs(cov)) + ls
    v, c = scale_by(var, ls), scale_by(cov, ls)
    if not log_scale and not (np.isfinite(v) and np.isfinite(c)):
        name = "variance" if not np.isfinite(v) else "covariance"
        raise range_error("exact theory", f"the gradient {name} overflows float64",
                          overflow_depth(spec, math.log(max(var, abs(cov)))), spec,
                          "the correlation stays finite: log_scale=True gives it with the "
                          "log of the variance (gradsim theory prints both)", approximate=True,
                          note=f" (log10 variance {log_var / _LN10:.6g} at depth {spec.depth})")
    return v, c, corr, log_var, log_cov


def compare_spec(spec, grad_x, grad_y, x, y, models=MODELS):
    """Rows of :class:`Comparison` for every model that covers ``spec``.

    Models that do not cover the spec (``gradsim.theory.covers``: for example exact
    theory with batch norm) are skipped.  The paper model describes inputs with
    independent patterns, so its covariance is compared as such; expect it to miss on
    nearby inputs.

    Raises
    ------
    ValueError
        Where the gradients are so large that their statistics leave float64 range, or a
        theory's variance or covariance does (the messages name the parameters).
    """
    gx, gy = np.asarray(grad_x, dtype=float), np.asarray(grad_y, dtype=float)
    _require_magnitude(spec, np.concatenate([gx.ravel(), gy.ravel()]), 4,
                       max(gx.size, 1) * max(gx.size // max(len(gx), 1), 1),
                       "the pair statistics")
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

    Raises
    ------
    ValueError
        Where the gradients are so large that these statistics leave float64 range.
    """
    rows = []
    grad = np.asarray(grad)
    x = grid.points_array()
    if (spec.input_dim == 1 and grid.points >= 3 and covers(spec, "exact") is None
            and defined_at(spec, x)):
        _require_magnitude(spec, grad, 2, 4 * grid.points, "the autocorrelation")
        th = gp_statistics(exact_gradient_covariance(spec, x)[..., 0, 0], nets=gp_nets,
                           seed=seed)
        rows.append(compare(th["lag1"].value, lag1(grad), "lag1", th["label"],
                            theory_se=th["lag1"].se))
    if spec.input_dim == 1 and covers(spec, "kurtosis") is None:
        _require_magnitude(spec, grad[:, point], 8, len(grad), "the kurtosis (eighth powers)")
        rows.append(compare(kurtosis_identity(spec)[-1], point_moments(grad, point)[1],
                            "kurtosis", LABELS["kurtosis"]))
    return rows


def _require_magnitude(spec, grad, power, count, what):
    """Refuse gradients whose ``power``-th powers, summed ``count`` times, overflow."""
    if not np.all(np.isfinite(grad)):
        raise ValueError("compare: the gradients must be finite")
    top = float(np.abs(grad).max()) if grad.size else 0.0
    if top > 0 and power * math.log(top) + math.log(count) > LOG_MAX:
        raise range_error("compare", f"gradients up to {top:.3g} in magnitude put {what} "
                          "out of float64 range", None, spec, width=True)
