"""``gradsim sweep``: a resumable parameter sweep from a TOML file (a shell over
:mod:`gradsim.sweep`)."""

from __future__ import annotations

import os
import sys
import time

from ..sweep import load_sweep, run_sweep, sweep_status
from .common import UsageError

__all__ = ["add_command"]


def add_command(sub):
    """Add ``sweep`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "sweep", help="resumable parameter sweep from a TOML file -> directory",
        description="Run every cell of a sweep file (the Cartesian product of its axes) and "
                    "write one file per finished cell, a summary (CSV, JSON) and a figure "
                    "per statistic to --out.  On a local Dask cluster when dask is "
                    "installed, else in this process.  Ctrl-C or a crash loses no finished "
                    "cell: rerun the same command to compute only the missing ones.  See "
                    "docs/sweeps.md for the file format.")
    p.add_argument("sweep_file", metavar="SWEEP.toml", help="the sweep file")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory (created; its parent must exist)")
    e = p.add_argument_group("engine")
    e.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (default: a local cluster)")
    e.add_argument("--workers", type=int, metavar="N",
                   help="workers of the local cluster (default 2; 0 = --serial)")
    e.add_argument("--serial", action="store_true", help="compute in this process")
    p.add_argument("--force", action="store_true",
                   help="delete a previous run's index, cells and outputs in DIR and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary line")
    p.set_defaults(func=_cmd_sweep)


class _Bars:
    """tqdm bars on stderr for ``progress(kind, done, total)``; silent unless a tty."""

    def __init__(self, quiet):
        self.disable = quiet or not sys.stderr.isatty()
        self.bars = {}

    def __call__(self, kind, done, total):
        if self.disable:
            return
        bar = self.bars.get(kind)
        if bar is None or (kind == "networks" and done < bar.n):
            if bar is not None:
                bar.close()
            from tqdm.auto import tqdm

            bar = self.bars[kind] = tqdm(
                total=total, desc=kind, unit="cell" if kind == "cells" else "net",
                position=0 if kind == "cells" else 1, leave=False, file=sys.stderr,
                dynamic_ncols=True)
        bar.update(done - bar.n)

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.bars = {}


def _cmd_sweep(args):
    if args.serial and (args.scheduler is not None or args.workers is not None):
        raise UsageError("gradsim sweep: error: --serial cannot be combined with --scheduler "
                         "or --workers")
    sweep = load_sweep(args.sweep_file)
    bars = _Bars(args.quiet)
    t0 = time.perf_counter()
    try:
        res = run_sweep(sweep, args.out, scheduler=args.scheduler, workers=args.workers,
                        progress=bars, force=args.force,
                        engine="serial" if args.serial else None)
    except KeyboardInterrupt:
        bars.close()
        done, total = sweep_status(sweep, args.out) if os.path.isdir(args.out) else (0, 0)
        print(f"gradsim: interrupted; {done} of {total} cells are saved in {args.out}; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        bars.close()
    if not args.quiet:
        skipped = f", {res.skipped} skipped as invalid" if res.skipped else ""
        print(f"wrote {args.out}: {res.total} cells ({res.computed} computed, {res.reused} "
              f"reused{skipped}), {len(res.outputs)} summary and figure files "
              f"({time.perf_counter() - t0:.1f} s)")
    return 0
