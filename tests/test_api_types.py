"""Wrong argument types in the network API get a ValueError naming the argument, never an
AttributeError or TypeError from deep inside (issue 14)."""

import numpy as np
import pytest

from gradsim import GridSpec, NetSpec, forward, input_gradient, network_rng, sample_network
from gradsim.conv import ConvSpec, directional_derivative, input_gradient_conv, sample_conv
from gradsim.nets import input_gradient_by_depth, preactivations

SPEC = NetSpec(depth=2, width=3)
NET = sample_network(SPEC, network_rng(0, 0), taps=True)
X = GridSpec(points=4).points_array()
CONV = sample_conv(ConvSpec(dims=1, depth=2, channels=2, input_shape=(5,)), network_rng(0, 0))


@pytest.mark.parametrize("call, match", [
    (lambda: sample_network(SPEC, 0), "rng must be a numpy.random.Generator"),
    (lambda: sample_network(SPEC, np.random.RandomState(0)), "rng must be"),
    (lambda: sample_network(None, network_rng(0, 0)), "spec must be a NetSpec"),
    (lambda: sample_network(SPEC.to_dict(), network_rng(0, 0)), "spec must be a NetSpec"),
    (lambda: sample_network(SPEC, network_rng(0, 0), dtype="int8"), "dtype must be"),
    (lambda: sample_network(SPEC, network_rng(0, 0), taps="yes"), "taps must be true or false"),
    (lambda: input_gradient(SPEC, X), "net must be a Network"),
    (lambda: input_gradient(NET, "abc"), "x must"),
    (lambda: input_gradient(NET, None), "x must"),
    (lambda: input_gradient(NET, X, mode=1), "mode must be one of"),
    (lambda: input_gradient(NET, X, backend=None), "backend must be one of"),
    (lambda: input_gradient(NET, X, activity="yes"), "activity must be true or false"),
    (lambda: forward(NET, object()), "x must"),
    (lambda: preactivations(NET, [["a"]]), "x must contain only finite real numbers"),
    (lambda: input_gradient_by_depth(NET, {}), "x must"),
    (lambda: NET.prefix("a"), "depth must be an integer"),
    (lambda: NET.prefix(3), r"depth must be an integer in \[1, 2\]"),
    (lambda: NET.astype("int8"), "dtype must be"),
    (lambda: sample_conv(CONV.spec, 0), "rng must be"),
    (lambda: sample_conv(CONV.spec, network_rng(0, 0), taps=1), "taps must be true or false"),
    (lambda: directional_derivative(NET, np.zeros((1, 5)), np.ones((1, 5)), [0.0]),
     "net must be a ConvNet"),
    (lambda: input_gradient_conv(CONV, "abc"), "x must"),
])
def test_wrong_types_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
