"""``gradsim kinks``: exact breakpoints and unit crossings of many networks -> ``.npz``."""

from __future__ import annotations

import json
import math
import time

import numpy as np

from .._version import __version__
from ..io import write_npz
from ..kinks import MAX_KNOTS
from ..kinks_mc import KinkStats, simulate_kinks
from ..theory import covers
from ..util import check_output
from .common import add_spec_options, add_workers_option, spec_from_args, workers_from

__all__ = ["add_command", "save_kinks", "FIELDS"]

#: Per-network arrays written to the results file.
FIELDS = ("per_unit", "breakpoints", "jump_abs", "slope_rms", "jump_s11", "jump_s2",
          "lag1_num", "lag1_den", "several")


def add_command(sub):
    """Add ``kinks`` to the subparsers ``sub``."""
    k = sub.add_parser("kinks", help="exact breakpoints of f and unit crossings -> .npz",
                       description="Count the exact linear pieces of many random networks "
                                   "along a segment of the input line x(t) = x0 + t u: "
                                   "every unit's zero crossings, the breakpoints of f and "
                                   "the jumps of df/dt, beside the Rice-formula prediction "
                                   "where the infinite-width theory covers the net.")
    add_spec_options(k)
    g = k.add_argument_group("segment")
    g.add_argument("--range", type=float, nargs=2, metavar=("A", "B"), default=(-2.0, 2.0),
                   help="the segment a < t < b (default -2 2)")
    g.add_argument("--x0", type=float, nargs="+", help="origin of the line (default 0)")
    g.add_argument("--direction", type=float, nargs="+",
                   help="direction u of the line (d numbers; required when d > 1)")
    g.add_argument("--points", type=int, default=256,
                   help="grid points on the segment: batch-norm statistics, the grid "
                        "gradient's lag-1 autocorrelation, grid adequacy (default 256)")
    r = k.add_argument_group("run")
    r.add_argument("--nets", type=int, required=True, help="number of networks >= 2")
    r.add_argument("--seed", type=int, required=True, help="root seed >= 0")
    r.add_argument("--max-knots", type=int, default=MAX_KNOTS,
                   help=f"refuse a network needing more knots (default {MAX_KNOTS})")
    add_workers_option(r)
    r.add_argument("--out", required=True, help="output .npz file")
    r.add_argument("--force", action="store_true", help="overwrite an existing output file")
    r.add_argument("--quiet", action="store_true", help="print nothing on success")
    k.set_defaults(func=_cmd_kinks)


def _rice(spec, a, b, x0, u):
    """The Rice prediction, or ``(None, reason)`` where the theory does not cover ``spec``."""
    reason = covers(spec, "exact")
    if reason is not None:
        return None, reason
    from ..theory.rice import rice_crossings

    return rice_crossings(spec, a, b, x0=x0, direction=u), None


def save_kinks(path, ks, rice=None, force=False):
    """Write :class:`~gradsim.kinks_mc.KinkStats` (and the Rice prediction) to ``path``."""
    check_output(path, force)
    arrays = {f: getattr(ks, f) for f in FIELDS}
    arrays |= {"units": ks.units, "x0": ks.x0, "direction": ks.direction,
               "spec": ks.spec.to_json(),
               "meta": json.dumps({"a": ks.a, "b": ks.b, "grid_points": ks.grid_points,
                                   "seed": ks.seed, "nets": int(len(ks.per_unit)),
                                   "version": __version__}, sort_keys=True)}
    if rice is not None:
        arrays |= {"rice_per_unit": rice["per_unit"], "rice_breakpoints": rice["breakpoints"]}
    return write_npz(path, arrays)


def _cmd_kinks(args):
    spec = spec_from_args(args)
    a, b = args.range
    if not (math.isfinite(a) and math.isfinite(b) and b > a):
        raise ValueError(f"--range A B must be finite with A < B, got {a:g} {b:g}")
    if spec.input_dim > 1 and args.direction is None:
        raise ValueError(f"--direction is required with --input-dim {spec.input_dim}: the "
                         "line x(t) = x0 + t u needs its direction u (d numbers)")
    if args.nets < 2:
        raise ValueError(f"--nets must be at least 2 (standard errors), got {args.nets}")
    out = check_output(args.out, args.force)
    rice, why = _rice(spec, a, b, args.x0, args.direction)  # checks the line too
    t0 = time.perf_counter()
    ks = simulate_kinks(spec, a, b, nets=args.nets, seed=args.seed, grid_points=args.points,
                        x0=args.x0, direction=args.direction, max_knots=args.max_knots,
                        workers=workers_from(args, args.nets))
    save_kinks(out, ks, rice, force=args.force)
    if not args.quiet:
        m, se = KinkStats.mean_se(ks.per_unit)
        bp, bse = KinkStats.mean_se(ks.breakpoints[:, -1])
        print(f"wrote {out}: {args.nets} nets, segment [{a:g}, {b:g}] "
              f"({time.perf_counter() - t0:.1f} s)")
        print(f"  breakpoints of f: {bp:.4g} ± {bse:.2g}"
              + (f" (Rice formula, infinite width: {rice['breakpoints']:.4g})" if rice else ""))
        for site in sorted({0, len(m) - 1}):
            line = (f"  crossings per unit, activation site {site + 1}: {m[site]:.4g} "
                    f"± {se[site]:.2g}")
            if rice is not None:
                line += f" (Rice: {rice['per_unit'][site]:.4g})"
            print(line)
        if rice is None:
            print(f"  no Rice prediction: {why}")
        several = np.asarray(ks.several, float)
        print(f"  grid of {args.points} points: {several.mean():.3g} of {args.points - 1} "
              "intervals hold more than one breakpoint (mean over nets)")
    return 0
