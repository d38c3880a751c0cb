"""``gradsim explore``: the classroom page, one self-contained offline HTML file."""

from __future__ import annotations

import dataclasses

from ..explore.data import QUICK, ExploreSettings
from .common import UsageError, add_workers_option, workers_from

__all__ = ["add_command", "settings_from"]


def add_command(sub):
    """Add ``explore`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "explore", help="an interactive page for the classroom -> one offline .html",
        description="Compute df/dx of random ReLU networks (five families, every depth up "
                    "to --depth) with gradsim and write one self-contained HTML page (Bokeh, "
                    "the 'explore' extra; inline resources, works offline) with a family "
                    "selector, a depth slider and linked views beside brown and white noise "
                    "and the exact infinite-width theory.")
    p.add_argument("--out", required=True, help="output .html file")
    p.add_argument("--quick", action="store_true",
                   help="small sizes that build in seconds (depth 6, width 16, 4 networks)")
    p.add_argument("--depth", type=int, help="largest depth, 1-200 (default 50; quick 6)")
    p.add_argument("--width", type=int, help="hidden width, 1-1024 (default 64; quick 16)")
    p.add_argument("--nets", type=int,
                   help="networks per family behind each error bar, 2-1000 (default 64; "
                        "quick 4)")
    p.add_argument("--seed", type=int, help="root seed >= 0 (default 0)")
    add_workers_option(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_explore)


def settings_from(args):
    """The :class:`~gradsim.explore.data.ExploreSettings` the flags ask for (ValueError
    naming the flag's parameter when out of range)."""
    base = QUICK if args.quick else ExploreSettings()
    change = {k: getattr(args, k) for k in ("depth", "width", "nets", "seed")
              if getattr(args, k) is not None}
    if "nets" in change:  # fewer nets than the base shows: show them all (nets is checked first)
        change["shown"] = max(1, min(base.shown, change["nets"]))
        change["kink_nets"] = min(base.kink_nets, change["shown"])
    names = {"depth": "--depth", "width": "--width", "nets": "--nets", "seed": "--seed"}
    try:
        return dataclasses.replace(base, theory_depths=None, **change)
    except ValueError as exc:
        msg = str(exc)
        for k, flag in names.items():
            if msg.startswith(k + " "):
                msg = flag + msg[len(k):]
        raise ValueError(msg) from None


def _cmd_explore(args):
    from ..experiments.base import code_checksum
    from ..explore.write import require_bokeh, write_page

    settings = settings_from(args)
    try:
        require_bokeh()
    except ImportError as exc:
        raise UsageError(f"gradsim: error: {exc}") from None
    say = (lambda msg: None) if args.quiet else _stderr
    info = write_page(args.out, settings, quick=args.quick, force=args.force, progress=say,
                      workers=workers_from(args, 5 * settings.nets), checksum=code_checksum())
    if not args.quiet:
        print(f"wrote {info['path']}: {info['bytes'] / 2**20:.2f} MiB, built in "
              f"{info['seconds']:.1f} s (data {info['seconds_data']:.1f} s); open it in a "
              "browser, no server or network needed")
    return 0


def _stderr(msg):
    import sys

    print(msg, file=sys.stderr, flush=True)
