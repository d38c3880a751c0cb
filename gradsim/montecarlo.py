"""Monte Carlo over many networks: one seeded stream per network, processed in chunks.

Network ``i`` of a run with seed ``s`` is drawn from
``numpy.random.SeedSequence(s, spawn_key=(i,))``, which is the ``i``-th child of
``SeedSequence(s).spawn(...)``.  Each network is computed on its own and
statistics are accumulated network by network in index order, so the chunk size
never changes a result, bit for bit.  When gradients are not kept, memory is
bounded by the chunk, not by the number of networks.

Gradients that leave floating-point range are not results: every chunk is checked
(one ``isfinite`` over its gradients), and a chunk holding a non-finite gradient raises
a ``ValueError`` naming the spec's parameters and the depth where the range runs out,
found by running the offending network again depth by depth (``docs/theory.md``,
"Floating-point range").
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from . import work
from .families.sampling import resolve_sampler, state_columns
from .grids import GridSpec
from .kernels import backend as get_backend
from .nets import (
    GRAD_MODES,
    input_gradient,
    input_gradient_by_depth,
    sample_network,
    stacked_gram_gradients,
)
from .parallel import check_workers, ordered_map
from .spec import NetSpec
from .stats import Moments, Stream, acf_rows, power_rows
from .theory.base import LOG_MAX, range_error
from .util import check_int, check_memory, get_dtype
from .work import network_gaussians

__all__ = ["Simulation", "Chunk", "network_rng", "iter_chunks", "simulate", "simulate_depths",
           "network_bytes", "default_chunk", "MAX_NETS"]

#: Upper bound on the number of networks in one run.
MAX_NETS = 10**9
#: Networks per chunk by default in one process (:func:`default_chunk`).
DEFAULT_CHUNK = 16
#: Chunks per worker the default chunk size aims at, so that workers finish together:
#: the pool hands out chunks as workers free up, and the last chunk of a run can leave
#: the other workers idle for at most its own time.
CHUNKS_PER_WORKER = 8
#: With workers, a default chunk holds at most this many networks and this many bytes
#: of results: large enough that a chunk of small networks (tens of microseconds each)
#: outweighs the pool's cost of a task (about a millisecond), small enough to bound
#: memory.
MAX_CHUNK, CHUNK_BYTES = 2048, 2**24


def default_chunk(nets, workers=1, result_bytes=0):
    """Networks per chunk when none is given (never changes a number).

    ``DEFAULT_CHUNK`` in one process; with ``workers`` processes about
    ``CHUNKS_PER_WORKER`` chunks per worker, ``ceil(nets / (8 workers))``, at most
    ``MAX_CHUNK`` networks or ``CHUNK_BYTES`` of results (``result_bytes`` per network)
    and never held below ``DEFAULT_CHUNK`` by those caps.
    """
    if workers <= 1:
        return DEFAULT_CHUNK
    cap = max(DEFAULT_CHUNK, min(MAX_CHUNK, CHUNK_BYTES // max(1, result_bytes)))
    return max(1, min(cap, -(-nets // (CHUNKS_PER_WORKER * workers))))


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
    sampler : str
        The sampler the networks were drawn with, ``'explicit'`` or ``'gram'``
        (``'auto'`` resolved).
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
    sampler: str = "explicit"


def _blas_threads(sampler, workers):
    """One BLAS thread for Gram-space networks computed in this process: their products
    are tall and skinny (``n x k`` by ``k x m``), and a second thread made them an order of
    magnitude slower (measured, ``docs/performance.md``); worker processes use one each."""
    if sampler != "gram" or workers != 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - only when needed

    return threadpool_limits(limits=1, user_api="blas")


def _check_run(spec, grid, nets, seed, chunk, mode, dtype, activity, sampler="explicit",
               workers=1, depths=False):
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    if not isinstance(grid, GridSpec):
        raise ValueError(f"grid must be a GridSpec, got {type(grid).__name__}")
    if grid.dim != spec.input_dim:
        raise ValueError(f"grid dim {grid.dim} differs from the spec's input_dim {spec.input_dim}")
    nets = check_int("nets", nets, 1, MAX_NETS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    workers = check_workers(workers)
    if chunk is None:
        per_net = (grid.points * spec.input_dim * np.dtype(get_dtype(dtype)).itemsize
                   * (spec.depth if depths else 1) + (16 * spec.n_act_layers if activity else 0))
        chunk = default_chunk(nets, workers, per_net)
    chunk = check_int("chunk", chunk, 1, MAX_NETS)
    if mode not in GRAD_MODES:
        raise ValueError(f"mode must be one of {', '.join(GRAD_MODES)}; got {mode!r}")
    if spec.batchnorm and grid.points < 2:
        raise ValueError("batch norm needs at least 2 grid points (points >= 2)")
    if activity and grid.points < 2:
        raise ValueError("activity needs at least 2 grid points (points >= 2)")
    used = resolve_sampler(spec, grid.points, mode, sampler)
    return nets, seed, chunk, get_dtype(dtype), used


def network_bytes(spec, points, mode, itemsize=8, sampler="explicit"):
    """Rough peak bytes to sample and differentiate one network on ``points`` inputs
    (drawn with ``sampler``, ``'explicit'`` or ``'gram'``)."""
    n, f, L = spec.width, spec.features, spec.n_act_layers
    cols = state_columns(spec, points, mode)
    params = spec.family.parameter_count(spec)
    if sampler == "gram":  # weights of min(fan_in, cols) columns, and the Gram work space
        params = params * min(1.0, cols / f) + 3 * cols * cols
    work = 8 * max(n, f) * cols + (3 * L * f * points if mode == "reverse" else 0)
    return (params + work) * itemsize


#: What to change when gradients leave range (the growth per block, or the precision).
_HINT = ("reduce depth or the growth per block (weight_var; alpha, beta for resnets), or "
         "use batchnorm=True")


def _range_hint(dtype):
    return _HINT + (", or dtype=float64" if np.dtype(dtype) == np.float32 else "")


def _nonfinite_error(spec, grid, seed, index, backend, dtype, by_depth=None,
                     sampler="explicit"):
    """The ``ValueError`` for network ``index``, whose gradient is not finite.

    The first depth whose gradient is not finite is where the range runs out: read off
    ``by_depth`` (the network's gradients at every depth), or, without it, off the
    network run again with depth taps (the same parameters: taps are drawn after all
    others).
    """
    if by_depth is None:
        try:
            net = sample_network(spec, network_rng(seed, index), dtype, taps=True,
                                 sampler=sampler, points=grid.points)
            with np.errstate(all="ignore"):
                by_depth = input_gradient_by_depth(net, grid.points_array(dtype),
                                                   backend=backend)
        except ValueError:  # the rerun does not fit in memory: the depth stays unknown
            pass
    depth, overflow = None, True
    if by_depth is not None:
        flat = by_depth.reshape(len(by_depth), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            depth = int(np.argmax(bad)) + 1
            # an overflow: inf, or nan (inf - inf) after gradients near the top of range
            top = float(np.abs(flat[:depth - 1]).max()) if depth > 1 else 0.0
            overflow = (bool(np.isinf(flat[depth - 1]).any())
                        or top > float(np.finfo(dtype).max) ** 0.75)
    name = np.dtype(dtype).name
    quantity = (f"gradients overflow {name} (inf or nan)" if overflow
                else "gradients are not finite (nan)")
    return range_error("simulate", quantity, depth, spec, _range_hint(dtype),
                       note=f" (network {index})", width=True, dtype=name)


def _chunk_task(spec, grid, seed, start, stop, mode, backend, dtype, activity,
                sampler="explicit"):
    """Networks ``start .. stop - 1``: gradients and activity (one process's work).

    Raises the ``ValueError`` of :func:`_nonfinite_error` if a gradient is not finite.
    """
    x = grid.points_array(dtype)
    m = stop - start
    grads = np.empty((m, grid.points, spec.input_dim), dtype=dtype)
    acts = np.empty((m, spec.n_act_layers, 2)) if activity else None
    columns = (state_columns(spec, grid.points, mode)
               if sampler == "gram" and not activity else None)
    kern = get_backend(backend)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
        for k in range(m):
            got = (None if columns is None else
                   stacked_gram_gradients(spec, network_rng(seed, start + k), x, columns,
                                          kern, False))
            if got is not None:
                grads[k] = got[0]
                continue
            net = sample_network(spec, network_rng(seed, start + k), dtype,
                                 sampler=sampler, points=grid.points)
            out = input_gradient(net, x, mode=mode, backend=backend, activity=activity)
            if activity:
                grads[k], acts[k] = out
            else:
                grads[k] = out
    if not np.isfinite(grads).all():  # one check per chunk
        k = int(np.argmax(~np.isfinite(grads.reshape(m, -1)).all(axis=1)))
        raise _nonfinite_error(spec, grid, seed, start + k, backend, dtype, sampler=sampler)
    return grads, acts


def iter_chunks(spec, grid, nets, seed, chunk=None, mode="forward", backend="numba",
                dtype="float64", activity=False, workers=1, sampler="auto"):
    """Yield :class:`Chunk` objects covering networks ``0 .. nets - 1`` in order.

    Parameters are as for :func:`simulate`; so is the ``ValueError`` for a chunk holding a
    gradient out of range.
    """
    nets, seed, chunk, dtype, sampler = _check_run(spec, grid, nets, seed, chunk, mode, dtype,
                                                   activity, sampler, workers)
    workers = check_workers(workers)
    itemsize = np.dtype(dtype).itemsize
    check_memory(workers * network_bytes(spec, grid.points, mode, itemsize, sampler)
                 + 2 * workers * min(chunk, nets) * grid.points * spec.input_dim * itemsize,
                 "one chunk of networks per worker (width, depth, points, chunk, workers)")
    work.record(nets, nets * network_gaussians(
        spec, state_columns(spec, grid.points, mode) if sampler == "gram" else None))
    starts = range(0, nets, chunk)
    tasks = ((spec, grid, seed, a, min(a + chunk, nets), mode, backend, dtype, activity,
              sampler) for a in starts)
    with _blas_threads(sampler, workers):
        for start, (grads, acts) in zip(starts, ordered_map(_chunk_task, tasks, workers)):
            yield Chunk(start, grads, acts)


def simulate(spec, grid=None, nets=100, seed=0, *, chunk=None, mode="forward",
             backend="numba", dtype="float64", keep=True, activity=False, moments=False,
             acf=False, spectrum=False, progress=None, workers=1, sampler="auto"):
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
        Networks per chunk (default :func:`default_chunk`: 16 in one process, about 8
        chunks per worker with workers); never changes the numbers.
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
    sampler : {'auto', 'explicit', 'gram'}
        How networks are drawn (``docs/conventions.md``, "Samplers"): ``'explicit'``
        draws every weight matrix; ``'gram'`` draws each layer from the Gram matrix of
        its input (:func:`gradsim.families.layers.gram_product`), the same law at the
        grid's points for i.i.d. Gaussian weights, forward mode only; ``'auto'`` (default)
        takes whichever :func:`gradsim.families.sampling.resolve_sampler`'s cost model
        says is cheaper, never gram where it does not apply.  Within a sampler, a seed
        gives the same numbers for every chunk size and worker count;
        ``Simulation.sampler`` records the one used.

    Returns
    -------
    Simulation

    Raises
    ------
    ValueError
        For bad arguments; for a network whose gradient leaves ``dtype``'s range (the
        message names the parameters and the depth where the range runs out, found by
        running that network again depth by depth); and for streamed statistics that
        overflow float64 (``moments``, ``acf``, ``spectrum``).
    """
    grid = GridSpec(dim=spec.input_dim) if grid is None and isinstance(spec, NetSpec) else grid
    nets, seed, chunk, dt, used = _check_run(spec, grid, nets, seed, chunk, mode, dtype,
                                             activity, sampler, workers)
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
    for ch in iter_chunks(spec, grid, nets, seed, chunk, mode, backend, dt, activity, workers,
                          used):
        stop = ch.start + len(ch.grad)
        if keep:
            grads[ch.start:stop] = ch.grad
        if activity:
            acts[ch.start:stop] = ch.activity
        if acf_s is not None or spec_s is not None:
            _require_streamable(spec, ch.grad, dt)
        with np.errstate(over="ignore", invalid="ignore"):  # checked after the loop
            if mom is not None:
                mom.update(ch.grad.reshape(len(ch.grad), k))
            if acf_s is not None:
                acf_s.update(acf_rows(ch.grad))
            if spec_s is not None:
                spec_s.update(power_rows(ch.grad)[1])
        if progress is not None:
            progress(stop, nets)
    streams = (("moments (sums of g g^T and of powers up to g^8)", "moments", mom,
                ("total", "outer", "powers")),
               ("autocorrelations", "acf", acf_s, ("total", "squares")),
               ("periodograms", "spectrum", spec_s, ("total", "squares")))
    for name, flag, stream, sums in streams:
        if stream is not None and not all(np.isfinite(getattr(stream, a)).all() for a in sums):
            raise range_error("simulate", f"the streamed {name} overflow float64", None, spec,
                              f"{flag}=False, or {_range_hint(dt)}", width=True,
                              dtype=np.dtype(dt).name)
    return Simulation(spec, grid, grid.points_array(), seed, nets, mode, np.dtype(dt).name,
                      grads, acts, mom, acf_s, spec_s, used)


def _require_streamable(spec, grad, dtype):
    """Refuse gradients whose sums of squares along the grid overflow (the
    autocorrelation would count such a network as constant, the periodogram be inf)."""
    top = float(np.abs(grad).max())
    points = grad.shape[1]
    # mean-removed entries reach 2 top: sums of P squares, and |rfft|^2 / P, up to 4 P top^2
    if top > 0 and 2 * math.log(2 * top) + math.log(points) > LOG_MAX:
        raise range_error("simulate", f"gradients up to {top:.3g} in magnitude put the "
                          "autocorrelation and periodogram sums out of float64 range", None,
                          spec, f"acf=False and spectrum=False, or {_range_hint(dtype)}",
                          width=True, dtype=np.dtype(dtype).name)


def _depth_task(spec, grid, seed, start, stop, backend, dtype, sampler="explicit"):
    x = grid.points_array(dtype)
    m = stop - start
    out = np.empty((m, spec.depth, grid.points, spec.input_dim), dtype=dtype)
    columns = state_columns(spec, grid.points) if sampler == "gram" else None
    kern = get_backend(backend)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
        for k in range(m):
            got = (None if columns is None else
                   stacked_gram_gradients(spec, network_rng(seed, start + k), x, columns,
                                          kern, True))
            if got is not None:
                out[k] = got
                continue
            net = sample_network(spec, network_rng(seed, start + k), dtype, taps=True,
                                 sampler=sampler, points=grid.points)
            out[k] = input_gradient_by_depth(net, x, backend=backend)
    if not np.isfinite(out).all():  # one check per chunk
        bad = ~np.isfinite(out.reshape(m, spec.depth, -1)).all(axis=2)
        k = int(np.argmax(bad.any(axis=1)))
        raise _nonfinite_error(spec, grid, seed, start + k, backend, dtype, out[k], sampler)
    return out


def simulate_depths(spec, grid=None, nets=100, seed=0, *, chunk=None, backend="numba",
                    dtype="float64", progress=None, workers=1, sampler="auto"):
    """Input gradients at every depth ``1 .. spec.depth`` from ``nets`` networks.

    Each network is sampled with tap readouts (:func:`gradsim.nets.sample_network`,
    ``taps=True``) from its own stream ``network_rng(seed, i)``, and
    :func:`gradsim.nets.input_gradient_by_depth` gives all its prefixes' gradients in
    one forward pass.  ``[:, -1]`` equals :func:`simulate` with the same seed.
    ``workers`` and ``sampler`` are as for :func:`simulate`.

    Returns
    -------
    ndarray, shape (nets, depth, P, d)

    Raises
    ------
    ValueError
        As :func:`simulate`: a gradient out of range names the first depth where it is.
    """
    grid = GridSpec(dim=spec.input_dim) if grid is None and isinstance(spec, NetSpec) else grid
    nets, seed, chunk, dt, used = _check_run(spec, grid, nets, seed, chunk, "forward", dtype,
                                             False, sampler, workers, depths=True)
    workers = check_workers(workers)
    itemsize = np.dtype(dt).itemsize
    check_memory(nets * spec.depth * grid.points * spec.input_dim * itemsize
                 + workers * network_bytes(spec, grid.points, "forward", itemsize, used),
                 "gradients at every depth (nets, depth, points, input_dim)")
    out = np.empty((nets, spec.depth, grid.points, spec.input_dim), dtype=dt)
    work.record(nets, nets * network_gaussians(
        spec, state_columns(spec, grid.points) if used == "gram" else None, taps=True))
    starts = range(0, nets, chunk)
    tasks = ((spec, grid, seed, a, min(a + chunk, nets), backend, dt, used) for a in starts)
    with _blas_threads(used, workers):
        for a, block in zip(starts, ordered_map(_depth_task, tasks, workers)):
            out[a:a + len(block)] = block
            if progress is not None:
                progress(a + len(block), nets)
    return out
