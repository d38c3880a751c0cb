"""The ``gradsim`` command line: a thin shell over the library, holding no numerics.

Errors in the input print one line on stderr and exit with code 2; nothing is
written unless the whole run succeeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import __version__
from .compare import MODELS, compare_spec, grid_rows, predict
from .grids import GRIDS, GridSpec
from .io import atomic_write, check_output, save
from .montecarlo import simulate
from .nets import GRAD_MODES
from .spec import ACTIVATIONS, ARCHS, BN_GRADS, INITS, NetSpec

__all__ = ["main", "build_parser", "add_spec_options", "spec_from_args"]


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr, exit code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# option name -> NetSpec field, for options whose default lives in the spec
_SPEC_OPTIONS = {
    "arch": "arch", "depth": "depth", "width": "width", "input_dim": "input_dim",
    "activation": "activation", "slope_pos": "slope_pos", "slope_neg": "slope_neg",
    "init": "init", "mirror": "mirror", "weight_var": "weight_var",
    "first_bias_var": "first_bias_var", "bias_var": "bias_var", "readout_var": "readout_var",
    "batchnorm": "batchnorm", "bn_grad": "bn_grad", "bn_eps": "bn_eps", "alpha": "alpha",
    "beta": "beta", "branch_depth": "branch_depth", "gate_bias": "gate_bias",
}


def add_spec_options(p):
    """Add the network options shared by every command that takes a spec."""
    g = p.add_argument_group("network")
    g.add_argument("--arch", choices=ARCHS, default="feedforward")
    g.add_argument("--depth", type=int, required=True,
                   help="hidden layers (feedforward) or blocks (resnet, highway), >= 1")
    g.add_argument("--width", type=int, default=200, help="hidden width N >= 1 (default 200)")
    g.add_argument("--input-dim", type=int, default=1, help="input dimension d >= 1 (default 1)")
    g.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    g.add_argument("--slope-pos", type=float, help="leaky: slope for z > 0 (default 1)")
    g.add_argument("--slope-neg", type=float, help="leaky: slope for z <= 0 (default 0.01)")
    g.add_argument("--init", choices=INITS, default="he")
    g.add_argument("--mirror", type=float,
                   help="looks-linear: partial mirroring alpha_m in [0, 1] (default 1)")
    g.add_argument("--weight-var", type=float, help="sigma_w^2 > 0 (default 2)")
    g.add_argument("--first-bias-var", type=float,
                   help="variance of the first layer's bias (default 1)")
    g.add_argument("--bias-var", type=float, help="variance of the other biases (default 0)")
    g.add_argument("--readout-var", type=float, help="readout variance times fan-in (default 1)")
    g.add_argument("--batchnorm", action="store_true", help="batch norm before every activation")
    g.add_argument("--bn-grad", choices=BN_GRADS, help="frozen (default) or through")
    g.add_argument("--bn-eps", type=float, help="batch-norm epsilon (default 1e-5)")
    g.add_argument("--alpha", type=float, help="resnet: x <- alpha (x + beta F(x)) (default 1)")
    g.add_argument("--beta", type=float, help="resnet: branch scale (default 1)")
    g.add_argument("--branch-depth", type=int, help="resnet: 1 or 2 layers per branch")
    g.add_argument("--gate-bias", type=float, help="highway: transform-gate bias (default -2)")
    return g


def spec_from_args(args):
    """Build a :class:`NetSpec` from parsed options, leaving unset ones at their defaults."""
    kwargs = {field: getattr(args, opt) for opt, field in _SPEC_OPTIONS.items()
              if getattr(args, opt, None) is not None}
    return NetSpec(**kwargs)


def add_grid_options(p):
    """Add the input-grid options."""
    g = p.add_argument_group("grid")
    g.add_argument("--grid", choices=GRIDS, default="line")
    g.add_argument("--points", type=int, default=256, help="grid points >= 1 (default 256)")
    g.add_argument("--range", type=float, nargs=2, metavar=("LO", "HI"), default=(-2.0, 2.0),
                   help="line range (default -2 2)")
    g.add_argument("--radius", type=float, default=1.0, help="ring radius (default 1)")
    g.add_argument("--grid-seed", type=int, default=0, help="seed of the Gaussian batch")
    return g


def grid_from_args(args, spec):
    """Build a :class:`GridSpec` from parsed options."""
    lo, hi = args.range
    return GridSpec(args.grid, args.points, lo, hi, spec.input_dim, args.grid_seed, args.radius)


def build_parser():
    """The argument parser of ``gradsim``."""
    parser = _Parser(prog="gradsim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gradsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from .cli_experiments import add_commands
    from .cli_sweep import add_command as add_sweep
    from .cli_train import add_command as add_train

    add_commands(sub)
    add_train(sub)
    add_sweep(sub)
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
    r.add_argument("--out", required=True, help="output .npz file")
    r.add_argument("--force", action="store_true", help="overwrite an existing output file")
    r.add_argument("--quiet", action="store_true", help="print nothing on success")
    sim.set_defaults(func=_cmd_simulate)

    th = sub.add_parser("theory", help="closed-form predictions for a spec",
                        description="Variance at X, covariance and correlation of X and Y "
                                    "from one theory; --out writes the exact covariance "
                                    "over the whole grid.")
    add_spec_options(th)
    th.add_argument("--model", choices=MODELS, default="exact",
                    help="paper (independent patterns), independence, exact (default)")
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
    cmp_.add_argument("--json", action="store_true", help="print JSON rows")
    cmp_.set_defaults(func=_cmd_compare)
    return parser


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
    pred = predict(spec, args.model, x, y)
    if out is not None:
        from .exact import exact_gradient_covariance

        grid = grid_from_args(args, spec)
        pts = grid.points_array()
        cov = exact_gradient_covariance(spec, pts)
        with atomic_write(out) as fh:
            np.savez(fh, x=pts[:, 0] if spec.input_dim == 1 else pts,
                     covariance=cov[..., 0, 0] if spec.input_dim == 1 else cov,
                     spec=np.array(spec.to_json()), grid=np.array(grid.to_json()),
                     model=np.array(pred["model"]))
    if args.json:
        print(json.dumps(pred | {"x": args.pair[0], "y": args.pair[1]}))
    else:
        print(f"{pred['model']}, depth {pred['depth']}, x = {args.pair[0]:g}, "
              f"y = {args.pair[1]:g}")
        for key in ("variance", "covariance", "correlation"):
            print(f"  {key:12} {pred[key]:.6g}")
    return 0


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
    sim = simulate(spec, grid, nets=args.nets, seed=args.seed, chunk=args.chunk)
    rows = compare_spec(spec, sim.grad[:, i], sim.grad[:, j], pts[i], pts[j])
    rows += grid_rows(spec, grid, sim.grad, i, seed=args.seed)
    if args.json:
        print(json.dumps({"x_index": i, "y_index": j, "nets": args.nets, "seed": args.seed,
                          "rows": [r.to_dict() for r in rows]}))
        return 0
    print(f"{args.nets} nets, seed {args.seed}; x = grid point {i}, y = grid point {j}")
    print(f"{'statistic':12} {'theory':>10} {'estimate':>10} {'se':>9} {'z':>7} "
          f"{'rel err':>8}  model")
    for r in rows:
        print(f"{r.name:12} {r.theory:10.4g} {r.estimate:10.4g} {r.se:9.2g} {r.z:7.2f} "
              f"{r.rel_error:8.1%}  {r.label}")
    return 0


def _cmd_simulate(args):
    spec = spec_from_args(args)
    grid = grid_from_args(args, spec)
    out = check_output(args.out, args.force)
    t0 = time.perf_counter()
    result = simulate(spec, grid, nets=args.nets, seed=args.seed, chunk=args.chunk,
                      mode=args.mode, dtype=args.dtype, activity=args.activity)
    save(out, result, force=args.force)
    if not args.quiet:
        print(f"wrote {out}: {args.nets} nets x {grid.points} points "
              f"({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gradsim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gradsim: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gradsim: interrupted; nothing was written", file=sys.stderr)
        return 130
