"""Exact linear pieces along the input line: slopes equal the grid gradients, the
breakpoints equal a brute-force count, looks-linear nets have none, and bad input is
refused."""

import numpy as np
import pytest

from gradsim import NetSpec
from gradsim.kinks import breakpoints, grid_adequacy, grid_crossings
from gradsim.montecarlo import network_rng
from gradsim.nets import forward, input_gradient, preactivations, sample_network

FAMILIES = [
    NetSpec(depth=5, width=24),
    NetSpec(arch="resnet", depth=5, width=24),
    NetSpec(arch="resnet", depth=3, width=16, branch_depth=2),
    NetSpec(depth=4, width=24, batchnorm=True, bn_grad="frozen"),
    NetSpec(arch="resnet", depth=4, width=24, batchnorm=True, bn_grad="frozen", beta=0.1),
    NetSpec(depth=4, width=16, activation="leaky", slope_pos=1.0, slope_neg=0.3),
    NetSpec(depth=4, width=16, activation="crelu"),
    NetSpec(depth=4, width=16, activation="crelu", init="looks-linear"),
    NetSpec(depth=4, width=16, activation="crelu", init="looks-linear", mirror=0.5),
    NetSpec(arch="post-resnet", depth=3, width=16),
    NetSpec(depth=3, width=16, input_dim=3),
]
IDS = [f"{s.arch}-{s.activation}-{s.init}-bn{int(s.batchnorm)}-d{s.input_dim}"
       for s in FAMILIES]


def _line(spec, t):
    u = np.ones(spec.input_dim) / np.sqrt(spec.input_dim)
    return t[:, None] * u[None, :], u


@pytest.mark.parametrize("spec", FAMILIES, ids=IDS)
def test_slopes_are_the_grid_gradients_and_values_the_forward_pass(spec):
    """df/dt on the piece holding each grid point (a knot: either side) equals the
    forward-mode grid gradient to rounding, and f at the knots the forward pass."""
    net = sample_network(spec, network_rng(3, 0))
    grid = np.linspace(-2.0, 2.0, 57)
    k = breakpoints(net, -2.0, 2.0, grid=grid)
    x, u = _line(spec, grid)
    g = input_gradient(net, x) @ u
    j = np.searchsorted(k.knots, grid)
    assert np.array_equal(k.knots[j], grid)  # grid points are knots
    right = k.slopes[np.clip(j, None, len(k.slopes) - 1)]
    # f has no derivative at a breakpoint: leave out grid points within 1e-9 of one
    # (with batch norm on a symmetric grid every first-layer unit crosses at t = 0)
    near = np.abs(grid[:, None] - k.breakpoints[None, :]).min(axis=1, initial=np.inf) < 1e-9
    assert (~near).sum() >= len(grid) - 2
    scale = np.abs(g).max()
    np.testing.assert_allclose(g[~near], right[~near], rtol=0, atol=1e-12 * scale)
    fv = forward(net, x, stats_from=x if spec.batchnorm else None)
    np.testing.assert_allclose(k.f[j], fv, rtol=0, atol=1e-12 * np.abs(fv).max())
    # the pieces: slope constant between breakpoints, f continuous and linear
    np.testing.assert_allclose(np.diff(k.f), k.slopes * np.diff(k.knots), rtol=0,
                               atol=1e-12 * np.abs(k.f).max())


@pytest.mark.parametrize("spec", FAMILIES[:3] + FAMILIES[5:7] + FAMILIES[9:], ids=lambda s: s.arch)
def test_breakpoints_equal_a_brute_force_count_on_a_fine_grid(spec):
    """On a grid fine enough that no interval holds two breakpoints, the grid gradient
    changes in exactly as many intervals as there are breakpoints, and in exactly the
    intervals that hold one."""
    net = sample_network(spec, network_rng(4, 0))
    k = breakpoints(net, -1.0, 1.0)
    fine = np.linspace(-1.0, 1.0, 200001)
    adequacy = grid_adequacy(k, fine)
    assert adequacy["several"] == 0  # the fine grid resolves them
    x, u = _line(spec, fine)
    g = input_gradient(net, x, backend="numpy") @ u  # the twins: fast without the JIT too
    changed = np.abs(np.diff(g)) > 1e-9 * np.abs(g).max()
    assert changed.sum() == len(k.breakpoints) > 10
    held = np.searchsorted(fine, k.breakpoints, side="right") - 1
    assert np.array_equal(np.flatnonzero(changed), np.sort(held))


