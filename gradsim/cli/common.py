"""What every command shares: the usage error, the parser, the network and grid options.

Errors in the input print one line on stderr and exit with code 2 (:class:`UsageError`
from the parser, ``ValueError`` from the library); nothing is written unless the whole
run succeeds.
"""

from __future__ import annotations

import argparse

from ..families.sampling import SAMPLERS, resolve_sampler
from ..grids import GRIDS, GridSpec
from ..parallel import available_cores, check_workers
from ..spec import ACTIVATIONS, ARCHS, BN_GRADS, INITS, NetSpec

__all__ = ["UsageError", "Parser", "add_spec_options", "spec_from_args", "add_grid_options",
           "grid_from_args", "add_workers_option", "workers_from", "add_sampler_option",
           "sampler_from"]


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class Parser(argparse.ArgumentParser):
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
                   help="hidden layers (feedforward) or blocks (the other families), >= 1")
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
    g.add_argument("--alpha", type=float,
                   help="resnet, post-resnet: x <- alpha (x + beta F(x)) (default 1)")
    g.add_argument("--beta", type=float, help="resnet, post-resnet: branch scale (default 1)")
    g.add_argument("--branch-depth", type=int,
                   help="resnet, post-resnet: 1 or 2 layers per branch")
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


def add_workers_option(group):
    """Add ``--workers N``: worker processes, by default every core (what a user expects:
    each network draws from its own seeded stream, so the numbers never depend on the
    count, and more workers only finish sooner)."""
    group.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help=f"worker processes, 1-256 (default: all {available_cores()} cores; the numbers "
             "are the same for every N, since each network draws from its own seeded "
             "stream; each worker pays Python's and numba's start-up, seconds, once per "
             "run, so --workers 1 is quicker for runs of a few seconds)")


def workers_from(args, tasks=None):
    """``--workers`` checked (default :func:`gradsim.parallel.available_cores`), and at
    most ``tasks`` when given: idle workers would only pay their start-up."""
    workers = available_cores() if args.workers is None else check_workers(args.workers)
    return workers if tasks is None else max(1, min(workers, tasks))



def add_sampler_option(group):
    """Add ``--sampler {auto,explicit,gram}`` (default auto)."""
    group.add_argument(
        "--sampler", choices=SAMPLERS, default="auto",
        help="how networks are drawn: explicit weight matrices, or each layer from the Gram "
             "matrix of its input (gram: the same law for Gaussian weights, forward mode "
             "only, far cheaper for wide nets on few points); auto (default) takes the "
             "cheaper where gram applies")


def sampler_from(args, spec, points, mode="forward"):
    """The sampler ``--sampler`` resolves to; a ``ValueError`` naming the option where
    ``gram`` does not apply (before anything is computed or written)."""
    try:
        return resolve_sampler(spec, points, mode, args.sampler)
    except ValueError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise ValueError(f"--sampler {args.sampler} does not apply: {reason}") from None
