"""Layers shared by the families: each forward/tangent rule beside its reverse-mode rule.

A layer maps a *state* ``(N_in, (1 + D) * P)`` (values at ``P`` grid points, then
``D`` blocks of tangents; see :mod:`gradsim.kernels.dense_numpy`) to a new state, and
maps a cotangent ``(N_out, P)`` back to ``(N_in, P)``.  ``forward`` returns the new state
and a cache, which ``backward`` consumes; caches are only kept when ``ctx.tape`` is
true (reverse mode).  Matrix products run in BLAS; elementwise work runs in the
kernels ``ctx.kern`` (:func:`gradsim.kernels.backend`: numba or the NumPy twins).
A layer only one family uses lives in that family's module
(:class:`gradsim.families.highway.Highway`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..kernels.gram_numpy import GRAM_HIGH, GRAM_LOW
from ..util import check_int, get_dtype

__all__ = ["Context", "gram_product", "Dense", "BatchNorm", "Activation", "Residual", "Stack",
           "run_forward", "fuses", "fresh_input", "fuse_bn_act", "run_backward"]


@dataclasses.dataclass
class Context:
    """Per-pass settings: points ``p``, kernels, tape flag, and what to record.

    ``activity``, ``preacts`` and ``bn_record`` are lists that layers append to when set
    (activity proportions, pre-activations, batch-norm statistics); ``bn_replay`` is an
    iterator of recorded statistics to normalise with instead.
    """

    p: int
    kern: object
    tape: bool = False
    activity: list | None = None
    bn_record: list | None = None
    bn_replay: object = None
    preacts: list | None = None

    @property
    def records(self):
        """True when the pass records or replays anything per layer."""
        return (self.tape or self.activity is not None or self.preacts is not None
                or self.bn_record is not None or self.bn_replay is not None)


#: Run a batch norm and the ReLU or ab-ReLU after it as one kernel pass (forward and
#: reverse); False runs them layer by layer, with the same numbers (tests compare).
FUSE = True


def run_forward(layers, s, ctx):
    """Apply ``layers`` in order; returns the state and the list of caches (one per layer).

    A :class:`BatchNorm` followed by a ReLU or ab-ReLU :class:`Activation` runs as one
    kernel pass (:func:`fuse_bn_act`) unless the pass records per layer, with the same
    numbers bit for bit."""
    caches = []
    i, count = 0, len(layers)
    while i < count:
        layer = layers[i]
        if fuses(layers, i, ctx):
            s, bn_cache, act_cache = fuse_bn_act(layer, layers[i + 1], s, ctx,
                                                 fresh_input(layers, i))
            caches += [bn_cache, act_cache]
            i += 2
            continue
        s, cache = layer.forward(s, ctx)
        caches.append(cache)
        i += 1
    return s, caches


def fuses(layers, i, ctx, stops=()):
    """Whether ``layers[i]`` and ``layers[i + 1]`` run as one pass (:func:`fuse_bn_act`):
    a batch norm then a ReLU or ab-ReLU, in a pass that records nothing per layer, and
    ``i`` not in ``stops`` (indices whose output is read)."""
    if not FUSE or i + 1 >= len(layers) or i in stops:
        return False
    nxt = layers[i + 1]
    return (type(layers[i]) is BatchNorm and type(nxt) is Activation and nxt.kind != "crelu"
            and ctx.activity is None and ctx.preacts is None and ctx.bn_record is None
            and ctx.bn_replay is None)


def fresh_input(layers, i):
    """True when the input of ``layers[i]`` is a state the previous layer, a dense one,
    made and no one else holds (so it may be overwritten)."""
    return i > 0 and type(layers[i - 1]) is Dense


def fuse_bn_act(bn, act, s, ctx, in_place=False):
    """``act.forward(bn.forward(s))`` in one kernel pass (``bn_act_fwd``), with the same
    result and the same caches.

    Batch norm and the activation are elementwise passes over values and tangents as
    long as the matrix products between them; one pass reads and writes the state once.

    Parameters
    ----------
    bn : BatchNorm
    act : Activation
        ReLU or ab-ReLU (not CReLU).
    s : ndarray, shape (N, (1 + D) * P)
    ctx : Context
        Must not record per layer.
    in_place : bool
        Overwrite ``s`` (which no one else may hold).

    Returns
    -------
    out, bn_cache, act_cache
        The activation state, and what :meth:`BatchNorm.forward` and
        :meth:`Activation.forward` would have cached (None unless ``ctx.tape``).
    """
    p = ctx.p
    out = s if in_place else np.empty_like(s)
    inv = np.empty(s.shape[0], dtype=s.dtype)
    zhat = np.empty((s.shape[0], p) if ctx.tape else (0, 0), dtype=s.dtype)
    ctx.kern.bn_act_fwd(s, p, bn.eps, bn.through, act.slope_pos, act.slope_neg, out, inv,
                        zhat)
    if not ctx.tape:
        return out, None, None
    return out, (zhat, inv), zhat


def run_backward(layers, caches, g, ctx):
    """Pull cotangent ``g`` back through ``layers`` (reverse order); a ReLU or ab-ReLU
    after a batch norm is pulled back with it in one pass (``bn_act_bwd``, the same
    numbers bit for bit)."""
    i = len(layers) - 1
    while i >= 0:
        layer = layers[i]
        if (FUSE and i > 0 and type(layer) is Activation and layer.kind != "crelu"
                and type(layers[i - 1]) is BatchNorm):
            zhat, inv = caches[i - 1]
            out = np.empty(zhat.shape, dtype=g.dtype)
            ctx.kern.bn_act_bwd(zhat, inv, g, layers[i - 1].through, layer.slope_pos,
                                layer.slope_neg, out)
            g = out
            i -= 2
            continue
        g = layer.backward(g, caches[i], ctx)
        i -= 1
    return g


def _use_gram(gram, w, s):
    """Whether a layer drawn in Gram space multiplies ``w`` into the Gram root of ``s``.

    Not when ``s`` has no more rows than ``w`` has columns (``fan_in <= m``, as for the
    embedding of a 1-D input): then ``w`` is exactly the explicit weight (``fan_in``
    columns of the same variance), and ``w @ s`` has the same law for less work."""
    return bool(gram) and s.shape[0] > w.shape[-1]


# a Gram matrix whose largest diagonal entry lies between these is formed unscaled
_GRAM_LOW, _GRAM_HIGH = GRAM_LOW, GRAM_HIGH


def gram_product(w, s, ctx):
    """``w @ R`` with ``R^T R = s^T s`` (``R``: ``k x m``, zero below the rank of ``s``):
    for ``w`` with i.i.d. ``N(0, v)`` entries its rows are i.i.d. ``N(0, v s^T s)``, the
    law of the rows of ``W s`` for a ``W`` with i.i.d. ``N(0, v)`` entries
    (``docs/theory.md``, "Monte Carlo in Gram space").

    ``w`` has ``k = min(s.shape)`` columns (its last axis).  The Gram matrix is one BLAS
    product in float64 (float32 states are widened first, so it accumulates in float64);
    its factor is :func:`gradsim.kernels.gram.gram_root`."""
    h = s.astype(np.float64, copy=False)
    m, k = s.shape[1], w.shape[-1]
    with np.errstate(over="ignore", invalid="ignore"):  # out of range: rescaled below
        gram, shift = h.T @ h, 0
    # a finite diagonal in range bounds every entry (|G_ab| <= (G_aa G_bb)^(1/2)); a nan
    # anywhere in the state makes the diagonal's max nan
    top = float(gram.diagonal().max()) if m else 0.0
    if not (_GRAM_LOW < top < _GRAM_HIGH or (top == 0.0 and not h.any())):
        # near the ends of the range: scale the state by a power of two (exact) so that
        # the Gram matrix is in range wherever the state is, and the sampler overflows
        # where the explicit product would
        big = float(np.abs(h).max())
        shift = int(np.frexp(big)[1]) if 0.0 < big < np.inf else 0
        scaled = np.ldexp(h, -shift)
        gram = scaled.T @ scaled
        if not np.isfinite(gram).all():  # a state out of range stays out of range (nan)
            return w @ np.full((k, m), np.nan, dtype=s.dtype)
    root = np.empty((m, m))
    ctx.kern.gram_root(gram, np.empty((3, m)), root)
    if shift:
        root = np.ldexp(root, shift)
    return w @ root[:k].astype(s.dtype, copy=False)


@dataclasses.dataclass
class Dense:
    """``z = w s + b`` (the bias on the values only).

    Attributes
    ----------
    w : ndarray, shape (N_out, N_in)
        Or, with ``gram``, shape ``(N_out, k)``: i.i.d. ``N(0, sigma_w^2 / N_in)`` entries
        that :func:`gram_product` maps onto the Gram matrix of the layer input, ``k`` the
        most columns that can be used (``min(N_in, columns)``).
    b : ndarray, shape (N_out,) or None
    half : ndarray or None
        For a mirrored weight ``w = [P, -alpha_m P]``, the matrix ``P``.
    gram : bool
        Drawn in Gram space (forward mode only: there is no weight to transpose).  With
        ``N_in <= k`` the weight is the explicit one and is applied as such.
    """

    w: np.ndarray
    b: np.ndarray | None = None
    half: np.ndarray | None = None
    gram: bool = False

    def forward(self, s, ctx):
        z = gram_product(self.w, s, ctx) if _use_gram(self.gram, self.w, s) else self.w @ s
        if self.b is not None:
            ctx.kern.add_bias(z, self.b, ctx.p)
        return z, None

    def backward(self, g, cache, ctx):
        if self.gram:
            raise ValueError("a layer drawn in Gram space has no reverse mode "
                             "(sampler='gram' needs mode='forward')")
        return self.w.T @ g


@dataclasses.dataclass
class BatchNorm:
    """Batch norm over the grid batch, no affine part; ``through`` differentiates the statistics."""

    eps: float
    through: bool

    def forward(self, s, ctx):
        if ctx.bn_replay is not None or ctx.bn_record is not None:
            return self._fixed_statistics(s, ctx), None
        out = np.empty_like(s)
        inv = np.empty(s.shape[0], dtype=s.dtype)
        ctx.kern.bn_fwd(s, ctx.p, self.eps, self.through, out, inv)
        return out, ((out[:, : ctx.p], inv) if ctx.tape else None)

    def _fixed_statistics(self, s, ctx):
        """Values only, normalised with recorded statistics (for finite differences)."""
        if ctx.bn_replay is not None:
            mean, inv = next(ctx.bn_replay)
        else:
            v = s[:, : ctx.p]
            mean = v.mean(axis=1)
            inv = 1.0 / np.sqrt(((v - mean[:, None]) ** 2).mean(axis=1) + self.eps)
            ctx.bn_record.append((mean, inv))
        return (s - mean[:, None]) * inv[:, None]

    def backward(self, g, cache, ctx):
        zhat, inv = cache
        out = np.empty_like(g)
        ctx.kern.bn_bwd(zhat, inv, g, self.through, out)
        return out


@dataclasses.dataclass
class Activation:
    """ReLU, ab-ReLU (``kind='leaky'``) or CReLU; records activity when asked."""

    kind: str
    slope_pos: float = 1.0
    slope_neg: float = 0.0

    def forward(self, s, ctx):
        zv = s[:, : ctx.p]
        if ctx.activity is not None:
            rec = np.empty(2)
            ctx.kern.activity(np.ascontiguousarray(zv), rec)
            ctx.activity.append(rec)
        if ctx.preacts is not None:
            ctx.preacts.append(np.array(zv))
        if self.kind == "crelu":
            out = np.empty((2 * s.shape[0], s.shape[1]), dtype=s.dtype)
            ctx.kern.crelu_fwd(s, ctx.p, out)
        else:
            out = np.empty_like(s)
            ctx.kern.act_fwd(s, ctx.p, self.slope_pos, self.slope_neg, out)
        return out, (zv if ctx.tape else None)

    def backward(self, g, zv, ctx):
        out = np.empty(zv.shape, dtype=g.dtype)
        if self.kind == "crelu":
            ctx.kern.crelu_bwd(zv, g, out)
        else:
            ctx.kern.act_bwd(zv, g, self.slope_pos, self.slope_neg, out)
        return out


@dataclasses.dataclass
class Residual:
    """``x <- alpha * (x + beta * branch(x))``."""

    branch: list
    alpha: float
    beta: float

    def forward(self, s, ctx):
        f, caches = run_forward(self.branch, s, ctx)
        # in place, except when caches are kept: the branch's last layer may cache its own
        # output (batch norm's normalised values), which reverse mode needs unchanged
        f = f * self.beta if ctx.tape else np.multiply(f, self.beta, out=f)
        f += s
        f *= self.alpha
        return f, caches

    def backward(self, g, caches, ctx):
        gb = run_backward(self.branch, caches, (self.alpha * self.beta) * g, ctx)
        gb += self.alpha * g
        return gb


@dataclasses.dataclass
class Stack:
    """A sampled network as data: layers applied in order, a readout, and depth taps.

    The base of :class:`gradsim.nets.Network` and :class:`gradsim.conv.nets.ConvNet`.

    Attributes
    ----------
    spec : NetSpec or ConvSpec
    layers : list
        Layers, applied in order to the input.
    readout : ndarray
        ``f = readout . h`` with ``h`` the last state.
    readout_half : ndarray or None
        For a mirrored readout ``[v, -alpha_m v]``, the vector ``v``.
    bounds : list of int
        ``bounds[l - 1]`` is the index in ``layers`` of the last layer of the depth-``l``
        prefix (``l = 1 .. depth``).
    taps : list of ndarray or None
        Readouts of the prefixes of depths ``1 .. depth - 1`` (sampled with
        ``taps=True``), drawn after every other parameter.
    columns : int or None
        For a network drawn in Gram space (every :class:`Dense` with ``gram``, readouts
        of length ``min(F, columns)``): the state's column count it was drawn for
        (values and tangents at the grid points), else None.
    """

    spec: object
    layers: list
    readout: np.ndarray
    readout_half: np.ndarray | None = None
    bounds: list = dataclasses.field(default_factory=list)
    taps: list | None = None
    columns: int | None = None

    @property
    def sampler(self):
        """``'gram'`` for a network drawn in Gram space, else ``'explicit'``."""
        return "explicit" if self.columns is None else "gram"

    def read(self, u, s, ctx):
        """The readout ``u`` applied to the last state ``s``: ``u @ s``, or in Gram space
        :func:`gram_product`."""
        return gram_product(u, s, ctx) if _use_gram(self.columns, u, s) else u @ s

    @property
    def dtype(self):
        """Floating dtype of the parameters."""
        return self.readout.dtype

    def layers_of(self, kind):
        """The layers of class ``kind`` in the order the network applies them, inside
        residual branches and highway blocks too."""
        out = []
        for layer in self.layers:
            inner = layer.branch if isinstance(layer, Residual) else [getattr(layer, "dense",
                                                                              layer)]
            out += [x for x in inner if isinstance(x, kind)]
        return out

    def astype(self, dtype):
        """A copy with every parameter array cast to ``dtype`` (a float32 net in float64,
        say); layers are copied, arrays shared between layers stay shared.  ``dtype`` is
        ``'float64'`` or ``'float32'``."""
        dtype = get_dtype(dtype)
        cast = {}

        def conv(value):
            if isinstance(value, np.ndarray):
                if id(value) not in cast:
                    cast[id(value)] = value.astype(dtype)
                return cast[id(value)]
            if isinstance(value, list):
                return [conv(v) for v in value]
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return dataclasses.replace(value, **{f.name: conv(getattr(value, f.name))
                                                     for f in dataclasses.fields(value)
                                                     if f.init})
            return value

        return conv(self)

    def prefix(self, depth):
        """The first ``depth`` layers or blocks with their tap readout, as a network of
        the same class, distributed exactly as one of that depth; its layers are this
        network's own objects.  Needs tap readouts for ``depth < L``."""
        L = self.spec.depth
        depth = check_int("depth", depth, 1, L)
        if depth == L:
            return self
        if self.taps is None:
            raise ValueError("net has no tap readouts: sample it with taps=True")
        return dataclasses.replace(self, spec=self.spec.replace(depth=depth),
                                   layers=self.layers[:self.bounds[depth - 1] + 1],
                                   readout=self.taps[depth - 1], readout_half=None,
                                   bounds=self.bounds[:depth], taps=self.taps[:depth - 1])

