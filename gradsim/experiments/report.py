"""The claims report: ``report.md`` and a self-contained ``report.html``.

One row per reproduction target (claim, setting, theory, estimate with standard error,
z or relative error, verdict); each verdict is computed by the experiment's ``claims``
from the numbers in its results, never written by hand.  The last line of ``report.md``
is an HTML comment (invisible when rendered) recording the experiments and the quick
flag, which ``reproduce`` reads back (:func:`read_report_stamp`) to decide whether a
rerun may replace the report.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
import re
import textwrap

from ..util import atomic_write
from . import get
from .base import versions

__all__ = ["write_report", "read_report_stamp", "claim_rows", "sort_key", "format_run",
           "format_claims"]

_STAMP = "<!-- gradsim-reproduce "

_COLUMNS = ("target", "claim", "setting", "theory", "estimate", "score", "verdict")


def sort_key(claim):
    """T1 < T2 < ... < T15 < other targets."""
    m = re.fullmatch(r"T(\d+)", claim.target)
    return (0, int(m.group(1)), "") if m else (1, 0, claim.target)


def claim_rows(entries):
    """All claims of ``entries`` (name -> (results, claims, figures)), in target order."""
    rows = [c for _, claims, _ in entries.values() for c in claims]
    return sorted(rows, key=sort_key)


def format_run(results, width=70):
    """Plain text: the experiment's title, wall time and parameters (for scripts)."""
    lines = [get(results.name).TITLE,
             f"ran in {results.meta.get('seconds', 0):.1f} s with parameters:"]
    lines += [textwrap.fill(f"{k} = {v}", width, initial_indent="    ",
                            subsequent_indent="        ") for k, v in results.params.items()]
    return "\n".join(lines)


def format_claims(claims, width=70):
    """Plain text: each claim with its verdict and fields (for scripts and terminals)."""
    if not claims:
        return "No claims of its own: this figure illustrates claims checked elsewhere."
    lines = []
    for c in claims:
        lines.append(textwrap.fill(f"{c.target} [{c.verdict}] {c.claim}", width,
                                   subsequent_indent="    "))
        for field in ("setting", "theory", "estimate", "score", "criterion"):
            text = getattr(c, field)
            if text:
                lines.append(textwrap.fill(f"{field}: {text}", width, initial_indent="    ",
                                           subsequent_indent="        "))
    return "\n".join(lines)


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _seeds(entries):
    return {n: r.params.get("seed") for n, (r, _, _) in entries.items()}


