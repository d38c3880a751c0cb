"""Drawing one network's parameters from its own generator, in a fixed order.

Every family builds its layers with a :class:`Sampler`: the spec's initialisation
(Gaussian, orthogonal or looks-linear mirrored) is read here, once.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import Dense

__all__ = ["Sampler", "gaussian", "orthogonal", "stream_readout"]


def gaussian(rng, shape, var, dtype):
    """I.i.d. ``N(0, var)`` entries of ``dtype``."""
    return rng.standard_normal(shape, dtype=dtype) * dtype(math.sqrt(var))


def orthogonal(rng, rows, cols, scale2, dtype):
    """A semi-orthogonal ``rows x cols`` matrix times ``sqrt(scale2)``.

    QR of a Gaussian with the signs of ``diag(R)`` moved into ``Q`` (Haar-distributed).
    """
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q * math.sqrt(scale2), dtype=dtype)


class Sampler:
    """Draws the parameters of one network, in a fixed order, from one generator.

    Parameters
    ----------
    spec : NetSpec
    rng : numpy.random.Generator
    dtype : numpy float type
    rule : ActivationRule
        The spec's :func:`~gradsim.families.activation.activation_rule`.
    """

    def __init__(self, spec, rng, dtype, rule):
        self.spec, self.rng, self.dtype, self.rule = spec, rng, dtype, rule

    def weight(self, rows, cols, consumes_act):
        """Weight for a layer with ``cols`` inputs; mirrored if it consumes CReLU features
        of a looks-linear net.  Returns ``(w, half)`` (``half`` is ``P`` or None)."""
        s = self.spec
        if consumes_act and self.rule.mirrored:
            half_cols = cols // 2
            half = orthogonal(self.rng, rows, half_cols,
                              s.weight_var * rows / (2 * min(rows, half_cols)), self.dtype)
            w = np.concatenate([half, -self.dtype(s.mirror) * half], axis=1)
            return w, half
        if s.init == "he":
            return gaussian(self.rng, (rows, cols), s.weight_var / cols, self.dtype), None
        scale2 = s.weight_var * rows / min(rows, cols)
        return orthogonal(self.rng, rows, cols, scale2, self.dtype), None

    def bias(self, rows, var):
        """A bias of variance ``var``, or None (nothing drawn) when ``var = 0``."""
        return gaussian(self.rng, rows, var, self.dtype) if var > 0 else None

    def dense(self, rows, cols, consumes_act, bias_var):
        """A :class:`~gradsim.families.layers.Dense` layer: its weight, then its bias."""
        w, half = self.weight(rows, cols, consumes_act)
        return Dense(w, self.bias(rows, bias_var), half)

    def embedding(self):
        """The first layer ``W_0 x + b_0`` (input dimension to width, first-layer bias)."""
        s = self.spec
        return self.dense(s.width, s.input_dim, False, s.first_bias_var)

    def dense_run(self, count, rows, cols, bias_var):
        """``count`` layers consuming the activation, as ``count`` calls of :meth:`dense`
        would draw them.  With He init they come from one call of the generator (weights
        and biases interleaved as in single draws), which gives the same numbers: a
        generator's output does not depend on how it is split into calls."""
        s = self.spec
        if s.init != "he" or count == 0:
            return [self.dense(rows, cols, True, bias_var) for _ in range(count)]
        nb = rows if bias_var > 0 else 0
        block = self.rng.standard_normal((count, rows * cols + nb), dtype=self.dtype)
        w = block[:, : rows * cols].reshape(count, rows, cols) * self.dtype(
            math.sqrt(s.weight_var / cols))
        b = (block[:, rows * cols:] * self.dtype(math.sqrt(bias_var))) if nb else None
        return [Dense(w[i], None if b is None else b[i]) for i in range(count)]

    def readout(self, cols, consumes_act):
        """The readout ``u`` over ``cols`` features (mirrored ``[v, -mirror v]`` on CReLU
        features of a looks-linear net).  Returns ``(u, v)`` (``v`` None unmirrored)."""
        s = self.spec
        if consumes_act and self.rule.mirrored:
            half = gaussian(self.rng, cols // 2, s.readout_var / cols, self.dtype)
            return np.concatenate([half, -self.dtype(s.mirror) * half]), half
        return gaussian(self.rng, cols, s.readout_var / cols, self.dtype), None


def stream_readout(spec, draw):
    """The linear readout of a stream of width ``N`` (``f = u . x_L``): the ``readout``
    hook of the families whose output is their residual or highway stream."""
    return draw.readout(spec.width, False)

