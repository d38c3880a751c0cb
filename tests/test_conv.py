"""Convolutional nets: kernels vs twins, explicit formulas, finite differences, forward vs
reverse mode, looks-linear exactness, the He variance, bad inputs, the experiment."""


import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gradsim.compare import assert_agrees
from gradsim.conv import (
    ConvSpec,
    conv_forward,
    conv_preactivations,
    directional_derivative,
    directional_derivative_by_depth,
    input_gradient_conv,
    line_inputs,
    sample_conv,
)
from gradsim.kernels import backend as kernel_backend
from gradsim.stats import estimate_rows

kernels_conv, reference_conv = kernel_backend("numba"), kernel_backend("numpy")


@st.composite
def conv_specs(draw, batchnorm=None):
    """Small ConvSpecs of every kind."""
    dims = draw(st.sampled_from([1, 2]))
    shape = tuple(draw(st.integers(1, 5 if dims == 2 else 9)) for _ in range(dims))
    activation = draw(st.sampled_from(["relu", "crelu"]))
    init = draw(st.sampled_from(["he", "looks-linear"])) if activation == "crelu" else "he"
    arch = draw(st.sampled_from(["feedforward", "resnet"]))
    scal = {}
    if arch == "resnet":
        scal = dict(alpha=draw(st.sampled_from([0.7, 1.0])), beta=draw(st.sampled_from([0.3, 1.0])))
    bn = draw(st.booleans()) if batchnorm is None else batchnorm
    return ConvSpec(dims=dims, arch=arch, depth=draw(st.integers(1, 3)),
                    channels=draw(st.integers(1, 4)), kernel=draw(st.sampled_from([1, 3, 5])),
                    in_channels=draw(st.integers(1, 2)), input_shape=shape,
                    activation=activation, init=init, batchnorm=bn,
                    first_bias_var=draw(st.sampled_from([0.0, 0.5])), **scal)


def _line(spec, seed, points):
    """A net and a random line: ``net, x0, d, t``."""
    rng = np.random.default_rng(seed)
    net = sample_conv(spec, rng)
    shape = (spec.in_channels, *spec.input_shape)
    return net, rng.standard_normal(shape), rng.standard_normal(shape), np.linspace(-1, 1, points)


# ----------------------------------------------------------------------------- kernels

runs = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5),
                 st.sampled_from([1, 3, 5]), st.sampled_from([1, 3, 5]), st.data())


def _run(data, n):
    first = data.draw(st.integers(0, n - 1))
    return first, data.draw(st.integers(1, n - first))


@given(runs, st.integers(0, 2**32))
def test_im2col_col2im_numba_equal_numpy_twins(shape, seed):
    c, n, h, w, kh, kw, data = shape
    first, m = _run(data, n)
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((c, n * h * w))
    got, want = (np.full((c * kh * kw, m * h * w), np.nan) for _ in range(2))
    kernels_conv.im2col(s, h, w, kh, kw, first, got)
    reference_conv.im2col(s, h, w, kh, kw, first, want)
    assert np.array_equal(got, want)
    cols = rng.standard_normal(want.shape)
    got, want = np.full_like(s, 7.0), np.full_like(s, 7.0)
    kernels_conv.col2im(cols, h, w, kh, kw, first, got)
    reference_conv.col2im(cols, h, w, kh, kw, first, want)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)
    # images outside the run are untouched
    outside = np.ones(n, dtype=bool)
    outside[first:first + m] = False
    assert np.all(got.reshape(c, n, -1)[:, outside] == 7.0)


@pytest.mark.parametrize("mod", [kernels_conv, reference_conv])
@given(runs, st.integers(0, 2**32))
def test_col2im_is_the_adjoint_of_im2col(mod, shape, seed):
    """<im2col(s), cols> = <s, col2im(cols)> over the run's images."""
    c, n, h, w, kh, kw, data = shape
    first, m = _run(data, n)
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((c, n * h * w))
    cols = rng.standard_normal((c * kh * kw, m * h * w))
    a = np.empty_like(cols)
    mod.im2col(s, h, w, kh, kw, first, a)
    b = np.zeros_like(s)
    mod.col2im(cols, h, w, kh, kw, first, b)
    np.testing.assert_allclose(np.sum(a * cols), np.sum(s * b), rtol=1e-12, atol=1e-12)


