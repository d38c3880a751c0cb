"""Sample networks from a spec; forward pass; input gradients df/dx.

The public functions validate, allocate and dispatch.  What a network is made of comes
from its architecture family (:mod:`gradsim.families`: one module each, with its layers
and parameter draws); the maths of each layer lives in :mod:`gradsim.families.layers`
and its elementwise loops in :mod:`gradsim.kernels` (numba, beside NumPy twins).

The *gradient* returned at grid point ``x_i`` is ``d/dx_i sum_j f(x_j)``.  Without
batch norm, or with ``bn_grad='frozen'``, the outputs at different points do not
interact and this is simply ``f'(x_i)``; with ``bn_grad='through'`` it is what
reverse-mode autodiff of the summed batch output gives in training mode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .families.feedforward import looks_linear_product
from .families.layers import (
    Context,
    Dense,
    Stack,
    fresh_input,
    fuse_bn_act,
    fuses,
    run_backward,
    run_forward,
)
from .families.sampling import Sampler, resolve_sampler, state_columns, tap_readouts
from .kernels import backend as get_backend
from .spec import NetSpec
from .util import check_bool, check_int, check_memory, check_rng, get_dtype

__all__ = ["Network", "sample_network", "forward", "preactivations", "input_gradient",
           "input_gradient_by_depth", "stacked_gram_gradients", "looks_linear_product",
           "GRAD_MODES"]

GRAD_MODES = ("forward", "reverse")


@dataclasses.dataclass
class Network(Stack):
    """One sampled network: the fields of :class:`~gradsim.families.layers.Stack`, with
    ``spec`` a NetSpec, ``layers`` from :mod:`gradsim.families` and ``readout`` of shape
    ``(F,)`` over the last state's features; depth taps give :meth:`prefix` networks.
    """

    _stack: tuple | None = dataclasses.field(default=None, init=False, repr=False)

    def dense_layers(self):
        """The :class:`~gradsim.families.layers.Dense` layers in the order the network
        applies them (inside residual branches and highway blocks too)."""
        return self.layers_of(Dense)


def sample_network(spec, rng, dtype=np.float64, taps=False, sampler="explicit", points=None):
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
    sampler : {'explicit', 'gram', 'auto'}
        ``'gram'`` draws the network in Gram space for forward-mode gradients on
        ``points`` inputs (:func:`~gradsim.families.layers.gram_product`): exact in law at
        those points, but not a function of its input, so it serves only
        :func:`input_gradient` and :func:`input_gradient_by_depth` on ``points`` inputs.
        ``'auto'`` resolves by :func:`gradsim.families.sampling.resolve_sampler`.
    points : int, optional
        Grid points, needed for ``'gram'`` and ``'auto'``.

    Returns
    -------
    Network
    """
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    columns = None
    if sampler != "explicit":
        if points is None:
            raise ValueError(f"sampler={sampler!r} needs points (the grid's point count)")
        points = check_int("points", points, 1, 10**9)
        if resolve_sampler(spec, points, "forward", sampler) == "gram":
            columns = state_columns(spec, points)
    draw = Sampler(spec, check_rng(rng), get_dtype(dtype), spec.activation_rule, columns)
    taps = check_bool("taps", taps)
    layers, bounds, readout, half = spec.family.build(spec, draw)
    tap = tap_readouts(spec, draw, spec.depth - 1) if taps else None
    return Network(spec, layers, readout, half, bounds, tap, columns)


def _require_function(net, what):
    if net.columns is not None:
        raise ValueError(f"{what} needs a network drawn explicitly: a network drawn in Gram "
                         "space (sampler='gram') is a sample of the gradients at its grid "
                         "points only, not a function of its input")


def _require_columns(net, columns):
    if net.columns is not None and columns != net.columns:
        raise ValueError(f"this network was drawn in Gram space for states of {net.columns} "
                         f"columns (values and tangents at its grid points), got {columns}: "
                         "sample it with points equal to the grid's point count")


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


def _run(net, s, ctx):
    """Output state of a pass (the family's fused kernel when the pass records nothing)."""
    _require_columns(net, s.shape[1])
    if not ctx.records:
        got = _run_gram_stack(net, s, ctx, net.readout[None])
        if got is not None:
            return got[0], None
    fused = getattr(net.spec.family, "fused", None)
    stack = None if ctx.records or fused is None else fused(net)
    if stack is None:
        s, caches = run_forward(net.layers, s, ctx)
        return net.read(net.readout, s, ctx), caches
    ws, bs, act = stack
    s, _ = run_forward(net.layers[:2], s, ctx)
    out, work = np.empty_like(s), np.empty_like(s)
    ctx.kern.dense_act_stack(ws, bs, s, ctx.p, act.slope_pos, act.slope_neg, work, out)
    return net.readout @ out, None


