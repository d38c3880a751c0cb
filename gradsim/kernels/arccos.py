"""The arc-cosine kernel map of the ab-ReLU, the packed layout of a pair's kernel state
and the op codes of a kernel program: plain Python (no numba), shared by the numba kernel
(:mod:`.nngp`, which compiles :func:`ab_map` and :func:`pair_layout`), its NumPy twin
(:mod:`.nngp_numpy`, which maps :func:`ab_map` over arrays) and the theory
(:mod:`gradsim.theory`), so that each closed form exists once.
"""

from __future__ import annotations

import collections
import math

import numpy as np

__all__ = ["ab_map", "ab_map_theta", "acos", "ab_map_array", "PairLayout", "pair_layout",
           "STEP", "SAVE", "MIX", "SCALE", "OPS"]


def ab_map(rho, a, b):
    r"""The arc-cosine kernel map of the ab-ReLU and its first two derivatives.

    For ``phi(z) = a z`` (``z > 0``), ``b z`` (``z <= 0``) and ``u, v`` standard Gaussian
    with correlation ``rho`` (clipped to ``[-1, 1]``), ``theta = arccos rho``:

    .. math::

        g(\rho) = E[\phi(u)\phi(v)] = ab\rho + (a - b)^2
                  \frac{\sqrt{1 - \rho^2} + (\pi - \theta)\rho}{2\pi},\qquad
        g'(\rho) = E[\phi'(u)\phi'(v)] = ab + (a - b)^2 \frac{\pi - \theta}{2\pi},\qquad
        g''(\rho) = \frac{(a - b)^2}{2\pi\sqrt{1 - \rho^2}}

    (``phi(z) = b z + (a - b) relu(z)``, the ReLU arc-cosine kernel of Cho and Saul 2009,
    and Price's theorem for the derivatives).  ``g''`` is returned as 0 where
    ``rho = +-1`` (see :mod:`gradsim.theory.exact` for why that is right on the diagonal),
    and ``g(1)`` as ``(a^2 + b^2) / 2`` exactly, the expression the diagonal itself uses,
    so that a pair at one input keeps ``rho = 1`` to the last bit.

    Parameters
    ----------
    rho : float
    a, b : float
        Slopes on the positive and non-positive side (ReLU: 1, 0).

    Returns
    -------
    g, g1, g2 : float
        ``g(rho)``, ``g'(rho)``, ``g''(rho)``.

    References
    ----------
    Cho and Saul, "Kernel methods for deep learning", NeurIPS 2009.
    """
    rho = min(max(rho, -1.0), 1.0)
    return ab_map_theta(rho, acos(rho), a, b)


def ab_map_theta(rho, theta, a, b):
    """:func:`ab_map` at ``rho`` in ``[-1, 1]`` given ``theta = arccos rho``
    (:func:`acos`): the numba kernel computes the angles of many pairs in one
    vectorised loop first."""
    m = (a - b) ** 2
    root = math.sqrt(max(1.0 - rho * rho, 0.0))
    t = math.pi - theta
    g = a * b * rho + m * (root + t * rho) / (2 * math.pi)
    g1 = a * b + m * t / (2 * math.pi)
    g2 = m / (2 * math.pi * root) if root > 0 else 0.0
    if rho == 1.0:
        g = (a * a + b * b) / 2
    return g, g1, g2


# the arc-cosine of fdlibm (e_acos.c, Sun Microsystems 1993, freely distributable):
# acos(x) = pi/2 - asin(x) for |x| < 1/2 and 2 asin(sqrt((1 - |x|) / 2)) beyond, with one
# rational approximation of asin(sqrt(z)) / sqrt(z) - 1 on z in [0, 1/4]
_PIO2_HI, _PIO2_LO, _PI = 1.57079632679489655800e+00, 6.12323399573676603587e-17, math.pi
_PS = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)
_QS = (-2.40339491173441421878e+00, 2.02094576023350569471e+00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02)


def acos(x):
    """``arccos x`` for ``x`` in ``[-1, 1]``, within one unit in the last place, with no
    branch: every case is computed and one selected, so that a loop of it vectorises.

    fdlibm's algorithm (``e_acos.c``): ``acos x = pi/2 - asin x`` for ``|x| < 1/2``,
    ``2 asin(s)`` and ``pi - 2 asin(s)`` with ``s = sqrt((1 - |x|) / 2)`` beyond, and
    ``asin(y) = y + y z R(z)``, ``z = y^2``, ``R`` a rational function of degree (5, 4).
    ``acos(1) = 0`` and ``acos(-1) = pi`` exactly.  Tested against ``math.acos`` and
    40-digit references over ``[-1, 1]`` (at most 1 ulp apart).
    """
    p0, p1, p2, p3, p4, p5 = _PS
    q1, q2, q3, q4 = _QS
    ax = abs(x)
    small = ax < 0.5
    z = x * x if small else (1.0 - ax) * 0.5
    r = (z * (p0 + z * (p1 + z * (p2 + z * (p3 + z * (p4 + z * p5))))))
    r = r / (1.0 + z * (q1 + z * (q2 + z * (q3 + z * q4))))
    s = math.sqrt(z)
    near = _PIO2_HI - (x - (_PIO2_LO - x * r))
    pos = 2.0 * (s + s * r)
    neg = _PI - 2.0 * (s + (r * s - _PIO2_LO))
    far = pos if x > 0.0 else neg
    return near if small else far


#: :func:`ab_map` elementwise over arrays (``rho`` broadcast with ``a`` and ``b``): the
#: same scalar arithmetic, entry by entry.
ab_map_array = np.vectorize(ab_map, otypes=[float, float, float])


#: Offsets of one pair's packed kernel state (see :func:`pair_layout`).
PairLayout = collections.namedtuple("PairLayout", "A B C ax by cx cy cxy size")


def pair_layout(d):
    """Where each quantity of a pair ``(x, y)``'s kernel state sits, for input dimension ``d``.

    The state is ``[K(x,x), K(y,y), K(x,y), dK(x,x)/dx (d), dK(y,y)/dy (d), dK(x,y)/dx
    (d), dK(x,y)/dy (d), d^2 K(x,y)/dx dy (d x d, row-major)]``: ``A``, ``B``, ``C`` are the
    indices of the three values, ``ax`` .. ``cxy`` the first index of each block, ``size``
    the length ``3 + 4 d + d^2``.
    """
    return PairLayout(0, 1, 2, 3, 3 + d, 3 + 2 * d, 3 + 3 * d, 3 + 4 * d, 3 + 4 * d + d * d)


#: Op codes of a kernel program (:class:`gradsim.families.hooks.KernelOp`): ``STEP``
#: applies the activation and a weight, ``K <- x1 E[phi phi] + x2``; ``SAVE`` keeps the
#: state as the skip; ``MIX`` sets ``K <- x1 (skip + x2 K)``; ``SCALE`` sets ``K <- x1 K``.
STEP, SAVE, MIX, SCALE = 0, 1, 2, 3
OPS = {"step": STEP, "save": SAVE, "mix": MIX, "scale": SCALE}
