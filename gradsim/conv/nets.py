"""Random convolutional ReLU nets (1-D and 2-D) and their input gradients along a line.

A :class:`ConvSpec` describes the net; :func:`sample_conv` draws one; :func:`conv_forward`
evaluates it on a batch of inputs ``(P, C_in, *input_shape)``; :func:`directional_derivative`
gives ``d f(x(t)) / dt`` along the line ``x(t) = x0 + t d`` by forward (tangent) mode and
:func:`input_gradient_conv` gives ``df/dx`` by reverse mode.  Conventions (layout,
padding, fan-in, the looks-linear delta-orthogonal init, batch norm, readout) are in
``docs/convnets.md``.

Both conv families (feedforward and residual) are built here, from the layers the dense
families share (:mod:`gradsim.families.layers`) and a :class:`Conv` layer.

State layout: ``(channels, (1 + D) * P * S)`` with ``S`` spatial positions: the values of
the ``P`` inputs, then ``D`` tangent blocks (``D = 1`` for a directional derivative), each
image row-major.  Activations and batch norm are the dense kernels of
:mod:`gradsim.kernels.dense` with ``p = P * S`` value columns: per-channel batch norm over
the points and positions is exactly per-row statistics.  Convolutions are im2col
(:mod:`gradsim.kernels.conv`) and one BLAS product.

Examples
--------
>>> spec = ConvSpec(dims=1, depth=3, channels=4, input_shape=(16,))
>>> ConvSpec.from_json(spec.to_json()) == spec
True
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..families.layers import (
    Activation,
    BatchNorm,
    Context,
    Residual,
    Stack,
    run_backward,
    run_forward,
)
from ..families.sampling import orthogonal
from ..kernels import backend as get_backend
from ..util import check_bool, check_memory, check_rng, get_dtype
from .spec import ConvSpec

__all__ = ["ConvNet", "Conv", "sample_conv", "conv_forward", "conv_preactivations",
           "line_inputs", "directional_derivative", "directional_derivative_by_depth",
           "input_gradient_conv"]

#: Elements of the im2col columns built at a time: a conv runs over the images of a state
#: in chunks of about this many (rows x columns), so the columns stay in cache and no pass
#: allocates an array the size of the whole state times the kernel taps.
CHUNK_ELEMENTS = 2**20


@dataclasses.dataclass
class Conv:
    """``z = K * s + b``: cross-correlation, stride 1, zero 'same' padding; bias on values.

    Attributes
    ----------
    w : ndarray, shape ``(C_out, C_in * kh * kw)``
        The kernel ``K[o, c, a, b]`` flattened in im2col row order.
    b : ndarray, shape (C_out,) or None
    grid : tuple of int
        ``(H, W)``.
    kernel : tuple of int
        ``(kh, kw)``.
    half : ndarray, shape (C_out, C_in / 2), or None
        For a looks-linear ``[K, -K]``, the centre tap of ``K``.
    """

    w: np.ndarray
    b: np.ndarray | None
    grid: tuple
    kernel: tuple
    half: np.ndarray | None = None

    def _runs(self, n):
        """``(first, count)`` runs of images, ``count * H * W * rows <~ CHUNK_ELEMENTS``."""
        per = max(1, CHUNK_ELEMENTS // (self.w.shape[1] * self.grid[0] * self.grid[1]))
        return [(first, min(per, n - first)) for first in range(0, n, per)], per

    def forward(self, s, ctx):
        """New state ``(C_out, n H W)`` from state ``(C_in, n H W)``; no cache."""
        hw = self.grid[0] * self.grid[1]
        runs, per = self._runs(s.shape[1] // hw)
        buf = np.empty(self.w.shape[1] * per * hw, dtype=s.dtype)
        z = np.empty((self.w.shape[0], s.shape[1]), dtype=s.dtype)
        for first, m in runs:
            cols = buf[: self.w.shape[1] * m * hw].reshape(self.w.shape[1], m * hw)
            ctx.kern.im2col(s, *self.grid, *self.kernel, first, cols)
            z[:, first * hw:(first + m) * hw] = self.w @ cols
        if self.b is not None:
            z[:, : ctx.p] += self.b[:, None]
        return z, None

    def backward(self, g, cache, ctx):
        """Cotangent ``(C_in, P H W)`` from ``(C_out, P H W)``: ``col2im(K^T g)``."""
        hw = self.grid[0] * self.grid[1]
        taps = self.kernel[0] * self.kernel[1]
        out = np.empty((self.w.shape[1] // taps, g.shape[1]), dtype=g.dtype)
        runs, _ = self._runs(g.shape[1] // hw)
        for first, m in runs:
            cols = np.ascontiguousarray(self.w.T @ g[:, first * hw:(first + m) * hw])
            ctx.kern.col2im(cols, *self.grid, *self.kernel, first, out)
        return out


@dataclasses.dataclass
class ConvNet(Stack):
    """One sampled convolutional net: the fields of :class:`~gradsim.families.layers.Stack`,
    with ``spec`` a ConvSpec, ``layers`` :class:`Conv` and shared layers, and ``readout``
    of shape ``(C_out, S)``: ``f = sum_{c, s} readout[c, s] h[c, s]`` over the last state.
    A mirrored readout is ``[v; -v]`` with ``readout_half = v``.
    """

    def conv_layers(self):
        """The :class:`Conv` layers in the order the net applies them (branches too)."""
        return self.layers_of(Conv)


class _Sampler:
    """Draws one net's parameters, layer by layer (weights before biases), from one stream."""

    def __init__(self, spec, rng, dtype):
        self.spec, self.rng, self.dtype = spec, rng, dtype

    def conv(self, c_in, consumes_act, bias_var=0.0):
        s = self.spec
        taps = s.kernel ** s.dims
        half = None
        if consumes_act and s.init == "looks-linear":
            half = orthogonal(self.rng, s.channels, s.channels, 1.0, self.dtype)
            k = np.zeros((s.channels, c_in, taps), dtype=self.dtype)
            k[:, : s.channels, taps // 2] = half
            k[:, s.channels:, taps // 2] = -half
            w = k.reshape(s.channels, c_in * taps)
        else:
            fan_in = c_in * taps
            w = self.rng.standard_normal((s.channels, fan_in), dtype=self.dtype)
            w *= self.dtype(math.sqrt(2.0 / fan_in))
        b = None
        if bias_var > 0:
            b = self.rng.standard_normal(s.channels, dtype=self.dtype)
            b *= self.dtype(math.sqrt(bias_var))
        return Conv(w, b, s.grid, s.kernel_shape, half)

    def readout(self, channels, consumes_act):
        s = self.spec
        fan_in = channels * s.spatial
        sd = self.dtype(math.sqrt(s.readout_var / fan_in))
        if consumes_act and s.init == "looks-linear":
            v = self.rng.standard_normal((channels // 2, s.spatial), dtype=self.dtype) * sd
            return np.concatenate([v, -v]), v
        return self.rng.standard_normal((channels, s.spatial), dtype=self.dtype) * sd, None


def _act_block(spec):
    act = Activation("relu", 1.0, 0.0) if spec.activation == "relu" else Activation("crelu")
    return ([BatchNorm(spec.bn_eps, False)] if spec.batchnorm else []) + [act]


def _check_parameters(spec, itemsize):
    taps = spec.kernel ** spec.dims
    count = (spec.depth + 1) * spec.channels * (max(spec.features, spec.in_channels) * taps + 1)
    count += spec.depth * spec.features * spec.spatial  # readout and taps
    check_memory(count * itemsize, "the conv net's parameters (channels, kernel, depth, "
                                   "input_shape)")


def sample_conv(spec, rng, dtype=np.float64, taps=False):
    """Draw one convolutional net's parameters.

    Parameters
    ----------
    spec : ConvSpec
    rng : numpy.random.Generator
        The net's own stream.  Parameters are drawn layer by layer in network order,
        weights before biases (a zero bias variance draws nothing), then the readout,
        then (``taps=True``) the prefix readouts, so taps never change the net.
    dtype : {'float64', 'float32'}
    taps : bool
        Also draw an independent readout for every shorter prefix (depths ``1 .. L - 1``);
        each prefix with its tap readout is distributed as a net of that depth.

    Returns
    -------
    ConvNet

    References
    ----------
    Xiao et al., "Dynamical isometry and a mean field theory of CNNs", ICML 2018 (the
    delta-orthogonal kernels of the looks-linear init); Balduzzi et al., ICML 2017
    (looks-linear CReLU).
    """
    if not isinstance(spec, ConvSpec):
        raise ValueError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    check_rng(rng)
    taps = check_bool("taps", taps)
    dtype = get_dtype(dtype)
    _check_parameters(spec, np.dtype(dtype).itemsize)
    draw = _Sampler(spec, rng, dtype)
    s = spec
    layers, bounds = [draw.conv(s.in_channels, False, s.first_bias_var)], []
    feedforward = s.arch == "feedforward"
    for depth in range(s.depth):
        if feedforward:
            if depth > 0:
                layers.append(draw.conv(s.features, True))
            layers += _act_block(s)
        else:
            layers.append(Residual(_act_block(s) + [draw.conv(s.features, True)],
                                   s.alpha, s.beta))
        bounds.append(len(layers) - 1)
    readout, half = draw.readout(s.out_channels, feedforward)
    tap = None
    if taps:
        tap = [draw.readout(s.out_channels, feedforward)[0] for _ in range(s.depth - 1)]
    return ConvNet(spec, layers, readout, half, bounds, tap)


def _check_net(net):
    if not isinstance(net, ConvNet):
        raise ValueError(f"net must be a ConvNet, got {type(net).__name__}")


def _check_real_array(name, a):
    a = np.asarray(a)
    real = np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    if not real or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must contain only finite real numbers")
    return a


def _check_batch(net, x, name="x"):
    """``x`` as a contiguous ``(P, C_in, *input_shape)`` array of the net's dtype."""
    _check_net(net)
    s = net.spec
    x = np.asarray(x)
    want = (s.in_channels, *s.input_shape)
    if x.ndim != 2 + s.dims or x.shape[1:] != want or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (points, {', '.join(map(str, want))}) "
                         f"with points >= 1, got {x.shape}")
    x = _check_real_array(name, x)
    if s.batchnorm and x.shape[0] * s.spatial < 2:
        raise ValueError("batch norm needs at least 2 values per channel (points * positions "
                         ">= 2)")
    return np.ascontiguousarray(x, dtype=net.dtype)


def _check_pass(net, points, blocks, tape=False):
    """Memory guard for a pass over ``points`` inputs carrying ``blocks`` column blocks.

    A pass holds a few states of ``blocks * points * S`` columns at once (convolutions
    run in chunks of :data:`CHUNK_ELEMENTS`); reverse mode also keeps the values before
    every activation and batch norm.
    """
    s = net.spec
    cols = blocks * points * s.spatial
    width = max(s.in_channels, s.features)
    tape_cols = 2 * (s.depth + 1) * points * s.spatial if tape else 0
    nbytes = net.dtype.itemsize * (4 * width * cols + s.features * tape_cols + CHUNK_ELEMENTS)
    check_memory(nbytes, f"a conv pass over {points} inputs of shape {s.input_shape} "
                         "(points, input_shape, channels)")


def _to_state(x):
    """``(P, C, *shape)`` -> state ``(C, P * S)``."""
    p, c = x.shape[:2]
    return np.ascontiguousarray(x.reshape(p, c, -1).transpose(1, 0, 2).reshape(c, -1))


def _from_state(s, p, shape):
    """State ``(C, P * S)`` -> ``(P, C, *shape)``."""
    c = s.shape[0]
    return np.ascontiguousarray(s.reshape(c, p, -1).transpose(1, 0, 2).reshape(p, c, *shape))


def _read(readout, s):
    """``f`` at every image of the state: ``(C, n * S)`` -> ``(n,)``."""
    c, spatial = readout.shape
    return np.matmul(s.reshape(c, -1, spatial), readout[:, :, None])[:, :, 0].sum(axis=0)


def _context(net, points, backend, **kw):
    return Context(points * net.spec.spatial, get_backend(backend), **kw)


def _values_pass(net, x, backend, stats_from, record):
    x = _check_batch(net, x)
    _check_pass(net, x.shape[0], 1)
    ctx = _context(net, x.shape[0], backend)
    if stats_from is not None and net.spec.batchnorm:
        ref = _check_batch(net, stats_from, "stats_from")
        if ref.shape != x.shape:
            raise ValueError(f"stats_from must have the shape of x {x.shape}, got {ref.shape}")
        ctx.bn_record = []
        run_forward(net.layers, _to_state(ref), ctx)
        ctx.bn_record, ctx.bn_replay = None, iter(ctx.bn_record)
    ctx.preacts = [] if record else None
    s, _ = run_forward(net.layers, _to_state(x), ctx)
    return _read(net.readout, s), ctx.preacts, x.shape[0]


def conv_forward(net, x, backend="numba", stats_from=None):
    """Net output at every input.

    Parameters
    ----------
    net : ConvNet
    x : array_like, shape ``(P, C_in, *input_shape)``
    backend : {'numba', 'numpy'}
    stats_from : array_like, shape ``(P, C_in, *input_shape)``, optional
        Take every batch-norm statistic from this batch instead of ``x`` and hold it
        fixed: the function whose derivative the frozen convention computes.

    Returns
    -------
    ndarray, shape (P,)
    """
    return _values_pass(net, x, backend, stats_from, False)[0]


def conv_preactivations(net, x, backend="numba", stats_from=None):
    """Inputs of every activation (after batch norm), in network order.

    Parameters are as for :func:`conv_forward`.

    Returns
    -------
    list of ndarray, each of shape ``(P, C, *input_shape)``
        One per activation site; a unit is active where its entry is > 0.
    """
    _, pre, p = _values_pass(net, x, backend, stats_from, True)
    return [_from_state(np.ascontiguousarray(z), p, net.spec.input_shape) for z in pre]


def _check_line(x0, direction, t):
    """``x0``, ``direction`` (same shape) and ``t`` ``(T >= 1,)`` as finite float64 arrays."""
    x0 = _check_real_array("x0", x0).astype(np.float64, copy=False)
    d = _check_real_array("direction", direction).astype(np.float64, copy=False)
    if d.shape != x0.shape:
        raise ValueError(f"direction must have the shape of x0 {x0.shape}, got {d.shape}")
    t = _check_real_array("t", t).astype(np.float64, copy=False)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"t must have shape (T,) with T >= 1, got {t.shape}")
    return x0, d, t


def line_inputs(x0, direction, t):
    """Inputs along the line ``x(t) = x0 + t d``.

    Parameters
    ----------
    x0, direction : array_like, same shape ``shape``
    t : array_like, shape (T,)

    Returns
    -------
    ndarray, shape ``(T, *shape)``
    """
    x0, d, t = _check_line(x0, direction, t)
    return x0[None] + t.reshape(-1, *([1] * x0.ndim)) * d[None]


def _line_state(net, x0, direction, t):
    """Validated line: state ``(C_in, 2 T S)`` (values then the tangent ``d``), and ``T``."""
    _check_net(net)
    want = (net.spec.in_channels, *net.spec.input_shape)
    for name, a in (("x0", x0), ("direction", direction)):
        if np.shape(a) != want:
            raise ValueError(f"{name} must have shape {want}, got {np.shape(a)}")
    x0, d, t = _check_line(x0, direction, t)
    _check_pass(net, t.size, 2)
    x = _check_batch(net, line_inputs(x0, d, t))
    d = np.broadcast_to(d.astype(net.dtype), x.shape)
    return np.ascontiguousarray(np.concatenate([_to_state(x), _to_state(d)], axis=1)), t.size


def directional_derivative(net, x0, direction, t, backend="numba"):
    """``d f(x(t)) / dt = df/dx(x(t)) . d`` at every ``t``, by forward (tangent) mode.

    The tangent ``d`` travels beside the values in the same matrix products; ReLU masks
    come from the values and batch norm (statistics over the ``T`` line inputs and all
    positions) is frozen, so its tangent is the tangent times ``1 / sqrt(var + eps)``.

    Parameters
    ----------
    net : ConvNet
    x0, direction : array_like, shape ``(C_in, *input_shape)``
    t : array_like, shape (T,)
    backend : {'numba', 'numpy'}

    Returns
    -------
    ndarray, shape (T,)
    """
    s, p = _line_state(net, x0, direction, t)
    s, _ = run_forward(net.layers, s, _context(net, p, backend))
    return _read(net.readout, s)[p:]


def directional_derivative_by_depth(net, x0, direction, t, backend="numba"):
    """Directional derivatives of every prefix of ``net``, depths ``1 .. L``, in one pass.

    Parameters
    ----------
    net : ConvNet
        Sampled with ``taps=True``.
    x0, direction, t, backend
        As for :func:`directional_derivative`.

    Returns
    -------
    ndarray, shape (L, T)
        ``[l - 1]``: the depth-``l`` prefix with its tap readout; ``[L - 1]`` equals
        :func:`directional_derivative`.
    """
    _check_net(net)
    if net.taps is None:
        raise ValueError("net has no tap readouts: sample it with taps=True")
    s, p = _line_state(net, x0, direction, t)
    ctx = _context(net, p, backend)
    readouts = net.taps + [net.readout]
    out = np.empty((len(readouts), p), dtype=net.dtype)
    depth = 0
    for i, layer in enumerate(net.layers):
        s, _ = layer.forward(s, ctx)
        if depth < len(readouts) and i == net.bounds[depth]:
            out[depth] = _read(readouts[depth], s)[p:]
            depth += 1
    return out


def input_gradient_conv(net, x, backend="numba"):
    """``df/dx`` at every input, by reverse mode (batch-norm statistics frozen).

    Parameters
    ----------
    net : ConvNet
    x : array_like, shape ``(P, C_in, *input_shape)``
    backend : {'numba', 'numpy'}

    Returns
    -------
    ndarray, shape ``(P, C_in, *input_shape)``
    """
    x = _check_batch(net, x)
    p = x.shape[0]
    _check_pass(net, p, 1, tape=True)
    ctx = _context(net, p, backend, tape=True)
    _, caches = run_forward(net.layers, _to_state(x), ctx)
    g = np.ascontiguousarray(np.tile(net.readout, (1, p)))
    return _from_state(run_backward(net.layers, caches, g, ctx), p, net.spec.input_shape)
