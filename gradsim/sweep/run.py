"""Run a sweep: check the out dir, compute the missing cells, write the summary.

:func:`run_sweep` holds the out dir's lock, keeps every cell file that matches the sweep
(:mod:`.store`), computes the others on an engine (:mod:`.engines`), writes each cell's
file as it arrives, and then the summary and figures (:mod:`.outputs`).
:func:`sweep_status` counts the cells already saved.
"""

from __future__ import annotations

import os

from . import store
from .engines import choose_engine, run_dask, run_serial
from .file import Sweep, SweepResult, load_sweep
from .outputs import write_outputs

__all__ = ["run_sweep", "sweep_status"]


def sweep_status(sweep, out_dir):
    """``(done, total)``: cells of ``sweep`` whose files in ``out_dir`` are intact."""
    out = os.fspath(out_dir)
    return (sum(store.read_cell(out, sweep, c) is not None for c in sweep.cells),
            len(sweep.cells))


def run_sweep(sweep, out_dir, scheduler=None, workers=None, progress=None, force=False,
              engine=None):
    """Compute the missing cells of ``sweep`` into ``out_dir``, then the summary.

    Parameters
    ----------
    sweep : Sweep or path
    out_dir : path
        Created if missing (its parent must exist).  Holds ``sweep.json`` (the index),
        ``cells/cell-NNNN.json``, ``summary.csv``, ``summary.json`` and ``fig_*``.
    scheduler : str, optional
        Address of a running Dask scheduler (its workers must have gradsim installed).
    workers : int, optional
        Workers of the local Dask cluster (default 2); 0 runs serially in process.
    progress : callable, optional
        ``progress(kind, done, total)`` with kind ``'cells'`` (at the start and after
        every cell) or ``'networks'`` (within a cell, serial engine only).
    force : bool
        Start over: delete the previous run's index, cell files and outputs (nothing
        else) even if they belong to another sweep.
    engine : {None, 'serial', 'dask'}
        Default: Dask (a local cluster, or ``scheduler``) if ``distributed`` is
        installed, else serial.

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        Before anything is written, if the sweep or the options are bad or ``out_dir``
        holds another sweep's results (without ``force``).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = os.fspath(out_dir)
    engine = choose_engine(engine, scheduler, workers)
    store.check_out(out, sweep, force)
    os.makedirs(os.path.join(out, store.CELL_DIR), exist_ok=True)
    with store.locked(out):
        index = store.check_out(out, sweep, force)
        if force:
            store.start_over(out, index)
        store.clear_temporaries(out)  # left by a kill
        store.write_index(out, sweep)
        records = {c.index: store.read_cell(out, sweep, c) for c in sweep.cells}
        todo = [c for c in sweep.cells if records[c.index] is None]
        reused, total = len(sweep.cells) - len(todo), len(sweep.cells)
        report = progress or (lambda kind, done, n: None)
        report("cells", reused, total)
        count = [reused]

        def on_result(cell, result):
            records[cell.index] = store.write_cell(out, sweep, cell, result)
            count[0] += 1
            report("cells", count[0], total)

        if engine == "serial":
            run_serial(sweep, todo, on_result, progress)
        elif todo:
            run_dask(sweep, todo, on_result, scheduler, workers)
        recs = [records[c.index] for c in sweep.cells]
        outputs = write_outputs(out, sweep, recs)
        store.write_index(out, sweep, True, outputs)
    return SweepResult(out, total, len(todo), reused, len(sweep.skipped), recs,
                       [os.path.join(out, n) for n in outputs])
