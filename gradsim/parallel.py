"""Networks in parallel worker processes, with the same numbers as one process.

Every network draws from its own stream ``network_rng(seed, i)``, so which process
computes it cannot change it.  Workers are spawned (not forked: forking a process with
live BLAS or numba thread pools is unsafe) and each limits BLAS and numba to one thread,
so ``workers`` processes use ``workers`` cores without oversubscription (two
multi-threaded BLAS pools on two cores were measured to be slower, see
``../shared/PERFORMANCE.md``).  Results come back in network order, with at most
``2 * workers`` chunks in flight, so memory is bounded by the chunk size.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os

__all__ = ["check_workers", "ordered_map"]

_LIMITS = None


def check_workers(workers):
    """``workers`` as an int in ``[1, 256]``, or a ValueError naming it."""
    from .spec import check_int

    return check_int("workers", workers, 1, 256)


def _init_worker():
    """One BLAS thread and one numba thread per worker process."""
    global _LIMITS
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(limits=1)
    os.environ["NUMBA_NUM_THREADS"] = "1"


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
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx,
                                                initializer=_init_worker) as pool:
        pending = collections.deque()
        it = iter(tasks)
        try:
            for task in it:
                pending.append(pool.submit(fn, *task))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise
