"""``gradsim list | run | plot | reproduce``: the experiments on the command line.

``run`` and ``reproduce`` take ``--workers N`` (default: every core this process may use):
the Monte Carlo's networks are computed in N processes with one thread each, and each
network draws from its own seeded stream, so the numbers are the same for every N.
"""

from __future__ import annotations

import os
import sys

from .. import experiments
from ..experiments.base import (
    check_results,
    load_results,
    parse_overrides,
    read_with,
    save_results,
)
from ..experiments.reproduce import Interrupted, TqdmProgress, reproduce, run_one
from ..figures import save_figure
from ..parallel import shutdown
from ..util import check_output
from .common import add_workers_option, workers_from

__all__ = ["add_commands"]

_FIG_EXTS = ("png", "pdf", "svg")


def add_commands(sub):
    """Add the experiment commands to the subparsers ``sub``."""
    ls = sub.add_parser("list", help="list the experiments",
                        description="List the experiments of gradsim reproduce.")
    ls.set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="run one experiment -> results .npz",
                         description="Run one experiment and write its results file.")
    run.add_argument("name", help="experiment name (see gradsim list)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter (repeatable; lists as 1,2,4)")
    run.add_argument("--quick", action="store_true", help="the quick setting")
    run.add_argument("--out", required=True, help="output results .npz")
    run.add_argument("--force", action="store_true", help="overwrite an existing file")
    run.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    add_workers_option(run)
    run.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="figure from a results file",
                        description="Draw an experiment's figure from its results file.")
    pl.add_argument("results", help="results .npz from gradsim run or reproduce")
    pl.add_argument("--out", required=True, help="figure file (.png, .pdf or .svg)")
    pl.add_argument("--force", action="store_true", help="overwrite an existing file")
    pl.set_defaults(func=_cmd_plot)

    rep = sub.add_parser("reproduce", help="every figure of the paper and a claims report",
                         description="Run the experiments, write results, PNG and PDF "
                                     "figures, report.md and report.html into --out.")
    rep.add_argument("--quick", action="store_true",
                     help="small sizes (well under a minute on 2 cores) instead of the "
                          "paper's")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    rep.add_argument("--set", action="append", default=[], metavar="NAME.KEY=VALUE",
                     help="override a parameter of one experiment (repeatable)")
    rep.add_argument("--out", required=True,
                     help="output directory; rerunning the same command resumes: "
                          "experiments whose results there match the parameters and code "
                          "are reused, the rest computed")
    rep.add_argument("--force", action="store_true",
                     help="recompute everything, replacing what --out holds (also results "
                          "and a report of other settings, which are otherwise refused)")
    rep.add_argument("--no-page", action="store_true",
                     help="do not build explore.html, the interactive page (built by default "
                          "when Bokeh, the 'explore' extra, is installed and no --only)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    add_workers_option(rep)
    rep.set_defaults(func=_cmd_reproduce)


def _cmd_list(args):
    for name, title in experiments.describe():
        print(f"{name:16} {title}")
    return 0


def _progress(quiet):
    return TqdmProgress(quiet=quiet)


def _cmd_run(args):
    module = experiments.get(args.name)
    workers = workers_from(args)
    out = check_output(args.out, args.force)
    try:
        res = run_one(module.NAME, args.quick, parse_overrides(args.set),
                      _progress(args.quiet), workers=workers)
    finally:
        shutdown()  # the command is done with its worker processes
    save_results(out, res)
    if not args.quiet:
        print(f"wrote {out} ({res.meta['seconds']:.1f} s)")
    return 0


def _cmd_plot(args):
    ext = os.path.splitext(args.out)[1].lstrip(".").lower()
    if ext not in _FIG_EXTS:
        raise ValueError(f"out must end in one of .{', .'.join(_FIG_EXTS)}, got {args.out!r}")
    out = check_output(args.out, args.force, suffix=f".{ext}")
    res = load_results(args.results)
    module = check_results(res, args.results)
    read_with(module.claims, res, args.results)  # reads the arrays the report would
    fig = read_with(module.plot, res, args.results)
    save_figure(fig, os.path.splitext(out)[0], formats=(ext,))
    print(f"wrote {out}")
    return 0


def _nested_overrides(items):
    out = {}
    for key, value in parse_overrides(items).items():
        name, dot, param = key.partition(".")
        if not dot or not param:
            raise ValueError(f"--set takes NAME.KEY=VALUE, got {key}={value}")
        out.setdefault(name, {})[param] = value
    return out


def _cmd_reproduce(args):
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        res = reproduce(args.out, quick=args.quick, only=args.only,
                        overrides=_nested_overrides(args.set), progress=_progress(args.quiet),
                        force=args.force, log=log, workers=workers_from(args),
                        page=False if args.no_page else None)
    except Interrupted as exc:
        print(f"gradsim: {exc}", file=sys.stderr)
        return 130
    finally:
        shutdown()  # the command is done with its worker processes
    if not args.quiet:
        if res["reused"]:
            print(f"gradsim: reused {len(res['reused'])} finished experiments (same "
                  f"parameters and code; --force recomputes them): {', '.join(res['reused'])}"
                  + (f"; computed {', '.join(res['computed'])}" if res["computed"] else ""),
                  file=sys.stderr)
        rows = [c for _, claims, _ in res["entries"].values() for c in claims]
        held = sum(c.verdict == "holds" for c in rows)
        failed = [c.target for c in rows if c.verdict == "fails"]
        print(f"wrote {res['report'][0]} and {res['report'][1]} in {res['seconds']:.0f} s: "
              f"{held} claims hold" + (f", failing: {', '.join(failed)}" if failed else ""))
    return 0
