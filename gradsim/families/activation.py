"""The activation table: how the sampler and every theory read a spec's activation and
initialisation.

One :class:`ActivationRule` per spec says everything that depends on ``activation``,
``slope_*``, ``init`` and ``mirror``: the activation layer the sampler builds, whether the
weights that consume its features are mirrored, how many features it outputs, and what
the theories need: the slopes ``(a, b)`` of the effective ab-ReLU, the effective weight
scale of the matrix multiplying it, and the readout's scale.

* ReLU is the ab-ReLU with ``(a, b) = (1, 0)``; ``leaky`` has ``(slope_pos, slope_neg)``.
* Looks-linear CReLU with partial mirroring: ``[P, -alpha P] CReLU(z) = P
  LeakyReLU_alpha(z)``, so ``(a, b) = (1, alpha)``; ``P`` carries the whole Frobenius norm
  of a Gaussian of fan-in ``2 N``, so its effective weight scale is ``sigma_w^2 / 2``,
  and the mirrored readout ``[v, -alpha v]`` has half the readout variance.
* CReLU with independent halves (fan-in ``2 N``, variance ``s / 2N``) has ReLU's kernel
  maps exactly: ``s/2 (E[relu(u)relu(v)] + E[relu(-u)relu(-v)]) = s E[relu(u)relu(v)]``
  by the symmetry of the Gaussian, and likewise for the derivatives.
"""

from __future__ import annotations

import dataclasses

from .layers import Activation

__all__ = ["ActivationRule", "ACTIVATIONS", "INITS", "activation_rule"]

ACTIVATIONS = ("relu", "leaky", "crelu")
INITS = ("he", "orthogonal", "looks-linear")


@dataclasses.dataclass(frozen=True)
class ActivationRule:
    """A spec's activation, as the sampler and the theories read it.

    Attributes
    ----------
    layer : Activation
        The layer the sampler builds (its kind and slopes).
    mirrored : bool
        Weights consuming the activation's features are ``[P, -mirror P]`` (looks-linear).
    features : int
        Features per unit: 2 for CReLU, else 1.
    a, b : float
        Slopes of the effective ab-ReLU of the kernel maps.
    weight_scale : float
        Effective ``sigma_w^2`` of a matrix multiplying the activation's output.
    readout_scale : float
        Factor of the readout variance (1/2 for a mirrored readout).
    """

    layer: Activation
    mirrored: bool
    features: int
    a: float
    b: float
    weight_scale: float
    readout_scale: float


def activation_rule(spec):
    """The :class:`ActivationRule` of a spec (see the module docstring)."""
    ll = spec.init == "looks-linear"
    if spec.activation == "relu":
        layer, ab = Activation("relu", 1.0, 0.0), (1.0, 0.0)
    elif spec.activation == "leaky":
        layer = Activation("leaky", spec.slope_pos, spec.slope_neg)
        ab = (spec.slope_pos, spec.slope_neg)
    else:
        layer, ab = Activation("crelu"), ((1.0, spec.mirror) if ll else (1.0, 0.0))
    return ActivationRule(layer, ll, 2 if spec.activation == "crelu" else 1, *ab,
                          spec.weight_var / 2 if ll else spec.weight_var, 0.5 if ll else 1.0)
