"""What an architecture family hands to the theories: data, no computation.

A family describes itself to each theory with plain data, so that the sampler and every
theory read one description of the network:

* the **paper model** (:mod:`gradsim.theory.paper`) reads :class:`PaperBlock` objects, one
  per block: the block's input-Jacobian under the independent-pattern model.  The closed
  form and the Monte Carlo of that model both interpret the same blocks;
* the **exact infinite-width theory** (:mod:`gradsim.theory.exact`) and **gradient
  independence** (:mod:`gradsim.theory.gradient_independence`) read a
  :class:`KernelPlan`: the network as a program of kernel maps
  (:data:`gradsim.kernels.arccos.OPS`), block by block, then the readout.

A family that a theory does not cover says why in its ``covers(spec, model)``.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from ..kernels.arccos import MIX, SAVE, SCALE, STEP

__all__ = ["PaperMoments", "PaperBlock", "KernelOp", "step", "save", "mix", "scale",
           "KernelPlan", "growth_factor", "scaled_biases", "MODELS"]

#: The theories a family answers ``covers(spec, model)`` for.
MODELS = ("paper", "independence", "exact", "kurtosis", "shallow", "finite", "finite2")

#: Mask and weight moments of the independent-pattern model for one spec: weight scale
#: ``s``; ``dvar = s E[phi'^2]`` and ``dcov = s E[phi'(u) phi'(v)]`` at ``theta = pi/2``
#: (a masked layer); ``mvar``, ``mcov`` the same without the weight (a mask alone).
PaperMoments = collections.namedtuple("PaperMoments", "s dvar dcov mvar mcov")


@dataclasses.dataclass(frozen=True)
class PaperBlock:
    """One block's input-Jacobian under the independent-pattern model.

    ``J = M^[outer] alpha (skip I + beta B)`` with ``B`` the branch: ``masked`` layers
    ``W D`` (a weight and a mask) after ``extra`` bare weights, and ``M`` a mask after the
    sum when ``outer`` (a post-activation block).  Under the model a masked layer
    multiplies the gradient variance by ``dvar`` and the covariance of two inputs by
    ``dcov``, a bare weight both by ``s``, a mask alone by ``mvar`` and ``mcov``
    (:class:`PaperMoments`).

    Attributes
    ----------
    alpha, skip, beta : float
        The block's coefficients (the Monte Carlo of the model uses them as they are).
    alpha2, skip2, beta2 : float
        Their squares, as the closed form uses them.
    masked, extra : int
        Masked layers and bare weights in the branch.
    outer : bool
        A mask after the sum.
    v : float
        Batch-norm heuristic: the forward variance of the stream entering the block; the
        branch is divided by ``sqrt(v)`` (1 without batch norm).
    """

    alpha: float = 1.0
    skip: float = 0.0
    beta: float = 1.0
    alpha2: float = 1.0
    skip2: float = 0.0
    beta2: float = 1.0
    masked: int = 1
    extra: int = 0
    outer: bool = False
    v: float = 1.0

    def factors(self, m):
        """``(variance factor, covariance factor)`` of the block for moments ``m``."""
        scale = 1.0 / self.v
        out = []
        for layer, mask in ((m.dvar, m.mvar), (m.dcov, m.mcov)):
            branch = layer**self.masked * m.s**self.extra
            f = self.alpha2 * (self.skip2 + self.beta2 * branch * scale)
            out.append(mask * f if self.outer else f)
        return tuple(out)


#: One op of a kernel program: ``code`` from :data:`gradsim.kernels.arccos.OPS` and its two
#: arguments (see :mod:`gradsim.kernels.nngp_numpy`).
KernelOp = collections.namedtuple("KernelOp", "code x1 x2")


def step(s, bias=0.0):
    """``STEP``: the activation, then a weight of scale ``s`` and a bias of variance ``bias``."""
    return KernelOp(STEP, float(s), float(bias))


def save():
    """``SAVE``: keep the state as the skip of the next ``MIX``."""
    return KernelOp(SAVE, 0.0, 0.0)


def mix(alpha2, beta2):
    """``MIX``: ``K <- alpha2 (skip + beta2 K)``."""
    return KernelOp(MIX, float(alpha2), float(beta2))


def scale(h):
    """``SCALE``: ``K <- h K``."""
    return KernelOp(SCALE, float(h), 0.0)


@dataclasses.dataclass(frozen=True)
class KernelPlan:
    """A network as a kernel program, from its first pre-activations to its output.

    Attributes
    ----------
    a, b : float
        Slopes of the effective ab-ReLU (:class:`gradsim.families.activation.ActivationRule`).
    blocks : tuple of tuple of KernelOp
        ``blocks[l - 1]``: the ops of block ``l``; the depth-``l`` net is blocks ``1 .. l``
        then :attr:`head`.
    head : tuple of KernelOp
        The readout.
    log_growth : tuple of float
        ``log_growth[l - 1]``: log of the factor by which block ``l``'s ops divide the
        state (they carry the kernel divided by a common growth, with the biases divided
        by the same, to stay in floating-point range; see :func:`growth_factor`).
    """

    a: float
    b: float
    blocks: tuple
    head: tuple
    log_growth: tuple

    def program(self):
        """``(codes, x1, x2)`` arrays of the whole net's ops, for the kernels."""
        ops = [op for block in self.blocks for op in block] + list(self.head)
        return (np.array([op.code for op in ops], dtype=np.int64),
                np.array([op.x1 for op in ops]), np.array([op.x2 for op in ops]))

    @property
    def log_scale(self):
        """Log of the factor the output state is divided by (an exactly rounded sum)."""
        return math.fsum(self.log_growth)


def scaled_biases(bias_var, log_growth, steps):
    """``bias_var / f^k`` for each ``k`` of ``steps``: the biases divided by the growth the
    state is divided by.  Zeros without biases (``exp`` of a large exponent would make
    ``0 * inf``)."""
    if bias_var == 0:
        return np.zeros(len(steps))
    return bias_var * np.exp(-log_growth * steps)


def growth_factor(f, bias_var):
    """The growth a kernel program divides by: ``f``, or 1 where that is wrong or idle.

    The kernel recursions are homogeneous apart from the hidden biases, so they may carry
    the kernel divided by ``f^l``, the biases divided by the same.  With hidden biases and
    ``f < 1`` the kernel tends to a fixed point, and ``1`` is used.
    """
    if not math.isfinite(f) or f <= 0 or (bias_var > 0 and f < 1):
        return 1.0
    return f
