"""``gradsim theory`` and ``gradsim compare``: closed forms for a spec, and theory beside
Monte Carlo in standard errors."""

from __future__ import annotations

import json
import math

import numpy as np

from ..compare import MODELS, compare_spec, grid_rows, predict
from ..io import write_npz
from ..kinks import REPORT_NETS, grid_report
from ..montecarlo import simulate
from ..theory.exact import exact_gradient_covariance
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
from .simulate import tasks

__all__ = ["add_commands"]


def add_commands(sub):
    """Add ``theory`` and ``compare`` to the subparsers ``sub``."""
    th = sub.add_parser("theory", help="closed-form predictions for a spec",
                        description="Variance at X, covariance and correlation of X and Y "
                                    "from one theory; --out writes the exact covariance "
                                    "over the whole grid.  Where the variance or covariance "
                                    "leaves float64 range (a plain resnet's variance is "
                                    "2^L), it is printed as a power of ten (with --json: "
                                    "null, beside log10_variance and "
                                    "log10_abs_covariance); the correlation stays finite.")
    add_spec_options(th)
    th.add_argument("--model", choices=MODELS, default="exact",
                    help="paper (independent patterns), independence, exact (default), "
                         "finite, finite2 (first and second order in 1/n at the spec's "
                         "width)")
    th.add_argument("--pair", type=float, nargs=2, metavar=("X", "Y"), default=(-1.0, 1.0),
                    help="positions t on the line x = t (1,...,1)/sqrt(d) (default -1 1)")
    th.add_argument("--json", action="store_true", help="print one JSON object")
    add_grid_options(th)
    th.add_argument("--out", help="with --model exact: .npz of the covariance over the grid")
    th.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    th.set_defaults(func=_cmd_theory)

    cmp_ = sub.add_parser("compare", help="theory beside Monte Carlo, in standard errors",
                          description="Simulate networks on the grid and compare the variance "
                                      "at X, the covariance and correlation of X and Y with "
                                      "every theory that covers the spec.")
    add_spec_options(cmp_)
    add_grid_options(cmp_)
    cmp_.add_argument("--pair", type=float, nargs=2, metavar=("X", "Y"), default=(-1.0, 1.0),
                      help="line grid: positions, snapped to the nearest grid points")
    cmp_.add_argument("--index", type=int, nargs=2, metavar=("I", "J"), default=(0, 1),
                      help="other grids: indices of the two grid points (default 0 1)")
    cmp_.add_argument("--nets", type=int, required=True, help="number of networks >= 2")
    cmp_.add_argument("--seed", type=int, required=True, help="root seed >= 0")
    cmp_.add_argument("--chunk", type=int, help="networks per chunk")
    add_sampler_option(cmp_)
    add_workers_option(cmp_)
    cmp_.add_argument("--json", action="store_true",
                      help="print JSON rows (null where a number is undefined or infinite)")
    cmp_.set_defaults(func=_cmd_compare)


def _line_point(t, d):
    return np.full(d, t / np.sqrt(d))


def _cmd_theory(args):
    spec = spec_from_args(args)
    x, y = (_line_point(t, spec.input_dim) for t in args.pair)
    if not all(np.isfinite(args.pair)):
        raise ValueError("pair must be finite numbers")
    out = None
    if args.out is not None:
        if args.model != "exact":
            raise ValueError("--out needs --model exact")
        out = check_output(args.out, args.force)
    pred = predict(spec, args.model, x, y, log_scale=True)
    if out is not None:
        grid = grid_from_args(args, spec)
        pts = grid.points_array()
        cov = exact_gradient_covariance(spec, pts)  # refused (nothing written) out of range
        write_npz(out, {"x": pts[:, 0] if spec.input_dim == 1 else pts,
                        "covariance": cov[..., 0, 0] if spec.input_dim == 1 else cov,
                        "spec": spec.to_json(), "grid": grid.to_json(), "model": pred["model"]})
    in_range = pred["variance"] is not None and pred["covariance"] is not None
    if in_range:  # the keys of old: the logs only where they are needed
        pred = {k: v for k, v in pred.items() if not k.startswith("log10_")}
    if args.json:
        print(json.dumps(pred | {"x": args.pair[0], "y": args.pair[1]}, allow_nan=False))
    else:
        print(f"{pred['model']}, depth {pred['depth']}, x = {args.pair[0]:g}, "
              f"y = {args.pair[1]:g}")
        for key in ("variance", "covariance", "correlation"):
            print(f"  {key:12} {_value(pred, key)}")
    return 0


