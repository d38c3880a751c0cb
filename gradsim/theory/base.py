"""What every theory shares: the :class:`Theory` result, the static :data:`LABELS`, the
moments of the ab-ReLU, :func:`covers`, and the floating-point range.

Whether a theory applies to a spec is the architecture family's answer
(``family.covers(spec, model)``, :mod:`gradsim.families`); :func:`covers` asks it, and
:func:`require` turns a "no" into the ``ValueError`` a theory raises.

Floating-point range (``docs/theory.md``, "Floating-point range"): no public function
returns a non-finite number.  A result that leaves float64 range raises the
``ValueError`` of :func:`range_error`, which names the spec's parameters
(:func:`describe`) and the depth where the range runs out; where the API has a log-scale
form (``log_scale=True``) the finite answer is available there.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..kernels.arccos import ab_map_array
from ..spec import NetSpec

__all__ = ["Theory", "LABELS", "covers", "require", "over_depth", "relu_moments", "ab_moments",
           "describe", "range_error", "check_range", "kernel_plan", "LOG_MAX", "LOG_TINY"]

#: ``log`` of the largest float64 (about 709.78): a value whose log exceeds it overflows.
LOG_MAX = math.log(np.finfo(np.float64).max)
#: ``log`` of the smallest normal float64 (about -708.4): below it precision is lost.
LOG_TINY = math.log(np.finfo(np.float64).tiny)

# spec fields every range message names; the others only when not at their default
_ALWAYS = ("arch", "depth", "width", "weight_var", "batchnorm")

#: Theory key -> label naming its assumption (every result carries one).
LABELS = {
    "paper": "paper model (independent activation patterns)",
    "paper-mc": "Monte Carlo of the paper model",
    "independence": "gradient independence (mean-field angles)",
    "exact": "exact infinite width (NNGP mixed derivative)",
    "exact-gp": "exact infinite width (Gaussian-process samples)",
    "shallow": "one hidden layer, infinite width (Brownian limit)",
    "kurtosis": "finite-width identity (exact)",
    "finite": "finite width, first order in 1/n",
    "finite2": "finite width, second order in 1/n",
}


@dataclasses.dataclass(frozen=True)
class Theory:
    """Predictions versus depth.

    Attributes
    ----------
    label : str
        Which theory, i.e. which assumption (see :data:`LABELS`).
    depth : ndarray, shape (L,)
        Depths ``1 .. L``.
    variance, covariance, correlation : ndarray, shape (L,)
        ``E[g(x)^2]``, ``E[g(x) g(y)]`` and their ratio at each depth.
    variance_se, covariance_se, correlation_se : ndarray or None
        Standard errors, for Monte Carlo results only.
    """

    label: str
    depth: np.ndarray
    variance: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    variance_se: np.ndarray | None = None
    covariance_se: np.ndarray | None = None
    correlation_se: np.ndarray | None = None
    log_scale: np.ndarray | None = None


def describe(spec, show_width=True, **extra):
    """``'arch=resnet, depth=5000, width=200, weight_var=2, ...'``: the parameters that set
    how a spec's gradients grow, for range messages.

    Names ``arch``, ``depth``, ``width`` (unless ``show_width=False``: the closed forms are
    of infinite width), ``weight_var``, ``batchnorm`` and every other field away from its
    default, then ``extra`` (``dtype='float32'``, say).
    """
    fields = {f.name: f.default for f in dataclasses.fields(spec)}
    names = [n for n in fields if n in _ALWAYS or getattr(spec, n) != fields[n]]
    if not show_width:
        names.remove("width")

    def text(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join([f"{n}={text(getattr(spec, n))}" for n in names]
                     + [f"{k}={text(v)}" for k, v in extra.items()])


def range_error(what, quantity, depth, spec, hint="", approximate=False, note="",
                width=False, **extra):
    """The ``ValueError`` for a result that leaves float64 range.

    Parameters
    ----------
    what : str
        Who computed it (``'paper model'``, ``'simulate'``).
    quantity : str
        What left range, with how (``'the gradient variance overflows float64'``).
    depth : int or None
        The depth where the range runs out (None: not known).
    spec : NetSpec
    hint : str
        What to do instead.
    approximate : bool
        ``depth`` is an estimate (``~``).
    note : str
        Put after the depth (``' (log10 variance 1505 at depth 5000)'``).
    width : bool or int
        Name the spec's width (True), not (False), or this width (an int).
    extra
        As for :func:`describe`.
    """
    at = ("" if depth is None
          else f" at depth {'~' if approximate else ''}{depth} of {spec.depth}")
    tail = f"; {hint}" if hint else ""
    if not isinstance(width, bool):
        width, extra = False, {"width": width} | extra
    return ValueError(f"{what}: {quantity}{at}{note} for {describe(spec, width, **extra)}"
                      f"{tail}")


def check_range(what, spec, variance, covariance, log_variance=None):
    """Raise :func:`range_error` unless every ``variance`` and ``covariance`` (arrays over
    depth) is finite: the first depth where one is not is where the range runs out.

    ``log_variance`` (natural log, over depth), when known, goes into the message."""
    bad = ~(np.isfinite(variance) & np.isfinite(covariance))
    if not bad.any():
        return
    k = int(np.argmax(bad))
    name = "variance" if not np.isfinite(variance[k]) else "covariance"
    note = ("" if log_variance is None
            else f" (log10 variance {log_variance[-1] / math.log(10):.6g} at depth {spec.depth})")
    raise range_error(what, f"the gradient {name} overflows float64", k + 1, spec,
                      "the correlation stays finite: log_scale=True gives it with the log "
                      "of the variance (gradsim theory prints both)", note=note)


def over_depth(key, spec, variance, covariance, correlation, log_variance, log_scale):
    """The :class:`Theory` over depth of a closed form: in log-scale form (variance 1,
    covariance the correlation, ``log_scale`` the log of the variance), or as values after
    :func:`check_range`.  ``key`` is the theory's key in :data:`LABELS`."""
    depth = np.arange(1, spec.depth + 1)
    if log_scale:
        return Theory(LABELS[key], depth, np.ones(spec.depth), correlation.copy(), correlation,
                      log_scale=log_variance)
    check_range(_NAMES[key], spec, variance, covariance, log_variance)
    return Theory(LABELS[key], depth, variance, covariance, correlation)


