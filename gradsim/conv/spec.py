"""The convolutional net as data: :class:`ConvSpec`, frozen, validated and
JSON-round-trippable, like :class:`gradsim.spec.NetSpec`.  Conventions are in
``docs/convnets.md``; the nets themselves are in :mod:`gradsim.conv.nets`.

Examples
--------
>>> spec = ConvSpec(dims=1, depth=3, channels=4, input_shape=(16,))
>>> ConvSpec.from_json(spec.to_json()) == spec
True
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral

from ..util import MAX_SIZE, JsonData, check_choice, check_int, check_real

__all__ = ["ConvSpec", "CONV_BACKENDS", "CONV_ARCHS", "CONV_ACTIVATIONS", "CONV_INITS"]

#: Backend name -> module of the convolution kernels (both are in
#: :func:`gradsim.kernels.backend` with every other kernel).
CONV_BACKENDS = {"numba": "gradsim.kernels.conv", "numpy": "gradsim.kernels.conv_numpy"}

CONV_ARCHS = ("feedforward", "resnet")
CONV_ACTIVATIONS = ("relu", "crelu")
CONV_INITS = ("he", "looks-linear")


@dataclasses.dataclass(frozen=True)
class ConvSpec(JsonData):
    """A random convolutional ReLU-family net with a scalar output, as data.

    Parameters
    ----------
    dims : {1, 2}
        Spatial dimensions of the input.
    arch : {'feedforward', 'resnet'}
        Feedforward: ``h_l = act(BN?(conv_l(h_{l-1}) + b_l))``, ``f = u . h_L``, with a
        bias on the first conv only.  Resnet: ``x_0 = conv_0(x) + b_0`` (no activation),
        ``x_l = alpha (x_{l-1} + beta conv_l(act(BN?(x_{l-1}))))``, ``f = u . x_L``.
    depth : int
        ``L >= 1`` conv layers (feedforward) or residual blocks (resnet).
    channels : int
        ``C >= 1`` channels of every hidden conv (CReLU doubles the features).
    kernel : int
        Odd kernel size ``k`` (``k`` taps in 1-D, ``k x k`` in 2-D); stride 1, 'same' zero
        padding.
    in_channels : int
        Input channels (default 1).
    input_shape : tuple of int
        ``dims`` positive sizes, e.g. ``(64,)`` or ``(8, 8)``.
    activation : {'relu', 'crelu'}
        ``relu'(0) = 0``; CReLU is ``[relu(z); relu(-z)]`` along channels.
    init : {'he', 'looks-linear'}
        ``he``: Gaussian weights of variance ``2 / fan_in``, ``fan_in = C_in k^dims``.
        ``looks-linear`` (CReLU only): every conv consuming CReLU features is ``[K, -K]``
        along its input channels with ``K`` delta-orthogonal (see ``docs/convnets.md``).
        The first conv, which sees the raw input, is He in both.
    batchnorm : bool
        Batch norm (no affine part) before every activation, per channel over the batch of
        inputs and all positions, statistics held fixed when differentiating ('frozen').
    alpha, beta : float
        Resnet scalings (default 1); must be 1 for feedforward nets.
    first_bias_var : float
        Variance ``>= 0`` of the first conv's per-channel bias (default 0: no bias).
    readout_var : float
        The readout over all flattened final features is Gaussian with variance
        ``readout_var / fan_in`` (``fan_in`` = number of features); mirrored ``[v, -v]``
        on CReLU features for ``looks-linear``.
    bn_eps : float
        Added to the batch variance, ``>= 0``; default 1e-5.
    """

    dims: int = 2
    arch: str = "feedforward"
    depth: int = 1
    channels: int = 16
    kernel: int = 3
    in_channels: int = 1
    input_shape: tuple = (8, 8)
    activation: str = "relu"
    init: str = "he"
    batchnorm: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    first_bias_var: float = 0.0
    readout_var: float = 1.0
    bn_eps: float = 1e-5
    _label = "conv spec"

    def __post_init__(self):
        put = object.__setattr__
        put(self, "dims", check_int("dims", self.dims, 1, 2))
        put(self, "arch", check_choice("arch", self.arch, CONV_ARCHS))
        put(self, "activation", check_choice("activation", self.activation, CONV_ACTIVATIONS))
        put(self, "init", check_choice("init", self.init, CONV_INITS))
        for name in ("depth", "channels", "in_channels"):
            put(self, name, check_int(name, getattr(self, name)))
        put(self, "kernel", check_int("kernel", self.kernel))
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd integer in [1, {MAX_SIZE}], "
                             f"got {self.kernel}")
        put(self, "input_shape", _check_shape(self.input_shape, self.dims))
        put(self, "alpha", check_real("alpha", self.alpha, -1e6, 1e6))
        put(self, "beta", check_real("beta", self.beta, -1e6, 1e6))
        put(self, "first_bias_var", check_real("first_bias_var", self.first_bias_var, 0.0, 1e6))
        put(self, "readout_var",
            check_real("readout_var", self.readout_var, 0.0, 1e6, lo_open=True))
        put(self, "bn_eps", check_real("bn_eps", self.bn_eps, 0.0, 1e6))
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"batchnorm must be true or false, got {self.batchnorm!r}")
        if self.init == "looks-linear" and self.activation != "crelu":
            raise ValueError("init='looks-linear' needs activation='crelu'")
        if self.arch != "resnet" and (self.alpha != 1.0 or self.beta != 1.0):
            raise ValueError("alpha and beta apply only to arch='resnet'")

    @property
    def features(self):
        """Channels an activation outputs (``2 C`` for CReLU)."""
        return 2 * self.channels if self.activation == "crelu" else self.channels

    @property
    def spatial(self):
        """Number of positions ``S`` of one input."""
        return math.prod(self.input_shape)

    @property
    def grid(self):
        """``(H, W)``: a 1-D input of length ``L`` is the image ``(1, L)``."""
        return (1, *self.input_shape) if self.dims == 1 else tuple(self.input_shape)

    @property
    def kernel_shape(self):
        """``(kh, kw)``: ``(1, k)`` in 1-D, ``(k, k)`` in 2-D."""
        return (1, self.kernel) if self.dims == 1 else (self.kernel, self.kernel)

    @property
    def out_channels(self):
        """Channels of the last state (what the readout sees)."""
        return self.features if self.arch == "feedforward" else self.channels


def _check_shape(shape, dims):
    """``input_shape`` as a tuple of ``dims`` integers in ``[1, MAX_SIZE]``."""
    msg = f"input_shape must be a tuple of {dims} integers in [1, {MAX_SIZE}], got {shape!r}"
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != dims:
        raise ValueError(msg)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in shape):
        raise ValueError(msg)
    if not all(1 <= int(v) <= MAX_SIZE for v in shape):
        raise ValueError(msg)
    return tuple(int(v) for v in shape)