def read_report_stamp(path):
    """``{"experiments": [...], "quick": bool}`` from the last line of a ``report.md``
    written by :func:`write_report`, or None if there is none (or it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            lines = fh.read().decode("utf-8", "replace").rstrip().splitlines()
    except OSError:
        return None
    last = lines[-1] if lines else ""
    if not (last.startswith(_STAMP) and last.endswith(" -->")):
        return None
    try:
        stamp = json.loads(last[len(_STAMP):-4])
    except ValueError:
        return None
    if (not isinstance(stamp, dict) or not isinstance(stamp.get("quick"), bool)
            or not isinstance(stamp.get("experiments"), list)
            or not all(isinstance(n, str) for n in stamp["experiments"])):
        return None
    return {"experiments": stamp["experiments"], "quick": stamp["quick"]}


def write_report(out_dir, entries, quick=False, seconds=None, skipped=None, reused=(),
                 page=None):
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns their paths.

    ``skipped`` maps experiments that were not run to the reason (a missing extra);
    ``reused`` names the experiments whose results an earlier run computed; ``page`` is the
    interactive page's file name in ``out_dir`` (``gradsim explore``), linked at the top.
    """
    rows = claim_rows(entries)
    vers = versions()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    setting = "quick" if quick else "default (the paper's sizes)"
    counts = {v: sum(r.verdict == v for r in rows) for v in ("holds", "fails", "info")}
    summary = (f"{counts['holds']} hold, {counts['fails']} fail, {counts['info']} "
               f"informational")
    if skipped:
        summary += "; not run: " + "; ".join(f"{n}, {why}" for n, why in skipped.items())
    md = ["# gradsim reproduction report", "",
          f"Setting: {setting}. Generated {when}"
          + (f" in {seconds:.0f} s." if seconds is not None else "."), "",
          "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".", "",
          "Seeds: " + ", ".join(f"{n} {s}" for n, s in _seeds(entries).items()) + ".", ""]
    if reused:
        md += [_reused_line(reused), ""]
    if page:
        md += [f"Interactive page: [{page}]({page}) ({_PAGE_NOTE}).", ""]
    md += [f"## Claims ({summary})", "",
          "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        d = r.to_dict()
        md.append("| " + " | ".join(_md_cell(d[c]) for c in _COLUMNS) + " |")
    md += ["", "Criteria: " + "; ".join(f"{r.target}: {r.criterion}" for r in rows
                                         if r.criterion) + ".", ""]
    head, table = time_table(entries, reused)
    md += ["## Where the time goes", "", _TIME_NOTE, "", "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
    md += ["| " + " | ".join(row) + " |" for row in table] + [""]
    for name, (res, _, figs) in entries.items():
        module = get(name)
        png = next((f for f in figs if f.endswith(".png")), None)
        md += [f"## {name}: {module.TITLE}", ""]
        if png:
            md += [f"![{name}]({os.path.relpath(png, out_dir)})", ""]
        md += ["Parameters: " + ", ".join(f"{k}={v}" for k, v in res.params.items())
               + f". Wall time {res.meta.get('seconds', 0):.1f} s"
               + (" (an earlier run)." if name in reused else "."), ""]
    md.append(_STAMP + json.dumps({"experiments": list(entries), "quick": bool(quick)})
              + " -->")
    md_path = os.path.join(out_dir, "report.md")
    with atomic_write(md_path) as fh:
        fh.write("\n".join(md).encode())
    html_path = os.path.join(out_dir, "report.html")
    with atomic_write(html_path) as fh:
        fh.write(_html(entries, rows, setting, when, seconds, vers, summary, reused,
                       page).encode())
    return md_path, html_path


_TIME_NOTE = ("Each experiment's wall time, and its networks (simulated, cut into pieces or "
              "trained) and Gaussians drawn (from the parameter counts), each as a share "
              "of the run's total.")


def time_table(entries, reused=()):
    """``(header, rows)`` of the table of where a run's time went: per experiment its wall
    time, networks and Gaussians (``meta['work']``), each with its share of the total;
    cells as text, a last row of totals."""
    head = ["experiment", "wall time", "share", "networks", "share", "Gaussians", "share"]
    vals = []
    for name, (res, _, _) in entries.items():
        w = res.meta.get("work") or {}
        vals.append((name + (" (earlier run)" if name in reused else ""),
                     float(res.meta.get("seconds", 0.0)), int(w.get("networks", 0)),
                     float(w.get("gaussians", 0.0))))
    tot = [sum(v[k] for v in vals) for k in (1, 2, 3)]

    def share(x, total):
        return f"{100 * x / total:.0f}%" if total > 0 else "-"

    rows = [[n, f"{t:.1f} s", share(t, tot[0]), f"{k:,}", share(k, tot[1]),
             f"{g / 1e6:,.1f} M", share(g, tot[2])] for n, t, k, g in vals]
    rows.append(["total", f"{tot[0]:.1f} s", "100%", f"{tot[1]:,}", "100%",
                 f"{tot[2] / 1e6:,.1f} M", "100%"])
    return head, rows


def _reused_line(reused):
    return (f"Reused from an earlier run (same parameters, quick flag, versions and code): "
            f"{', '.join(reused)}.")


_PAGE_NOTE = ("df/dx against depth for five families, with a depth slider; one offline "
              "file, open it in a browser")


def _html(entries, rows, setting, when, seconds, vers, summary, reused=(), page=None):
    e = html.escape
    css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;"
           "padding:4px 6px;vertical-align:top}th{background:#eee}"
           ".holds{background:#e3f4e3}.fails{background:#f8dcdc}.info{background:#eef}"
           "img{max-width:100%}")
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           "<title>gradsim reproduction report</title>", f"<style>{css}</style></head><body>",
           "<h1>gradsim reproduction report</h1>",
           f"<p>Setting: {e(setting)}. Generated {e(when)}"
           + (f" in {seconds:.0f} s." if seconds is not None else ".") + "</p>",
           "<p>Versions: " + e(", ".join(f"{k} {v}" for k, v in vers.items())) + ".</p>",
           "<p>Seeds: " + e(", ".join(f"{n} {s}" for n, s in _seeds(entries).items()))
           + ".</p>", f"<p>{e(_reused_line(reused))}</p>" if reused else "",
           (f"<p>Interactive page: <a href='{e(page)}'>{e(page)}</a> ({e(_PAGE_NOTE)}).</p>"
            if page else ""),
           f"<h2>Claims ({e(summary)})</h2>", "<table><tr>"
           + "".join(f"<th>{c}</th>" for c in _COLUMNS) + "</tr>"]
    for r in rows:
        d = r.to_dict()
        out.append(f"<tr class='{r.verdict}' title='{e(r.criterion)}'>"
                   + "".join(f"<td>{e(str(d[c]))}</td>" for c in _COLUMNS) + "</tr>")
    out.append("</table>")
    head, table = time_table(entries, reused)
    out += ["<h2>Where the time goes</h2>", f"<p>{e(_TIME_NOTE)}</p>", "<table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table]
    out.append("</table>")
    for name, (res, _, figs) in entries.items():
        out.append(f"<h2>{e(name)}: {e(get(name).TITLE)}</h2>")
        png = next((f for f in figs if f.endswith(".png")), None)
        if png:
            with open(png, "rb") as fh:
                data = base64.b64encode(fh.read()).decode()
            out.append(f"<img alt='{e(name)}' src='data:image/png;base64,{data}'>")
        out.append("<p>Parameters: " + e(", ".join(f"{k}={v}" for k, v in res.params.items()))
                   + f". Wall time {res.meta.get('seconds', 0):.1f} s"
                   + (" (an earlier run)." if name in reused else ".") + "</p>")
    out.append("</body></html>")
    return "\n".join(out)