def _value(pred, key):
    """A prediction as text: ``10^X`` where it leaves float64 range."""
    if pred[key] is not None:
        return f"{pred[key]:.6g}"
    log = pred[f"log10_{'abs_' if key == 'covariance' else ''}{key}"]
    if log is None:
        return "0"
    sign = "-" if key == "covariance" and pred["correlation"] < 0 else ""
    return f"{sign}10^{log:.6g} (beyond float64)"


def _cell(value, fmt):
    """A number of the comparison table, ``n/a`` where it is not finite."""
    return format(value, fmt) if math.isfinite(value) else "n/a".rjust(int(fmt.split(".")[0]))


def _cmd_compare(args):
    spec = spec_from_args(args)
    grid = grid_from_args(args, spec)
    pts = grid.points_array()
    if grid.kind == "line":
        if not all(np.isfinite(args.pair)):
            raise ValueError("pair must be finite numbers")
        t = np.linspace(grid.lo, grid.hi, grid.points)
        i, j = (int(np.argmin(np.abs(t - v))) for v in args.pair)
    else:
        i, j = args.index
        if not (0 <= i < grid.points and 0 <= j < grid.points):
            raise ValueError(f"index must be in [0, {grid.points - 1}]")
    if args.nets < 2:
        raise ValueError(f"nets must be an integer in [2, 1000000000], got {args.nets}")
    sampler = sampler_from(args, spec, grid.points)
    sim = simulate(spec, grid, nets=args.nets, seed=args.seed, chunk=args.chunk,
                   workers=workers_from(args, tasks(args)), sampler=sampler)
    rows = compare_spec(spec, sim.grad[:, i], sim.grad[:, j], pts[i], pts[j])
    rows += grid_rows(spec, grid, sim.grad, i, seed=args.seed)
    adequacy = grid_report(spec, grid, args.seed, nets=min(args.nets, REPORT_NETS))
    if args.json:
        print(json.dumps({"x_index": i, "y_index": j, "nets": args.nets, "seed": args.seed,
                          "sampler": sampler, "grid_adequacy": adequacy,
                          "rows": [_finite(r.to_dict()) for r in rows]}, allow_nan=False))
        return 0
    print(f"{args.nets} nets, seed {args.seed}, {sampler} sampler; x = grid point {i}, "
          f"y = grid point {j}")
    print(f"{'statistic':12} {'theory':>10} {'estimate':>10} {'se':>9} {'z':>7} "
          f"{'rel err':>8}  model")
    for r in rows:
        print(f"{r.name:12} {_cell(r.theory, '10.4g')} {_cell(r.estimate, '10.4g')} "
              f"{_cell(r.se, '9.2g')} {_cell(r.z, '7.2f')} {_cell(r.rel_error, '8.1%')}  "
              f"{r.label}")
    if isinstance(adequacy, dict):
        print(f"grid adequacy (exact pieces of the first {adequacy['nets']} nets): "
              f"{adequacy['several']:.3g} of {adequacy['intervals']} grid intervals hold "
              f"more than one breakpoint of f ({adequacy['breakpoints']:.4g} breakpoints)")
    else:
        print(f"grid adequacy: not checked, {adequacy}")
    return 0


def _finite(row):
    """A comparison row for JSON: null where a number is not finite (an infinite z where
    the standard error is 0, an undefined correlation)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}
