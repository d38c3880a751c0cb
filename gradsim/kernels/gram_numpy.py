"""NumPy twin of :mod:`gradsim.kernels.gram`: the same function, name and outputs.

The state layout is that of :mod:`gradsim.kernels.dense_numpy`: ``(N, m)``, values at the
``P`` grid points then the tangent blocks, ``m = (1 + D) P``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gram_root"]

#: Pivoted Cholesky stops when every remaining pivot of the equilibrated Gram matrix is
#: at most ``GRAM_TOL * m`` (relative to the column's own variance): below it, what is
#: left is rounding of the float64 Gram matrix.
GRAM_TOL = 4.0 * float(np.finfo(np.float64).eps)
#: Pivots whose remaining relative variances differ by at most this fraction of the
#: largest count as tied, and the first column among them is taken: columns that tie in
#: exact arithmetic (a value and its tangent where one unit is active) would otherwise be
#: chosen by rounding, which differs between the kernel and its twin (or between BLAS
#: builds), and a different pivot gives a different (equally valid) root.
GRAM_TIE = 1e-9


def gram_root(g, work, root):
    """A square root ``R`` of a Gram matrix ``G = h^T h``: ``root[:r].T @ root[:r] = G``.

    Pivoted Cholesky (``docs/theory.md``, "Monte Carlo in Gram space") of ``G``
    equilibrated to unit diagonal (columns of zero variance are left out): each step
    pivots on the largest remaining relative variance (the first column among those
    within ``GRAM_TIE`` of it), and the factorisation stops when
    none exceeds ``GRAM_TOL * m``, so a rank-deficient Gram matrix (tangents proportional
    to values, fewer units than columns) needs no special case.

    Parameters
    ----------
    g : ndarray, shape (m, m), float64
        The Gram matrix (symmetric positive semi-definite); overwritten (equilibrated).
    work : ndarray, shape (3, m), float64
        Scratch space.
    root : ndarray, shape (m, m), float64
        Written: rows ``0 .. r - 1`` are the pivot steps, rows from ``r`` zero; the
        columns are those of ``g`` in their own order.

    Returns
    -------
    int
        The numerical rank ``r <= m``.
    """
    m = g.shape[0]
    root[:] = 0.0
    diag = np.diag(g).copy()
    live = diag > 0.0
    scale = np.where(live, np.sqrt(np.where(live, diag, 1.0)), 0.0)
    safe = np.where(live, scale, 1.0)
    g[:] = np.where(np.outer(live, live), g / np.outer(safe, safe), 0.0)
    d = live.astype(np.float64)
    done = ~live
    tol = GRAM_TOL * m
    r = 0
    for k in range(m):
        cand = np.where(done, -np.inf, d)
        best = float(cand.max())
        if not best > tol:
            break
        j = int(np.argmax(cand >= best * (1.0 - GRAM_TIE)))  # ties go to the first column
        done[j] = True
        piv = np.sqrt(d[j])
        root[k, j] = piv
        rest = ~done
        root[k, rest] = (g[j, rest] - root[:k, j] @ root[:k, rest]) / piv
        d[rest] -= root[k, rest] ** 2
        r += 1
    root[:r] *= scale
    work[0] = scale
    return r
