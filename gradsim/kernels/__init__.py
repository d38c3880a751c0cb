"""Kernels: small private loops on preallocated arrays, each numba module beside its twin.

=====================  ==========================  ======================================
numba                  NumPy twin                  what
=====================  ==========================  ======================================
:mod:`.dense`          :mod:`.dense_numpy`         activations, batch norm, activity,
                                                   moments, the fused small-width stack
:mod:`.highway`        :mod:`.highway_numpy`       the highway gate combination
:mod:`.conv`           :mod:`.conv_numpy`          im2col and its adjoint col2im
:mod:`.nngp`           :mod:`.nngp_numpy`          the exact infinite-width kernel program
:mod:`.gram`           :mod:`.gram_numpy`          a square root of a layer input's Gram
                                                   matrix (the Gram-space sampler)
:mod:`.pwl`            :mod:`.pwl_numpy`           piecewise-linear states along a segment
                                                   (exact kinks)
=====================  ==========================  ======================================

and :mod:`.arccos`, the one scalar arc-cosine map of the ab-ReLU that the theory calls,
the numba kernels compile and the twins map over arrays.  A twin has the same function
names, signatures and outputs as its numba module (tests assert that they agree);
``backend('numba')`` and ``backend('numpy')`` collect every kernel of one kind into one
namespace.  No validation, allocation or random numbers happen inside a kernel: the
callers validate, make arrays contiguous and allocate outputs.  All numba options are
:data:`JIT` and :data:`PJIT`; numba itself is imported only when the numba backend is
first used, so commands that need no kernels start quickly.
"""

from __future__ import annotations

import functools
import importlib
import types

__all__ = ["JIT", "PJIT", "BACKENDS", "PAIRS", "backend"]

#: The one place numba options are set: compiled once and cached, GIL released,
#: no fast-math (results must agree with the NumPy twins to rounding).
JIT = dict(nopython=True, nogil=True, cache=True, fastmath=False)
#: As :data:`JIT`, with ``prange`` loops spread over threads; each loop writes only to
#: its own output slots, so results do not depend on the thread count.
PJIT = dict(JIT, parallel=True)

#: The kernel modules, each ``(numba module, NumPy twin)``.
PAIRS = (("dense", "dense_numpy"), ("highway", "highway_numpy"), ("conv", "conv_numpy"),
         ("nngp", "nngp_numpy"), ("gram", "gram_numpy"), ("pwl", "pwl_numpy"))
#: Backend name -> index of its module in each pair of :data:`PAIRS`.
BACKENDS = {"numba": 0, "numpy": 1}


@functools.cache
def backend(name):
    """Every kernel of backend ``name`` (``'numba'`` or ``'numpy'``), as one namespace.

    Raises
    ------
    ValueError
        For an unknown backend name.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    funcs = {}
    for pair in PAIRS:
        mod = importlib.import_module(f"{__name__}.{pair[BACKENDS[name]]}")
        funcs |= {fn: getattr(mod, fn) for fn in mod.__all__}
    return types.SimpleNamespace(name=name, **funcs)
