"""Input gradients: finite differences, forward vs reverse mode, kernels vs twins, LL nets."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gradsim import GridSpec, NetSpec, forward, input_gradient, network_rng, sample_network
from gradsim.compare import assert_agrees
from gradsim.nets import looks_linear_product, preactivations
from gradsim.stats import estimate_rows
from gradsim.strategies import grid_specs, net_specs


def _setup(spec, grid, seed):
    net = sample_network(spec, np.random.default_rng(seed))
    return net, grid.points_array()


def _same_pattern(net, x, dx, h):
    """True if no unit changes sign between x - h dx and x + h dx (off the kinks)."""
    base = preactivations(net, x, stats_from=x)
    for sign in (-1, 1):
        # statistics held (the per-point quotient) and moving with the batch ('through')
        for stats in (x, None):
            moved = preactivations(net, x + sign * h * dx, stats_from=stats)
            if any(((a > 0) != (b > 0)).any() for a, b in zip(base, moved)):
                return False
    # keep a margin: tiny pre-activations make the difference quotient ill-conditioned
    return all(np.min(np.abs(a)) > 1e-6 for a in base) if base else True


@given(net_specs(), st.integers(0, 2**32), st.data())
def test_matches_central_differences(spec, seed, data):
    grid = data.draw(grid_specs(dim=spec.input_dim))
    net, x = _setup(spec, grid, seed)
    dx = np.random.default_rng(seed + 1).standard_normal(x.shape)
    h = 1e-6
    assume(_same_pattern(net, x, dx, h))
    grad = input_gradient(net, x)
    through = spec.batchnorm and spec.bn_grad == "through"

    def quotient(step):
        if through:
            # gradient of sum_j f(x_j), batch statistics moving with the inputs
            up, down = forward(net, x + step * dx), forward(net, x - step * dx)
            return (up.sum() - down.sum()) / (2 * step)
        # per point, statistics held at those of the unperturbed batch
        return (forward(net, x + step * dx, stats_from=x)
                - forward(net, x - step * dx, stats_from=x)) / (2 * step)

    # Richardson: (4 D(h/2) - D(h)) / 3 cancels the h^2 term of the central difference,
    # which batch norm over a few points makes large (curvature ~ 1 / batch variance)
    fd = (4 * quotient(h / 2) - quotient(h)) / 3
    if through:
        want = np.sum(grad * dx)
        scale = np.sum(np.abs(grad * dx)) + 1e-8
    else:
        want = np.sum(grad * dx, axis=1)
        scale = np.max(np.abs(grad) * np.abs(dx)) * spec.input_dim + 1e-8
    scale += 1e-9 * np.max(np.abs(forward(net, x))) / h  # rounding of the difference quotient
    np.testing.assert_allclose(fd, want, atol=1e-5 * scale)


@given(net_specs(), st.integers(0, 2**32), st.data())
def test_forward_mode_equals_reverse_mode_and_twin(spec, seed, data):
    grid = data.draw(grid_specs(dim=spec.input_dim))
    net, x = _setup(spec, grid, seed)
    # rounding differs between backends and modes: keep every unit clear of its kink
    assume(all(np.min(np.abs(z)) > 1e-9 for z in preactivations(net, x)))
    ref = input_gradient(net, x, mode="reverse", backend="numpy")
    scale = np.max(np.abs(ref)) + 1e-300
    if spec.batchnorm and spec.bn_grad == "through":
        # the batch statistics' terms cancel the per-point ones (to 0 exactly for a linear
        # net): rounding is relative to those terms, the same net's frozen-BN gradient
        frozen = sample_network(spec.replace(bn_grad="frozen"), np.random.default_rng(seed))
        scale += np.max(np.abs(input_gradient(frozen, x)))
    for mode in ("forward", "reverse"):
        for backend in ("numba", "numpy"):
            got = input_gradient(net, x, mode=mode, backend=backend)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * scale)


def test_reverse_mode_through_batchnorm_ending_a_post_resnet_branch():
    """The branch F = BN(W x) ends in batch norm; with bn_grad='through' reverse mode
    needs BN's normalised output as it was, not after x + beta F overwrote it (a bug
    found by this test: the residual sum was taken in place on the branch's output)."""
    spec = NetSpec(arch="post-resnet", depth=1, width=1, batchnorm=True, bn_grad="through")
    net, x = _setup(spec, GridSpec(points=2, lo=0.0, hi=1.0), 0)
    np.testing.assert_allclose(input_gradient(net, x, mode="reverse"),
                               input_gradient(net, x, mode="forward"), rtol=1e-10)


