"""The slow, obvious NumPy twins of the convolution kernels in :mod:`gradsim.kernels.conv`.

Same names, signatures and outputs as the numba kernels; both write into preallocated
``out`` arrays.  Tests assert that the two agree.

Layout.  A convolutional *state* is an array ``(C, n * H * W)``: ``C`` channels, then
``n`` images of ``H x W`` positions, row-major (``x`` fastest).  ``n`` counts every image
the state carries: the ``P`` inputs' values and, after them, their tangent blocks (see
:mod:`gradsim.conv`).  A 1-D signal of length ``L`` is the image ``H = 1``, ``W = L``
with a ``1 x k`` kernel, so one pair of kernels serves both dimensions.  The kernels work
on a run of ``m`` consecutive images starting at image ``first``, so that a caller can
convolve a long state in chunks that stay in cache.

Convolution is cross-correlation with zero ('same') padding and stride 1, as in deep
learning libraries: with ``kh``, ``kw`` odd and ``rh = kh // 2``, ``rw = kw // 2``,

    z[o, y, x] = sum_{c, a, b} K[o, c, a, b] s[c, y + a - rh, x + b - rw],

``s`` taken as 0 outside the image.  :func:`im2col` lays the patches out so that this is
one matrix product ``z = K.reshape(O, C kh kw) @ im2col(s)``; :func:`col2im` is its
adjoint (transpose), which pulls a cotangent of the columns back to the state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["im2col", "col2im"]


def im2col(s, h, w, kh, kw, first, out):
    """Patches of images ``first .. first + m - 1``, one row per (channel, kernel tap).

    ``out[(c kh + a) kw + b, (i H + y) W + x] = s[c, ((first + i) H + y + a - rh) W + x + b
    - rw]``, 0 where the shifted position ``(y + a - rh, x + b - rw)`` is outside the image.

    Parameters
    ----------
    s : ndarray, shape (C, n * H * W)
        State.
    h, w : int
        Image height ``H`` and width ``W``.
    kh, kw : int
        Odd kernel height and width.
    first : int
        First image of the run; ``first + m <= n``.
    out : ndarray, shape (C * kh * kw, m * H * W)
        Columns of the run's ``m`` images, written.
    """
    c = s.shape[0]
    m = out.shape[1] // (h * w)
    img = s.reshape(c, -1, h, w)[:, first:first + m]
    rh, rw = kh // 2, kw // 2
    pad = np.pad(img, ((0, 0), (0, 0), (rh, rh), (rw, rw)))
    ob = out.reshape(c, kh, kw, m, h, w)
    for a in range(kh):
        for b in range(kw):
            ob[:, a, b] = pad[:, :, a:a + h, b:b + w]


def col2im(cols, h, w, kh, kw, first, out):
    """Adjoint of :func:`im2col` on a run: add each column entry back where it came from.

    For the run's images ``i = 0 .. m - 1``, ``out[c, ((first + i) H + y') W + x'] =
    sum_{a, b} cols[(c kh + a) kw + b, (i H + y) W + x]`` over ``y = y' - a + rh``,
    ``x = x' - b + rw`` inside the image; so ``<im2col(s), cols> = <s, col2im(cols)>``.
    Columns of ``out`` outside the run are left untouched.

    Parameters
    ----------
    cols : ndarray, shape (C * kh * kw, m * H * W)
    h, w, kh, kw, first : int
        As for :func:`im2col`.
    out : ndarray, shape (C, n * H * W)
        State; the run's images are overwritten.
    """
    c = out.shape[0]
    m = cols.shape[1] // (h * w)
    rh, rw = kh // 2, kw // 2
    cb = cols.reshape(c, kh, kw, m, h, w)
    pad = np.zeros((c, m, h + 2 * rh, w + 2 * rw), dtype=out.dtype)
    for a in range(kh):
        for b in range(kw):
            pad[:, :, a:a + h, b:b + w] += cb[:, a, b]
    out.reshape(c, -1, h, w)[:, first:first + m] = pad[:, :, rh:rh + h, rw:rw + w]
