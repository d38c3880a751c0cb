"""What every theory shares: the :class:`Theory` result, the static :data:`LABELS`, the
moments of the ab-ReLU, and :func:`covers`.

Whether a theory applies to a spec is the architecture family's answer
(``family.covers(spec, model)``, :mod:`gradsim.families`); :func:`covers` asks it, and
:func:`require` turns a "no" into the ``ValueError`` a theory raises.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..kernels.arccos import ab_map_array
from ..spec import NetSpec

__all__ = ["Theory", "LABELS", "covers", "require", "relu_moments", "ab_moments"]

#: Theory key -> label naming its assumption (every result carries one).
LABELS = {
    "paper": "paper model (independent activation patterns)",
    "paper-mc": "Monte Carlo of the paper model",
    "independence": "gradient independence (mean-field angles)",
    "exact": "exact infinite width (NNGP mixed derivative)",
    "exact-gp": "exact infinite width (Gaussian-process samples)",
    "shallow": "one hidden layer, infinite width (Brownian limit)",
    "finite": "finite-width identity (exact)",
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
