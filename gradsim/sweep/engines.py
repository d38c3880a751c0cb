"""Engines: compute a sweep's cells serially in this process or as Dask tasks.

Each engine calls ``on_result(cell, result)`` in the driver as each cell finishes (in
cell order for the serial engine, as they arrive for Dask); the driver writes the file.
A cell is one call of :func:`~gradsim.sweep.cells.compute_cell`, a pure function, so
engines, worker counts and a worker's death change no number.

The local cluster dies with the driver: its worker processes are the driver's children
(the nannies run inside the driver), and each one's preload (:func:`dask_setup`) starts a
thread that ends the worker as soon as the driver is gone, even if the driver was
SIGKILLed and had no chance to close the cluster.
"""

from __future__ import annotations

import contextlib
import os

from ..util import check_int
from .cells import compute_cell

__all__ = ["choose_engine", "run_serial", "run_dask", "dask_setup", "DRIVER_ENV"]

#: Environment variable of the local cluster's workers: the driver's pid (see
#: :func:`dask_setup`).
DRIVER_ENV = "GRADSIM_SWEEP_DRIVER"


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
            sweep.statistics, sweep.theory, sweep.gp_nets, sweep.sampler)


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
                               silence_logs=logging.ERROR,
                               env={"NUMBA_NUM_THREADS": "1", DRIVER_ENV: str(os.getpid())},
                               preload=[__name__])
    with contextlib.closing(cluster), contextlib.closing(Client(cluster)) as client:
        yield client


def dask_setup(worker):
    """Dask preload hook of the local cluster's workers: ignore Ctrl-C, die with the driver.

    A terminal sends SIGINT to every process of the foreground group; the driver alone
    handles it, closing the cluster, which stops the workers without tracebacks.  If
    :data:`DRIVER_ENV` holds a pid (the local cluster sets it to the driver's), a daemon
    thread ends this process as soon as that process is gone (:func:`_watch_driver`).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid = os.environ.get(DRIVER_ENV, "")
    if pid.isdigit():
        _watch_driver(int(pid))


def _watch_driver(pid, interval=0.1):
    """Start a daemon thread that ends this process (``os._exit(1)``) once ``pid`` is gone.

    The thread blocks on a pidfd of ``pid`` (Linux 5.3 and later: woken by the kernel when
    it exits, however it died); elsewhere it checks every ``interval`` seconds whether
    ``pid`` exists and, if it was our parent, whether it still is.  The exit skips every
    cleanup: a worker owns nothing that needs one (the driver writes every file), and a
    worker whose driver is gone can only be an orphan.  Distributed has a watch of its own
    (a pipe from the process that started the worker, in
    ``distributed.process.AsyncProcess``); this one does not depend on it.
    ``prctl(PR_SET_PDEATHSIG)`` is not used: it follows the thread of the driver that
    started the worker (one of distributed's), not the driver.
    """
    import select
    import threading
    import time

    def wait_pidfd(fd):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():  # readable once the process has exited
            pass
        os._exit(1)

    def wait_poll():
        parent = os.getppid()
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # exists, another user's
                pass
            if parent == pid and os.getppid() != pid:  # reparented: the driver died
                os._exit(1)
            time.sleep(interval)

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone already
        os._exit(1)
    except (AttributeError, OSError):  # not Linux, or a kernel without pidfds
        target, args = wait_poll, ()
    else:
        target, args = wait_pidfd, (fd,)
    threading.Thread(target=target, args=args, name="gradsim-driver-watch",
                     daemon=True).start()


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
