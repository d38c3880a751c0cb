"""Sample networks from a spec; forward pass; input gradients df/dx.

The public functions validate, allocate and dispatch; the maths of each layer
lives in :mod:`gradsim.layers` and its elementwise loops in :mod:`gradsim.kernels`
(NumPy twins in :mod:`gradsim.reference`).

The *gradient* returned at grid point ``x_i`` is ``d/dx_i sum_j f(x_j)``.  Without
batch norm, or with ``bn_grad='frozen'``, the outputs at different points do not
interact and this is simply ``f'(x_i)``; with ``bn_grad='through'`` it is what
reverse-mode autodiff of the summed batch output gives in training mode.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._util import check_memory, get_backend, get_dtype
from .layers import (
    Activation,
    BatchNorm,
    Context,
    Dense,
    Highway,
    Residual,
    run_backward,
    run_forward,
)
from .spec import NetSpec

__all__ = ["Network", "sample_network", "forward", "preactivations", "input_gradient",
           "input_gradient_by_depth", "looks_linear_product", "GRAD_MODES"]

GRAD_MODES = ("forward", "reverse")


@dataclasses.dataclass
class Network:
    """One sampled network.

    Attributes
    ----------
    spec : NetSpec
    layers : list
        Layers from :mod:`gradsim.layers`, applied in order to the input.
    readout : ndarray, shape (F,)
        ``f = readout . h`` with ``h`` the last state.
    readout_half : ndarray or None
        For a mirrored readout ``[v, -alpha_m v]``, the vector ``v``.
    bounds : list of int
        ``bounds[l - 1]`` is the index in ``layers`` of the last layer of the depth-``l``
        prefix (``l = 1 .. depth``).
    taps : list of ndarray or None
        Readouts of the prefixes of depths ``1 .. depth - 1`` (``sample_network(...,
        taps=True)``), drawn after every other parameter.
    """

    spec: NetSpec
    layers: list
    readout: np.ndarray
    readout_half: np.ndarray | None = None
    bounds: list = dataclasses.field(default_factory=list)
    taps: list | None = None
    _stack: tuple | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def dtype(self):
        """Floating dtype of the parameters."""
        return self.readout.dtype


def _gauss(rng, shape, var, dtype):
    return rng.standard_normal(shape, dtype=dtype) * dtype(math.sqrt(var))


def _orthogonal(rng, rows, cols, scale2, dtype):
    """A semi-orthogonal ``rows x cols`` matrix times ``sqrt(scale2)`` (QR, sign-fixed)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q * math.sqrt(scale2), dtype=dtype)


