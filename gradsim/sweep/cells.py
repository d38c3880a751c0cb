"""One sweep cell: Monte Carlo sums, estimates and theory comparisons, a pure function.

:func:`compute_cell` draws a cell's networks, streams the sums behind each statistic
(never the gradients), turns them into estimates with standard errors and sets each
requested theory beside them.  Whether a theory applies is decided up front, by the
architecture family (:func:`gradsim.theory.covers`) and, for the theories that need an
angle between inputs, by :func:`gradsim.theory.exact.defined_at`; a theory that applies
and then raises is a bug, and the error propagates.  The result depends only on the
arguments, so an engine may compute a cell again anywhere and get the same numbers.
"""

from __future__ import annotations

import math
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ..compare import compare, predict
from ..families.sampling import resolve_sampler
from ..montecarlo import iter_chunks
from ..stats import Estimate, Moments, Stream, acf_rows, pair_estimates
from ..theory import covers
from ..theory.exact import NO_ANGLE, defined_at, exact_gradient_covariance
from ..theory.gp import gp_statistics
from .file import STATISTICS, gradient_mode

__all__ = ["compute_cell", "PAIR_STATISTICS"]

#: Statistics of the pair of grid points (the rest, ``lag1``, are along the grid).
PAIR_STATISTICS = ("variance", "covariance", "correlation")


def _lag1_estimate(stream):
    if stream.count < 2:  # constant gradients (looks-linear): undefined
        return Estimate(math.nan, math.nan, stream.count)
    est = stream.estimate()
    return Estimate(est.value[1], est.se[1], est.n)


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _floats(a):
    """Nested lists of floats, null where not finite (the files are strict JSON)."""
    a = np.asarray(a, dtype=float)
    return [_floats(r) for r in a] if a.ndim > 1 else [_num(v) for v in a]


def _estimate_dict(est):
    return {"value": _num(est.value), "se": _num(est.se), "n": int(est.n)}


def _comparison(theory, est, name, label, theory_se=0.0):
    """A covered theory beside an estimate (z-score null when either is undefined)."""
    row = {"covered": True, "label": label, "theory": _num(theory),
           "theory_se": _num(theory_se)}
    if math.isfinite(float(est.value)) and math.isfinite(float(theory)):
        c = compare(theory, est, name, label, theory_se)
        return row | {"z": _num(c.z), "rel_error": _num(c.rel_error)}
    return row | {"z": None, "rel_error": None}


def _not_covered(reason):
    return {"covered": False, "reason": reason}


def _uncovered(spec, model, x):
    """None if ``model`` predicts for ``spec`` at the inputs ``x`` (rows), else why not.

    The paper model ignores the inputs; the others need every input to have an angle.
    """
    reason = covers(spec, model)
    if reason is None and model != "paper" and not defined_at(spec, x):
        return NO_ANGLE
    return reason


def _theory(model, spec, grid, seed, pair, gp_nets, est, statistics):
    out = {}
    pts = grid.points_array()
    names = [s for s in statistics if s in PAIR_STATISTICS]
    if names:
        x, y = pts[pair[0]], pts[pair[1]]
        reason = _uncovered(spec, model, np.stack([x, y]))
        if reason is not None:
            out |= {s: _not_covered(reason) for s in names}
        else:
            # log_scale: a variance beyond float64 range is "not covered" for this cell,
            # and the correlation (finite at any depth) is still compared
            pred = predict(spec, model, x, y, log_scale=True)
            for s in names:
                out[s] = (_comparison(pred[s], est[s], s, pred["model"]) if pred[s] is not None
                          else _not_covered(_beyond_range(s, pred)))
    if "lag1" in statistics:
        out["lag1"] = _lag1_theory(model, spec, grid, est["lag1"], gp_nets, seed)
    return out


def _beyond_range(name, pred):
    """Why a statistic the theory covers has no prediction: it leaves float64 range."""
    log10 = pred["log10_variance" if name == "variance" else "log10_abs_covariance"]
    return (f"the {name} is beyond float64 range"
            + (f" (log10 |{name}| = {log10:.4g})" if log10 is not None else ""))


