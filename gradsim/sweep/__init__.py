"""Resumable parameter sweeps: a TOML file -> cells -> one results file per cell.

A sweep file names a base :class:`~gradsim.spec.NetSpec` (``[spec]``), a grid
(``[grid]``), axes (``[axes]``: NetSpec field -> list of values) whose Cartesian product
gives the cells, the networks per cell and the statistics and theories to keep
(``docs/sweeps.md`` lists every key).  :func:`load_sweep` validates all of it before
anything is written.  :func:`run_sweep` computes the missing cells, in process or on
Dask, writes each finished cell atomically as it arrives, and then a summary (CSV,
JSON) and one figure per statistic.  Rerunning resumes: cell files that match the sweep
are kept, the others are computed.

Cell ``c`` with spec ``S`` draws its networks from ``cell_seed(seed, S)``: a seed
spawned from the sweep seed and a hash of ``S`` alone, so a cell's numbers do not depend
on the other cells, on the order of the axes or their values, on the engine or on the
chunk size, bit for bit.  :func:`compute_cell` is a pure function of the cell, so Dask
may rerun it on another worker when one dies.

==================  ================================================================
module              what
==================  ================================================================
:mod:`.file`        parse and validate a sweep file, expand its cells, seed them
:mod:`.cells`       one cell: Monte Carlo sums, estimates, theory comparisons
:mod:`.store`       the out dir: cell files, the index ``sweep.json``, the lock
:mod:`.engines`     the serial and Dask engines (and the workers' preload hook)
:mod:`.outputs`     ``summary.csv``, ``summary.json`` and the figures
:mod:`.run`         :func:`run_sweep` and :func:`sweep_status`, which tie them together
==================  ================================================================
"""

from __future__ import annotations

from .cells import compute_cell
from .file import (
    MAX_CELLS,
    MAX_ENTRIES,
    STATISTICS,
    Cell,
    Sweep,
    SweepResult,
    cell_seed,
    load_sweep,
    parse_sweep,
)
from .run import run_sweep, sweep_status
from .store import CELL_FORMAT

__all__ = ["Sweep", "Cell", "SweepResult", "STATISTICS", "load_sweep", "parse_sweep",
           "cell_seed", "compute_cell", "run_sweep", "sweep_status", "MAX_CELLS",
           "MAX_ENTRIES", "CELL_FORMAT"]
