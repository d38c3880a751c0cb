"""gradsim: gradient statistics of random ReLU networks, beside closed-form theory.

The flow is one way: a :class:`NetSpec` and a :class:`GridSpec` -> sampled networks
(:func:`sample_network`) -> input gradients on the grid (:func:`input_gradient`) ->
Monte Carlo over many networks (:func:`simulate`) -> files (:func:`save`, :func:`load`).
"""

__version__ = "0.1.0"

from .grids import GridSpec, make_grid  # noqa: E402
from .io import load, save  # noqa: E402
from .montecarlo import Simulation, iter_chunks, network_rng, simulate  # noqa: E402
from .nets import Network, forward, input_gradient, sample_network  # noqa: E402
from .spec import NetSpec  # noqa: E402
from .stats import Moments  # noqa: E402

__all__ = [
    "__version__", "NetSpec", "GridSpec", "make_grid", "Network", "sample_network",
    "forward", "input_gradient", "Simulation", "simulate", "iter_chunks", "network_rng",
    "Moments", "save", "load",
]
