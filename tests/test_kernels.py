"""Every numba kernel agrees with its NumPy twin (gradsim.kernels: each module beside its twin)."""

import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradsim.kernels import PAIRS, backend
from gradsim.kernels.arccos import MIX, SAVE, SCALE, STEP, pair_layout

kernels, reference = backend("numba"), backend("numpy")

shapes = st.tuples(st.integers(1, 5), st.integers(2, 7), st.integers(0, 3))  # N, P, D


@pytest.mark.parametrize("pair", PAIRS, ids=[p[0] for p in PAIRS])
def test_each_twin_exports_what_its_numba_module_exports(pair):
    fast, twin = (importlib.import_module(f"gradsim.kernels.{name}") for name in pair)
    assert fast.__all__ and list(fast.__all__) == list(twin.__all__)
    for name in fast.__all__:
        assert callable(getattr(fast, name)) and callable(getattr(twin, name)), name


def test_both_backends_expose_the_same_kernels():
    def names(ns):
        return {k for k, v in vars(ns).items() if callable(v)}

    assert names(kernels) == names(reference)
    assert names(kernels) == {fn for pair in PAIRS
                              for fn in importlib.import_module(f"gradsim.kernels.{pair[0]}")
                              .__all__}
    assert (kernels.name, reference.name) == ("numba", "numpy")
    with pytest.raises(ValueError, match="backend"):
        backend("cuda")


