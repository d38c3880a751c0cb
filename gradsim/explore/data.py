"""The numbers behind ``gradsim explore``: every array the page embeds, from gradsim itself.

For each family of :data:`FAMILIES` (width ``width``, depths ``1 .. depth``), networks
``0 .. nets - 1`` are drawn from ``network_rng(seed + k, i)`` (``k`` the family's index)
and :func:`gradsim.montecarlo.simulate_depths` gives each one's input gradient
``df/dx`` on the paper's line (``points`` points in ``[-2, 2]``) at every depth, in one
pass with tap readouts.  From them:

* ``grad``: the gradients of the first ``shown`` networks, ``(shown, depth, points)``;
* ``acf``: each shown network's autocorrelation along the line against lag,
  ``r(k) = sum_t (g_t - m)(g_{t+k} - m) / sum_t (g_t - m)^2`` (:func:`gradsim.stats.acf_rows`);
* ``lag1``, ``lag1_se``: the lag-1 autocorrelation by depth, mean and standard error over
  all ``nets`` networks (:func:`gradsim.stats.autocorrelation`);
* ``kinks``: the exact breakpoints of ``f`` (the depth-``d`` tap readout) on the segment
  for the first ``kink_nets`` networks, the same networks (:func:`gradsim.kinks.breakpoints`);
  a family whose nets need more than ``max_knots`` knots records why instead.

Beside them: white and brown noise (:func:`gradsim.stats.white_noise`, ``brown_noise``)
with their autocorrelations, and, for the feedforward net without batch norm (the only
family here the exact theory covers), the exact infinite-width lag-1: the expected
estimator under the Gaussian process whose covariance is
:func:`gradsim.theory.exact.exact_gradient_covariance` (:func:`gradsim.theory.gp.gp_statistics`).
The covariance image ``|(g - m)(g - m)^T| / var(g)`` of a network
(:func:`gradsim.experiments.covariance.images`) is computed by the page from ``grad``.
Everything is stored as float32.  Conventions are in ``docs/explore.md``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..grids import GridSpec
from ..kinks import breakpoints, line_points
from ..montecarlo import network_rng, simulate_depths
from ..nets import sample_network
from ..spec import NetSpec
from ..stats import acf_rows, autocorrelation, brown_noise, white_noise
from ..theory.exact import exact_gradient_covariance
from ..theory.gp import gp_statistics
from ..util import check_int

__all__ = ["FAMILIES", "ExploreSettings", "QUICK", "build_data", "family_spec"]

#: key -> (label, NetSpec keywords).
FAMILIES = {
    "ff": ("feedforward", dict()),
    "ff_bn": ("feedforward + BN", dict(batchnorm=True)),
    "res1": ("resnet + BN, beta = 1", dict(arch="resnet", batchnorm=True)),
    "res01": ("resnet + BN, beta = 0.1", dict(arch="resnet", batchnorm=True, beta=0.1)),
    "ll": ("looks-linear CReLU", dict(activation="crelu", init="looks-linear")),
}
#: The family the exact infinite-width theory covers here (no batch norm; the
#: looks-linear net is exactly linear at init, so its gradient is constant).
THEORY_FAMILY = "ff"


#: Bytes of float32 arrays the page may embed, and of gradients held while building it.
MAX_EMBEDDED = 64 * 2**20
MAX_HELD = 1024 * 2**20
#: The default depths of the theory curve (those up to the settings' ``depth``).
THEORY_DEPTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 50, 70, 100, 140, 200)


@dataclasses.dataclass(frozen=True)
class ExploreSettings:
    """Sizes of the page's data.

    Attributes
    ----------
    depth : int
        Largest depth, ``1 .. 200``.
    width : int
        Hidden width, ``1 .. 1024``.
    nets : int
        Networks per family behind each lag-1 error bar, ``2 .. 1000``.
    shown : int
        Networks whose gradients the page embeds (the network selector), ``1 .. nets``.
    kink_nets : int
        Networks whose breakpoints are computed, ``0 .. shown``.
    points : int
        Grid points on the line, ``16 .. 1024``.
    max_lag : int
        Largest lag of the autocorrelation view, ``1 .. points - 1``.
    gp_nets : int
        Gaussian-process draws behind the theory curve, ``10 .. 100000``.
    theory_depths : tuple of int, optional
        Depths of the theory curve, each ``1 .. depth``; by default
        :data:`THEORY_DEPTHS` up to ``depth``, and ``depth`` itself.
    max_knots : int
        A family whose networks need more knots has no kinks view.

    The embedded arrays are capped at :data:`MAX_EMBEDDED` bytes and the gradients held
    while building at :data:`MAX_HELD`; larger settings raise ValueError.
    seed : int
    """

    depth: int = 50
    width: int = 64
    nets: int = 64
    shown: int = 4
    kink_nets: int = 2
    points: int = 256
    max_lag: int = 40
    gp_nets: int = 400
    theory_depths: tuple | None = None
    max_knots: int = 100_000
    seed: int = 0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "depth", check_int("depth", self.depth, 1, 200))
        set_(self, "width", check_int("width", self.width, 1, 1024))
        set_(self, "nets", check_int("nets", self.nets, 2, 1000))
        set_(self, "shown", check_int("shown", self.shown, 1, self.nets))
        set_(self, "kink_nets", check_int("kink_nets", self.kink_nets, 0, self.shown))
        set_(self, "points", check_int("points", self.points, 16, 1024))
        set_(self, "max_lag", check_int("max_lag", self.max_lag, 1, self.points - 1))
        set_(self, "gp_nets", check_int("gp_nets", self.gp_nets, 10, 100_000))
        set_(self, "max_knots", check_int("max_knots", self.max_knots, 1000, 10**7))
        set_(self, "seed", check_int("seed", self.seed, 0, 2**62))
        embedded = 4 * len(FAMILIES) * self.shown * self.depth * (self.points + self.max_lag + 1)
        if embedded > MAX_EMBEDDED:
            raise ValueError(f"shown * depth * (points + max_lag + 1) float32 numbers per "
                             f"family would embed {embedded / 2**20:.0f} MiB; "
                             f"the page holds at most {MAX_EMBEDDED // 2**20} MiB (fewer "
                             "shown networks, depths or points)")
        held = 8 * self.nets * self.depth * self.points
        if held > MAX_HELD:
            raise ValueError(f"nets * depth * points = {held // 8:,} gradients would hold "
                             f"{held / 2**20:.0f} MiB at build time; at most "
                             f"{MAX_HELD // 2**20} MiB (fewer nets, depths or points)")
        if self.theory_depths is None:
            depths = tuple(d for d in THEORY_DEPTHS if d < self.depth) + (self.depth,)
        else:
            depths = tuple(self.theory_depths)
            if not depths:
                raise ValueError("theory_depths must hold at least one depth")
            depths = tuple(check_int("theory_depths", d, 1, self.depth) for d in depths)
        set_(self, "theory_depths", tuple(sorted(set(depths))))

    def to_dict(self):
        """Plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