def test_crossings_are_the_sign_changes_of_the_preactivations():
    spec = NetSpec(depth=4, width=16)
    net = sample_network(spec, network_rng(5, 0))
    k = breakpoints(net, -2.0, 2.0)
    fine = np.linspace(-2.0, 2.0, 100001)
    counted = grid_crossings(net, fine, backend="numpy")
    np.testing.assert_allclose(k.crossings_per_unit(), counted, rtol=0, atol=0)
    pre = preactivations(net, fine, backend="numpy")
    for z, tc, unit in zip(pre, k.crossings, k.crossing_units):
        assert len(tc) == ((z[:, :-1] > 0) != (z[:, 1:] > 0)).sum()
        assert np.all(np.diff(tc) >= 0) and np.all((tc > -2) & (tc < 2))
        assert np.all((unit >= 0) & (unit < z.shape[0]))
    # every crossing of a feedforward ReLU net is a breakpoint of f (no path is dead here)
    assert len(k.breakpoints) == sum(len(c) for c in k.crossings)


def test_looks_linear_units_cross_but_f_has_no_breakpoint():
    spec = NetSpec(depth=6, width=32, activation="crelu", init="looks-linear")
    net = sample_network(spec, network_rng(6, 0))
    k = breakpoints(net, -3.0, 3.0)
    assert sum(len(c) for c in k.crossings) > 50
    assert len(k.breakpoints) == 0 and len(k.pieces) == 1
    x, u = _line(spec, np.array([-3.0, 0.0, 3.0]))
    slope = (forward(net, x)[2] - forward(net, x)[0]) / 6.0
    assert k.pieces[0] == pytest.approx(slope, rel=1e-10)


def test_tap_breakpoints_are_the_prefix_networks_own():
    spec = NetSpec(depth=4, width=16)
    net = sample_network(spec, network_rng(7, 0), taps=True)
    k = breakpoints(net, -2.0, 2.0)
    assert len(k.tap_breakpoints) == 4
    np.testing.assert_array_equal(k.tap_breakpoints[-1], k.breakpoints)
    for depth in (1, 2, 3):
        sub = breakpoints(net.prefix(depth), -2.0, 2.0)
        np.testing.assert_array_equal(k.tap_breakpoints[depth - 1], sub.breakpoints)


def test_grid_adequacy_counts_intervals_with_several_breakpoints():
    net = sample_network(NetSpec(depth=6, width=32), network_rng(8, 0))
    k = breakpoints(net, -2.0, 2.0)
    coarse = grid_adequacy(k, np.linspace(-2.0, 2.0, 9))
    assert coarse["intervals"] == 8 and coarse["several"] > 0
    assert coarse["empty"] + coarse["one"] + coarse["several"] == 8
    assert coarse["hidden"] == len(k.breakpoints) - coarse["one"] - coarse["several"]


def test_bad_input_is_refused():
    net = sample_network(NetSpec(depth=2, width=8), network_rng(0, 0))
    for kw, match in (({"a": 1.0, "b": 1.0}, "b > a"), ({"a": 0.0, "b": np.nan}, "b"),
                      ({"a": -1.0, "b": 1.0, "grid": [0.0, 2.0]}, "inside"),
                      ({"a": -1.0, "b": 1.0, "max_knots": 3}, "max_knots")):
        with pytest.raises(ValueError, match=match):
            breakpoints(net, **kw)
    net3 = sample_network(NetSpec(depth=2, width=8, input_dim=3), network_rng(0, 0))
    with pytest.raises(ValueError, match="direction must be nonzero"):
        breakpoints(net3, -1.0, 1.0, direction=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="direction must be 3"):
        breakpoints(net3, -1.0, 1.0, direction=[1.0, 0.0])
    hw = sample_network(NetSpec(arch="highway", depth=2, width=8), network_rng(0, 0))
    with pytest.raises(ValueError, match="highway"):
        breakpoints(hw, -1.0, 1.0)
    assert grid_crossings(hw, np.linspace(-1, 1, 101)).shape == (2,)
    bn = sample_network(NetSpec(depth=2, width=8, batchnorm=True), network_rng(0, 0))
    with pytest.raises(ValueError, match="grid"):
        breakpoints(bn, -1.0, 1.0)
    gram = sample_network(NetSpec(depth=2, width=64), network_rng(0, 0), sampler="gram",
                          points=2)
    with pytest.raises(ValueError, match="explicitly"):
        breakpoints(gram, -1.0, 1.0)


