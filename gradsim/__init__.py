"""gradsim: gradient statistics of random ReLU networks, beside closed-form theory.

The flow is one way: a :class:`NetSpec` and a :class:`GridSpec` -> sampled networks
(:func:`sample_network`) -> input gradients on the grid (:func:`input_gradient`) ->
Monte Carlo over many networks (:func:`simulate`) -> files (:func:`save`, :func:`load`)
-> estimates with standard errors -> comparison with theory computed from the same spec
(:mod:`gradsim.theory`, :mod:`gradsim.compare`).  ``docs/architecture.md`` maps the
package.
"""

from ._moved import install as _install_moved
from ._version import __version__
from .grids import GridSpec, make_grid
from .io import load, save
from .montecarlo import Simulation, iter_chunks, network_rng, simulate
from .nets import Network, forward, input_gradient, sample_network
from .spec import NetSpec
from .stats import Moments

_install_moved()

__all__ = [
    "__version__", "NetSpec", "GridSpec", "make_grid", "Network", "sample_network",
    "forward", "input_gradient", "Simulation", "simulate", "iter_chunks", "network_rng",
    "Moments", "save", "load",
]