#: The ``--quick`` size: seconds to build.
QUICK = ExploreSettings(depth=6, width=16, nets=4, shown=2, kink_nets=1, points=64,
                        max_lag=16, gp_nets=50)


def family_spec(key, settings):
    """The NetSpec of family ``key`` at the settings' largest depth and width."""
    return NetSpec(depth=settings.depth, width=settings.width, **FAMILIES[key][1])


def _kinks(spec, seed, settings, grid):
    """Breakpoint positions per (network, depth) of the first ``kink_nets`` networks of
    the stream ``seed``, or the reason there are none."""
    x0, u = line_points(spec)
    out = []
    for i in range(settings.kink_nets):
        net = sample_network(spec, network_rng(seed, i), taps=True)
        try:
            k = breakpoints(net, -2.0, 2.0, grid=grid, x0=x0, direction=u,
                            max_knots=settings.max_knots)
        except ValueError as err:
            if "max_knots" not in str(err):
                raise
            return None, (f"more than {settings.max_knots:,} knots on the segment "
                          f"(network {i + 1}); not computed")
        out.append([np.asarray(b, np.float32) for b in k.tap_breakpoints])
    return out, None


def _lag1(g):
    """``(mean, se)`` of the lag-1 autocorrelation over networks; NaN where fewer than two
    networks have a non-constant gradient (the looks-linear net at init: f is linear)."""
    if np.isfinite(acf_rows(g, 1)[:, 1]).sum() < 2:
        return np.nan, np.nan
    est = autocorrelation(g, 1)
    return est.value[1], est.se[1]


