"""Specs and grids: validation, defaults, JSON round trips."""

import math

import numpy as np
import pytest
from hypothesis import given

from gradsim import GridSpec, NetSpec
from gradsim.strategies import grid_specs, net_specs


@given(net_specs())
def test_spec_json_roundtrip(spec):
    assert NetSpec.from_json(spec.to_json()) == spec
    assert NetSpec.from_dict(spec.to_dict()) == spec


@given(grid_specs(dim=2))
def test_grid_json_roundtrip_and_shape(grid):
    assert GridSpec.from_json(grid.to_json()) == grid
    x = grid.points_array()
    assert x.shape == (grid.points, 2) and np.all(np.isfinite(x))


def test_defaults_are_the_papers():
    s, g = NetSpec(), GridSpec()
    assert (s.width, s.weight_var, s.arch, s.bn_grad) == (200, 2.0, "feedforward", "frozen")
    x = g.points_array()
    assert x.shape == (256, 1) and x[0, 0] == -2.0 and x[-1, 0] == 2.0
    assert np.allclose(np.diff(x[:, 0]), 4 / 255)


def test_ring_and_gaussian_grids():
    x = GridSpec(kind="ring", points=8, dim=3, radius=2.0).points_array()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0)
    assert np.all(x[:, 2] == 0)
    a = GridSpec(kind="gaussian", points=5, dim=4, seed=1).points_array()
    assert np.array_equal(a, GridSpec(kind="gaussian", points=5, dim=4, seed=1).points_array())
    assert not np.array_equal(a, GridSpec(kind="gaussian", points=5, dim=4, seed=2).points_array())
    line = GridSpec(points=3, dim=4, lo=-1, hi=1).points_array()
    np.testing.assert_allclose(np.linalg.norm(line, axis=1), [1, 0, 1])


def test_spec_is_frozen_and_replace_validates():
    s = NetSpec()
    with pytest.raises(AttributeError):
        s.depth = 3
    assert s.replace(depth=3).depth == 3
    with pytest.raises(ValueError, match="depth"):
        s.replace(depth=0)


def test_integral_floats_are_accepted_from_json():
    assert NetSpec.from_json('{"depth": 3.0}').depth == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=0), "depth"), (dict(depth=-2), "depth"), (dict(depth=1.5), "depth"),
    (dict(depth=True), "depth"), (dict(width=0), "width"), (dict(width=10**7), "width"),
    (dict(input_dim=0), "input_dim"), (dict(arch="convnet"), "arch"),
    (dict(activation="tanh"), "activation"), (dict(init="xavier"), "init"),
    (dict(weight_var=0.0), "weight_var"), (dict(weight_var=math.nan), "weight_var"),
    (dict(weight_var=math.inf), "weight_var"), (dict(bias_var=-1.0), "bias_var"),
    (dict(first_bias_var=math.nan), "first_bias_var"), (dict(readout_var=0.0), "readout_var"),
    (dict(bn_eps=-1e-5), "bn_eps"), (dict(batchnorm="yes"), "batchnorm"),
    (dict(init="looks-linear"), "looks-linear"), (dict(mirror=0.5), "mirror"),
    (dict(activation="crelu", init="looks-linear", mirror=1.5), "mirror"),
    (dict(bn_grad="through"), "through"), (dict(bn_grad="sideways", batchnorm=True), "bn_grad"),
    (dict(alpha=0.5), "alpha"), (dict(beta=0.1), "beta"), (dict(branch_depth=2), "branch_depth"),
    (dict(arch="resnet", branch_depth=3), "branch_depth"), (dict(gate_bias=-1.0), "gate_bias"),
    (dict(arch="highway", activation="crelu"), "crelu"),
    (dict(arch="resnet", alpha=math.inf), "alpha"),
])
def test_spec_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetSpec(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=0), "points"), (dict(lo=math.nan), "range"), (dict(hi=math.inf), "range"),
    (dict(lo=2.0, hi=-2.0), "lo < hi"), (dict(kind="spiral"), "grid"),
    (dict(kind="ring"), "input_dim >= 2"), (dict(radius=0.0), "radius"),
    (dict(seed=-1), "seed"),
])
def test_grid_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GridSpec(**kwargs)


@pytest.mark.parametrize("text, match", [
    ("{", "JSON"), ("[1, 2]", "object"), ('{"depth": 2, "colour": "red"}', "colour"),
])
def test_malformed_json(text, match):
    with pytest.raises(ValueError, match=match):
        NetSpec.from_json(text)
