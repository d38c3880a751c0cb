"""Resnets (pre-activation blocks): ``x_0 = W_0 x + b_0``,
``x_l = alpha (x_{l-1} + beta F_l(x_{l-1}))``, ``f = u^T x_L``, with the branch
``F(x) = W act(BN?(x)) + b`` (one layer) or ``W_2 act(BN?(W_1 act(BN?(x)) + b_1)) + b_2``.

Everything the family means, side by side: checks, layers, memory, theory.
"""

from __future__ import annotations

import math

import numpy as np

from . import hooks
from .layers import BatchNorm, Residual
from .sampling import stream_readout

__all__ = ["NAME", "SUMMARY", "FIELDS", "ACTIVATIONS", "check", "activation_sites",
           "parameter_count", "build", "readout", "covers", "paper_blocks",
           "kernel_plan"]

NAME = "resnet"
SUMMARY = "x_l = alpha (x_{l-1} + beta F(x_{l-1})), F = W act(BN?(x)) (+ a second layer)"
#: NetSpec fields only the resnet families read, with the ranges strategies draw from.
FIELDS = {"alpha": (0.3, 1.0), "beta": (0.0, 1.0), "branch_depth": (1, 2)}
ACTIVATIONS = ("relu", "leaky", "crelu")


def check(spec):
    """Nothing beyond the spec's own checks."""


def activation_sites(spec):
    """``branch_depth`` activations per block."""
    return spec.depth * spec.branch_depth


def parameter_count(spec):
    """Weights of all branch layers, the embedding and the readout (an upper bound)."""
    return ((activation_sites(spec) + 1) * spec.width * spec.features
            + spec.width * spec.input_dim)


def build(spec, draw):
    """The embedding, then ``depth`` :class:`~gradsim.families.layers.Residual` blocks."""
    rule = draw.rule
    bn = [BatchNorm(spec.bn_eps, spec.bn_grad == "through")] if spec.batchnorm else []
    layers, bounds = [draw.embedding()], []
    for _ in range(spec.depth):
        bounds.append(len(layers))
        branch = []
        for _ in range(spec.branch_depth):
            branch += bn + [rule.layer, draw.dense(spec.width, spec.features, True,
                                                   spec.bias_var)]
        layers.append(Residual(branch, spec.alpha, spec.beta))
    return (layers, bounds, *readout(spec, draw))


readout = stream_readout



def covers(spec, model):
    """Why theory ``model`` does not apply to ``spec``, or None if it does."""
    if model in ("independence", "exact") and spec.batchnorm:
        return f"{model} theory covers nets without batch norm"
    if model in ("kurtosis", "shallow", "finite", "finite2"):
        return f"the {model} result is derived for feedforward nets only"
    return None


def _branch(moments, spec):
    return moments.dvar**spec.branch_depth


def paper_blocks(spec, moments):
    """``alpha (I + beta B)``, ``B`` the branch's ``branch_depth`` masked layers.

    With batch norm, the paper's heuristic divides the branch of block ``l`` by the
    square root of the stream's forward variance ``v_{l-1} = 1 + beta^2 B_var (l - 1)``.
    """
    blocks = []
    for layer in range(spec.depth):
        v = 1.0 + spec.beta**2 * _branch(moments, spec) * layer if spec.batchnorm else 1.0
        blocks.append(hooks.PaperBlock(spec.alpha, 1.0, spec.beta, spec.alpha**2, 1.0,
                                       spec.beta**2, spec.branch_depth, 0, False, v))
    return tuple(blocks)


def kernel_plan(spec, rule):
    """Per block: keep the stream, ``branch_depth`` steps, mix; then the linear readout.

    The state is carried divided by ``f^l``, ``f = alpha^2 (1 + beta^2 (s g(1))^k)``.
    """
    s = rule.weight_scale
    gd = (rule.a * rule.a + rule.b * rule.b) / 2
    f = hooks.growth_factor(spec.alpha**2 * (1 + spec.beta**2 * (s * gd) ** spec.branch_depth),
                            spec.bias_var)
    lf = math.log(f)
    bias = hooks.scaled_biases(spec.bias_var, lf, np.arange(spec.depth))
    blocks = tuple((hooks.save(),) + (hooks.step(s, bias[k]),) * spec.branch_depth
                   + (hooks.mix(spec.alpha**2 / f, spec.beta**2),) for k in range(spec.depth))
    head = (hooks.scale(spec.readout_var),)
    return hooks.KernelPlan(rule.a, rule.b, blocks, head, (lf,) * spec.depth)
