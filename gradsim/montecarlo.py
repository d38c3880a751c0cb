"""Monte Carlo over many networks: one seeded stream per network, processed in chunks.

Network ``i`` of a run with seed ``s`` is drawn from
``numpy.random.SeedSequence(s, spawn_key=(i,))``, which is the ``i``-th child of
``SeedSequence(s).spawn(...)``.  Each network is computed on its own and
statistics are accumulated network by network in index order, so the chunk size
never changes a result, bit for bit.  When gradients are not kept, memory is
bounded by the chunk, not by the number of networks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .grids import GridSpec
from .nets import GRAD_MODES, input_gradient, input_gradient_by_depth, sample_network
from .parallel import check_workers, ordered_map
from .spec import NetSpec
from .stats import Moments, Stream, acf_rows, power_rows
from .util import check_int, check_memory, get_dtype

__all__ = ["Simulation", "Chunk", "network_rng", "iter_chunks", "simulate", "simulate_depths",
           "network_bytes", "MAX_NETS"]

#: Upper bound on the number of networks in one run.
MAX_NETS = 10**9
#: Default number of networks per chunk.
DEFAULT_CHUNK = 16


def network_rng(seed, index):
    """The generator of network ``index`` in a run seeded with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


@dataclasses.dataclass
class Chunk:
    """Networks ``start .. start + len(grad) - 1`` of a run.

    Attributes
    ----------
    start : int
    grad : ndarray, shape (m, P, d)
    activity : ndarray, shape (m, n_act_layers, 2) or None
        Active and co-active proportions per activation site.
    """

    start: int
    grad: np.ndarray
    activity: np.ndarray | None = None


@dataclasses.dataclass
class Simulation:
    """The result of :func:`simulate`.

    Attributes
    ----------
    spec : NetSpec
    grid : GridSpec
    x : ndarray, shape (P, d)
    seed : int
    nets : int
    mode : str
    dtype : str
    grad : ndarray, shape (nets, P, d) or None
        Kept gradients (``keep=True``).
    activity : ndarray, shape (nets, n_act_layers, 2) or None
    moments : Moments or None
        Streaming moments of the flattened gradient (``moments=True``).
    acf : Stream or None
        Streamed per-network autocorrelations along the grid, lags ``0 .. P - 1``
        (``acf=True``); ``acf.estimate()`` equals :func:`gradsim.stats.autocorrelation`
        of the kept gradients to rounding.
    spectrum : Stream or None
        Streamed per-network periodograms, frequencies ``rfftfreq(P)[1:]``
        (``spectrum=True``).
    """

    spec: NetSpec
    grid: GridSpec
    x: np.ndarray
    seed: int
    nets: int
    mode: str = "forward"
    dtype: str = "float64"
    grad: np.ndarray | None = None
    activity: np.ndarray | None = None
    moments: Moments | None = None
    acf: Stream | None = None
    spectrum: Stream | None = None