@given(net_specs(batchnorm=True), st.integers(0, 2**32))
def test_frozen_equals_diagonal_of_through_jacobian_structure(spec, seed):
    """Frozen BN: per-point gradients do not interact, so forward mode with P*d
    point-wise tangents (as used for 'through') gives the same numbers."""
    from gradsim.families.layers import Context
    from gradsim.kernels import backend as get_backend

    # private on purpose: this checks the P*d point-wise tangent seed that 'through' uses,
    # which no public function runs with frozen statistics
    from gradsim.nets import _run, _tangent_seed

    spec = spec.replace(bn_grad="frozen")
    net, x = _setup(spec, GridSpec(points=5, dim=spec.input_dim, kind="gaussian"), seed)
    ctx = Context(x.shape[0], get_backend("numpy"))
    fs, _ = _run(net, _tangent_seed(x, through=True), ctx)
    jac = fs[5:].reshape(5, spec.input_dim, 5)  # (point i, coord c, output point j)
    off = jac.copy()
    for i in range(5):
        off[i, :, i] = 0.0
    assert np.all(off == 0.0)
    diag = np.stack([jac[i, :, i] for i in range(5)])
    np.testing.assert_allclose(diag, input_gradient(net, x), rtol=1e-12, atol=1e-14)


def test_gradient_of_linear_activation_is_constant():
    """A 'leaky' activation with equal slopes is linear: df/dx is one number."""
    spec = NetSpec(depth=6, width=9, activation="leaky", slope_pos=0.7, slope_neg=0.7)
    net, x = _setup(spec, GridSpec(points=33), 4)
    g = input_gradient(net, x)[:, 0]
    np.testing.assert_allclose(g, g[0], rtol=1e-12)
    first, *rest = net.dense_layers()
    w = first.w
    for layer in rest:
        w = 0.7 * (layer.w @ w)
    np.testing.assert_allclose(g[0], 0.7 * net.readout @ w[:, 0], rtol=1e-12)


@pytest.mark.parametrize("depth", [50, 80])
@pytest.mark.parametrize("dim", [1, 3])
def test_looks_linear_gradient_is_constant_product(depth, dim):
    """T12: identical at every grid point to rounding, equal to u^T W_L ... W_1."""
    spec = NetSpec(depth=depth, width=16, activation="crelu", init="looks-linear",
                   input_dim=dim)
    grid = GridSpec(points=64, dim=dim, kind="line" if dim == 1 else "gaussian")
    net, x = _setup(spec, grid, 11)
    want = looks_linear_product(net)
    for mode in ("forward", "reverse"):
        g = input_gradient(net, x, mode=mode)
        np.testing.assert_allclose(g, np.broadcast_to(want, g.shape), rtol=1e-11)
    # the network really is linear: f(x) - f(0) = want . x
    f = forward(net, x)
    f0 = forward(net, np.zeros((1, dim)))
    np.testing.assert_allclose(f - f0, x @ want, rtol=1e-9, atol=1e-9 * np.abs(f).max())


def test_looks_linear_with_frozen_batchnorm_is_still_constant():
    """Frozen BN is affine, so an LL net stays linear.  Inputs span 4 dimensions: on
    a 1-D grid every unit of a linear BN net carries the same signal and batch norm
    amplifies rounding without bound (see docs/conventions.md)."""
    spec = NetSpec(depth=50, width=12, activation="crelu", init="looks-linear", batchnorm=True,
                   input_dim=4)
    net, x = _setup(spec, GridSpec(points=40, dim=4, kind="gaussian"), 2)
    for mode in ("forward", "reverse"):
        g = input_gradient(net, x, mode=mode)
        np.testing.assert_allclose(g, np.broadcast_to(g[0], g.shape), rtol=1e-9)


def test_mirroring_zero_is_relu():
    """[P, -0 P] after CReLU is P relu(z): same output as a ReLU net with weights P."""
    spec = NetSpec(depth=3, width=7, activation="crelu", init="looks-linear", mirror=0.0)
    net, x = _setup(spec, GridSpec(points=20), 5)
    first, *rest = net.dense_layers()
    h = np.maximum(first.w @ x.T + first.b[:, None], 0)
    for layer in rest:
        h = np.maximum(layer.half @ h, 0)
    np.testing.assert_allclose(forward(net, x), net.readout_half @ h, rtol=1e-12)