class _Sampler:
    """Draws the parameters of one network, in a fixed order, from one generator."""

    def __init__(self, spec, rng, dtype):
        self.spec, self.rng, self.dtype = spec, rng, dtype

    def weight(self, rows, cols, consumes_act):
        """Weight for a layer with ``cols`` inputs; mirrored if it consumes CReLU features."""
        s = self.spec
        mirrored = consumes_act and s.init == "looks-linear"
        if mirrored:
            half_cols = cols // 2
            half = _orthogonal(self.rng, rows, half_cols,
                               s.weight_var * rows / (2 * min(rows, half_cols)), self.dtype)
            w = np.concatenate([half, -self.dtype(s.mirror) * half], axis=1)
            return w, half
        if s.init == "he":
            return _gauss(self.rng, (rows, cols), s.weight_var / cols, self.dtype), None
        scale2 = s.weight_var * rows / min(rows, cols)
        return _orthogonal(self.rng, rows, cols, scale2, self.dtype), None

    def dense_run(self, count, rows, cols, bias_var):
        """``count`` hidden feedforward layers, as ``count`` calls of :meth:`dense` would
        draw them.  With He init they come from one call of the generator (weights
        and biases interleaved as in single draws), which gives the same numbers:
        a generator's output does not depend on how it is split into calls."""
        s = self.spec
        if s.init != "he" or count == 0:
            return [self.dense(rows, cols, True, bias_var) for _ in range(count)]
        nb = rows if bias_var > 0 else 0
        block = self.rng.standard_normal((count, rows * cols + nb), dtype=self.dtype)
        w = block[:, : rows * cols].reshape(count, rows, cols) * self.dtype(
            math.sqrt(s.weight_var / cols))
        b = (block[:, rows * cols:] * self.dtype(math.sqrt(bias_var))) if nb else None
        return [Dense(w[i], None if b is None else b[i]) for i in range(count)]

    def bias(self, rows, var):
        return _gauss(self.rng, rows, var, self.dtype) if var > 0 else None

    def dense(self, rows, cols, consumes_act, bias_var):
        w, half = self.weight(rows, cols, consumes_act)
        return Dense(w, self.bias(rows, bias_var), half)

    def readout(self, cols, consumes_act):
        s = self.spec
        if consumes_act and s.init == "looks-linear":
            half = _gauss(self.rng, cols // 2, s.readout_var / cols, self.dtype)
            return np.concatenate([half, -self.dtype(s.mirror) * half]), half
        return _gauss(self.rng, cols, s.readout_var / cols, self.dtype), None


def _activation(spec):
    if spec.activation == "relu":
        return Activation("relu", 1.0, 0.0)
    if spec.activation == "leaky":
        return Activation("leaky", spec.slope_pos, spec.slope_neg)
    return Activation("crelu")


def _bn(spec):
    return BatchNorm(spec.bn_eps, spec.bn_grad == "through") if spec.batchnorm else None


def sample_network(spec, rng, dtype=np.float64, taps=False):
    """Draw one network's parameters.

    Parameters
    ----------
    spec : NetSpec
    rng : numpy.random.Generator
        The network's own stream; parameters are drawn layer by layer, weights
        before biases, so the same stream always gives the same network.
    dtype : {'float64', 'float32'}
    taps : bool
        Also draw an independent readout for every shorter prefix (depths
        ``1 .. depth - 1``), after all other parameters, so the network itself is the
        one drawn without taps.  Each prefix with its tap readout is distributed exactly
        as a network of that depth (see :func:`input_gradient_by_depth`).

    Returns
    -------
    Network
    """
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    dtype = get_dtype(dtype)
    s = spec
    n, feats = s.width, s.features
    draw = _Sampler(s, rng, dtype)
    act, bn = _activation(s), _bn(s)
    layers = []

    def act_block():
        return ([bn] if bn else []) + [act]

    bounds = []
    first = draw.dense(n, s.input_dim, False, s.first_bias_var)
    if s.arch == "feedforward":
        layers += [first] + act_block()
        bounds.append(len(layers) - 1)
        for dense in draw.dense_run(s.depth - 1, n, feats, s.bias_var):
            layers += [dense] + act_block()
            bounds.append(len(layers) - 1)
        readout, half = draw.readout(feats, True)
    else:
        layers.append(first)
        for _ in range(s.depth):
            bounds.append(len(layers))
            if s.arch == "resnet":
                branch = []
                for _ in range(s.branch_depth):
                    branch += act_block() + [draw.dense(n, feats, True, s.bias_var)]
                layers.append(Residual(branch, s.alpha, s.beta))
            else:
                wh, _ = draw.weight(n, n, False)
                wt, _ = draw.weight(n, n, False)
                bh = draw.bias(n, s.bias_var)
                b = np.concatenate([bh if bh is not None else np.zeros(n, dtype),
                                    np.full(n, s.gate_bias, dtype)])
                layers.append(Highway(Dense(np.concatenate([wh, wt]), b), bn, act))
        readout, half = draw.readout(n, False)
    tap = None
    if taps:
        consumes = s.arch == "feedforward"
        tap = [draw.readout(feats if consumes else n, consumes)[0] for _ in range(s.depth - 1)]
    return Network(spec, layers, readout, half, bounds, tap)


def _check_inputs(net, x):
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {type(net).__name__}")
    x = np.asarray(x)
    d = net.spec.input_dim
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] < 1:
        raise ValueError(f"x must have shape (points, {d}) with points >= 1, got {x.shape}")
    real = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if not real or not np.all(np.isfinite(x)):
        raise ValueError("x must contain only finite real numbers")
    if net.spec.batchnorm and x.shape[0] < 2:
        raise ValueError("batch norm needs at least 2 grid points (points >= 2)")
    return np.ascontiguousarray(x, dtype=net.dtype)


#: Widths up to which a plain feedforward net's hidden layers run as one fused kernel
#: (:func:`gradsim.kernels.dense_act_stack`) instead of a BLAS product per layer: below
#: it, per-layer call overhead costs more than the arithmetic (docs/performance.md).
FUSED_MAX_WIDTH = 16