def _run_gram_stack(net, s, ctx, readouts):
    """The readouts' states ``(R, m)`` at the last ``R`` depths from the family's Gram
    stack kernel (:func:`gradsim.kernels.gram.gram_stack`), or None where the family has
    none for ``net`` or a Gram matrix needs rescaling (then the caller runs the layers)."""
    hook = getattr(net.spec.family, "gram_fused", None)
    stack = None if hook is None else hook(net)
    if stack is None:
        return None
    ws, bs, act = stack
    h, _ = run_forward(net.layers[:2], s, ctx)
    n, m = h.shape
    out = np.empty((len(readouts), m))
    done = ctx.kern.gram_stack(ws, bs, np.ascontiguousarray(h), ctx.p, act.slope_pos,
                               act.slope_neg, np.ascontiguousarray(readouts),
                               np.empty((2, n, m)), np.empty((2 * m + 3, m)), out)
    return out if done < 0 else None


def stacked_gram_gradients(spec, rng, x, columns, kern, taps):
    """The input gradients of one network drawn in Gram space from ``rng``, without
    building it, where its family runs it as one kernel (``gram_stack_applies``): the
    numbers of :func:`sample_network` then :func:`input_gradient_by_depth` (``taps``) or
    :func:`input_gradient`, for the Monte Carlo loops' many small networks.

    Parameters
    ----------
    spec : NetSpec
    rng : numpy.random.Generator
        The network's stream (consumed as :func:`sample_network` would).
    x : ndarray, shape (P, d), float64
        Checked inputs.
    columns : int
        The state's columns (:func:`~gradsim.families.sampling.state_columns`).
    kern : namespace
        The kernels (:func:`gradsim.kernels.backend`).
    taps : bool
        Every depth (``(L, P, d)``) or the output only (``(1, P, d)``).

    Returns
    -------
    ndarray or None
        None where the family has no such kernel for ``spec``, or a Gram matrix needs
        rescaling: then draw the network again from a fresh stream the usual way.
    """
    fam = spec.family
    applies = getattr(fam, "gram_stack_applies", None)
    if applies is None or not applies(spec, columns, x.dtype):
        return None
    draw = Sampler(spec, rng, np.float64, spec.activation_rule, columns)
    first, ws, bs, u = fam.gram_stack_draw(spec, draw)
    us = np.vstack(tap_readouts(spec, draw, spec.depth - 1) + [u]) if taps else u[None]
    p, d = x.shape
    ctx = Context(p, kern)
    h, _ = run_forward(first, _tangent_seed(x, False), ctx)
    n, m = h.shape
    out = np.empty((len(us), m))
    act = first[-1]
    if kern.gram_stack(ws, bs, h, p, act.slope_pos, act.slope_neg, us, np.empty((2, n, m)),
                       np.empty((2 * m + 3, m)), out) >= 0:
        return None
    return out[:, p:].reshape(len(us), d, p).transpose(0, 2, 1)


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
    _require_function(net, "preactivations" if record else "forward")
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
    if mode == "reverse":
        _require_function(net, "mode='reverse'")
    p, d = x.shape
    if check_bool("activity", activity) and p < 2:
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
    _require_columns(net, s.shape[1])
    readouts = net.taps + [net.readout]
    out = np.empty((len(readouts), p, d), dtype=x.dtype)
    got = _run_gram_stack(net, s, ctx, np.stack(readouts))
    if got is not None:
        tang = got[:, p:].reshape(len(readouts), ndir, p)
        out[:] = tang.sum(axis=1).reshape(-1, p, d) if through else tang.transpose(0, 2, 1)
        return out
    depth, i, layers, stops = 0, 0, net.layers, set(net.bounds)
    while i < len(layers):
        if fuses(layers, i, ctx, stops):
            s, _, _ = fuse_bn_act(layers[i], layers[i + 1], s, ctx, fresh_input(layers, i))
            i += 2
        else:
            s, _ = layers[i].forward(s, ctx)
            i += 1
        if depth < len(readouts) and i - 1 == net.bounds[depth]:
            tang = net.read(readouts[depth], s, ctx)[p:].reshape(ndir, p)
            out[depth] = tang.sum(axis=1).reshape(p, d) if through else tang.T
            depth += 1
    return out
