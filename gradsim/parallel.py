"""Networks in parallel worker processes, with the same numbers as one process.

Every network draws from its own stream ``network_rng(seed, i)``, so which process
computes it cannot change it.  Workers are spawned (not forked: forking a process with
live BLAS or numba thread pools is unsafe) and each limits BLAS and numba to one thread,
so ``workers`` processes use ``workers`` cores without oversubscription (two
multi-threaded BLAS pools on two cores were measured to be slower, see
``docs/performance.md``).  Results come back in network order, with at most
``2 * workers`` chunks in flight, so memory is bounded by the chunk size.

The pool is kept between calls: starting a worker (Python, NumPy, numba and the cached
kernels) takes seconds, so a session that runs many simulations pays it once.  It is
shut down at exit, by :func:`shutdown`, when a call asks for a different number of
workers, and after any error or interruption (a fresh pool is started next time).  Workers
ignore Ctrl-C (the parent handles it and stops the pool) and exit when the parent process
ends, even if it was killed.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading

from .util import check_int

__all__ = ["check_workers", "available_cores", "ordered_map", "shutdown", "current_pool"]

_LIMITS = None
_POOL = None  # (workers, executor) kept between calls


def check_workers(workers):
    """``workers`` as an int in ``[1, 256]``, or a ValueError naming it."""
    return check_int("workers", workers, 1, 256)


def available_cores():
    """Cores this process may use (its CPU affinity, else ``os.cpu_count()``), 1 to 256."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        n = os.cpu_count() or 1
    return max(1, min(n, 256))


def _init_worker():
    """One BLAS thread and one numba thread per worker process; Ctrl-C is the parent's to
    handle (a terminal sends it to the whole process group); the worker exits when its
    parent does, however the parent ended (a SIGKILLed parent cannot shut the pool down)."""
    global _LIMITS
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(limits=1)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked since the spawn (_sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent):
    """Wait for the parent process to end, then end this one."""
    parent.join()
    os._exit(1)


@contextlib.contextmanager
def _sigint_blocked():
    """Ctrl-C held back (not lost) in this thread while workers may be spawned: a spawned
    worker inherits the blocked mask, so a Ctrl-C during its start-up (seconds, before
    :func:`_init_worker` ignores it) waits and is then discarded there, while here it is
    delivered as soon as the mask is restored."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _get_pool(workers):
    global _POOL
    if _POOL is not None and _POOL[0] != workers:
        shutdown()
    if _POOL is None:
        ctx = multiprocessing.get_context("spawn")
        _POOL = (workers, concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker))
    return _POOL[1]


def current_pool():
    """The worker pool kept between calls (a ``ProcessPoolExecutor``), or None."""
    return None if _POOL is None else _POOL[1]


def shutdown(wait=True):
    """Stop the worker processes kept between calls (started again when next needed).

    Parameters
    ----------
    wait : bool
        Wait for the workers to exit.
    """
    global _POOL
    if _POOL is not None:
        pool, _POOL = _POOL[1], None
        pool.shutdown(wait=wait, cancel_futures=True)


def ordered_map(fn, tasks, workers):
    """``fn(*task)`` for each task, in order; in ``workers`` processes if ``workers > 1``.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled by reference).
    tasks : iterable of tuple
    workers : int

    Yields
    ------
    The results, in the order of ``tasks``.
    """
    if workers == 1:
        for task in tasks:
            yield fn(*task)
        return
    pool = _get_pool(workers)
    pending = collections.deque()
    try:
        for task in tasks:
            with _sigint_blocked():  # submit may spawn a worker
                pending.append(pool.submit(fn, *task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except GeneratorExit:  # the consumer stopped early: drop queued work, keep the pool
        for f in pending:
            f.cancel()
        raise
    except BaseException:
        # an error or Ctrl-C (which also reaches the workers): start afresh next time
        for f in pending:
            f.cancel()
        shutdown(wait=False)
        raise
