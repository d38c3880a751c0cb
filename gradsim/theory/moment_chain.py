"""Moments of a Markov chain of sample means, expanded in the inverse sample size.

Assumption: a chain ``X_1, X_2, ..`` in ``R^d`` whose step is the mean of ``n_l`` i.i.d.
draws given the previous state, with conditional mean ``F_l(X)``, covariance
``W_l(X) / n_l`` and third cumulant ``T_l(X) / n_l^2`` (the cumulants of a mean of
``n`` i.i.d. terms); the conditional fourth cumulant, ``O(1/n^3)``, is dropped.  The
empirical Gram chain of a random network (:mod:`gradsim.theory.finite_width`) is one.

Write ``X_l = K_l + delta_l`` with ``K_(l+1) = F_l(K_l)`` (the infinite-width chain).
The moments of ``delta`` are expanded in ``1/n``: ``E[delta] = mu1 + mu2``,
``Cov(delta) = C1 + C2`` (orders 1 and 2) and the third cumulant ``k3`` (order 2).
With ``J, H, F3, F4`` the derivatives of ``F_l`` at ``K_l`` (tensors, output index
first), ``W, W', W''`` those of ``W_l`` and ``T = T_l(K_l)``, a Taylor expansion of
``F_l(K + delta)`` and the law of total cumulance give (``S(A) = A + A^T``;
``docs/theory.md``, "Finite width to second order")::

    mu1' = J mu1 + 1/2 H[C1]
    C1'  = W / n + J C1 J^T
    mu2' = J mu2 + 1/2 H[C2 + mu1 mu1^T] + 1/6 F3[k3] + 1/2 F3[C1, mu1] + 1/8 F4[C1, C1]
    C2'  = (W'[mu1] + 1/2 W''[C1]) / n + J C2 J^T + S(1/2 J k3 H + J C1 H[mu1])
           + 1/2 tr(H_i C1 H_j C1) + S(1/2 J C1 F3[., C1])
    k3'  = T / n^2 + k3[J, J, J] + P3(J C1 W'^T / n + (J C1)(J C1) H)

where ``P3`` sums the three placements of the singled-out index (the mean's) in the
joint cumulant.  The chain starts at a deterministic ``X_0``: ``K_1 = F_1(X_0)``,
``C1 = W_1(X_0) / n_1``, ``k3 = T_1(X_0) / n_1^2`` and every other moment 0.

Derivatives are central finite differences on a stencil scaled by ``unit`` (a length
over which ``F`` is smooth): first derivatives with the 5-point rule (step
``1e-3 unit``, error ``O(1e-12)``), second with the 4-point rule (``2e-4 unit``), third
and fourth by the polarisation stencils ``sum_s s_1 .. s_p F(x + h sum s_i e_i) /
(2h)^p`` at ``h`` and ``2h`` combined by Richardson extrapolation (``(4 D(h) - D(2h)) /
3``, truncation ``O(h^4)``; ``h = 2e-3 unit`` and ``2.5e-3 unit``).  The sensitivity of
the Gram chain's second-order coefficient to these steps is measured in
``docs/theory.md``, "Finite width to second order".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ChainLayer", "propagate", "derivatives"]

#: Steps of the stencils for derivatives of order 1 .. 4, in units of ``unit``.
STEPS = (1e-3, 2e-4, 2e-3, 2.5e-3)


@dataclass(frozen=True)
class ChainLayer:
    """One step of the chain.

    Attributes
    ----------
    mean : callable
        ``F(X)``: ``(B, d) -> (B, d)``.
    cov : callable
        ``W(X)``: ``(B, d) -> (B, d, d)``, the covariance of one draw.
    width : float
        The sample size ``n``.
    third : callable, optional
        ``T(X)``: ``(d,) -> (d, d, d)``, the third cumulant of one draw (order 2 only).
    unit : callable, optional
        ``X -> float``, the length scale of the stencils at ``X`` (default ``max |X|``).
    linear : tuple, optional
        ``(rows, jac)``: outputs ``rows`` of ``F`` that are exactly linear, with their
        exact Jacobian rows ``jac`` (their higher derivatives are exactly 0).
    """

    mean: Callable
    cov: Callable
    width: float
    third: Callable | None = None
    unit: Callable | None = None
    linear: tuple | None = None


def _points(d, order):
    """Stencil ``(index tuples, offsets (P, d), weights (P,))`` for every mixed partial
    of ``order`` with nondecreasing indices, offsets in units of the step."""
    combos = list(itertools.combinations_with_replacement(range(d), order))
    if order == 1:
        offs = np.array([2.0, 1.0, -1.0, -2.0])
        wts = np.array([-1.0, 8.0, -8.0, 1.0]) / 12.0
        pts = np.zeros((d, 4, d))
        for a in range(d):
            pts[a, :, a] = offs
        return combos, pts, np.broadcast_to(wts, (d, 4))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=order)))
    wts = np.prod(signs, axis=1) / 2.0**order
    pts = np.zeros((len(combos), len(signs), d))
    for c, idx in enumerate(combos):
        for s, a in zip(signs.T, idx):
            pts[c, :, a] += s
    return combos, pts, np.broadcast_to(wts, (len(combos), len(signs)))


def derivatives(func, x, order, unit):
    """Full symmetric derivative tensor of ``func`` at ``x`` of the given ``order``
    (1 .. 4), output indices first: shape ``out_shape + (d,) * order``."""
    x = np.asarray(x, dtype=np.float64)
    d = x.size
    h = STEPS[order - 1] * unit
    combos, pts, wts = _points(d, order)

    def stencil(step):
        vals = func((x + step * pts).reshape(-1, d))
        vals = vals.reshape(pts.shape[:2] + vals.shape[1:])
        return np.einsum("cs,cs...->c...", wts, vals) / step**order

    part = stencil(h)
    if order >= 3:  # Richardson: the O(h^2) truncation cancels
        part = (4.0 * part - stencil(2.0 * h)) / 3.0
    if not np.all(np.isfinite(part)):
        raise ValueError("the chain's map is not finite on the derivative stencil "
                         f"(order {order}, step {h:.3g}): the state is too close to "
                         "the edge of its domain")
    out = np.zeros(part.shape[1:] + (d,) * order)
    for c, idx in enumerate(combos):
        for perm in set(itertools.permutations(idx)):
            out[(Ellipsis,) + perm] = part[c]
    return out


def _sym(a):
    return a + a.T


def _p3(a):
    """``a[i, j, k] + a[j, i, k] + a[k, i, j]``: the three placements of the singled-out
    first index of ``a`` (symmetric in its last two)."""
    return a + a.transpose(1, 0, 2) + a.transpose(1, 2, 0)


def propagate(x0, layers, order=1):
    """The chain's moments at every layer, to ``order`` (1 or 2) in ``1/n``.

    Parameters
    ----------
    x0 : array_like, shape (d,)
        The deterministic start.
    layers : sequence of ChainLayer
    order : {1, 2}

    Returns
    -------
    list of dict
        One per layer: ``K`` (the infinite-width state), ``mu1``, ``C1`` and, at order 2,
        ``mu2``, ``C2``, ``k3``.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    x0 = np.asarray(x0, dtype=np.float64)
    d = x0.size
    if not layers:
        raise ValueError("layers must hold at least one ChainLayer")
    if order == 2 and any(lay.third is None for lay in layers):
        raise ValueError("order 2 needs every layer's third cumulant (ChainLayer.third)")
    first = layers[0]
    n = float(first.width)
    st = {"K": first.mean(x0[None])[0], "mu1": np.zeros(d),
          "C1": first.cov(x0[None])[0] / n}
    if order == 2:
        st.update(mu2=np.zeros(d), C2=np.zeros((d, d)), k3=first.third(x0) / n**2)
    out = [st]
    for lay in layers[1:]:
        out.append(_step(out[-1], lay, order))
    return out