def _state(seed, n, p, d, zeros=True):
    """Random state (n, (1 + d) p) with some exact zeros among the values."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, (1 + d) * p))
    if zeros:
        s[:, :p][rng.random((n, p)) < 0.2] = 0.0
    return s


def _both(name, *args, outs):
    """Run kernel ``name`` and its twin on copies of ``outs``; return both results."""
    got = [np.zeros_like(o) for o in outs]
    want = [np.zeros_like(o) for o in outs]
    getattr(kernels, name)(*args, *got)
    getattr(reference, name)(*args, *want)
    return got, want


def _close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)


@given(shapes, st.integers(0, 2**32), st.floats(-2, 2), st.floats(-2, 2))
def test_act(shape, seed, a, b):
    n, p, d = shape
    z = _state(seed, n, p, d)
    got, want = _both("act_fwd", z, p, a, b, outs=[np.empty_like(z)])
    _close(got, want)
    g = _state(seed + 1, n, p, 0)
    got, want = _both("act_bwd", np.ascontiguousarray(z[:, :p]), g, a, b, outs=[np.empty_like(g)])
    _close(got, want)


@given(shapes, st.integers(0, 2**32))
def test_add_bias(shape, seed):
    """The bias goes onto the values only, the same bits in both backends."""
    n, p, d = shape
    z = _state(seed, n, p, d)
    b = np.random.default_rng(seed + 1).standard_normal(n)
    got, want = z.copy(), z.copy()
    kernels.add_bias(got, b, p)
    reference.add_bias(want, b, p)
    assert np.array_equal(got, want)
    assert np.array_equal(got[:, p:], z[:, p:])
    assert np.array_equal(got[:, :p], z[:, :p] + b[:, None])


@given(shapes, st.integers(0, 2**32))
def test_crelu(shape, seed):
    n, p, d = shape
    z = _state(seed, n, p, d)
    got, want = _both("crelu_fwd", z, p, outs=[np.empty((2 * n, z.shape[1]))])
    _close(got, want)
    g = _state(seed + 1, 2 * n, p, 0)
    got, want = _both("crelu_bwd", np.ascontiguousarray(z[:, :p]), g,
                      outs=[np.empty((n, p))])
    _close(got, want)


@given(shapes, st.integers(0, 2**32), st.booleans(), st.sampled_from([0.0, 1e-5, 0.3]))
def test_bn(shape, seed, through, eps):
    n, p, d = shape
    z = _state(seed, n, p, d, zeros=False)
    got, want = _both("bn_fwd", z, p, eps, through, outs=[np.empty_like(z), np.empty(n)])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    g = _state(seed + 1, n, p, 0)
    zhat = np.ascontiguousarray(want[0][:, :p])
    got, want = _both("bn_bwd", zhat, want[1], g, through, outs=[np.empty_like(g)])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-9)


@given(shapes, st.integers(0, 2**32), st.booleans(), st.sampled_from([0.0, 1e-5, 0.3]),
       st.sampled_from([(1.0, 0.0), (1.0, 0.3), (0.7, -0.2)]),
       st.sampled_from([np.float64, np.float32]), st.booleans(), st.booleans())
def test_bn_act_is_bn_then_act_bit_for_bit(shape, seed, through, eps, slopes, dtype, in_place,
                                           keep):
    """The fused pass gives batch norm then the activation exactly, in float64 and float32,
    out of place and in place, in each backend; so does its reverse pass."""
    n, p, d = shape
    a, b = slopes
    z = _state(seed, n, p, d, zeros=False).astype(dtype)
    for kern in (kernels, reference):
        bn, inv_want = np.empty_like(z), np.empty(n, dtype)
        kern.bn_fwd(z, p, eps, through, bn, inv_want)
        want = np.empty_like(z)
        kern.act_fwd(bn, p, a, b, want)
        src = z.copy()
        out = src if in_place else np.empty_like(z)
        inv, zhat = np.empty(n, dtype), np.empty((n, p) if keep else (0, 0), dtype)
        kern.bn_act_fwd(src, p, eps, through, a, b, out, inv, zhat)
        assert np.array_equal(out, want, equal_nan=True), kern.name
        assert np.array_equal(inv, inv_want)
        if keep:
            assert np.array_equal(zhat, bn[:, :p])
        g = _state(seed + 1, n, p, 0).astype(dtype)
        ga, want = np.empty_like(g), np.empty_like(g)
        zh = np.ascontiguousarray(bn[:, :p])
        kern.act_bwd(zh, g, a, b, ga)
        kern.bn_bwd(zh, inv, ga, through, want)
        got = np.empty_like(g)
        kern.bn_act_bwd(zh, inv, g, through, a, b, got)
        assert np.array_equal(got, want), kern.name
    # and the two backends agree to rounding
    got, want = _both("bn_act_fwd", z, p, eps, through, a, b,
                      outs=[np.empty_like(z), np.empty(n, dtype), np.empty((n, p), dtype)])
    tol = 1e-9 if dtype is np.float64 else 1e-4
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=tol, atol=tol)


@given(shapes, st.integers(0, 2**32))
def test_highway(shape, seed):
    n, p, d = shape
    h, zt, x = (_state(seed + k, n, p, d) for k in range(3))
    zt[:, :p] *= 30.0  # saturated gates too
    got, want = _both("highway_fwd", h, zt, x, p, outs=[np.empty_like(h), np.empty((n, p))])
    _close(got, want)
    g = _state(seed + 3, n, p, 0)
    gate = want[1]
    got, want = _both("highway_bwd", g, gate, np.ascontiguousarray(h[:, :p]),
                      np.ascontiguousarray(x[:, :p]), outs=[np.empty_like(g)] * 3)
    _close(got, want)


@given(shapes, st.integers(0, 4), st.integers(0, 2**32), st.floats(-2, 2), st.floats(-2, 2),
       st.booleans())
def test_dense_act_stack(shape, layers, seed, a, b, bias):
    n, p, d = shape
    s = _state(seed, n, p, d)
    rng = np.random.default_rng(seed + 1)
    ws = rng.standard_normal((layers, n, n))
    bs = rng.standard_normal((layers, n)) if bias else np.zeros((layers, n))
    if layers == 0:
        return
    got, want = _both("dense_act_stack", ws, bs, s, p, a, b,
                      outs=[np.empty_like(s), np.empty_like(s)])
    scale = np.max(np.abs(want[1])) + 1e-300
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12 * scale)

    def stack(ws, bs, s):
        work, out = np.empty_like(s), np.empty_like(s)
        kernels.dense_act_stack(ws, bs, s, p, a, b, work, out)
        return out

    # the kernel's ping-pong between work and out composes: k layers, then the rest
    k = layers // 2
    if k:
        np.testing.assert_allclose(stack(ws[k:], bs[k:], stack(ws[:k], bs[:k], s)), got[1],
                                   rtol=0, atol=1e-12 * scale)
    # tangents ride along: the values never see them, and they are mapped linearly
    if d:
        t = np.random.default_rng(seed + 2).standard_normal((n, d * p))
        moved = stack(ws, bs, np.hstack([s[:, :p], t]))
        np.testing.assert_array_equal(moved[:, :p], got[1][:, :p])
        lin = stack(ws, bs, np.hstack([s[:, :p], s[:, p:] + 2 * t]))
        np.testing.assert_allclose(lin[:, p:], got[1][:, p:] + 2 * moved[:, p:], rtol=0,
                                   atol=1e-12 * (scale + np.max(np.abs(moved)) * 3))


@given(shapes, st.integers(0, 2**32))
def test_activity(shape, seed):
    n, p, _ = shape
    z = _state(seed, n, p, 0)
    got, want = _both("activity", z, outs=[np.empty(2)])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-14)
    # counted directly: (unit, point) pairs active, (unit, i != j) triples active at both
    on = z > 0
    both = on[:, :, None] & on[:, None, :]
    distinct = ~np.eye(p, dtype=bool)
    np.testing.assert_allclose(got[0], [on.mean(), both[:, distinct].mean()], rtol=1e-14)


def test_activity_counts_by_hand():
    z = np.array([[1.0, 2.0, -1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    out = np.empty(2)
    kernels.activity(z, out)
    # active: 2 + 4 of 8; co-active ordered pairs: 2*1 + 4*3 of 2*4*3
    assert out[0] == 6 / 8
    assert out[1] == 14 / 24


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32))
def test_moments_exact_and_order_independent_of_chunks(m, k, seed):
    g = np.random.default_rng(seed).standard_normal((m, k))
    outs = []
    for mod in (kernels, reference):
        total, outer = np.zeros(k), np.zeros((k, k))
        mod.accumulate_moments(g, total, outer)
        outs.append((total, outer))
    # one network at a time, in order, is bit-identical to one call
    total, outer = np.zeros(k), np.zeros((k, k))
    for row in g:
        kernels.accumulate_moments(row[None], total, outer)
    for t, o in outs[1:] + [(total, outer)]:
        assert np.array_equal(t, outs[0][0]) and np.array_equal(o, outs[0][1])
    np.testing.assert_allclose(outs[0][0], g.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0][1], g.T @ g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mod", [kernels, reference])
def test_relu_derivative_at_zero_is_zero(mod):
    z = np.array([[0.0, 1.0, -1.0, 5.0, 5.0, 5.0]])  # P = 3, one tangent block
    out = np.empty_like(z)
    mod.act_fwd(z, 3, 1.0, 0.0, out)
    assert out.tolist() == [[0.0, 1.0, 0.0, 0.0, 5.0, 0.0]]
    out2 = np.empty((2, 6))
    mod.crelu_fwd(z, 3, out2)
    assert out2[:, 3].tolist() == [0.0, 0.0]  # both halves have derivative 0 at z = 0
    g = np.empty((1, 3))
    mod.act_bwd(z[:, :3].copy(), np.ones((1, 3)), 1.0, 0.0, g)
    assert g.tolist() == [[0.0, 1.0, 0.0]]


@st.composite
def kernel_programs(draw):
    """A random kernel program: steps, and skips saved then mixed back, and scales."""
    codes, x1, x2, saved = [], [], [], False
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from([STEP, STEP, SAVE, SCALE] + ([MIX] if saved else [])))
        saved = saved or op == SAVE
        codes.append(op)
        x1.append(draw(st.floats(0.3, 2.0)))
        x2.append(draw(st.floats(0.0, 1.0)))
    return np.array(codes, dtype=np.int64), np.array(x1), np.array(x2)


def _pair_states(seed, d, k):
    """Valid kernel states of ``k`` pairs: A, B > 0, |C| <= 0.95 sqrt(A B), random derivatives."""
    rng = np.random.default_rng(seed)
    lay = pair_layout(d)
    st_ = rng.standard_normal((lay.size, k))
    st_[lay.A], st_[lay.B] = rng.uniform(0.2, 3.0, (2, k))
    st_[lay.C] = rng.uniform(-0.95, 0.95, k) * np.sqrt(st_[lay.A] * st_[lay.B])
    return st_


@given(kernel_programs(), st.integers(1, 3), st.sampled_from([1, 5, 64, 150]),
       st.integers(0, 2**32), st.floats(0.2, 1.5), st.floats(-1.0, 1.0))
def test_run_program_numba_equals_numpy_twin(program, d, k, seed, a, b):
    """Random states and programs, across the numba kernel's blocks of pairs (k > 64)."""
    codes, x1, x2 = program
    st_ = _pair_states(seed, d, k)
    before = st_.copy()
    got, want = _both("run_program", st_, d, codes, x1, x2, a, b, outs=[st_])
    assert np.array_equal(st_, before)  # the input states are not modified
    assert np.all(np.isfinite(want[0]))
    scale = np.max(np.abs(want[0]), axis=1, keepdims=True) + 1e-300  # per quantity
    np.testing.assert_allclose(got[0] / scale, want[0] / scale, rtol=1e-9, atol=1e-12)


