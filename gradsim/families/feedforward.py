"""Feedforward nets: ``h_l = act(BN?(W_l h_{l-1} + b_l))``, ``f = u^T h_L``.

Everything the family means, side by side: its checks, how its layers are built and
sampled (and the fused kernel for small plain nets), its memory estimate, and its theory:
paper-model blocks, the kernel program of the exact theory, and which theories cover it.
"""

from __future__ import annotations

import math

import numpy as np

from . import hooks
from .layers import BatchNorm

__all__ = ["NAME", "SUMMARY", "FIELDS", "ACTIVATIONS", "FUSED_MAX_WIDTH", "check",
           "activation_sites", "parameter_count", "build", "readout", "fused", "gram_fused",
           "gram_stack_applies", "gram_stack_draw", "GRAM_FUSED_MAX_COLUMNS", "covers",
           "paper_blocks", "kernel_plan", "looks_linear_product"]

NAME = "feedforward"
SUMMARY = "h_l = act(BN?(W_l h_{l-1} + b_l)), f = u . h_L"
#: NetSpec fields only this family reads, with the ranges hypothesis strategies draw from.
FIELDS = {}
#: Activations the family allows.
ACTIVATIONS = ("relu", "leaky", "crelu")
#: Widths up to which a plain net's hidden layers run as one fused kernel
#: (:func:`gradsim.kernels.dense.dense_act_stack`) instead of a BLAS product per layer:
#: below it, per-layer call overhead costs more than the arithmetic (docs/performance.md).
FUSED_MAX_WIDTH = 16
#: State columns up to which a plain net drawn in Gram space runs as one kernel
#: (:func:`gram_fused`).
GRAM_FUSED_MAX_COLUMNS = 8


def check(spec):
    """Nothing beyond the spec's own checks."""


def activation_sites(spec):
    """One activation per layer: ``depth``."""
    return spec.depth


def parameter_count(spec):
    """Weights of all layers (an upper bound with the readout): ``(L + 1) N F + N d``."""
    return (spec.depth + 1) * spec.width * spec.features + spec.width * spec.input_dim


def _act_block(spec, rule):
    bn = [BatchNorm(spec.bn_eps, spec.bn_grad == "through")] if spec.batchnorm else []
    return bn + [rule.layer]


def build(spec, draw):
    """Layers ``[Dense, (BatchNorm), Activation] * depth`` and the readout.

    Returns ``(layers, bounds, readout, readout_half)``: ``bounds[l - 1]`` indexes the
    last layer of the depth-``l`` prefix.
    """
    block = _act_block(spec, draw.rule)
    layers, bounds = [draw.embedding()] + block, []
    bounds.append(len(layers) - 1)
    for dense in draw.dense_run(spec.depth - 1, spec.width, spec.features, spec.bias_var):
        layers += [dense] + block
        bounds.append(len(layers) - 1)
    return (layers, bounds, *readout(spec, draw))


def readout(spec, draw):
    """The readout over the last activation's features (also drawn for depth taps)."""
    return draw.readout(spec.features, True)


def fused(net):
    """``(ws, bs, activation)`` of the hidden layers of a small plain net, else None.

    A plain net (no batch norm, ReLU or ab-ReLU, ``width <= FUSED_MAX_WIDTH``, depth >= 2,
    drawn explicitly) runs its hidden layers in one kernel call; the stacked weights are
    cached on the net.  (A fused stack of layers drawn in Gram space was slower than
    BLAS products between kernel calls, measured at width 1024 on 2 points.)
    """
    s = net.spec
    if (s.batchnorm or s.activation == "crelu" or s.width > FUSED_MAX_WIDTH or s.depth < 2
            or net.columns is not None):
        return None
    return (*_stacked(net), net.layers[1])


def gram_stack_applies(spec, columns, dtype):
    """True for a plain net (no batch norm, ReLU or ab-ReLU) drawn in Gram space
    (``columns`` not None) on at most ``GRAM_FUSED_MAX_COLUMNS`` columns, in float64:
    it runs its hidden layers and readouts in one kernel call
    (:func:`gradsim.kernels.gram.gram_stack`), since on few columns a layer is
    ``O(N m^2)`` arithmetic and the calls between BLAS products cost more than it."""
    return (not spec.batchnorm and spec.activation != "crelu" and columns is not None
            and columns <= GRAM_FUSED_MAX_COLUMNS and np.dtype(dtype) == np.float64)


def gram_fused(net):
    """``(ws, bs, activation)`` of a net :func:`gram_stack_applies` to, else None."""
    if not gram_stack_applies(net.spec, net.columns, net.dtype):
        return None
    return (*_stacked(net), net.layers[1])


