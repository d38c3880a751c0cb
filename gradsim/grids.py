"""Input grids: the paper's 1-D line, a Gaussian batch in d dimensions, and a ring.

A :class:`GridSpec` is data (frozen, JSON-round-trippable); :meth:`GridSpec.points_array`
makes the inputs, always of shape ``(points, dim)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .util import JsonData, check_choice, check_int, check_real

__all__ = ["GridSpec", "GRIDS", "make_grid"]

GRIDS = ("line", "gaussian", "ring")


@dataclasses.dataclass(frozen=True)
class GridSpec(JsonData):
    """A batch of network inputs.

    Parameters
    ----------
    kind : {'line', 'gaussian', 'ring'}
        ``line``: ``points`` equally spaced values of ``t`` in ``[lo, hi]``
        (endpoints included), input ``x = t * v`` with ``v = (1, ..., 1)/sqrt(dim)``
        (for ``dim = 1`` simply ``x = t``).  ``gaussian``: i.i.d. standard normal
        inputs in ``dim`` dimensions drawn from ``seed``.  ``ring``: ``points``
        equally spaced angles in ``[0, 2 pi)`` on the circle of radius ``radius``
        in the plane of the first two coordinates (``dim >= 2``).
    points : int
        Number of inputs, ``>= 1``; default 256.
    lo, hi : float
        Range of the line, finite with ``lo < hi``; default ``[-2, 2]``.
    dim : int
        Input dimension ``>= 1``.
    seed : int
        Seed of the Gaussian batch (``>= 0``); the same for every network.
    radius : float
        Radius of the ring, ``> 0``; default 1.
    """

    kind: str = "line"
    points: int = 256
    lo: float = -2.0
    hi: float = 2.0
    dim: int = 1
    seed: int = 0
    radius: float = 1.0
    _label = "grid"

    def __post_init__(self):
        put = object.__setattr__
        put(self, "kind", check_choice("grid", self.kind, GRIDS))
        put(self, "points", check_int("points", self.points))
        put(self, "dim", check_int("input_dim", self.dim))
        put(self, "seed", check_int("grid seed", self.seed, 0, 2**63 - 1))
        put(self, "lo", check_real("range lo", self.lo, -1e12, 1e12))
        put(self, "hi", check_real("range hi", self.hi, -1e12, 1e12))
        put(self, "radius", check_real("radius", self.radius, 0.0, 1e12, lo_open=True))
        if not self.lo < self.hi:
            raise ValueError(f"range must have lo < hi, got [{self.lo}, {self.hi}]")
        if self.kind == "ring" and self.dim < 2:
            raise ValueError("grid='ring' needs input_dim >= 2")

    def points_array(self, dtype=np.float64):
        """The inputs, shape ``(points, dim)``."""
        n, d = self.points, self.dim
        if self.kind == "line":
            t = np.linspace(self.lo, self.hi, n)
            x = np.outer(t, np.full(d, 1.0 / np.sqrt(d)))
        elif self.kind == "gaussian":
            rng = np.random.default_rng(np.random.SeedSequence(self.seed))
            x = rng.standard_normal((n, d))
        else:
            angle = 2.0 * np.pi * np.arange(n) / n
            x = np.zeros((n, d))
            x[:, 0] = self.radius * np.cos(angle)
            x[:, 1] = self.radius * np.sin(angle)
        return np.ascontiguousarray(x, dtype=dtype)


def make_grid(kind="line", points=256, lo=-2.0, hi=2.0, dim=1, seed=0, radius=1.0):
    """Inputs of a :class:`GridSpec` built from the arguments, shape ``(points, dim)``."""
    return GridSpec(kind, points, lo, hi, dim, seed, radius).points_array()