def test_run_program_linear_ops_by_hand():
    """SAVE, MIX and SCALE are linear: K <- x1 (skip + x2 K) and K <- x1 K, on every entry."""
    st_ = _pair_states(3, 2, 7)
    codes = np.array([SAVE, SCALE, MIX, SCALE], dtype=np.int64)
    x1, x2 = np.array([0.0, 3.0, 0.5, 2.0]), np.array([0.0, 0.0, 0.25, 0.0])
    for mod in (kernels, reference):
        out = np.empty_like(st_)
        mod.run_program(st_, 2, codes, x1, x2, 1.0, 0.0, out)
        np.testing.assert_allclose(out, 2.0 * 0.5 * (st_ + 0.25 * 3.0 * st_), rtol=1e-15)


def test_branch_free_acos_is_within_one_ulp():
    """The arc-cosine the theory kernels vectorise (fdlibm's algorithm, every case computed
    and one selected) is within 1 ulp of math.acos, in Python and compiled, and exact at
    the ends."""
    import math

    from gradsim.kernels import arccos, nngp

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 20000), 1 - np.logspace(-17, -0.3, 2000),
                        -1 + np.logspace(-17, -0.3, 2000), [0.5, -0.5, 0.0, -0.0],
                        np.nextafter(0.5, [0.0, 1.0]), np.nextafter(-0.5, [0.0, -1.0])])
    want = np.array([math.acos(v) for v in x])
    ulp = np.spacing(want)
    for fn in (arccos.acos, nngp.acos):
        got = np.array([fn(v) for v in x[::7]]) if fn is arccos.acos else _acos_loop(x)
        ref, step = (want[::7], ulp[::7]) if fn is arccos.acos else (want, ulp)
        assert np.all(np.abs(got - ref) <= step), float((np.abs(got - ref) / step).max())
        assert fn(1.0) == 0.0 and fn(-1.0) == math.pi and fn(0.0) == math.pi / 2


def _acos_loop(x):
    import numba

    from gradsim.kernels import nngp

    @numba.njit
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = nngp.acos(x[i])

    out = np.empty_like(x)
    loop(x, out)
    return out
