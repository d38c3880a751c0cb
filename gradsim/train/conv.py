"""Layers of the trainable convnets: 3 x 3 convolutions on square images, by im2col.

A convnet's state is a 2-D array ``(channels, B * side * side)``: image-major, each
image's pixels row by row (the layout of :mod:`gradsim.kernels.conv`, whose im2col and
col2im kernels do the work).  Batch norm (:class:`gradsim.train.model._BatchNorm`) then
normalises each channel over all its pixels and examples, and the elementwise kernels see
an ordinary ``(rows, columns)`` array.  A convolution with weights ``W`` of shape
``(C_out, C_in * 9)`` (``C_in`` outer, then the 3 x 3 taps row by row) and zero padding
of one pixel is

.. math:: z = W \\, \\mathrm{im2col}(h), \\qquad
          \\frac{\\partial L}{\\partial W} = g \\, \\mathrm{im2col}(h)^T, \\qquad
          \\frac{\\partial L}{\\partial h} = \\mathrm{col2im}(W^T g),

where ``im2col`` stacks, for every tap ``(di, dj)``, the input shifted by ``(di - 1,
dj - 1)`` (zeros outside the image) and ``col2im`` is its adjoint (the shifted rows added
back).  The columns are built a run of images at a time (about
:data:`gradsim.conv.nets.CHUNK_ELEMENTS` entries, so they stay in cache) and rebuilt in
the backward pass rather than stored.  Conventions are in ``docs/training.md``.
"""

from __future__ import annotations

import math

import numpy as np

from ..conv.nets import CHUNK_ELEMENTS

__all__ = ["image_side", "im2col", "col2im", "Image", "Conv", "Flatten", "delta_orthogonal"]

#: Kernel height and width.
K = 3


def image_side(input_dim):
    """Side of the square image of ``input_dim`` pixels; ValueError if not a square."""
    side = math.isqrt(int(input_dim))
    if side * side != input_dim:
        raise ValueError(f"input_dim must be a square number of pixels for a convnet, "
                         f"got {input_dim}")
    return side


def _runs(rows, images, side):
    """``(first, count)`` runs of images whose columns hold about CHUNK_ELEMENTS entries."""
    per = max(1, CHUNK_ELEMENTS // (rows * side * side))
    return [(a, min(per, images - a)) for a in range(0, images, per)], per


def im2col(kern, h, side):
    """``(C, B side^2)`` -> ``(C * 9, B side^2)``: the 3 x 3 neighbourhoods, zero padded."""
    out = np.empty((h.shape[0] * K * K, h.shape[1]), dtype=h.dtype)
    kern.im2col(np.ascontiguousarray(h), side, side, K, K, 0, out)
    return out


def col2im(kern, g, side):
    """The adjoint of :func:`im2col`: ``(C * 9, B side^2)`` -> ``(C, B side^2)``."""
    out = np.empty((g.shape[0] // (K * K), g.shape[1]), dtype=g.dtype)
    kern.col2im(np.ascontiguousarray(g), side, side, K, K, 0, out)
    return out


def delta_orthogonal(rng, rows, cols, orthogonal):
    """``(rows, cols * 9)`` weights zero but at the centre tap, an orthogonal matrix there
    (the delta-orthogonal kernel: the convolution mixes channels pixel by pixel)."""
    w = np.zeros((rows, cols, 3, 3))
    w[:, :, 1, 1] = orthogonal(rng, rows, cols, 1.0, np.float64)
    return w.reshape(rows, cols * 9)


class Image:
    """Inputs ``(side^2, B)`` (feature-major) as one channel ``(1, B side^2)``, and back."""

    def forward(self, m, x, train):
        return np.ascontiguousarray(x.T).reshape(1, -1), x.shape

    def backward(self, m, g, shape, grads):
        return g.reshape(shape[::-1]).T


class Conv:
    """3 x 3 convolution, zero padding; parameters ``{name}.w`` ``(C_out, C_in * 9)`` and
    ``{name}.b`` ``(C_out,)``.  The cache is the input state; the backward pass rebuilds
    its columns run by run."""

    def __init__(self, name, bias, side):
        self.w, self.b, self.side = f"{name}.w", (f"{name}.b" if bias else None), side

    def forward(self, m, h, train):
        h = np.ascontiguousarray(h)
        w = m.params[self.w]
        hw = self.side * self.side
        runs, per = _runs(w.shape[1], h.shape[1] // hw, self.side)
        buf = np.empty(w.shape[1] * per * hw, dtype=h.dtype)
        z = np.empty((w.shape[0], h.shape[1]), dtype=h.dtype)
        for first, n in runs:
            cols = buf[:w.shape[1] * n * hw].reshape(w.shape[1], n * hw)
            m.kern.im2col(h, self.side, self.side, K, K, first, cols)
            np.matmul(w, cols, out=z[:, first * hw:(first + n) * hw])
        if self.b is not None:
            z += m.params[self.b][:, None]
        return z, h

    def backward(self, m, g, h, grads):
        g = np.ascontiguousarray(g)
        w = m.params[self.w]
        hw = self.side * self.side
        runs, per = _runs(w.shape[1], h.shape[1] // hw, self.side)
        buf = np.empty(w.shape[1] * per * hw, dtype=h.dtype)
        gw = np.zeros_like(w)
        out = np.empty_like(h)
        for first, n in runs:
            cols = buf[:w.shape[1] * n * hw].reshape(w.shape[1], n * hw)
            m.kern.im2col(h, self.side, self.side, K, K, first, cols)
            gr = g[:, first * hw:(first + n) * hw]
            gw += gr @ cols.T
            np.matmul(w.T, gr, out=cols)
            m.kern.col2im(cols, self.side, self.side, K, K, first, out)
        grads[self.w] = gw
        if self.b is not None:
            grads[self.b] = g.sum(axis=1)
        return out


class Flatten:
    """``(C, B side^2)`` -> ``(C side^2, B)`` (channel-major features) for the head."""

    def __init__(self, side):
        self.pixels = side * side

    def forward(self, m, h, train):
        c = h.shape[0]
        return (h.reshape(c, -1, self.pixels).transpose(0, 2, 1)
                .reshape(c * self.pixels, -1)), c

    def backward(self, m, g, c, grads):
        return np.ascontiguousarray(
            g.reshape(c, self.pixels, -1).transpose(0, 2, 1)).reshape(c, -1)
