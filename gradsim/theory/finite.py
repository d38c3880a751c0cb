"""Finite width: the exact kurtosis identity of bias-free He ReLU feedforward nets."""

from __future__ import annotations

import numpy as np

from .base import covers as _covers
from .base import range_error, require

__all__ = ["kurtosis_identity", "covers"]


def covers(spec):
    """None if the kurtosis identity covers ``spec``, else why not."""
    return _covers(spec, "kurtosis")


def kurtosis_identity(spec):
    """Exact kurtosis of df/dx at any input for bias-free He ReLU feedforward nets.

    ``E[g^4] / E[g^2]^2 = 3 prod_{l=1}^{L} (1 + 5 / n_l)`` for Gaussian weights and
    readout, any widths ``n_l`` (here all ``N``), any depth.  Depth 1: given the first
    layer, ``g`` is Gaussian with variance ``S = (1/n) sum_i w_i^2 1[w_i x > 0]``, and
    ``E[S^2] = 1 + 5/n``; each further layer multiplies ``E[S^2]`` by the same factor.

    Returns
    -------
    ndarray, shape (L,)
        The kurtosis at depths ``1 .. L``.

    Raises
    ------
    ValueError
        Where the kurtosis overflows float64 (``6^L`` at width 1, past range at ``L =
        396``); the message names the depth.
    """
    require(spec, "kurtosis")
    with np.errstate(over="ignore"):
        k = 3.0 * np.cumprod(np.full(spec.depth, 1.0 + 5.0 / spec.width))
    if not np.isfinite(k[-1]):
        raise range_error("kurtosis identity", "the kurtosis overflows float64",
                          int(np.argmax(~np.isfinite(k))) + 1, spec, width=True)
    return k
