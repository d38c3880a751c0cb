"""NumPy twin of :mod:`gradsim.kernels.gram`: the same function, name and outputs.

The state layout is that of :mod:`gradsim.kernels.dense_numpy`: ``(N, m)``, values at the
``P`` grid points then the tangent blocks, ``m = (1 + D) P``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gram_root", "gram_stack"]

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
#: A Gram matrix whose largest diagonal entry lies strictly between these (or is 0) is
#: formed unscaled; :func:`gradsim.families.layers.gram_product` rescales the state
#: outside it, and :func:`gram_stack` hands such a network back.
GRAM_LOW, GRAM_HIGH = 2.0**-900, 2.0**900


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


def gram_stack(ws, bs, s, p, slope_pos, slope_neg, us, states, gwork, out):
    """A plain ab-ReLU net drawn in Gram space, hidden layers and readouts in one call.

    From the state ``h_1`` after the first activation, for ``l = 1 .. L``: the readout
    ``u_l . h_l`` as :func:`gradsim.families.layers.gram_product` forms it (``u_l R_l``
    with ``R_l`` the :func:`gram_root` of ``G_l = h_l^T h_l``, when the features outnumber
    the readout's columns), then ``h_{l+1} = act(W_l R_l + b_l)``, one root per layer
    serving both (``docs/theory.md``, "Monte Carlo in Gram space").  Where a layer's
    weight has as many columns as the width, it is the explicit weight: ``W_l h_l``.

    Parameters
    ----------
    ws : ndarray, shape (L - 1, N, k), float64
        The hidden layers' Gram-space weights (``k = min(N, m)``).
    bs : ndarray, shape (L - 1, N)
        Their biases (zeros for none), added to the values.
    s : ndarray, shape (N, m)
        The state after the first activation; not modified.
    p : int
        Grid points (the value columns).
    slope_pos, slope_neg : float
        The ab-ReLU's slopes.
    us : ndarray, shape (R, k_u)
        Readouts of the last ``R`` depths (``R = L``: every depth, with the taps; ``R =
        1``: the output only).
    states : ndarray, shape (2, N, m)
        Scratch space.
    gwork : ndarray, shape (2 m + 3, m), float64
        Scratch space.
    out : ndarray, shape (R, m)
        Written: ``out[r]`` is the readout's state (values and tangents) at depth
        ``L - R + 1 + r``.

    Returns
    -------
    int
        -1; or, where a Gram matrix falls outside ``(GRAM_LOW, GRAM_HIGH)`` (and is not
        0), the 0-based depth where it does, ``out`` then incomplete: the caller runs the
        network layer by layer, which rescales.
    """
    layers, n, k = ws.shape
    m = s.shape[1]
    depth = layers + 1
    first = depth - us.shape[0]
    h = s.astype(np.float64)
    for lay in range(depth):
        kk = us.shape[1] if lay == layers else k
        use_root = n > kk
        if use_root:
            g = h.T @ h
            top = float(g.diagonal().max())
            if not (GRAM_LOW < top < GRAM_HIGH or top == 0.0):
                return lay
            root = np.empty((m, m))
            gram_root(g, np.empty((3, m)), root)
            src = root
        else:
            src = h
        if lay >= first:
            out[lay - first] = us[lay - first] @ src[:kk]
        if lay == layers:
            break
        z = ws[lay] @ src[:k] if use_root else ws[lay] @ h
        z[:, :p] += bs[lay][:, None]
        slope = np.where(z[:, :p] > 0, slope_pos, slope_neg)
        h = (z.reshape(n, -1, p) * slope[:, None, :]).reshape(n, m)
    return -1
