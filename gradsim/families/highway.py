"""Highway nets: ``x_0 = W_0 x + b_0``, ``x_l = T * H + (1 - T) * x_{l-1}`` with
``H = act(BN?(W_H x + b_H))`` and the transform gate ``T = sigmoid(W_T x + gate_bias)``,
``f = u^T x_L``.

Everything the family means, side by side: checks, its own layer (:class:`Highway`, with
its kernel pair :mod:`gradsim.kernels.highway`), memory, theory.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import hooks
from .layers import Activation, BatchNorm, Dense
from .sampling import stream_readout

__all__ = ["NAME", "SUMMARY", "FIELDS", "ACTIVATIONS", "Highway", "check", "activation_sites",
           "parameter_count", "build", "readout", "covers", "paper_blocks",
           "kernel_plan"]

NAME = "highway"
SUMMARY = "x_l = T H + (1 - T) x_{l-1}, H = act(BN?(W_H x)), T = sigmoid(W_T x + gate_bias)"
#: NetSpec fields only this family reads, with the ranges strategies draw from.
FIELDS = {"gate_bias": (-3.0, 1.0)}
ACTIVATIONS = ("relu", "leaky")


@dataclasses.dataclass
class Highway:
    """``x <- T * H + (1 - T) * x``, ``H = act(BN?(W_H x + b_H))``, ``T = sigmoid(W_T x + b_T)``.

    ``dense`` stacks ``[W_H; W_T]`` so both pre-activations come from one product.
    """

    dense: Dense
    bn: BatchNorm | None
    act: Activation

    def forward(self, s, ctx):
        n = s.shape[0]
        z, _ = self.dense.forward(s, ctx)
        zh, zt = z[:n], z[n:]
        bn_cache = None
        if self.bn is not None:
            zh, bn_cache = self.bn.forward(zh, ctx)
        h, act_cache = self.act.forward(np.ascontiguousarray(zh), ctx)
        out = np.empty_like(s)
        gate = np.empty((n, ctx.p), dtype=s.dtype)
        ctx.kern.highway_fwd(h, np.ascontiguousarray(zt), s, ctx.p, out, gate)
        cache = None
        if ctx.tape:
            cache = (bn_cache, act_cache, gate, h[:, : ctx.p], s[:, : ctx.p])
        return out, cache

    def backward(self, g, cache, ctx):
        bn_cache, act_cache, gate, hv, xv = cache
        gh, gx, gzt = (np.empty_like(g) for _ in range(3))
        ctx.kern.highway_bwd(g, gate, np.ascontiguousarray(hv), np.ascontiguousarray(xv),
                             gh, gx, gzt)
        gzh = self.act.backward(gh, act_cache, ctx)
        if self.bn is not None:
            gzh = self.bn.backward(gzh, bn_cache, ctx)
        gin = self.dense.backward(np.vstack([gzh, gzt]), None, ctx)
        gin += gx
        return gin


def check(spec):
    """The transform must keep the width: no CReLU."""
    if spec.activation == "crelu":
        raise ValueError("activation='crelu' is not supported for arch='highway' "
                         "(its transform must keep the width)")


def activation_sites(spec):
    """One activation per block."""
    return spec.depth


def parameter_count(spec):
    """Transform and gate weights of every block, the embedding and the readout."""
    return 2 * (spec.depth + 1) * spec.width * spec.features + spec.width * spec.input_dim


def build(spec, draw):
    """The embedding, then ``depth`` :class:`Highway` blocks (``W_H``, ``W_T``, ``b_H``)."""
    n, dtype = spec.width, draw.dtype
    bn = BatchNorm(spec.bn_eps, spec.bn_grad == "through") if spec.batchnorm else None
    layers, bounds = [draw.embedding()], []
    for _ in range(spec.depth):
        bounds.append(len(layers))
        wh, _ = draw.weight(n, n, False)
        wt, _ = draw.weight(n, n, False)
        bh = draw.bias(n, spec.bias_var)
        b = np.concatenate([bh if bh is not None else np.zeros(n, dtype),
                            np.full(n, spec.gate_bias, dtype)])
        layers.append(Highway(draw.linear(np.concatenate([wh, wt]), b), bn, draw.rule.layer))
    return (layers, bounds, *readout(spec, draw))


readout = stream_readout



def covers(spec, model):
    """Only the paper model (gate held at its bias) covers highway nets."""
    if model == "paper":
        return None
    if model in ("independence", "exact"):
        return (f"{model} theory is not derived for highway nets (the sigmoid gate has no "
                "arc-cosine kernel map)")
    return f"the {model} result is derived for feedforward nets only"


def paper_blocks(spec, moments):
    """``(1 - t) I + t W D`` with the gate held at ``t = sigmoid(gate_bias)`` (its
    derivative neglected: our reading; the paper's highway setting is not known)."""
    t = 1.0 / (1.0 + math.exp(-spec.gate_bias))
    return (hooks.PaperBlock(1.0, 1 - t, t, 1.0, (1 - t) ** 2, t * t),) * spec.depth


def kernel_plan(spec, rule):
    """Not covered (see :func:`covers`)."""
    raise ValueError(covers(spec, "exact"))
