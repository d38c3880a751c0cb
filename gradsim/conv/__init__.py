"""Random convolutional ReLU nets (1-D and 2-D) and their input gradients along a line.

:class:`ConvSpec` (:mod:`gradsim.conv.spec`) describes a net as data; :mod:`gradsim.conv.nets`
samples it and differentiates it (forward mode along a line, reverse mode at a batch).
Conventions (layout, padding, fan-in, the looks-linear delta-orthogonal init, batch norm,
readout) are in ``docs/convnets.md``.
"""

from __future__ import annotations

from .nets import (
    Conv,
    ConvNet,
    conv_forward,
    conv_preactivations,
    directional_derivative,
    directional_derivative_by_depth,
    input_gradient_conv,
    line_inputs,
    sample_conv,
)
from .spec import CONV_ACTIVATIONS, CONV_ARCHS, CONV_BACKENDS, CONV_INITS, ConvSpec

__all__ = ["ConvSpec", "ConvNet", "Conv", "CONV_BACKENDS", "CONV_ARCHS", "CONV_ACTIVATIONS",
           "CONV_INITS", "sample_conv", "conv_forward", "conv_preactivations", "line_inputs",
           "directional_derivative", "directional_derivative_by_depth", "input_gradient_conv"]
