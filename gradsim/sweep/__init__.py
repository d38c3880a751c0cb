"""Resumable parameter sweeps: a TOML file -> cells -> one results file per cell."""

from __future__ import annotations

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
from .run import CELL_FORMAT, compute_cell, run_sweep, sweep_status

__all__ = ["Sweep", "Cell", "SweepResult", "STATISTICS", "load_sweep", "parse_sweep",
           "cell_seed", "compute_cell", "run_sweep", "sweep_status", "MAX_CELLS",
           "MAX_ENTRIES", "CELL_FORMAT"]