def _plain_stack(net, ctx):
    """``(ws, bs, activation)`` of the hidden layers of a small plain feedforward net
    when the pass needs nothing per layer (no tape, activity, pre-activations or
    recorded statistics); else None."""
    s = net.spec
    if (ctx.tape or ctx.activity is not None or ctx.preacts is not None
            or ctx.bn_record is not None or ctx.bn_replay is not None
            or s.arch != "feedforward" or s.batchnorm or s.activation == "crelu"
            or s.width > FUSED_MAX_WIDTH or s.depth < 2):
        return None
    dense = net.layers[2::2]
    key = [(id(layer.w), id(layer.b)) for layer in dense]
    if net._stack is None or net._stack[0] != key:  # rebuilt if a layer was replaced
        zeros = np.zeros(s.width, dtype=net.dtype)
        net._stack = (key, np.stack([layer.w for layer in dense]),
                      np.stack([zeros if layer.b is None else layer.b for layer in dense]))
    return net._stack[1], net._stack[2], net.layers[1]


def _run(net, s, ctx):
    stack = _plain_stack(net, ctx)
    if stack is None:
        s, caches = run_forward(net.layers, s, ctx)
        return net.readout @ s, caches
    ws, bs, act = stack
    s, _ = run_forward(net.layers[:2], s, ctx)
    out, work = np.empty_like(s), np.empty_like(s)
    ctx.kern.dense_act_stack(ws, bs, s, ctx.p, act.slope_pos, act.slope_neg, work, out)
    return net.readout @ out, None


def forward(net, x, backend="numba", stats_from=None):
    """Network output at every input.

    Parameters
    ----------
    net : Network
    x : array_like, shape (P, d) (or (P,) when d = 1)
    backend : {'numba', 'numpy'}
    stats_from : array_like, shape (P, d), optional
        Take every batch-norm statistic from this batch instead of ``x`` and hold
        it fixed: the function whose derivative ``bn_grad='frozen'`` computes.

    Returns
    -------
    ndarray, shape (P,)
    """
    return _forward(net, x, backend, stats_from)[0]


def preactivations(net, x, backend="numba", stats_from=None):
    """Inputs of every activation site (after batch norm), in network order.

    Parameters are as for :func:`forward`.

    Returns
    -------
    list of ndarray, each of shape (N, P)
        ``n_act_layers`` arrays; a unit is active at a point where its entry is > 0.
    """
    return _forward(net, x, backend, stats_from, record=True)[1]


def _forward(net, x, backend, stats_from, record=False):
    x = _check_inputs(net, x)
    ctx = Context(x.shape[0], get_backend(backend))
    if stats_from is not None and net.spec.batchnorm:
        ref = _check_inputs(net, stats_from)
        if ref.shape != x.shape:
            raise ValueError(f"stats_from must have the shape of x {x.shape}, got {ref.shape}")
        ctx.bn_record = []
        _run(net, np.ascontiguousarray(ref.T), ctx)
        ctx.bn_record, ctx.bn_replay = None, iter(ctx.bn_record)
    ctx.preacts = [] if record else None
    f, _ = _run(net, np.ascontiguousarray(x.T), ctx)
    return f, ctx.preacts


def _tangent_seed(x, through):
    """Initial state: values ``x^T`` then one tangent block per direction.

    Frozen/no BN: ``d`` directions, ``e_c`` at every point.  Through BN: ``P d``
    directions, ``e_c`` at point ``i`` only (block ``i d + c``).
    """
    p, d = x.shape
    if through:
        s = np.zeros((d, (1 + p * d) * p), dtype=x.dtype)
        blocks = s[:, p:].reshape(d, p, d, p)
        for c in range(d):
            blocks[c, np.arange(p), c, np.arange(p)] = 1.0
    else:
        s = np.zeros((d, (1 + d) * p), dtype=x.dtype)
        for c in range(d):
            s[c, (1 + c) * p:(2 + c) * p] = 1.0
    s[:, :p] = x.T
    return s