def test_grid_report_counts_intervals_and_says_where_it_does_not_apply():
    from gradsim import GridSpec
    from gradsim.kinks import grid_report

    spec = NetSpec(depth=4, width=16)
    grid = GridSpec(points=16, lo=-2.0, hi=2.0)
    rep = grid_report(spec, grid, seed=3, nets=2)
    t = np.linspace(-2.0, 2.0, 16)
    want = [grid_adequacy(breakpoints(sample_network(spec, network_rng(3, i)), -2.0, 2.0,
                                      grid=t), t)["several"] for i in range(2)]
    assert rep["several"] == np.mean(want) and rep["intervals"] == 15 and rep["nets"] == 2
    assert "not a line" in grid_report(NetSpec(depth=2, width=8, input_dim=2),
                                       GridSpec(kind="ring", dim=2, points=8), seed=0)
    assert "highway" in grid_report(NetSpec(arch="highway", depth=2, width=8), grid, seed=0)
    assert "far too coarse" in grid_report(spec, grid, seed=0, max_knots=20)


@pytest.mark.parametrize("spec", [FAMILIES[0], FAMILIES[1], FAMILIES[6], FAMILIES[5]],
                         ids=["ff", "resnet", "crelu", "leaky"])
def test_numba_kernels_and_numpy_twins_agree(spec):
    net = sample_network(spec, network_rng(12, 0))
    a = breakpoints(net, -2.0, 2.0, grid=np.linspace(-2, 2, 9), backend="numba")
    b = breakpoints(net, -2.0, 2.0, grid=np.linspace(-2, 2, 9), backend="numpy")
    np.testing.assert_array_equal(a.knots, b.knots)
    np.testing.assert_allclose(a.slopes, b.slopes, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(a.breakpoints, b.breakpoints)
    for x, y in zip(a.crossings, b.crossings):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("spec", [
    NetSpec(depth=6, width=12, batchnorm=True),
    NetSpec(arch="resnet", depth=4, width=10, batchnorm=True, branch_depth=2),
    NetSpec(arch="post-resnet", depth=3, width=8, activation="leaky", slope_neg=0.2),
    NetSpec(depth=5, width=8, activation="crelu", init="looks-linear"),
    NetSpec(depth=5, width=8, activation="crelu"),
], ids=["ff-bn", "resnet2-bn", "post-resnet-leaky", "looks-linear", "crelu"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_pieces_do_not_change_the_result(spec, backend):
    """The segment carried in pieces of a few knots gives what one piece gives: the same
    crossings per site, knots, breakpoints, f, slopes and tap statistics (to rounding)."""
    from unittest import mock

    from gradsim import kinks

    net = sample_network(spec, network_rng(4, 1), taps=True)
    grid = np.linspace(-2, 2, 17)
    whole = breakpoints(net, -2.0, 2.0, grid=grid, backend=backend)
    with mock.patch.object(kinks, "PIECE_KNOTS", 4):
        cut = breakpoints(net, -2.0, 2.0, grid=grid, backend=backend)
    assert len(whole.knots) > 8  # so it was cut, many times
    assert [len(c) for c in cut.crossings] == [len(c) for c in whole.crossings]
    assert np.array_equal(cut.units, whole.units)
    for c, w in zip(cut.crossings, whole.crossings):
        np.testing.assert_allclose(c, w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cut.knots, whole.knots, rtol=0, atol=1e-12)
    scale = np.abs(whole.slopes).max()
    np.testing.assert_allclose(cut.slopes, whole.slopes, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(cut.f, whole.f, rtol=0, atol=1e-12 * np.abs(whole.f).max())
    assert len(cut.breakpoints) == len(whole.breakpoints)
    np.testing.assert_allclose(cut.tap_slope_rms, whole.tap_slope_rms, rtol=1e-12)
    assert [len(b) for b in cut.tap_breakpoints] == [len(b) for b in whole.tap_breakpoints]
