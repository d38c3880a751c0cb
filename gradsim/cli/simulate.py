"""``gradsim simulate``: input gradients of many random networks -> ``.npz``."""

from __future__ import annotations

import math
import time

from ..io import save
from ..montecarlo import simulate
from ..nets import GRAD_MODES
from ..util import check_output
from .common import (
    add_grid_options,
    add_sampler_option,
    add_spec_options,
    add_workers_option,
    grid_from_args,
    sampler_from,
    spec_from_args,
    workers_from,
)

__all__ = ["add_command", "tasks"]

def tasks(args):
    """Chunks of networks a run has (the most workers it can use): with the default
    chunk, the networks themselves (the chunk shrinks with the worker count)."""
    if args.nets < 1:
        return None
    if args.chunk is None:
        return args.nets
    return math.ceil(args.nets / args.chunk) if args.chunk >= 1 else None


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
    add_sampler_option(r)
    add_workers_option(r)
    r.add_argument("--out", required=True, help="output .npz file")
    r.add_argument("--force", action="store_true", help="overwrite an existing output file")
    r.add_argument("--quiet", action="store_true", help="print nothing on success")
    sim.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args):
    spec = spec_from_args(args)
    grid = grid_from_args(args, spec)
    sampler = sampler_from(args, spec, grid.points, args.mode)
    out = check_output(args.out, args.force)
    t0 = time.perf_counter()
    result = simulate(spec, grid, nets=args.nets, seed=args.seed, chunk=args.chunk,
                      mode=args.mode, dtype=args.dtype, activity=args.activity,
                      workers=workers_from(args, tasks(args)), sampler=sampler)
    save(out, result, force=args.force)
    if not args.quiet:
        print(f"wrote {out}: {args.nets} nets x {grid.points} points, {sampler} sampler "
              f"({time.perf_counter() - t0:.1f} s)")
    return 0