def _explicit(net, x):
    """A direct transcription of the documented formulas (no BN), values only, from the
    spec and the dense layers in the order the network applies them."""
    s = net.spec
    act = {"relu": lambda z: np.maximum(z, 0),
           "leaky": lambda z: np.where(z > 0, s.slope_pos * z, s.slope_neg * z),
           "crelu": lambda z: np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)])}[s.activation]

    def affine(layer, h):
        return layer.w @ h + (layer.b[:, None] if layer.b is not None else 0)

    dense = iter(net.dense_layers())
    h = affine(next(dense), x.T)
    if s.arch == "feedforward":  # h_l = act(W_l h_{l-1} + b_l)
        h = act(h)
        for layer in dense:
            h = act(affine(layer, h))
    elif s.arch == "resnet":  # x_l = alpha (x + beta F(x)), F = W act(x) (+ a second layer)
        for _ in range(s.depth):
            f = h
            for _ in range(s.branch_depth):
                f = affine(next(dense), act(f))
            h = s.alpha * (h + s.beta * f)
    elif s.arch == "highway":  # x_l = T H + (1 - T) x, the dense layer stacks [W_H; W_T]
        n = s.width
        for layer in dense:
            z = affine(layer, h)
            t = 1 / (1 + np.exp(-z[n:]))
            h = t * act(z[:n]) + (1 - t) * h
    else:  # post-resnet: x_0 = act(W_0 x + b_0), x_l = act(alpha (x + beta F(x)))
        assert s.arch == "post-resnet", s.arch
        h = act(h)
        for _ in range(s.depth):
            f = affine(next(dense), h)
            for _ in range(s.branch_depth - 1):
                f = affine(next(dense), act(f))
            h = act(s.alpha * (h + s.beta * f))
    assert next(dense, None) is None  # every dense layer used
    return net.readout @ h


@given(net_specs(batchnorm=False), st.integers(0, 2**32))
def test_forward_matches_explicit_formulas(spec, seed):
    net, x = _setup(spec, GridSpec(points=9, dim=spec.input_dim, kind="gaussian"), seed)
    want = _explicit(net, x)
    np.testing.assert_allclose(forward(net, x), want, rtol=1e-10,
                               atol=1e-12 * (np.abs(want).max() + 1))


def test_batchnorm_normalises_over_the_grid_batch():
    spec = NetSpec(depth=2, width=6, batchnorm=True, bn_eps=0.0)
    net, x = _setup(spec, GridSpec(points=30), 3)
    for z in preactivations(net, x):
        np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
        np.testing.assert_allclose(z.var(axis=1), 1, rtol=1e-10)


@given(net_specs(archs=("feedforward",), max_width=6, batchnorm=False,
                 activations=("relu", "leaky")), st.integers(0, 2**32), st.data())
