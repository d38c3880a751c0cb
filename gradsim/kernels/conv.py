"""numba kernels of the convolutions: im2col and its adjoint col2im, on a run of images.

Each has a NumPy twin of the same name and signature in :mod:`gradsim.kernels.conv_numpy`,
which documents the maths and the layout.  No validation, allocation or random numbers
here; :mod:`gradsim.conv.nets` does that.  numba options come from :data:`gradsim.kernels.JIT`.
"""

from __future__ import annotations

import numba

from . import JIT

__all__ = ["im2col", "col2im"]


@numba.jit(**JIT)
def im2col(s, h, w, kh, kw, first, out):  # noqa: D103 - see conv_numpy.im2col
    c = s.shape[0]
    hw = h * w
    m = out.shape[1] // hw
    rh, rw = kh // 2, kw // 2
    for ch in range(c):
        for a in range(kh):
            for b in range(kw):
                row = (ch * kh + a) * kw + b
                for i in range(m):
                    src = (first + i) * hw
                    dst = i * hw
                    for y in range(h):
                        ys = y + a - rh
                        inside = 0 <= ys < h
                        for x in range(w):
                            xs = x + b - rw
                            if inside and 0 <= xs < w:
                                out[row, dst + y * w + x] = s[ch, src + ys * w + xs]
                            else:
                                out[row, dst + y * w + x] = 0.0


@numba.jit(**JIT)
def col2im(cols, h, w, kh, kw, first, out):  # noqa: D103 - see conv_numpy.col2im
    c = out.shape[0]
    hw = h * w
    m = cols.shape[1] // hw
    rh, rw = kh // 2, kw // 2
    for ch in range(c):
        for j in range(first * hw, (first + m) * hw):
            out[ch, j] = 0.0
        for a in range(kh):
            for b in range(kw):
                row = (ch * kh + a) * kw + b
                for i in range(m):
                    src = i * hw
                    dst = (first + i) * hw
                    for y in range(h):
                        ys = y + a - rh
                        if ys < 0 or ys >= h:
                            continue
                        for x in range(w):
                            xs = x + b - rw
                            if 0 <= xs < w:
                                out[ch, dst + ys * w + xs] += cols[row, src + y * w + x]
