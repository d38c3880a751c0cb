"""Engines: compute a sweep's cells serially in this process or as Dask tasks.

Each engine calls ``on_result(cell, result)`` in the driver as each cell finishes (in
cell order for the serial engine, as they arrive for Dask); the driver writes the file.
A cell is one call of :func:`~gradsim.sweep.cells.compute_cell`, a pure function, so
engines, worker counts and a worker's death change no number.
"""

from __future__ import annotations

import contextlib

from ..util import check_int
from .cells import compute_cell

__all__ = ["choose_engine", "run_serial", "run_dask", "dask_setup"]


def choose_engine(engine, scheduler, workers):
    """``'serial'`` or ``'dask'`` for the options of :func:`~gradsim.sweep.run_sweep`.

    Raises
    ------
    ValueError
        For an unknown engine, bad ``workers``, or options that do not go together.
    """
    if engine not in (None, "serial", "dask"):
        raise ValueError(f"engine must be serial or dask, got {engine!r}")
    if workers is not None:
        workers = check_int("workers", workers, 0, 256)
    serial = engine == "serial" or workers == 0
    if serial and scheduler is not None:
        raise ValueError("scheduler: cannot be combined with the serial engine")
    if scheduler is not None and workers is not None:
        raise ValueError("workers: only for a local cluster; the cluster at --scheduler "
                         "has its own")
    if serial:
        return "serial"
    try:
        import distributed  # noqa: F401
    except ImportError:
        if engine == "dask" or scheduler is not None or workers is not None:
            raise ValueError("dask is not installed: pip install 'gradsim[dask]', or run "
                             "serially (--serial, workers=0)") from None
        return "serial"
    return "dask"


def _task_args(sweep, cell):
    return (cell.spec, cell.grid, cell.seed, sweep.nets, sweep.chunk, sweep.pair_index,
            sweep.statistics, sweep.theory, sweep.gp_nets)


def run_serial(sweep, todo, on_result, progress):
    """Compute the cells ``todo`` in order, here; ``progress('networks', done, nets)``."""
    for cell in todo:
        def nets(done, total):
            progress("networks", done, total)

        on_result(cell, compute_cell(*_task_args(sweep, cell),
                                     progress=None if progress is None else nets))


@contextlib.contextmanager
def _client(scheduler, workers):
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"scheduler: cannot connect to {scheduler!r}: {exc}") from None
        with contextlib.closing(client):
            yield client
        return
    # Dask sets MALLOC_TRIM_THRESHOLD_ for workers, which turns off glibc's adaptive mmap
    # threshold: every large NumPy temporary is then mapped and unmapped (measured: cells
    # of docs/examples/sweep_depth.toml 2x slower, mostly system time).  Leave glibc's
    # default.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        # preload: this module, whose dask_setup runs in every worker
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR, env={"NUMBA_NUM_THREADS": "1"},
                               preload=[__name__])
    with contextlib.closing(cluster), contextlib.closing(Client(cluster)) as client:
        yield client


def dask_setup(worker):
    """Dask preload hook of the local cluster's workers: ignore Ctrl-C.

    A terminal sends SIGINT to every process of the foreground group; the driver alone
    handles it, closing the cluster, which stops the workers without tracebacks.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_dask(sweep, todo, on_result, scheduler, workers):
    """One task per cell, at most two per worker thread in flight; results as they come."""
    from distributed import as_completed

    with _client(scheduler, workers) as client:
        limit = 2 * max(1, sum(client.nthreads().values()))
        queue, cells, done = iter(todo), {}, as_completed()

        def submit():
            cell = next(queue, None)
            if cell is not None:
                fut = client.submit(compute_cell, *_task_args(sweep, cell), pure=False,
                                    key=f"gradsim-sweep-{sweep.digest[:16]}-{cell.id}")
                cells[fut.key] = cell
                done.add(fut)

        for _ in range(limit):
            submit()
        for fut in done:
            result = fut.result()
            on_result(cells.pop(fut.key), result)
            fut.release()
            submit()