def test_im2col_by_hand():
    """One channel, a 1 x 3 image, 1 x 3 kernel: rows are the left, centre, right taps."""
    s = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])  # two images
    out = np.empty((3, 6))
    kernels_conv.im2col(s, 1, 3, 1, 3, 0, out)
    assert out.tolist() == [[0, 1, 2, 0, 4, 5], [1, 2, 3, 4, 5, 6], [2, 3, 0, 5, 6, 0]]


# ----------------------------------------------------------------------------- forward pass

def _conv_by_hand(layer, x):
    """Cross-correlation with zero padding, transcribed: ``x`` (P, C, H, W)."""
    (kh, kw), o = layer.kernel, layer.w.shape[0]
    k = layer.w.reshape(o, x.shape[1], kh, kw)
    h, w = x.shape[2:]
    pad = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    z = np.zeros((x.shape[0], o, h, w))
    for a in range(kh):
        for b in range(kw):
            z += np.einsum("oc,pchw->pohw", k[:, :, a, b], pad[:, :, a:a + h, b:b + w])
    return z + (0 if layer.b is None else layer.b[None, :, None, None])


def _explicit(net, x):
    """The documented formulas, values only: ``x`` (P, C, *input_shape) -> (P,)."""
    s = net.spec
    x = x.reshape(x.shape[0], x.shape[1], *s.grid)

    def act(z):
        if s.batchnorm:
            z = (z - z.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
                z.var(axis=(0, 2, 3), keepdims=True) + s.bn_eps)
        if s.activation == "relu":
            return np.maximum(z, 0)
        return np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], axis=1)

    convs = net.conv_layers()
    assert len(convs) == (s.depth if s.arch == "feedforward" else s.depth + 1)
    h = _conv_by_hand(convs[0], x)
    for layer in convs[1:]:
        if s.arch == "feedforward":
            h = _conv_by_hand(layer, act(h))
        else:
            h = s.alpha * (h + s.beta * _conv_by_hand(layer, act(h)))
    if s.arch == "feedforward":
        h = act(h)
    return np.einsum("pcs,cs->p", h.reshape(h.shape[0], h.shape[1], -1), net.readout)


@given(conv_specs(), st.integers(0, 2**32), st.integers(1, 4))
def test_forward_matches_explicit_formulas(spec, seed, points):
    assume(not spec.batchnorm or points * spec.spatial >= 2)
    net, x0, d, t = _line(spec, seed, points)
    x = line_inputs(x0, d, t)
    want = _explicit(net, x)
    for backend in ("numba", "numpy"):
        np.testing.assert_allclose(conv_forward(net, x, backend), want, rtol=1e-9,
                                   atol=1e-9 * (np.abs(want).max() + 1))


# ----------------------------------------------------------------------------- derivatives

def _same_pattern(net, x, d, h):
    """True if no unit changes sign between x - h d and x + h d (frozen statistics)."""
    base = conv_preactivations(net, x, stats_from=x)
    for sign in (-1, 1):
        moved = conv_preactivations(net, x + sign * h * d, stats_from=x)
        if any(((a > 0) != (b > 0)).any() for a, b in zip(base, moved)):
            return False
    return all(np.min(np.abs(a)) > 1e-6 for a in base)


@given(conv_specs(), st.integers(0, 2**32), st.integers(2, 6))
def test_directional_derivative_matches_central_differences(spec, seed, points):
    net, x0, d, t = _line(spec, seed, points)
    x = line_inputs(x0, d, t)
    h = 1e-6
    assume(_same_pattern(net, x, d[None], h))
    got = directional_derivative(net, x0, d, t)
    fd = (conv_forward(net, x + h * d, stats_from=x)
          - conv_forward(net, x - h * d, stats_from=x)) / (2 * h)
    grad = input_gradient_conv(net, x)
    scale = np.max(np.sum(np.abs(grad * d[None]).reshape(points, -1), axis=1)) + 1e-8
    scale += 1e-9 * np.max(np.abs(conv_forward(net, x))) / h  # rounding of the quotient
    np.testing.assert_allclose(fd, got, rtol=0, atol=1e-5 * scale)