def gram_stack_draw(spec, draw):
    """What :func:`build` and :func:`readout` draw, in their order, as the arrays of
    :func:`gram_fused`: ``(first, ws, bs, readout)``, ``first`` the embedding and the
    first activation (layers), ``bs`` zeros for no bias.  A net :func:`gram_stack_applies`
    to runs from these without being built (the same numbers)."""
    first = [draw.embedding()] + _act_block(spec, draw.rule)
    ws, bs = draw.dense_block(spec.depth - 1, spec.width, spec.features, spec.bias_var)
    if bs is None:
        bs = np.zeros(ws.shape[:2], dtype=ws.dtype)
    return first, ws, bs, readout(spec, draw)[0]


def _stacked(net):
    """The hidden layers' weights ``(L - 1, N, k)`` and biases ``(L - 1, N)`` (zeros for
    none), stacked once and cached on the net (rebuilt if a layer was replaced)."""
    dense = net.layers[2::2]
    key = [(id(layer.w), id(layer.b)) for layer in dense]
    if net._stack is None or net._stack[0] != key:
        zeros = np.zeros(net.spec.width, dtype=net.dtype)
        k = net.layers[0].w.shape[0] if not dense else dense[0].w.shape[1]
        ws = (np.stack([layer.w for layer in dense]) if dense
              else np.empty((0, net.spec.width, k), dtype=net.dtype))
        bs = (np.stack([zeros if layer.b is None else layer.b for layer in dense]) if dense
              else np.empty((0, net.spec.width), dtype=net.dtype))
        net._stack = (key, ws, bs)
    return net._stack[1], net._stack[2]


def covers(spec, model):
    """Why theory ``model`` does not apply to ``spec``, or None if it does."""
    if model in ("independence", "exact") and spec.batchnorm:
        return f"{model} theory covers nets without batch norm"
    if model == "kurtosis" and (spec.batchnorm or spec.activation != "relu"
                                or spec.init != "he" or spec.first_bias_var
                                or spec.bias_var):
        return ("the kurtosis identity needs a bias-free He ReLU feedforward net without "
                "batch norm")
    if model in ("finite", "finite2"):
        if (spec.batchnorm or spec.activation not in ("relu", "leaky") or spec.init != "he"
                or spec.first_bias_var == 0):
            return ("the finite-width theory covers He (Gaussian) ReLU and ab-ReLU (leaky) "
                    "feedforward nets without batch norm, with a first-layer bias "
                    "(first_bias_var > 0)")
        # what `theory --model` and the compare rows run (the API goes further): the
        # derivative tensors grow as D^3 (first order) and D^5 (second), D the Gram
        # entries, so these stay at about a second per layer or less
        limit = 1 if model == "finite2" else 4
        if spec.input_dim > limit:
            return (f"model {model} covers input dimensions up to {limit} (its derivative "
                    f"tensors grow as a power of the input dimension; "
                    "theory.finite_width.finite_width_gradient_covariance goes further)")
        return None
    if model == "shallow" and (spec.depth != 1 or spec.input_dim != 1
                               or spec.activation != "relu" or spec.batchnorm):
        return ("the Brownian limit needs a one-hidden-layer (depth=1) ReLU feedforward net "
                "on 1-D inputs without batch norm")
    return None


def paper_blocks(spec, moments):
    """Every layer is ``W D``: the gradient variance times ``s E[phi'^2]`` per layer."""
    return (hooks.PaperBlock(),) * spec.depth


def kernel_plan(spec, rule):
    """``depth - 1`` steps of activation and weight, then the readout as a last step.

    The state is carried divided by ``f^l``, ``f = s g(1)`` the per-layer growth.
    """
    s = rule.weight_scale
    f = hooks.growth_factor(s * ((rule.a * rule.a + rule.b * rule.b) / 2), spec.bias_var)
    lf = math.log(f)
    bias = hooks.scaled_biases(spec.bias_var, lf, np.arange(1, spec.depth + 1))
    blocks = ((),) + tuple((hooks.step(s / f, bias[k]),) for k in range(spec.depth - 1))
    head = (hooks.step(spec.readout_var * rule.readout_scale),)
    return hooks.KernelPlan(rule.a, rule.b, blocks, head, (0.0,) + (lf,) * (spec.depth - 1))


def looks_linear_product(net):
    """``u^T W_L ... W_1`` of a looks-linear feedforward net, from its mirrored halves.

    With ``[P, -alpha P] CReLU(z) = P LeakyReLU_alpha(z)`` and ``alpha = 1`` the net is
    linear at initialisation and this row vector, shape ``(d,)``, is ``df/dx`` everywhere.
    """
    if net.readout_half is None or net.spec.arch != NAME:
        raise ValueError("looks_linear_product needs a looks-linear feedforward net")
    dense = net.dense_layers()
    m = dense[0].w
    for layer in dense[1:]:
        m = layer.half @ m
    return net.readout_half @ m
