"""The ``gradsim`` command line: a thin shell over the library, holding no numerics.

Each command lives in its own module of :mod:`gradsim.cli`; errors in the input print
one line on stderr and exit with code 2; nothing is written unless the whole run
succeeds.
"""

from __future__ import annotations

import sys

from .._version import __version__
from . import experiments, explore, kinks, simulate, sweep, theory, train
from .common import Parser, UsageError

__all__ = ["main", "build_parser"]


def build_parser():
    """The argument parser of ``gradsim``."""
    parser = Parser(prog="gradsim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gradsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    experiments.add_commands(sub)
    train.add_command(sub)
    sweep.add_command(sub)
    simulate.add_command(sub)
    kinks.add_command(sub)
    theory.add_commands(sub)
    explore.add_command(sub)
    return parser


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