@given(conv_specs(), st.integers(0, 2**32), st.integers(2, 5))
def test_reverse_mode_contracted_with_direction_is_directional_derivative(spec, seed, points):
    net, x0, d, t = _line(spec, seed, points)
    x = line_inputs(x0, d, t)
    # rounding differs between modes and backends: keep every unit clear of its kink
    assume(all(np.min(np.abs(z)) > 1e-9 for z in conv_preactivations(net, x)))
    ref = directional_derivative(net, x0, d, t, backend="numpy")
    scale = np.max(np.abs(ref)) + 1e-300
    for backend in ("numba", "numpy"):
        grad = input_gradient_conv(net, x, backend)
        assert grad.shape == x.shape
        contracted = np.sum((grad * d[None]).reshape(points, -1), axis=1)
        np.testing.assert_allclose(contracted, ref, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(directional_derivative(net, x0, d, t, backend), ref,
                                   rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(input_gradient_conv(net, x, "numba"),
                               input_gradient_conv(net, x, "numpy"), rtol=0,
                               atol=1e-10 * (np.abs(grad).max() + 1e-300))


@pytest.mark.parametrize("spec", [
    ConvSpec(dims=2, depth=4, channels=3, input_shape=(4, 5), batchnorm=True),
    ConvSpec(dims=1, arch="resnet", depth=3, channels=4, input_shape=(9,), batchnorm=True),
    ConvSpec(dims=1, depth=3, channels=2, input_shape=(7,), activation="crelu",
             init="looks-linear", first_bias_var=0.5),
], ids=["ff-bn-2d", "resnet-bn-1d", "ll-1d"])
def test_depth_taps_are_prefix_networks(spec):
    """Taps leave the net unchanged; each prefix with its tap readout is a net of that
    depth, whose directional derivative is the tapped row."""
    rng = np.random.default_rng(5)
    shape = (spec.in_channels, *spec.input_shape)
    x0, d, t = rng.standard_normal(shape), rng.standard_normal(shape), np.linspace(-1, 1, 6)
    tapped = sample_conv(spec, np.random.default_rng(3), taps=True)
    plain = sample_conv(spec, np.random.default_rng(3))
    g = directional_derivative_by_depth(tapped, x0, d, t)
    assert g.shape == (spec.depth, 6) and len(tapped.taps) == spec.depth - 1
    np.testing.assert_array_equal(g[-1], directional_derivative(plain, x0, d, t))
    assert tapped.prefix(spec.depth) is tapped
    for depth in range(1, spec.depth):
        pre = tapped.prefix(depth)
        assert pre.spec == spec.replace(depth=depth)
        np.testing.assert_array_equal(directional_derivative(pre, x0, d, t), g[depth - 1])
        # the prefix's layers are the tapped net's own objects
        assert all(a is b for a, b in zip(pre.conv_layers(), tapped.conv_layers()))
    with pytest.raises(ValueError, match="taps=True"):
        directional_derivative_by_depth(plain, x0, d, t)
    with pytest.raises(ValueError, match="taps=True"):
        plain.prefix(1)


# ----------------------------------------------------------------------------- looks-linear

@pytest.mark.parametrize("arch, dims", [("feedforward", 2), ("resnet", 1)])
def test_looks_linear_convnet_is_exactly_linear_at_depth_20(arch, dims):
    spec = ConvSpec(dims=dims, arch=arch, depth=20, channels=3,
                    input_shape=(4, 5) if dims == 2 else (9,), activation="crelu",
                    init="looks-linear", first_bias_var=0.3)
    net, x0, d, t = _line(spec, 8, 9)
    g = directional_derivative(net, x0, d, t)
    assert np.max(np.abs(g - g[0])) <= 1e-12 * abs(g[0])
    f = conv_forward(net, line_inputs(x0, d, t))
    f0 = conv_forward(net, x0[None])[0]
    np.testing.assert_allclose(f, f0 + t * g[0], rtol=0,
                               atol=1e-12 * (np.abs(f).max() + abs(g[0])))
    grad = input_gradient_conv(net, line_inputs(x0, d, t))
    np.testing.assert_allclose(grad, np.broadcast_to(grad[0], grad.shape), rtol=0,
                               atol=1e-12 * np.abs(grad).max())


def test_looks_linear_kernels_are_mirrored_delta_orthogonal():
    """[K, -K] with K zero except an orthogonal centre tap; then the net is
    v . K_L ... K_2 conv_1(x) position by position."""
    spec = ConvSpec(dims=2, depth=4, channels=3, input_shape=(4, 4), activation="crelu",
                    init="looks-linear", first_bias_var=0.5)
    net, x0, d, t = _line(spec, 2, 3)
    convs = net.conv_layers()
    m = np.eye(3)
    for layer in convs[1:]:
        k = layer.w.reshape(3, 6, 9)
        np.testing.assert_allclose(layer.half.T @ layer.half, np.eye(3), atol=1e-14)
        assert np.array_equal(k[:, :3, 4], layer.half) and np.array_equal(k[:, 3:, 4],
                                                                           -layer.half)
        assert not np.any(np.delete(k, 4, axis=2))
        m = layer.half @ m
    assert np.array_equal(net.readout, np.concatenate([net.readout_half, -net.readout_half]))
    x = line_inputs(x0, d, t)
    z1 = _conv_by_hand(convs[0], x).reshape(3, 3, 16)  # (P, C, S)
    want = np.einsum("cs,cd,pds->p", net.readout_half, m, z1)
    np.testing.assert_allclose(conv_forward(net, x), want, rtol=1e-12)


# ----------------------------------------------------------------------------- He init

def test_he_init_keeps_the_preactivation_second_moment():
    """Plain ReLU convnet, constant input 1: E[z_l^2] = 2 at every layer at positions at
    least ``depth`` from the border (each conv averages q over its taps; 'same' padding
    only lowers it within reach of the border).  Mean over nets, within 4 s.e."""
    depth, length, nets = 4, 24, 400
    spec = ConvSpec(dims=1, depth=depth, channels=16, input_shape=(length,))
    x = np.ones((1, 1, length))
    m = np.empty((nets, depth))
    for n in range(nets):
        net = sample_conv(spec, np.random.default_rng([7, n]))
        pre = conv_preactivations(net, x, backend="numpy")  # fast with or without the JIT
        m[n] = [np.mean(z[0, :, depth:length - depth] ** 2) for z in pre]
    est = estimate_rows(m)
    assert_agrees(2.0, est, name="E[z_l^2] by layer")
    # the check has power: any layer off by 30% would fail it (variance 1 / fan_in would
    # halve the moment at every layer)
    assert np.all(4 * est.se < 0.6), est.se


# ----------------------------------------------------------------------------- spec, inputs

@given(conv_specs())
def test_spec_json_round_trip(spec):
    back = ConvSpec.from_json(spec.to_json())
    assert back == spec and isinstance(back.input_shape, tuple)


@pytest.mark.parametrize("kw, match", [
    (dict(dims=3, input_shape=(2, 2, 2)), "dims"),
    (dict(depth=0), "depth"),
    (dict(channels=-1), "channels"),
    (dict(kernel=2), "kernel must be an odd"),
    (dict(kernel=0), "kernel"),
    (dict(in_channels=0), "in_channels"),
    (dict(input_shape=(8,)), "input_shape"),
    (dict(input_shape=(0, 4)), "input_shape"),
    (dict(input_shape="88"), "input_shape"),
    (dict(init="looks-linear"), "looks-linear"),
    (dict(alpha=0.5), "alpha"),
    (dict(arch="highway"), "arch"),
    (dict(activation="tanh"), "activation"),
    (dict(batchnorm="yes"), "batchnorm"),
    (dict(readout_var=0.0), "readout_var"),
    (dict(first_bias_var=float("nan")), "first_bias_var"),
])
def test_bad_spec(kw, match):
    with pytest.raises(ValueError, match=match):
        ConvSpec(**kw)


def test_bad_json_keys():
    with pytest.raises(ValueError, match="unknown keys: width"):
        ConvSpec.from_dict({"width": 3})


def test_bad_inputs():
    spec = ConvSpec(dims=2, depth=1, channels=2, input_shape=(3, 3), batchnorm=True)
    net = sample_conv(spec, np.random.default_rng(0))
    x0, t = np.zeros((1, 3, 3)), np.linspace(-1, 1, 4)
    for x, match in ((np.full((2, 1, 3, 3), np.nan), "finite"), (np.zeros((2, 3, 3)), "shape"),
                     (np.zeros((0, 1, 3, 3)), "shape"), (np.zeros((2, 2, 3, 3)), "shape")):
        with pytest.raises(ValueError, match=match):
            conv_forward(net, x)
        with pytest.raises(ValueError, match=match):
            input_gradient_conv(net, x)
    with pytest.raises(ValueError, match="direction must have shape"):
        directional_derivative(net, x0, np.zeros((3, 3)), t)
    with pytest.raises(ValueError, match="x0 must have shape"):
        directional_derivative(net, np.zeros((1, 3, 4)), x0, t)
    with pytest.raises(ValueError, match="t must have shape"):
        directional_derivative(net, x0, x0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="t must contain only finite"):
        directional_derivative(net, x0, x0, [0.0, np.inf])
    with pytest.raises(ValueError, match="backend"):
        directional_derivative(net, x0, x0, t, backend="cuda")
    with pytest.raises(ValueError, match="stats_from"):
        conv_forward(net, np.zeros((2, 1, 3, 3)), stats_from=np.zeros((3, 1, 3, 3)))
    with pytest.raises(ValueError, match="net must be a ConvNet"):
        conv_forward(object(), np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="spec must be a ConvSpec"):
        sample_conv(object(), np.random.default_rng(0))
    one = sample_conv(spec.replace(input_shape=(1, 1)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch norm needs"):
        conv_forward(one, np.zeros((1, 1, 1, 1)))


def test_absurd_sizes_are_memory_errors():
    with pytest.raises(ValueError, match="memory"):
        sample_conv(ConvSpec(channels=10**6, kernel=9), np.random.default_rng(0))
    net = sample_conv(ConvSpec(input_shape=(1000, 1000), channels=1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="memory"):
        directional_derivative(net, np.zeros((1, 1000, 1000)), np.zeros((1, 1000, 1000)),
                               np.zeros(10**5))


@pytest.mark.parametrize("arch", ["feedforward", "resnet"])
def test_float32_nets_agree_with_float64(arch):
    """float32 draws differ from float64 draws: compare the float32 net with the same
    parameters cast to float64."""
    spec = ConvSpec(dims=1, arch=arch, depth=3, channels=3, input_shape=(6,),
                    first_bias_var=0.5)
    net = sample_conv(spec, np.random.default_rng(1), dtype="float32")
    net64 = net.astype("float64")
    assert net.dtype == np.float32 and net64.dtype == np.float64
    rng = np.random.default_rng(2)
    x0, d, t = rng.standard_normal((1, 6)), rng.standard_normal((1, 6)), np.linspace(-1, 1, 5)
    g = directional_derivative(net, x0, d, t)
    want = directional_derivative(net64, x0, d, t)
    assert g.dtype == np.float32 and want.dtype == np.float64
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    x = line_inputs(x0, d, t)
    np.testing.assert_allclose(input_gradient_conv(net, x.astype(np.float32)),
                               input_gradient_conv(net64, x), rtol=1e-4,
                               atol=1e-5 * np.abs(input_gradient_conv(net64, x)).max())


# ----------------------------------------------------------------------------- experiment

def test_experiment_runs_saves_loads_plots_and_claims(tmp_path):
    pytest.importorskip("sklearn")
    from matplotlib.figure import Figure

    from gradsim.experiments import convnets
    from gradsim.experiments.base import load_results, resolve, save_results

    params = resolve(convnets, quick=True, overrides=dict(
        channels=1, points=8, nets=2, depths=[1, 2]))
    t = convnets.line(params)[2]
    assert t.size == 8 and t.min() > -1 and t.max() < 1 and not np.any(t == 0)  # off kinks
    res = convnets.run(params)
    for key, arr in res.arrays.items():
        assert np.all(np.isfinite(np.asarray(arr, dtype=float))), key
    path = tmp_path / "r.npz"
    save_results(path, res)
    back = load_results(path)
    assert back.params == res.params
    for key in res.arrays:
        np.testing.assert_array_equal(back[key], res[key])
    assert isinstance(convnets.plot(back), Figure)
    claims = convnets.claims(back)
    # one row per target, each with a pass/fail criterion (no bare measurements)
    assert [c.target for c in claims] == ["CV1", "CV2", "CV3", "CV4"]
    assert all(c.passed is not None and c.criterion for c in claims)
    assert claims[-1].verdict == "holds"  # CV4, looks-linear: exact at any size


@pytest.mark.parametrize("key, value, match", [
    ("points", "7", "points must be even"), ("kernel", "4", "kernel must be odd"),
    ("target", "0", "image and target must differ"), ("depths", "5,2", "increasing"),
    ("nets", "1", "nets must be in"),
])
def test_experiment_parameter_checks(key, value, match):
    from gradsim.experiments import convnets
    from gradsim.experiments.base import resolve

    with pytest.raises(ValueError, match=match):
        resolve(convnets, overrides={key: value})


def test_experiment_without_sklearn_raises_the_data_import_error(monkeypatch):
    """No silent substitute for the digits: run() raises gradsim.train.data's ImportError."""
    import sys

    from gradsim.experiments import convnets
    from gradsim.experiments.base import resolve

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        convnets.run(resolve(convnets, quick=True))
