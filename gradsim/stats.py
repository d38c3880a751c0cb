"""Estimators over networks, accumulated in a stream.

:class:`Moments` keeps running sums of ``g`` and ``g g^T`` over networks, added one
network at a time in index order (so chunking never changes them), using the
kernel ``accumulate_moments``.  Memory is ``K^2`` for ``K`` gradient entries,
whatever the number of networks.
"""

from __future__ import annotations

import numpy as np

from ._util import get_backend

__all__ = ["Moments"]


class Moments:
    """Streaming first and second moments of a ``K``-vector over networks.

    Parameters
    ----------
    size : int
        ``K``, the length of each network's (flattened) gradient.
    backend : {'numba', 'numpy'}
        Kernel used to add networks.

    Attributes
    ----------
    count : int
        Networks added.
    total : ndarray, shape (K,)
        ``sum_n g_n``.
    outer : ndarray, shape (K, K)
        ``sum_n g_n g_n^T``.
    """

    def __init__(self, size, backend="numba"):
        self.count = 0
        self.total = np.zeros(size)
        self.outer = np.zeros((size, size))
        self._kern = get_backend(backend)

    def update(self, g):
        """Add networks, shape ``(m, K)``, in row order."""
        g = np.ascontiguousarray(g, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.total.size:
            raise ValueError(f"g must have shape (m, {self.total.size}), got {g.shape}")
        self._kern.accumulate_moments(g, self.total, self.outer)
        self.count += g.shape[0]
        return self

    @property
    def mean(self):
        """``E[g]``, shape ``(K,)``."""
        return self.total / self.count

    @property
    def second_moment(self):
        """``E[g g^T]``, shape ``(K, K)``: the paper's covariance ``C(i, j)``."""
        return self.outer / self.count

    @property
    def covariance(self):
        """Unbiased centred covariance over networks, shape ``(K, K)`` (needs 2 networks)."""
        if self.count < 2:
            raise ValueError("covariance needs at least 2 networks")
        m = self.mean
        return (self.outer - self.count * np.multiply.outer(m, m)) / (self.count - 1)

    @property
    def correlation(self):
        """``C(i, j) / sqrt(C(i) C(j))`` from the second moment, shape ``(K, K)``."""
        c = self.second_moment
        d = np.sqrt(np.diag(c))
        with np.errstate(invalid="ignore", divide="ignore"):
            return c / np.multiply.outer(d, d)