def build_data(settings=ExploreSettings(), progress=None, workers=1):
    """Every number the page shows.

    Parameters
    ----------
    settings : ExploreSettings
    progress : callable, optional
        ``progress(message)`` before each step.
    workers : int
        Processes for the networks (:func:`gradsim.montecarlo.simulate_depths`); the
        numbers do not depend on it.

    Returns
    -------
    dict
        ``settings``, ``families`` (key -> label), ``t`` (the grid), ``depths``, and per
        family ``grad``, ``acf``, ``lag1``, ``lag1_se``, ``kinks`` (list over networks of
        lists over depths of breakpoint arrays, or None) and ``kinks_note``; ``noise``
        (``white``, ``brown`` signals and their ``acf`` and lag-1); ``theory``
        (``depths``, ``lag1``, ``lag1_se``, ``family``, ``assumption``); ``seconds``.
    """
    if not isinstance(settings, ExploreSettings):
        raise ValueError(f"settings must be ExploreSettings, got {type(settings).__name__}")
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    s = settings
    grid = GridSpec(points=s.points)
    t = grid.points_array()[:, 0]
    fams = {}
    for k, key in enumerate(FAMILIES):
        say(f"explore: {FAMILIES[key][0]}: {s.nets} networks, depths 1-{s.depth}")
        spec = family_spec(key, s)
        # (nets, depth, P)
        g = simulate_depths(spec, grid, s.nets, s.seed + k, workers=workers)[..., 0]
        lag = [_lag1(g[:, d]) for d in range(s.depth)]
        acf = np.stack([acf_rows(g[:s.shown, d], s.max_lag) for d in range(s.depth)], axis=1)
        kinks, note = _kinks(spec, s.seed + k, s, t) if s.kink_nets else (None, "not computed")
        fams[key] = {"grad": g[:s.shown].astype(np.float32),
                     "acf": acf.astype(np.float32),
                     "lag1": np.array([e[0] for e in lag], np.float32),
                     "lag1_se": np.array([e[1] for e in lag], np.float32),
                     "kinks": kinks, "kinks_note": note}
    say("explore: white and brown noise")
    noise = {}
    for name, fn in (("white", white_noise), ("brown", brown_noise)):
        x = fn(s.nets, s.points, seed=s.seed)
        est = autocorrelation(x, s.max_lag)
        noise[name] = {"signal": x[0].astype(np.float32), "acf": est.value.astype(np.float32),
                       "lag1": float(est.value[1]), "lag1_se": float(est.se[1])}
    say(f"explore: exact infinite-width theory at {len(s.theory_depths)} depths")
    th, th_se = [], []
    for d in s.theory_depths:
        cov = exact_gradient_covariance(NetSpec(depth=d, width=s.width), grid.points_array())
        st = gp_statistics(cov[..., 0, 0], nets=s.gp_nets, seed=s.seed, max_lag=1)
        th.append(st["lag1"].value)
        th_se.append(st["lag1"].se)
    theory = {"depths": np.array(s.theory_depths), "lag1": np.array(th, np.float32),
              "lag1_se": np.array(th_se, np.float32), "family": THEORY_FAMILY,
              "assumption": "exact infinite width, no batch norm: the expected lag-1 of "
                            f"{s.gp_nets} Gaussian-process draws with the exact covariance"}
    return {"settings": s.to_dict(), "families": {k: v[0] for k, v in FAMILIES.items()},
            "t": t.astype(np.float32), "depths": np.arange(1, s.depth + 1), **fams,
            "noise": noise, "theory": theory, "seconds": time.perf_counter() - t0}