def _lag1_theory(model, spec, grid, est, gp_nets, seed):
    """Expected lag-1 under the exact infinite-width Gaussian process, by sampling it.

    BLAS and LAPACK run on one thread here: their rounding depends on the thread count
    (measured: 2e-13 at 256 points), and a cell must not depend on where it ran.
    """
    if model != "exact":
        return _not_covered(f"model {model!r} has no lag-1 prediction")
    x = grid.points_array()
    reason = _uncovered(spec, "exact", x)
    if reason is not None:
        return _not_covered(reason)
    cov, log_scale = exact_gradient_covariance(spec, x, log_scale=True)
    with np.errstate(over="ignore"):
        full = cov[..., 0, 0] * np.exp(log_scale)
    # the autocorrelation estimator is scale-free: beyond float64 range sample the
    # covariance divided by its common scale instead
    cov = full if np.isfinite(full).all() else cov[..., 0, 0]
    with threadpool_limits(limits=1):
        th = gp_statistics(cov, nets=gp_nets, seed=seed % 10**6, max_lag=1)
    return _comparison(th["lag1"].value, est, "lag1", th["label"], float(th["lag1"].se))


def compute_cell(spec, grid, seed, nets, chunk=16, pair=(0, 1), statistics=STATISTICS,
                 theory=(), gp_nets=4000, sampler="auto", progress=None):
    """Monte Carlo sums, estimates and theory comparisons of one cell: a pure function.

    Networks ``0 .. nets - 1`` come from :func:`gradsim.montecarlo.iter_chunks` (network
    ``i`` from ``network_rng(seed, i)``) and are added network by network in index
    order to :class:`~gradsim.stats.Moments` of ``(g_x . g_x, g_y . g_y, g_x . g_y)`` at
    the pair's grid points and a :class:`~gradsim.stats.Stream` of lag-0/1
    autocorrelations, so memory is one chunk and the result does not depend on ``chunk``.
    The pair statistics are :func:`gradsim.stats.pair_estimates` of those moments.

    Parameters
    ----------
    spec : NetSpec
    grid : GridSpec
    seed : int
        The cell's seed (:func:`~gradsim.sweep.file.cell_seed`).
    nets, chunk : int
    pair : (int, int)
        Grid indices of the pair statistics.
    statistics : sequence of str
        From :data:`~gradsim.sweep.file.STATISTICS`.
    theory : sequence of str
        Models of :func:`gradsim.compare.predict`; ``exact`` also gives lag-1 (from
        ``gp_nets`` Gaussian-process draws seeded with ``seed % 10**6``).  A model that
        does not cover the spec (:func:`gradsim.theory.covers`), or needs an angle at an
        input at 0 without a first-layer bias, is recorded as not covered, with the reason.
    sampler : {'auto', 'explicit', 'gram'}
        As for :func:`gradsim.simulate`; the one used is recorded as ``sampler``.
    progress : callable, optional
        ``progress(done, nets)`` after each chunk.

    Returns
    -------
    dict
        ``sums``, ``estimates`` (value, se, n; null where undefined), ``sampler``, ``theory``
        (model -> statistic -> comparison or ``{"covered": false, "reason": ...}``) and
        ``seconds``.
    """
    t0 = time.perf_counter()
    i, j = pair
    mom, acf = Moments(3), Stream(2)
    mode = gradient_mode(spec)
    used = resolve_sampler(spec, grid.points, mode, sampler)
    for ch in iter_chunks(spec, grid, nets, seed, chunk, mode=mode, sampler=used):
        gx, gy = ch.grad[:, i, :], ch.grad[:, j, :]
        mom.update(np.stack([(gx * gx).sum(1), (gy * gy).sum(1), (gx * gy).sum(1)], axis=1))
        if "lag1" in statistics:
            acf.update(acf_rows(ch.grad, max_lag=1))
        if progress is not None:
            progress(ch.start + len(ch.grad), nets)
    est = (pair_estimates(mom.mean, mom.covariance / mom.count, mom.count)
           | {"lag1": _lag1_estimate(acf)})
    sums = {"pair": {"count": mom.count, "total": _floats(mom.total),
                     "outer": _floats(mom.outer)}}
    if "lag1" in statistics:
        sums["acf"] = {"count": acf.count, "dropped": acf.dropped,
                       "total": _floats(acf.total), "squares": _floats(acf.squares)}
    return {"sums": sums, "estimates": {s: _estimate_dict(est[s]) for s in statistics},
            "theory": {m: _theory(m, spec, grid, seed, pair, gp_nets, est, statistics)
                       for m in theory},
            "sampler": used, "seconds": round(time.perf_counter() - t0, 3)}