#: What a range error calls each closed form.
_NAMES = {"paper": "paper model", "independence": "gradient independence"}


def kernel_plan(spec):
    """The family's kernel program for ``spec``
    (:class:`~gradsim.families.hooks.KernelPlan`), with floating-point warnings silenced:
    where its biases divided by the growth leave range (``0 * inf``: no hidden biases and
    a growth below 1, deep), they are not finite, and the theories refuse the result."""
    with np.errstate(over="ignore", invalid="ignore"):
        return spec.family.kernel_plan(spec, spec.activation_rule)


def covers(spec, model):
    """None if theory ``model`` applies to ``spec``, else the reason it does not.

    Parameters
    ----------
    spec : NetSpec
    model : {'paper', 'independence', 'exact', 'kurtosis', 'shallow'}
    """
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    return spec.family.covers(spec, model)


def require(spec, model):
    """Raise ``ValueError`` with the family's reason unless ``model`` covers ``spec``."""
    reason = covers(spec, model)
    if reason is not None:
        raise ValueError(reason)


def ab_moments(rho, a=1.0, b=0.0):
    """Gaussian integrals of the ab-ReLU ``phi(z) = a z (z > 0), b z (z <= 0)``.

    For ``u, v`` jointly Gaussian with unit variances and correlation ``rho``, the map
    :func:`gradsim.kernels.arccos.ab_map` (Cho and Saul 2009): with
    ``theta = arccos(rho)``,

    * ``E[phi'(u) phi'(v)] = a b + (a - b)^2 (pi - theta) / (2 pi)``
    * ``E[phi(u) phi(v)] = a b rho + (a - b)^2 (sin theta + (pi - theta) cos theta) / (2 pi)``

    Returns
    -------
    dphi, phi : ndarray

    References
    ----------
    Cho and Saul, "Kernel methods for deep learning", NeurIPS 2009.
    """
    g, g1, _ = ab_map_array(np.asarray(rho, dtype=float), a, b)
    return g1, g


def relu_moments(rho):
    """Normalised ReLU Gaussian integrals at correlation ``rho`` (``theta = arccos rho``).

    * ``k0 = E[relu'(u) relu'(v)] = (pi - theta) / (2 pi)``
    * ``k1 = E[relu(u) relu(v)] = (sin theta + (pi - theta) cos theta) / (2 pi)``

    Returns
    -------
    k0, k1 : ndarray

    References
    ----------
    Cho and Saul, "Kernel methods for deep learning", NeurIPS 2009.
    """
    return ab_moments(rho, 1.0, 0.0)
