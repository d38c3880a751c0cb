"""The network as data: a frozen, validated, JSON-round-trippable specification.

A :class:`NetSpec` says everything needed to sample a random network and to
compute its theory: architecture, sizes, activation, initialisation, biases,
batch norm and the readout.  It holds no arrays and no random state.  Every
default is documented in ``docs/conventions.md``.

Examples
--------
>>> spec = NetSpec(arch="resnet", depth=50, width=200, batchnorm=True)
>>> NetSpec.from_json(spec.to_json()) == spec
True
"""

from __future__ import annotations

import dataclasses
import functools

from .families import ARCHS, FAMILIES, family, owned_fields
from .families.activation import ACTIVATIONS, INITS, activation_rule
from .util import MAX_SIZE, JsonData, check_choice, check_int, check_real

__all__ = ["NetSpec", "ARCHS", "ACTIVATIONS", "INITS", "BN_GRADS", "MAX_SIZE"]

BN_GRADS = ("frozen", "through")


@dataclasses.dataclass(frozen=True)
class NetSpec(JsonData):
    """A random ReLU-family network with a scalar output, as data.

    Parameters
    ----------
    arch : {'feedforward', 'resnet', 'highway', 'post-resnet'}
        The architecture family (:mod:`gradsim.families`, one module each).
        Feedforward: ``h_l = act(BN?(W_l h_{l-1} + b_l))``, ``f = u^T h_L``.
        Resnet: ``x_0 = W_0 x + b_0``, ``x_l = alpha (x_{l-1} + beta F_l(x_{l-1}))``,
        ``F(x) = W act(BN?(x)) + b`` (one layer) or
        ``W2 act(BN?(W1 act(BN?(x)) + b1)) + b2`` (two layers), ``f = u^T x_L``.
        Highway: ``x_0`` as for resnets, ``x_l = T * H + (1 - T) * x_{l-1}`` with
        ``H = act(BN?(W_H x + b_H))``, ``T = sigmoid(W_T x + gate_bias)``,
        ``f = u^T x_L``.  Post-resnet (the original block, activation after the sum):
        ``x_0 = act(BN?(W_0 x + b_0))``, ``x_l = act(alpha (x_{l-1} + beta F(x_{l-1})))``,
        ``F(x) = BN?(W x + b)`` or ``BN?(W2 act(BN?(W1 x + b1)) + b2)``, ``f = u^T x_L``.
    depth : int
        ``L >= 1``: hidden layers (feedforward) or blocks (the other families).
    width : int
        Hidden width ``N >= 1`` (pre-activation units; CReLU doubles the features).
    input_dim : int
        Input dimension ``d >= 1``.
    activation : {'relu', 'leaky', 'crelu'}
        ``leaky`` is the ab-ReLU ``slope_pos * z`` for ``z > 0`` and ``slope_neg * z``
        otherwise; ``crelu`` is ``[relu(z); relu(-z)]``.  Derivatives at 0 are taken
        from the negative side (ReLU'(0) = 0).
    slope_pos, slope_neg : float
        Slopes of the ``leaky`` activation (defaults 1 and 0.01); ignored otherwise.
    init : {'he', 'orthogonal', 'looks-linear'}
        ``he``: Gaussian, variance ``weight_var / fan_in``.  ``orthogonal``: a
        semi-orthogonal matrix (QR of a Gaussian, sign-fixed) scaled to the same
        Frobenius norm as the Gaussian.  ``looks-linear``: CReLU only; every
        weight consuming CReLU features is ``[P, -mirror * P]`` with ``P``
        orthogonal, so that ``mirror = 1`` makes the network exactly linear.
    mirror : float
        ``alpha_m`` in ``[0, 1]`` for ``looks-linear`` (partial mirroring); must be
        1 otherwise.
    weight_var : float
        ``sigma_w^2 > 0``; default 2 (He).
    first_bias_var : float
        Variance ``>= 0`` of the first layer's (or input embedding's) bias; default 1,
        which spreads the kinks of a 1-D input over the grid.
    bias_var : float
        Variance ``>= 0`` of every other bias; default 0.
    readout_var : float
        The readout ``u`` has i.i.d. N(0, readout_var / fan_in) entries; default 1.
    batchnorm : bool
        Batch norm (no affine part) before every activation, with statistics over
        the batch of grid inputs.
    bn_grad : {'frozen', 'through'}
        ``frozen`` (default) holds batch statistics constant when differentiating;
        ``through`` differentiates through them.
    bn_eps : float
        Added to the batch variance, ``>= 0``; default 1e-5.
    alpha, beta : float
        Resnet scalings (default 1); must be 1 for the families without a branch.
    branch_depth : {1, 2}
        Layers in a residual branch; must be 1 for the families without a branch.
    gate_bias : float
        Highway transform-gate bias (default -2); must be the default otherwise.
    """

    arch: str = "feedforward"
    depth: int = 1
    width: int = 200
    input_dim: int = 1
    activation: str = "relu"
    slope_pos: float = 1.0
    slope_neg: float = 0.01
    init: str = "he"
    mirror: float = 1.0
    weight_var: float = 2.0
    first_bias_var: float = 1.0
    bias_var: float = 0.0
    readout_var: float = 1.0
    batchnorm: bool = False
    bn_grad: str = "frozen"
    bn_eps: float = 1e-5
    alpha: float = 1.0
    beta: float = 1.0
    branch_depth: int = 1
    gate_bias: float = -2.0
    _label = "spec"

    def __post_init__(self):
        put = object.__setattr__
        put(self, "arch", check_choice("arch", self.arch, ARCHS))
        put(self, "activation", check_choice("activation", self.activation, ACTIVATIONS))
        put(self, "init", check_choice("init", self.init, INITS))
        put(self, "bn_grad", check_choice("bn_grad", self.bn_grad, BN_GRADS))
        put(self, "depth", check_int("depth", self.depth))
        put(self, "width", check_int("width", self.width))
        put(self, "input_dim", check_int("input_dim", self.input_dim))
        put(self, "branch_depth", check_int("branch_depth", self.branch_depth, 1, 2))
        put(self, "slope_pos", check_real("slope_pos", self.slope_pos))
        put(self, "slope_neg", check_real("slope_neg", self.slope_neg))
        put(self, "mirror", check_real("mirror", self.mirror, 0.0, 1.0))
        put(self, "weight_var", check_real("weight_var", self.weight_var, 0.0, 1e6, lo_open=True))
        put(self, "first_bias_var", check_real("first_bias_var", self.first_bias_var, 0.0, 1e6))
        put(self, "bias_var", check_real("bias_var", self.bias_var, 0.0, 1e6))
        put(self, "readout_var",
            check_real("readout_var", self.readout_var, 0.0, 1e6, lo_open=True))
        put(self, "bn_eps", check_real("bn_eps", self.bn_eps, 0.0, 1e6))
        put(self, "alpha", check_real("alpha", self.alpha, -1e6, 1e6))
        put(self, "beta", check_real("beta", self.beta, -1e6, 1e6))
        put(self, "gate_bias", check_real("gate_bias", self.gate_bias, -1e6, 1e6))
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"batchnorm must be true or false, got {self.batchnorm!r}")
        self._check_consistent()

    def _check_consistent(self):
        if self.init == "looks-linear" and self.activation != "crelu":
            raise ValueError("init='looks-linear' needs activation='crelu'")
        if self.init != "looks-linear" and self.mirror != 1.0:
            raise ValueError("mirror applies only to init='looks-linear'")
        if self.bn_grad != "frozen" and not self.batchnorm:
            raise ValueError("bn_grad='through' needs batchnorm=True")
        default = NetSpec.__dataclass_fields__
        for name, owners in owned_fields().items():
            if self.arch not in owners and getattr(self, name) != default[name].default:
                allowed = " or ".join(f"arch={a!r}" for a in owners)
                raise ValueError(f"{name} applies only to {allowed}")
        family(self.arch).check(self)

    @property
    def family(self):
        """The architecture family's module (:mod:`gradsim.families`)."""
        return FAMILIES[self.arch]

    @functools.cached_property
    def activation_rule(self):
        """How the sampler and the theories read the activation
        (:class:`~gradsim.families.activation.ActivationRule`; computed once per spec)."""
        return activation_rule(self)

    @property
    def features(self):
        """Number of features an activation layer outputs (2N for CReLU)."""
        return self.activation_rule.features * self.width

    @property
    def n_act_layers(self):
        """Number of activation sites, in the order the network applies them."""
        return self.family.activation_sites(self)