def test_fused_small_width_path_equals_layer_by_layer(spec, seed, data):
    from unittest import mock

    from gradsim.families import feedforward

    assume(spec.depth >= 2)  # plain nets of depth >= 2 are the ones that fuse
    grid = data.draw(grid_specs(dim=spec.input_dim))
    net, x = _setup(spec, grid, seed)
    assume(all(np.min(np.abs(z)) > 1e-9 for z in preactivations(net, x)))
    assert feedforward.fused(net) is not None
    fused = input_gradient(net, x)
    f_fused = forward(net, x)
    with mock.patch.object(feedforward, "FUSED_MAX_WIDTH", 0):
        assert feedforward.fused(net) is None
        layered = input_gradient(net, x)
        f_layered = forward(net, x)
    scale = np.max(np.abs(layered)) + 1e-300
    np.testing.assert_allclose(fused, layered, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(f_fused, f_layered, rtol=1e-12,
                               atol=1e-12 * np.max(np.abs(f_layered)))


@given(net_specs(batchnorm=True, activations=("relu", "leaky")), st.integers(0, 2**32),
       st.sampled_from(["forward", "reverse"]), st.sampled_from(["float64", "float32"]),
       st.sampled_from(["numba", "numpy"]), st.data())
def test_fused_batchnorm_activation_equals_layer_by_layer(spec, seed, mode, dtype, backend,
                                                          data):
    """Batch norm and the activation in one pass give the layer-by-layer numbers bit for
    bit, in both modes, precisions and backends, in every family that has them."""
    from unittest import mock

    from gradsim.families import layers

    grid = data.draw(grid_specs(dim=spec.input_dim))
    net, x = _setup(spec, grid, seed)
    net, x = net.astype(dtype), x.astype(dtype)
    if mode == "reverse" and net.spec.arch == "highway":
        mode = "forward"
    with mock.patch.object(layers, "fuse_bn_act", wraps=layers.fuse_bn_act) as spy:
        fused = input_gradient(net, x, mode=mode, backend=backend)
    assert spy.called == (spec.arch in ("feedforward", "resnet", "post-resnet"))
    with mock.patch.object(layers, "FUSE", False):
        layered = input_gradient(net, x, mode=mode, backend=backend)
    assert fused.dtype == np.dtype(dtype)
    assert np.array_equal(fused, layered, equal_nan=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", [
    NetSpec(depth=5, width=7), NetSpec(arch="resnet", depth=4, width=6),
    NetSpec(arch="highway", depth=3, width=5),
    NetSpec(depth=4, width=6, activation="crelu", init="looks-linear"),
    NetSpec(depth=4, width=6, activation="crelu")], ids=["ff", "resnet", "highway", "ll", "crelu"])
@pytest.mark.parametrize("sampler", ["explicit", "gram"])
def test_tap_readouts_in_one_draw_equal_one_draw_each(dtype, spec, sampler):
    """Tap readouts drawn in one generator call are the numbers of one call per tap."""
    from gradsim.families.activation import activation_rule
    from gradsim.families.sampling import Sampler, gram_refusal, tap_readouts

    if sampler == "gram" and gram_refusal(spec) is not None:
        pytest.skip("not drawn in Gram space")
    cols = 6 if sampler == "gram" else None
    a = Sampler(spec, np.random.default_rng(5), np.dtype(dtype).type, activation_rule(spec), cols)
    b = Sampler(spec, np.random.default_rng(5), np.dtype(dtype).type, activation_rule(spec), cols)
    got = tap_readouts(spec, a, spec.depth - 1)
    want = [spec.family.readout(spec, b)[0] for _ in range(spec.depth - 1)]
    assert len(got) == len(want) == spec.depth - 1
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g, w)
    assert a.rng.standard_normal() == b.rng.standard_normal()  # the streams moved alike


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias_var", [0.0, 0.5])
def test_bulk_drawn_layers_equal_one_draw_per_layer(dtype, bias_var):
    """He hidden layers come from one generator call; the numbers are those of one call
    per weight and per bias, in network order."""
    spec = NetSpec(depth=6, width=5, input_dim=2, bias_var=bias_var)
    net = sample_network(spec, np.random.default_rng(4), dtype)
    rng = np.random.default_rng(4)
    dt = np.dtype(dtype).type
    want = [rng.standard_normal((5, 2), dtype=dt), rng.standard_normal(5, dtype=dt)]
    for _ in range(5):
        want.append(rng.standard_normal((5, 5), dtype=dt))
        if bias_var:
            want.append(rng.standard_normal(5, dtype=dt))
    got = []
    for layer in net.dense_layers():
        got.append(layer.w)
        if layer.b is not None:
            got.append(layer.b)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = np.sqrt(2.0 / w.shape[1]) if w.ndim == 2 else np.sqrt(
            1.0 if w is want[1] else bias_var)
        assert np.array_equal(g, w * dt(scale))


def test_weight_variance_is_he():
    """Sampled He weights have second moment weight_var / fan_in: the mean of w^2 over the
    entries, within 4 standard errors."""
    spec = NetSpec(depth=2, width=300, weight_var=2.0)
    net = sample_network(spec, np.random.default_rng(0))
    w2 = net.dense_layers()[1].w.reshape(-1, 1) ** 2
    assert_agrees(2.0 / 300, estimate_rows(w2), name="He weight variance")


def test_orthogonal_weights_are_scaled_orthogonal():
    spec = NetSpec(depth=2, width=20, init="orthogonal", weight_var=2.0)
    net = sample_network(spec, np.random.default_rng(0))
    w = net.dense_layers()[1].w
    np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(20), atol=1e-12)


