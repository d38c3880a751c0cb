"""Layers of the trainable convnets: 3 x 3 convolutions on square images, by im2col.

A convnet's state is a 2-D array ``(channels, side * side * B)``: pixel-major within a
channel, the batch last (each channel's columns are ``(row, column, example)`` in C
order).  Batch norm (:class:`gradsim.train.model._BatchNorm`) then normalises each channel
over all its pixels and examples, and the elementwise kernels see an ordinary
``(rows, columns)`` array.  A convolution with weights ``W`` of shape
``(C_out, C_in * 9)`` (``C_in`` outer, then the 3 x 3 taps row by row) and zero padding
of one pixel is

.. math:: z = W \\, \\mathrm{im2col}(h), \\qquad
          \\frac{\\partial L}{\\partial W} = g \\, \\mathrm{im2col}(h)^T, \\qquad
          \\frac{\\partial L}{\\partial h} = \\mathrm{col2im}(W^T g),

where ``im2col`` stacks, for every tap ``(di, dj)``, the input shifted by ``(di - 1,
dj - 1)`` (zeros outside the image) and ``col2im`` is its adjoint (the shifted rows added
back).  Conventions are in ``docs/training.md``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["image_side", "im2col", "col2im", "Image", "Conv", "Flatten", "delta_orthogonal"]


def image_side(input_dim):
    """Side of the square image of ``input_dim`` pixels; ValueError if not a square."""
    side = math.isqrt(int(input_dim))
    if side * side != input_dim:
        raise ValueError(f"input_dim must be a square number of pixels for a convnet, "
                         f"got {input_dim}")
    return side


def im2col(h, side):
    """``(C, side^2 B)`` -> ``(C * 9, side^2 B)``: the 3 x 3 neighbourhoods, zero padded."""
    c = h.shape[0]
    b = h.shape[1] // (side * side)
    pad = np.zeros((c, side + 2, side + 2, b), dtype=h.dtype)
    pad[:, 1:-1, 1:-1] = h.reshape(c, side, side, b)
    cols = np.empty((c, 3, 3, side, side, b), dtype=h.dtype)
    for di in range(3):
        for dj in range(3):
            cols[:, di, dj] = pad[:, di:di + side, dj:dj + side]
    return cols.reshape(c * 9, side * side * b)


def col2im(g, side):
    """The adjoint of :func:`im2col`: ``(C * 9, side^2 B)`` -> ``(C, side^2 B)``."""
    c = g.shape[0] // 9
    b = g.shape[1] // (side * side)
    cols = g.reshape(c, 3, 3, side, side, b)
    pad = np.zeros((c, side + 2, side + 2, b), dtype=g.dtype)
    for di in range(3):
        for dj in range(3):
            pad[:, di:di + side, dj:dj + side] += cols[:, di, dj]
    return np.ascontiguousarray(pad[:, 1:-1, 1:-1]).reshape(c, side * side * b)


def delta_orthogonal(rng, rows, cols, orthogonal):
    """``(rows, cols * 9)`` weights zero but at the centre tap, an orthogonal matrix there
    (the delta-orthogonal kernel: the convolution mixes channels pixel by pixel)."""
    w = np.zeros((rows, cols, 3, 3))
    w[:, :, 1, 1] = orthogonal(rng, rows, cols, 1.0, np.float64)
    return w.reshape(rows, cols * 9)


class Image:
    """Inputs ``(side^2, B)`` as one channel ``(1, side^2 B)``, and back."""

    def forward(self, m, x, train):
        return np.ascontiguousarray(x).reshape(1, -1), x.shape

    def backward(self, m, g, shape, grads):
        return g.reshape(shape)


class Conv:
    """3 x 3 convolution, zero padding; parameters ``{name}.w`` ``(C_out, C_in * 9)`` and
    ``{name}.b`` ``(C_out,)``."""

    def __init__(self, name, bias, side):
        self.w, self.b, self.side = f"{name}.w", (f"{name}.b" if bias else None), side

    def forward(self, m, h, train):
        cols = im2col(h, self.side)
        z = m.params[self.w] @ cols
        if self.b is not None:
            z += m.params[self.b][:, None]
        return z, cols

    def backward(self, m, g, cols, grads):
        grads[self.w] = g @ cols.T
        if self.b is not None:
            grads[self.b] = g.sum(axis=1)
        return col2im(m.params[self.w].T @ g, self.side)


class Flatten:
    """``(C, side^2 B)`` -> ``(C side^2, B)`` (channel-major features) for the head."""

    def __init__(self, side):
        self.pixels = side * side

    def forward(self, m, h, train):
        c = h.shape[0]
        return h.reshape(c * self.pixels, -1), c

    def backward(self, m, g, c, grads):
        return np.ascontiguousarray(g).reshape(c, -1)