def _step(st, lay, order):
    K, mu1, C1 = st["K"], st["mu1"], st["C1"]
    n = float(lay.width)
    unit = float(lay.unit(K)) if lay.unit is not None else float(np.abs(K).max())
    if not (np.isfinite(unit) and unit > 0):
        raise ValueError(f"the stencil's unit must be a positive finite number, got {unit!r}"
                         " (a state of zeros needs ChainLayer.unit)")
    f = lay.mean(K[None])[0]
    w = lay.cov(K[None])[0]
    J = derivatives(lay.mean, K, 1, unit)
    H = derivatives(lay.mean, K, 2, unit)
    F3 = derivatives(lay.mean, K, 3, unit) if order == 2 else None
    F4 = derivatives(lay.mean, K, 4, unit) if order == 2 else None
    if lay.linear is not None:
        rows, jac = lay.linear
        J[rows] = jac
        H[rows] = 0.0
        if order == 2:
            F3[rows] = 0.0
            F4[rows] = 0.0
    new = {"K": f,
           "mu1": J @ mu1 + 0.5 * np.einsum("iab,ab->i", H, C1),
           "C1": w / n + J @ C1 @ J.T}
    if order == 1:
        return new
    mu2, C2, k3 = st["mu2"], st["C2"], st["k3"]
    dW = derivatives(lay.cov, K, 1, unit)
    d2W = derivatives(lay.cov, K, 2, unit)
    JC = J @ C1
    new["mu2"] = (J @ mu2 + 0.5 * np.einsum("iab,ab->i", H, C2 + np.outer(mu1, mu1))
                  + np.einsum("iabc,abc->i", F3, k3) / 6.0
                  + 0.5 * np.einsum("iabc,ab,c->i", F3, C1, mu1)
                  + np.einsum("iabcd,ab,cd->i", F4, C1, C1) / 8.0)
    new["C2"] = ((np.einsum("ija,a->ij", dW, mu1) + 0.5 * np.einsum("ijab,ab->ij", d2W, C1))
                 / n + J @ C2 @ J.T
                 + _sym(0.5 * np.einsum("ia,abc,jbc->ij", J, k3, H)
                        + np.einsum("ic,jcb,b->ij", JC, H, mu1))
                 + 0.5 * np.einsum("iab,bc,jcd,da->ij", H, C1, H, C1)
                 + _sym(0.5 * np.einsum("ib,jbcd,cd->ij", JC, F3, C1)))
    new["k3"] = (lay.third(K) / n**2 + np.einsum("ia,jb,kc,abc->ijk", J, J, J, k3)
                 + _p3(np.einsum("ia,jka->ijk", JC, dW) / n
                       + np.einsum("ja,kb,iab->ijk", JC, JC, H)))
    return new
