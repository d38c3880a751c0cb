"""Batch norm at depth: how fast the input gradient grows with depth at initialisation.

A layer ``h <- relu(BN(W h))`` back-propagates ``g_h = W^T (g_zhat / sigma)`` with
``g_zhat = g_out * 1[zhat > 0]``, where ``sigma^2`` is the batch variance of a unit of
``W h``.  In the wide, large-batch limit ``zhat`` is a standard Gaussian, so
``E relu(zhat)^2 = 1/2``, ``(E relu(zhat))^2 = 1 / (2 pi)`` and ``sigma^2 = sigma_w^2
(1/2 - 1/(2 pi))``, while the ReLU keeps half of the squared gradient; each layer then
multiplies the expected squared norm of the gradient by

.. math:: \\lambda = \\frac{\\sigma_w^2 / 2}{\\sigma_w^2 (\\pi - 1) / (2\\pi)}
          = \\frac{\\pi}{\\pi - 1} \\approx 1.467,

whatever the weight variance (the terms through the batch mean and variance are
``O(1/B)``).  This is the gradient explosion of batch-normalised feedforward nets found by
Yang, Pennington, Rao, Sohl-Dickstein and Schoenholz, "A Mean Field Theory of Batch
Normalization", ICLR 2019.  A plain ReLU net with He init keeps the expected squared
norm (``lambda = 1``).
"""

from __future__ import annotations

import math

import numpy as np

from ..util import check_int
from .model import ModelSpec, init_model

__all__ = ["BN_RELU_RATE", "input_gradient_norms", "growth_rate"]

#: Per-layer growth of the expected squared gradient norm of ``relu(BN(W h))`` layers
#: (module docstring).
BN_RELU_RATE = math.pi / (math.pi - 1.0)


def input_gradient_norms(family, depths, width, x, y, seeds, seed=0, backend="numba"):
    """``||dL/dx||^2`` at initialisation on one batch, in training mode.

    Parameters
    ----------
    family : str
        A :data:`gradsim.train.FAMILIES` name.
    depths : sequence of int
    width : int
    x : ndarray, shape (B, input_dim)
        The batch (its statistics are the batch norm's).
    y : ndarray of int, shape (B,)
        Labels, ``0 .. max(y)``; the head has ``max(y) + 1`` classes (at least 2).
    seeds : int
        Networks per depth; network ``s`` at depth ``d`` is drawn from
        ``SeedSequence(seed, spawn_key=(3, d, s))``.
    seed : int
    backend : {'numba', 'numpy'}

    Returns
    -------
    ndarray, shape (len(depths), seeds)
    """
    seeds = check_int("seeds", seeds, 1, 10**6)
    classes = max(2, int(np.max(y)) + 1)
    out = np.empty((len(depths), seeds))
    for i, d in enumerate(depths):
        spec = ModelSpec(family, depth=int(d), width=width, input_dim=x.shape[1],
                         classes=classes)
        for s in range(seeds):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, int(d), s)))
            model = init_model(spec, rng, backend)
            _, _, gx = model.loss_and_grads(x, y, input_gradient=True)
            out[i, s] = float(np.sum(gx * gx))
    return out


def growth_rate(depths, norms):
    """Per-layer growth factor of the squared norms, with its standard error.

    Each network index ``s`` (a column of ``norms``) gives the least-squares slope of
    ``log norms[:, s]`` against depth; the factor is ``exp`` of the slopes' mean and its
    standard error ``exp(mean) * s.e.(slopes)`` (delta method).

    Parameters
    ----------
    depths : sequence of int, length >= 2
    norms : ndarray, shape (len(depths), seeds), positive

    Returns
    -------
    rate, se : float
    """
    d = np.asarray(depths, dtype=float)
    logs = np.log(np.asarray(norms, dtype=float))
    if len(d) < 2 or logs.shape[0] != len(d):
        raise ValueError("growth_rate needs at least two depths, one row of norms each")
    dc = d - d.mean()
    slopes = dc @ (logs - logs.mean(axis=0)) / (dc @ dc)
    m = float(slopes.mean())
    se = float(slopes.std(ddof=1) / math.sqrt(len(slopes))) if len(slopes) > 1 else math.nan
    return math.exp(m), math.exp(m) * se