def input_gradient(net, x, mode="forward", backend="numba", activity=False):
    """Input gradient ``d/dx_i sum_j f(x_j)`` at every grid point.

    Parameters
    ----------
    net : Network
    x : array_like, shape (P, d) (or (P,) when d = 1)
    mode : {'forward', 'reverse'}
        Forward (tangent) mode carries ``d`` tangents through the network in the
        same matrix products as the values (``P d`` tangents when batch norm is
        differentiated ``through``, so use reverse mode for that at scale);
        reverse mode stores the forward pass and pulls back the readout.
    backend : {'numba', 'numpy'}
        Kernels or their NumPy twins.
    activity : bool
        Also return, per activation site, the active and co-active proportions.

    Returns
    -------
    grad : ndarray, shape (P, d)
    activity : ndarray, shape (n_act_layers, 2)
        Only when ``activity`` is true: columns active, co-active.
    """
    if mode not in GRAD_MODES:
        raise ValueError(f"mode must be one of {', '.join(GRAD_MODES)}; got {mode!r}")
    x = _check_inputs(net, x)
    p, d = x.shape
    if activity and p < 2:
        raise ValueError("activity needs at least 2 grid points (points >= 2)")
    through = net.spec.batchnorm and net.spec.bn_grad == "through"
    ctx = Context(p, get_backend(backend), tape=(mode == "reverse"),
                  activity=[] if activity else None)
    if mode == "forward":
        ndir = p * d if through else d
        width = max(net.spec.features, net.spec.width, d)
        check_memory(6 * width * (1 + ndir) * p * x.itemsize,
                     f"forward-mode gradient with {ndir} tangent directions (points, input_dim)")
        fs, _ = _run(net, _tangent_seed(x, through), ctx)
        tang = fs[p:].reshape(ndir, p)
        if through:
            grad = tang.sum(axis=1).reshape(p, d)
        else:
            grad = np.ascontiguousarray(tang.T)
    else:
        _, caches = _run(net, np.ascontiguousarray(x.T), ctx)
        g = np.ascontiguousarray(np.broadcast_to(net.readout[:, None], (net.readout.size, p)))
        grad = np.ascontiguousarray(run_backward(net.layers, caches, g, ctx).T)
    if activity:
        return grad, np.array(ctx.activity).reshape(-1, 2)
    return grad


def looks_linear_product(net):
    """``u^T W_L ... W_1`` of a looks-linear feedforward net, from its mirrored halves.

    With ``[P, -alpha P] CReLU(z) = P LeakyReLU_alpha(z)`` and ``alpha = 1`` the net is
    linear at initialisation and this row vector, shape ``(d,)``, is ``df/dx`` everywhere.
    """
    if net.readout_half is None or net.spec.arch != "feedforward":
        raise ValueError("looks_linear_product needs a looks-linear feedforward net")
    dense = [layer for layer in net.layers if hasattr(layer, "w")]
    m = dense[0].w
    for layer in dense[1:]:
        m = layer.half @ m
    return net.readout_half @ m


def input_gradient_by_depth(net, x, backend="numba"):
    """Input gradients of every prefix of ``net``: depths ``1 .. L`` in one forward pass.

    The depth-``l`` prefix (the first ``l`` layers or blocks with its own tap readout)
    is distributed exactly as a network of depth ``l``, so one depth-``L`` network
    gives a sample at every depth for the cost of one.  Prefixes of one network share
    weights, so estimates at different depths are correlated; each depth's estimate
    and standard error are still those of independent networks of that depth.

    Parameters
    ----------
    net : Network
        Sampled with ``taps=True``.
    x : array_like, shape (P, d) (or (P,) when d = 1)
    backend : {'numba', 'numpy'}

    Returns
    -------
    ndarray, shape (L, P, d)
        ``[l - 1]`` is the gradient of the depth-``l`` prefix (``[L - 1]`` equals
        :func:`input_gradient` in forward mode).
    """
    x = _check_inputs(net, x)
    if net.taps is None:
        raise ValueError("net has no tap readouts: sample it with taps=True")
    p, d = x.shape
    through = net.spec.batchnorm and net.spec.bn_grad == "through"
    ndir = p * d if through else d
    width = max(net.spec.features, net.spec.width, d)
    check_memory(6 * width * (1 + ndir) * p * x.itemsize,
                 f"forward-mode gradient with {ndir} tangent directions (points, input_dim)")
    ctx = Context(p, get_backend(backend))
    s = _tangent_seed(x, through)
    readouts = net.taps + [net.readout]
    out = np.empty((len(readouts), p, d), dtype=x.dtype)
    depth = 0
    for i, layer in enumerate(net.layers):
        s, _ = layer.forward(s, ctx)
        if depth < len(readouts) and i == net.bounds[depth]:
            tang = (readouts[depth] @ s)[p:].reshape(ndir, p)
            out[depth] = tang.sum(axis=1).reshape(p, d) if through else tang.T
            depth += 1
    return out
