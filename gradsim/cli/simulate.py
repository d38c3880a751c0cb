"""``gradsim simulate``: input gradients of many random networks -> ``.npz``."""

from __future__ import annotations

import math
import os
import time

from ..io import save
from ..montecarlo import DEFAULT_CHUNK, simulate
from ..nets import GRAD_MODES
from ..parallel import check_workers
from ..util import check_output
from .common import add_grid_options, add_spec_options, grid_from_args, spec_from_args

__all__ = ["add_command", "add_workers_option", "workers_for"]

#: Help of ``--workers`` (``simulate`` and ``compare``).
WORKERS_HELP = ("worker processes (default: all cores, os.cpu_count() = {cores} here, as a "
                "user expects: each network's numbers never depend on the worker count, so "
                "more workers only finish sooner; never more than the chunks of networks). "
                "Each worker pays Python's and numba's start-up (seconds): --workers 1 is "
                "quicker for runs of a few seconds")


def add_workers_option(group):
    """Add ``--workers N`` to an argument group."""
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help=WORKERS_HELP.format(cores=os.cpu_count() or 1))


def workers_for(args):
    """``--workers`` (checked; default all cores), capped at the run's number of chunks:
    idle workers would only pay their start-up."""
    workers = (min(os.cpu_count() or 1, 256) if args.workers is None
               else check_workers(args.workers))
    chunk = DEFAULT_CHUNK if args.chunk is None else args.chunk
    if args.nets >= 1 and chunk >= 1:  # else simulate refuses them
        workers = min(workers, math.ceil(args.nets / chunk))
    return workers


def add_command(sub):
    """Add ``simulate`` to the subparsers ``sub``."""
    sim = sub.add_parser("simulate", help="input gradients of many random networks -> .npz",
                         description="Simulate df/dx on a grid for many random networks and "
                                     "write x, grad and spec to an .npz file.")
    add_spec_options(sim)
    add_grid_options(sim)
    r = sim.add_argument_group("run")
    r.add_argument("--nets", type=int, required=True, help="number of networks >= 1")
    r.add_argument("--seed", type=int, required=True, help="root seed >= 0")
    r.add_argument("--chunk", type=int, help="networks per chunk (never changes the numbers)")
    r.add_argument("--mode", choices=GRAD_MODES, default="forward",
                   help="forward (tangent) or reverse mode (default forward)")
    r.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    r.add_argument("--activity", action="store_true",
                   help="also record active and co-active proportions per layer")
    add_workers_option(r)
    r.add_argument("--out", required=True, help="output .npz file")
    r.add_argument("--force", action="store_true", help="overwrite an existing output file")
    r.add_argument("--quiet", action="store_true", help="print nothing on success")
    sim.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args):
    spec = spec_from_args(args)
    grid = grid_from_args(args, spec)
    out = check_output(args.out, args.force)
    t0 = time.perf_counter()
    result = simulate(spec, grid, nets=args.nets, seed=args.seed, chunk=args.chunk,
                      mode=args.mode, dtype=args.dtype, activity=args.activity,
                      workers=workers_for(args))
    save(out, result, force=args.force)
    if not args.quiet:
        print(f"wrote {out}: {args.nets} nets x {grid.points} points "
              f"({time.perf_counter() - t0:.1f} s)")
    return 0