@pytest.mark.parametrize("spec", [
    NetSpec(depth=5, width=32),
    NetSpec(arch="resnet", depth=4, width=16, branch_depth=2, bias_var=0.2),
    NetSpec(arch="post-resnet", depth=3, width=16, beta=0.5),
], ids=["ff", "resnet", "post-resnet"])
def test_float32_agrees_with_float64_without_bn(spec):
    """float32 draws differ from float64 draws: compare the float32 net with the same
    parameters cast to float64 (Network.astype)."""
    x = GridSpec(points=64).points_array()
    net32 = sample_network(spec, np.random.default_rng(1), dtype="float32")
    net64 = net32.astype("float64")
    assert net64.dtype == np.float64 and net32.dtype == np.float32
    g32, g = input_gradient(net32, x), input_gradient(net64, x)
    assert g32.dtype == np.float32 and g.dtype == np.float64
    np.testing.assert_allclose(g32, g, rtol=1e-4, atol=1e-5 * np.abs(g).max())
    np.testing.assert_allclose(forward(net32, x), forward(net64, x), rtol=1e-4,
                               atol=1e-5 * np.abs(forward(net64, x)).max())


@pytest.mark.parametrize("bad, match", [
    (np.full((4, 1), np.nan), "finite"),
    (np.full((4, 1), np.inf), "finite"),
    (np.zeros((4, 2)), "shape"),
    (np.zeros((0, 1)), "shape"),
])
def test_bad_inputs(bad, match):
    net = sample_network(NetSpec(depth=1, width=3), np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        input_gradient(net, bad)


def test_bad_mode_backend_and_small_batch():
    net = sample_network(NetSpec(depth=1, width=3, batchnorm=True), np.random.default_rng(0))
    x = np.zeros((4, 1))
    with pytest.raises(ValueError, match="mode"):
        input_gradient(net, x, mode="sideways")
    with pytest.raises(ValueError, match="backend"):
        input_gradient(net, x, backend="cuda")
    with pytest.raises(ValueError, match="points >= 2"):
        input_gradient(net, np.zeros((1, 1)))
    with pytest.raises(ValueError, match="dtype"):
        sample_network(NetSpec(), np.random.default_rng(0), dtype="int8")


@pytest.mark.parametrize("spec", [
    NetSpec(depth=5, width=12, batchnorm=True),
    NetSpec(arch="resnet", depth=4, width=10, branch_depth=2, batchnorm=True),
    NetSpec(arch="highway", depth=3, width=8),
    NetSpec(depth=4, width=6, activation="crelu", init="looks-linear", mirror=0.5),
    NetSpec(arch="post-resnet", depth=3, width=8, branch_depth=2, batchnorm=True),
], ids=["ff-bn", "resnet2-bn", "highway", "ll", "post-resnet2-bn"])
def test_depth_taps_are_prefix_networks(spec):
    """Taps leave the network unchanged; each prefix with its tap readout is a network
    of that depth, and its gradient is what input_gradient gives for it."""
    from gradsim.montecarlo import simulate_depths
    from gradsim.nets import input_gradient_by_depth

    x = np.linspace(-2, 2, 9)
    tapped = sample_network(spec, network_rng(3, 0), taps=True)
    plain = sample_network(spec, network_rng(3, 0))
    g = input_gradient_by_depth(tapped, x)
    assert g.shape == (spec.depth, 9, 1) and len(tapped.taps) == spec.depth - 1
    np.testing.assert_array_equal(g[-1], input_gradient(plain, x))
    assert tapped.prefix(spec.depth) is tapped
    for depth in range(1, spec.depth):
        pre = tapped.prefix(depth)
        assert pre.spec == spec.replace(depth=depth)
        np.testing.assert_array_equal(input_gradient(pre, x), g[depth - 1])
        # the prefix's layers are the tapped net's own objects
        shared = tapped.dense_layers()[:len(pre.dense_layers())]
        assert all(a is b for a, b in zip(pre.dense_layers(), shared))
    sims = simulate_depths(spec, GridSpec(points=9), nets=3, seed=3)
    np.testing.assert_array_equal(sims[0], g)
    with pytest.raises(ValueError, match="taps=True"):
        input_gradient_by_depth(plain, x)
    with pytest.raises(ValueError, match="taps=True"):
        plain.prefix(1)
    with pytest.raises(ValueError, match="depth"):
        tapped.prefix(spec.depth + 1)