def _check_run(spec, grid, nets, seed, chunk, mode, dtype, activity):
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    if not isinstance(grid, GridSpec):
        raise ValueError(f"grid must be a GridSpec, got {type(grid).__name__}")
    if grid.dim != spec.input_dim:
        raise ValueError(f"grid dim {grid.dim} differs from the spec's input_dim {spec.input_dim}")
    nets = check_int("nets", nets, 1, MAX_NETS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    chunk = check_int("chunk", DEFAULT_CHUNK if chunk is None else chunk, 1, MAX_NETS)
    if mode not in GRAD_MODES:
        raise ValueError(f"mode must be one of {', '.join(GRAD_MODES)}; got {mode!r}")
    if spec.batchnorm and grid.points < 2:
        raise ValueError("batch norm needs at least 2 grid points (points >= 2)")
    if activity and grid.points < 2:
        raise ValueError("activity needs at least 2 grid points (points >= 2)")
    return nets, seed, chunk, get_dtype(dtype)


def network_bytes(spec, points, mode, itemsize=8):
    """Rough peak bytes to sample and differentiate one network on ``points`` inputs."""
    n, f, d, L = spec.width, spec.features, spec.input_dim, spec.n_act_layers
    params = spec.family.parameter_count(spec)
    ndir = points * d if spec.batchnorm and spec.bn_grad == "through" and mode == "forward" else d
    cols = points * (1 if mode == "reverse" else 1 + ndir)
    work = 8 * max(n, f) * cols + (3 * L * f * points if mode == "reverse" else 0)
    return (params + work) * itemsize


def _chunk_task(spec, grid, seed, start, stop, mode, backend, dtype, activity):
    """Networks ``start .. stop - 1``: gradients and activity (one process's work)."""
    x = grid.points_array(dtype)
    m = stop - start
    grads = np.empty((m, grid.points, spec.input_dim), dtype=dtype)
    acts = np.empty((m, spec.n_act_layers, 2)) if activity else None
    for k in range(m):
        net = sample_network(spec, network_rng(seed, start + k), dtype)
        out = input_gradient(net, x, mode=mode, backend=backend, activity=activity)
        if activity:
            grads[k], acts[k] = out
        else:
            grads[k] = out
    return grads, acts


def iter_chunks(spec, grid, nets, seed, chunk=None, mode="forward", backend="numba",
                dtype="float64", activity=False, workers=1):
    """Yield :class:`Chunk` objects covering networks ``0 .. nets - 1`` in order.

    Parameters are as for :func:`simulate`.
    """
    nets, seed, chunk, dtype = _check_run(spec, grid, nets, seed, chunk, mode, dtype, activity)
    workers = check_workers(workers)
    itemsize = np.dtype(dtype).itemsize
    check_memory(workers * network_bytes(spec, grid.points, mode, itemsize)
                 + 2 * workers * min(chunk, nets) * grid.points * spec.input_dim * itemsize,
                 "one chunk of networks per worker (width, depth, points, chunk, workers)")
    starts = range(0, nets, chunk)
    tasks = ((spec, grid, seed, a, min(a + chunk, nets), mode, backend, dtype, activity)
             for a in starts)
    for start, (grads, acts) in zip(starts, ordered_map(_chunk_task, tasks, workers)):
        yield Chunk(start, grads, acts)


def simulate(spec, grid=None, nets=100, seed=0, *, chunk=None, mode="forward",
             backend="numba", dtype="float64", keep=True, activity=False, moments=False,
             acf=False, spectrum=False, progress=None, workers=1):
    """Input gradients of ``nets`` independent random networks on one grid.

    Parameters
    ----------
    spec : NetSpec
    grid : GridSpec, optional
        Default: the paper's line, 256 points in [-2, 2] (in ``spec.input_dim``
        dimensions).
    nets : int
        Number of networks, ``1 <= nets <= 10**9``.
    seed : int
        Root seed, ``>= 0``.
    chunk : int, optional
        Networks per chunk (default 16); never changes the numbers.
    mode : {'forward', 'reverse'}
    backend : {'numba', 'numpy'}
    dtype : {'float64', 'float32'}
    keep : bool
        Keep every gradient (memory ``nets * P * d``).
    activity : bool
        Record active and co-active proportions per activation site.
    moments : bool
        Accumulate streaming first and second moments of the flattened gradient (and
        the power sums behind :meth:`Moments.point_moments`).
    acf, spectrum : bool
        Stream the per-network autocorrelation along the grid / periodogram
        (``input_dim = 1``); with ``keep=False`` and these, memory does not grow with
        ``nets``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk.
    workers : int
        Processes computing networks (:mod:`gradsim.parallel`); each network's numbers
        do not depend on it.  Worth it for runs of more than a few seconds: each worker
        pays Python's and numba's start-up.

    Returns
    -------
    Simulation
    """
    grid = GridSpec(dim=spec.input_dim) if grid is None and isinstance(spec, NetSpec) else grid
    nets, seed, chunk, dt = _check_run(spec, grid, nets, seed, chunk, mode, dtype, activity)
    k = grid.points * spec.input_dim
    if (acf or spectrum) and (spec.input_dim != 1 or grid.points < 2):
        raise ValueError("acf and spectrum need input_dim = 1 and points >= 2")
    itemsize = np.dtype(dt).itemsize
    need = (nets * k * itemsize if keep else 0) + (8 * k * k if moments else 0)
    check_memory(need + (nets * spec.n_act_layers * 16 if activity else 0),
                 "the kept results (nets, points, input_dim)")
    grads = np.empty((nets, grid.points, spec.input_dim), dtype=dt) if keep else None
    acts = np.empty((nets, spec.n_act_layers, 2)) if activity else None
    mom = Moments(k, backend) if moments else None
    acf_s = Stream(grid.points) if acf else None
    spec_s = Stream(grid.points // 2) if spectrum else None
    for ch in iter_chunks(spec, grid, nets, seed, chunk, mode, backend, dt, activity, workers):
        stop = ch.start + len(ch.grad)
        if keep:
            grads[ch.start:stop] = ch.grad
        if activity:
            acts[ch.start:stop] = ch.activity
        if mom is not None:
            mom.update(ch.grad.reshape(len(ch.grad), k))
        if acf_s is not None:
            acf_s.update(acf_rows(ch.grad))
        if spec_s is not None:
            spec_s.update(power_rows(ch.grad)[1])
        if progress is not None:
            progress(stop, nets)
    return Simulation(spec, grid, grid.points_array(), seed, nets, mode, np.dtype(dt).name,
                      grads, acts, mom, acf_s, spec_s)


def _depth_task(spec, grid, seed, start, stop, backend, dtype):
    x = grid.points_array(dtype)
    out = np.empty((stop - start, spec.depth, grid.points, spec.input_dim), dtype=dtype)
    for k in range(stop - start):
        net = sample_network(spec, network_rng(seed, start + k), dtype, taps=True)
        out[k] = input_gradient_by_depth(net, x, backend=backend)
    return out


def simulate_depths(spec, grid=None, nets=100, seed=0, *, chunk=None, backend="numba",
                    dtype="float64", progress=None, workers=1):
    """Input gradients at every depth ``1 .. spec.depth`` from ``nets`` networks.

    Each network is sampled with tap readouts (:func:`gradsim.nets.sample_network`,
    ``taps=True``) from its own stream ``network_rng(seed, i)``, and
    :func:`gradsim.nets.input_gradient_by_depth` gives all its prefixes' gradients in
    one forward pass.  ``[:, -1]`` equals :func:`simulate` with the same seed.
    ``workers`` is as for :func:`simulate`.

    Returns
    -------
    ndarray, shape (nets, depth, P, d)
    """
    grid = GridSpec(dim=spec.input_dim) if grid is None and isinstance(spec, NetSpec) else grid
    nets, seed, chunk, dt = _check_run(spec, grid, nets, seed, chunk, "forward", dtype, False)
    workers = check_workers(workers)
    itemsize = np.dtype(dt).itemsize
    check_memory(nets * spec.depth * grid.points * spec.input_dim * itemsize
                 + workers * network_bytes(spec, grid.points, "forward", itemsize),
                 "gradients at every depth (nets, depth, points, input_dim)")
    out = np.empty((nets, spec.depth, grid.points, spec.input_dim), dtype=dt)
    starts = range(0, nets, chunk)
    tasks = ((spec, grid, seed, a, min(a + chunk, nets), backend, dt) for a in starts)
    for a, block in zip(starts, ordered_map(_depth_task, tasks, workers)):
        out[a:a + len(block)] = block
        if progress is not None:
            progress(a + len(block), nets)
    return out
