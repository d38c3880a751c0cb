"""Post-activation resnets, the original resnet block: ``x_0 = act(BN?(W_0 x + b_0))``,
``x_l = act(alpha (x_{l-1} + beta F_l(x_{l-1})))``, ``f = u^T x_L``, with the branch
``F(x) = BN?(W x + b)`` (one layer) or ``BN?(W_2 act(BN?(W_1 x + b_1)) + b_2)`` (two).

He et al. (2016) put the activation after the sum; their later "identity mappings" block
(the ``resnet`` family) moved it into the branch, so that the skip is the identity.  Here
the skip passes through the activation: under the independent-pattern model a block
multiplies the gradient covariance of two inputs by ``E[phi'(u) phi'(v)] = 1/4`` (ReLU)
against ``E[phi'^2] = 1/2`` for the variance, so the skip itself shatters: with a
one-layer branch at He init the correlation falls as ``2^-L``, as fast as a feedforward
net's, and a two-layer branch makes it ``3^-L``.  Real nets break that assumption: the
stream is non-negative, so the units after each sum are active well over half the time
(measured in ``docs/theory.md``) and the gradient shatters about as slowly as a
pre-activation resnet's.

Everything the family means, side by side: checks, layers (the shared ones: no kernel of
its own), memory, theory.  The exact infinite-width theory does not cover it: the stream
``act(z)`` is not Gaussian at infinite width, so the arc-cosine recursion of Gaussian
pre-activations does not apply (see :func:`covers`).

References
----------
He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016.
He, Zhang, Ren and Sun, "Identity mappings in deep residual networks", ECCV 2016.
"""

from __future__ import annotations

from . import hooks, resnet
from .layers import BatchNorm, Residual
from .sampling import stream_readout

__all__ = ["NAME", "SUMMARY", "FIELDS", "ACTIVATIONS", "check", "activation_sites",
           "parameter_count", "build", "readout", "covers", "paper_blocks",
           "kernel_plan"]

NAME = "post-resnet"
SUMMARY = "x_l = act(alpha (x_{l-1} + beta F(x_{l-1}))), F = BN?(W x) (+ a second layer)"
#: NetSpec fields only the resnet families read (the resnet family's, same ranges).
FIELDS = resnet.FIELDS
ACTIVATIONS = ("relu", "leaky")


def check(spec):
    """The skip must keep the width: no CReLU."""
    if spec.activation == "crelu":
        raise ValueError("activation='crelu' is not supported for arch='post-resnet' "
                         "(its skip must keep the width)")


def activation_sites(spec):
    """The embedding's activation, then ``branch_depth`` per block."""
    return 1 + spec.depth * spec.branch_depth


def parameter_count(spec):
    """Weights of the embedding, every branch layer and the readout."""
    return (spec.depth * spec.branch_depth + 1) * spec.width**2 + spec.width * spec.input_dim


def build(spec, draw):
    """``[Dense, (BatchNorm), Activation]``, then per block a
    :class:`~gradsim.families.layers.Residual` and the activation after it."""
    act = draw.rule.layer
    bn = [BatchNorm(spec.bn_eps, spec.bn_grad == "through")] if spec.batchnorm else []
    layers, bounds = [draw.embedding()] + bn + [act], []
    for _ in range(spec.depth):
        branch = []
        for k in range(spec.branch_depth):
            branch += ([act] if k else []) + [draw.dense(spec.width, spec.width, True,
                                                         spec.bias_var)] + bn
        layers += [Residual(branch, spec.alpha, spec.beta), act]
        bounds.append(len(layers) - 1)
    return (layers, bounds, *readout(spec, draw))


readout = stream_readout



def covers(spec, model):
    """Why theory ``model`` does not apply to ``spec``, or None if it does."""
    if model == "paper":
        if spec.batchnorm:
            return ("the paper model's batch-norm heuristic rescales a pre-activation "
                    "stream; a post-activation block has none")
        return None
    if model in ("independence", "exact"):
        return (f"{model} theory does not cover post-activation resnets: the stream "
                "act(x + beta F(x)) is not Gaussian at infinite width")
    return f"the {model} result is derived for feedforward nets only"


def paper_blocks(spec, moments):
    """``D alpha (I + beta B)``: a mask after the sum; the branch ``B`` is a bare weight
    (one layer) or a weight after a masked layer (two)."""
    block = hooks.PaperBlock(spec.alpha, 1.0, spec.beta, spec.alpha**2, 1.0, spec.beta**2,
                             spec.branch_depth - 1, 1, True)
    return (block,) * spec.depth


def kernel_plan(spec, rule):
    """Not covered (see :func:`covers`)."""
    raise ValueError(covers(spec, "exact"))
