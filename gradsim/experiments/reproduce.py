"""Run experiments end to end: results files, figures, and the claims report.

``reproduce(out_dir, ...)`` runs the registry's experiments in order and writes::

    out_dir/results/NAME.npz     numbers (gradsim.experiments.base.save_results)
    out_dir/figures/NAME.png     figure, and NAME.pdf
    out_dir/report.md            one row per reproduction target, figures linked
    out_dir/report.html          the same, self-contained (figures embedded)
    out_dir/explore.html         the interactive page (``gradsim explore``), linked from
                                 the report, when Bokeh (the ``explore`` extra) is there
                                 and every experiment runs (no ``only``)

Each file is written atomically as soon as it is ready (an experiment's results file,
then its figures), so an interrupted run leaves every finished experiment's files intact
(:class:`Interrupted` says which) and **the same command resumes it**:

* An experiment is *finished* when ``results/NAME.npz`` is a readable results file of
  that experiment whose resolved parameters (leaving out the module's ``RUN_SETTINGS``,
  which never change a number), quick flag, versions (gradsim, Python, NumPy, SciPy,
  numba, matplotlib: :func:`~gradsim.experiments.base.versions`) and code checksum
  (SHA-256 of the package source, :func:`~gradsim.experiments.base.code_checksum`) are
  this run's, and whose numbers its ``claims`` can read.  It is *reused*: not
  recomputed, its claims read from the file, its figures kept if both are at least as
  new as the results file (else redrawn from the results).  The log says ``reused``.
* A results file of another code version or numerical stack, or one that cannot be read
  (truncated, say), is stale: the experiment is recomputed and the file replaced; the
  log says why.
* A results file of the same experiment under other parameters or the other quick flag
  is finished work of another setting: ``reproduce`` refuses (``ValueError``, before
  anything is written) rather than replace it, unless ``force``.
* The report is written at the end, from the results.  An existing report is replaced
  without ``force`` only if ``reproduce`` wrote it for the same experiments and quick
  flag (its last line records them), so a rerun of a finished directory reuses
  everything and rewrites the same report in seconds.
* The page ``explore.html`` is built with the quick or default
  :class:`~gradsim.explore.data.ExploreSettings`, before the report that links it.  A page
  whose stamp (:func:`gradsim.explore.write.read_stamp`) records this run's settings and
  code is reused; one gradsim wrote otherwise is replaced; a file gradsim did not write is
  refused without ``force``, like a foreign report.
* ``force=True`` recomputes everything and replaces what is there.

A run holds ``out_dir/.reproduce.lock`` (an advisory ``flock``, released by the kernel
if the process dies), so a second run into the same directory at the same time is
refused.  Holding it, and before anything else is written, the run removes what an
interrupted write left behind (:func:`gradsim.util.atomic_write`'s temporary files,
``TMP_PREFIX`` + 12 hex digits + ``.tmp``, regular files only, nothing else) from
``out_dir``, ``results/`` and ``figures/``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time

from .. import experiments, work
from ..explore.write import EXTRA_HINT
from ..figures import save_figure
from ..parallel import check_workers
from ..util import check_writable_dir, locked, remove_temporaries
from .base import (
    check_results,
    code_checksum,
    load_results,
    read_with,
    resolve,
    save_results,
    versions,
)
from .common import run_settings
from .report import read_report_stamp, write_report

__all__ = ["reproduce", "run_one", "TqdmProgress", "Interrupted", "LOCK"]

_FIGURES = ("png", "pdf")
#: The lock a run holds in its output directory.
LOCK = ".reproduce.lock"
#: The interactive page a full run writes beside the report.
PAGE = "explore.html"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`reproduce`; ``saved`` lists the experiments whose files exist."""

    def __init__(self, saved, out_dir):
        super().__init__(f"interrupted; saved {', '.join(saved) or 'nothing'} in {out_dir}; "
                         "the same command resumes")
        self.saved, self.out_dir = saved, out_dir


class TqdmProgress:
    """Progress bars (tqdm) on stderr; silent when ``quiet`` or stderr is not a terminal."""

    def __init__(self, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.disable = quiet or not getattr(self.stream, "isatty", lambda: False)()

    def stage(self, label, total):
        """A callback ``tick(done)`` for one stage of ``total`` steps."""
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=label, disable=self.disable, leave=False,
                   file=self.stream, dynamic_ncols=True)

        def tick(done, total=None):
            bar.update(done - bar.n)
            if done >= bar.total:
                bar.close()

        return tick


def _stamp(res, quick, seconds):
    """What a results file records of its run: versions, code checksum, quick, time.

    The code checksum is stored under ``checksum``, a key the cross-revision number check
    (``tests/same_numbers.py``) leaves out, as it must: it differs between revisions.
    """
    res.meta |= {"versions": versions(), "checksum": code_checksum(), "quick": bool(quick),
                 "seconds": seconds}
    return res


def _run(module, params, quick, progress):
    t0 = time.perf_counter()
    with work.counting() as tally:
        res = module.run(params, progress)
    res.meta["work"] = dict(tally)
    return _stamp(res, quick, time.perf_counter() - t0)


def run_one(name, quick=False, overrides=None, progress=None, workers=1):
    """Resolve parameters and run experiment ``name``; returns its Results.

    ``workers`` processes compute the networks (:func:`gradsim.experiments.common.
    run_settings`); the numbers do not depend on it.
    """
    module = experiments.get(name)
    params = resolve(module, quick, overrides)
    with run_settings(workers):
        return _run(module, params, quick, progress or TqdmProgress(quiet=True))


def _locked(out_dir):
    """Hold ``out_dir/.reproduce.lock`` (:func:`gradsim.util.locked`)."""
    return locked(out_dir, LOCK, "reproduce")


def _check_out(out_dir):
    """Fail before anything is written unless ``out_dir`` (and its ``results/`` and
    ``figures/``) can be made and written."""
    path = os.path.abspath(out_dir)
    for p in (path, os.path.join(path, "results"), os.path.join(path, "figures")):
        if os.path.lexists(p) and not os.path.isdir(p):
            raise ValueError(f"out: {p!r} exists and is not a directory")
        if os.path.isdir(p):
            check_writable_dir(p)
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise ValueError(f"out: cannot create {out_dir!r}: {parent!r} is not a directory")
        check_writable_dir(parent)


def _comparable(module, params):
    """Parameters as a results file stores them (JSON), without the run settings."""
    skip = set(getattr(module, "RUN_SETTINGS", ()))
    return {k: v for k, v in json.loads(json.dumps(params)).items() if k not in skip}


def _inspect(module, path, params, quick):
    """What to do with experiment ``module``'s results file: ``("reuse", results,
    claims)``, ``("compute", reason)`` (reason None: no file) or ``("conflict", why)``."""
    if not os.path.lexists(path):
        return ("compute", None)
    if not os.path.isfile(path):
        return ("conflict", "is not a regular file")
    try:
        res = load_results(path)
    except ValueError as exc:
        return ("compute", f"its results file was unreadable: {exc}")
    meta = res.meta
    if res.name != module.NAME:
        return ("conflict", f"holds results of experiment {res.name!r}")
    old = {k: v for k, v in res.params.items()
           if k not in set(getattr(module, "RUN_SETTINGS", ()))}
    new = _comparable(module, params)
    # parameters both know, with other values: another setting (a parameter only one
    # knows was added or removed by another code version, which the next check finds)
    diff = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    if meta.get("quick") is not bool(quick):
        diff.append("quick")
    if diff:
        return ("conflict", f"was computed with other {', '.join(diff)}")
    stale = _stale(meta)
    if stale:
        return ("compute", f"its results came from other code ({stale})")
    if set(old) != set(new):
        return ("compute", "its results file has other parameter names")
    try:
        check_results(res, path)
        claims = read_with(module.claims, res, path)
    except ValueError as exc:
        return ("compute", f"its results file did not fit the experiment: {exc}")
    return ("reuse", res, claims)


def _stale(meta):
    """How the code that wrote a results file differs from this one ('' if it does not)."""
    old = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    now = versions()
    out = [f"{k} {old.get(k, '?')} -> {v}" for k, v in now.items() if old.get(k) != v]
    if not out and old != now:
        out.append("other versions")
    if meta.get("checksum") != code_checksum():
        out.append("gradsim source changed")
    return ", ".join(out)


def _fresh_figures(stem, results_path):
    """The figure paths of ``stem`` if each exists and is at least as new as the results
    file (drawn from it: a run writes the results, then the figures), else None."""
    newest = os.stat(results_path).st_mtime_ns
    paths = [f"{stem}.{ext}" for ext in _FIGURES]
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < newest:
            return None
    return paths


def reproduce(out_dir, quick=False, only=None, overrides=None, progress=None, force=False,
              log=None, workers=1, page=None):
    """Run experiments and write results, figures and the report into ``out_dir``,
    reusing the experiments an earlier run of the same command finished.

    Resuming (see the module docstring for the rules): an experiment whose results file
    in ``out_dir`` matches this run's parameters, quick flag, versions and code checksum
    is reused, not recomputed; stale or unreadable results are recomputed; results of
    other parameters are refused unless ``force``.  The report is written at the end.

    Parameters
    ----------
    out_dir : str
    quick : bool
        Each experiment's quick setting (seconds each) instead of the paper's sizes.
    only : list of str, optional
        Experiment names (default: all, in registry order).
    overrides : dict, optional
        ``{experiment: {key: value}}`` parameter overrides.
    progress : object with ``stage(label, total)``, optional
    force : bool
        Recompute everything, replacing the results, figures and report in ``out_dir``.
    log : callable, optional
        Called with one line per experiment (its time, or ``reused``) and per removed
        leftover.
    workers : int
        Processes that compute the networks (1 ... 256; ``gradsim reproduce`` passes all
        cores).  The numbers do not depend on it, so it is not part of the resume check.
    page : bool, optional
        Build ``explore.html``: by default when Bokeh is installed and ``only`` is not
        given; ``False`` never; ``True`` always (ValueError without Bokeh).

    Returns
    -------
    dict
        ``entries`` (name -> (Results, claims, figure paths)), ``report`` paths,
        ``seconds``, ``skipped`` (name -> reason), ``reused`` and ``computed`` (names).

    Raises
    ------
    ValueError
        Bad names, parameters or workers, an unwritable ``out_dir``, or (without
        ``force``) results or a report of another setting in ``out_dir``; nothing is
        written.
    Interrupted
        On Ctrl-C; the finished experiments' files are kept.
    """
    workers = check_workers(workers)
    names = list(only) if only else list(experiments.NAMES)
    for n in names:
        experiments.get(n)  # unknown names fail before anything is written
    skipped = {}
    for n in list(names):
        missing = experiments.missing_requirements(n)
        if missing:
            hint = ", ".join(f"{m} (pip install -e \".[{extra}]\")" for m, extra in missing)
            if only:
                raise ValueError(f"experiment {n} needs {hint}")
            skipped[n] = f"needs {hint}"
            names.remove(n)
            if log is not None:
                log(f"{n}: skipped, {skipped[n]}")
    overrides = overrides or {}
    for n in overrides:
        if n not in names:
            raise ValueError(f"overrides for {n!r}, which is not being run")
    modules = {n: experiments.get(n) for n in names}
    params = {n: resolve(modules[n], quick, overrides.get(n)) for n in names}
    _check_out(out_dir)
    if page not in (None, True, False):
        raise ValueError(f"page must be None, True or False, got {page!r}")
    asked, want = page, (not only) if page is None else page
    page = _page_settings(quick) if want else None
    if want and page is None:
        if asked is True:
            raise ValueError(f"the page needs Bokeh: {EXTRA_HINT}")
        skipped["explore.html"] = f"needs Bokeh ({EXTRA_HINT})"
        if log is not None:
            log(f"explore.html: skipped, {skipped['explore.html']}")
    _plan(out_dir, names, modules, params, quick, force)  # refusals before any write
    _plan_page(out_dir, page, force)
    os.makedirs(out_dir, exist_ok=True)
    with _locked(out_dir):
        return _reproduce(out_dir, names, modules, params, quick, skipped, progress, force,
                          log, workers, page)


def _page_settings(quick):
    """The explore page's settings for this run, or None without Bokeh."""
    from ..explore.data import QUICK, ExploreSettings
    from ..explore.write import require_bokeh

    try:
        require_bokeh()
    except ImportError:
        return None
    return QUICK if quick else ExploreSettings()


def _plan_page(out_dir, page, force):
    """``ValueError`` if the page would replace an ``explore.html`` gradsim did not write."""
    from ..explore.write import read_stamp

    path = os.path.join(out_dir, PAGE)
    if page is not None and os.path.lexists(path) and not force and read_stamp(path) is None:
        raise ValueError(f"{out_dir} already holds an {PAGE} that gradsim did not write; use "
                         "--force to replace it, or another --out")


def _page(out_dir, page, quick, force, log, workers):
    """Build (or reuse) ``out_dir/explore.html``; its name, or None when not built."""
    from ..explore.write import read_stamp, stamp, write_page

    if page is None:
        return None
    path = os.path.join(out_dir, PAGE)
    t0 = time.perf_counter()
    if not force and read_stamp(path) == json.loads(json.dumps(stamp(page, code_checksum()))):
        what = "reused (built by an earlier run)"
    else:
        write_page(path, page, quick=quick, force=True, workers=workers,
                   checksum=code_checksum(),
                   command=f"gradsim explore --out {PAGE}" + (" --quick" if quick else ""))
        what = f"{time.perf_counter() - t0:.1f} s"
    if log is not None:
        log(f"{PAGE}: {what}")
    return PAGE


def _plan(out_dir, names, modules, params, quick, force):
    """``{name: _inspect(...)}`` for the run; ``ValueError`` if it would replace results or
    a report of another setting (unless ``force``)."""
    paths = {n: os.path.join(out_dir, "results", f"{n}.npz") for n in names}
    plan = {n: ("compute", None) if force else _inspect(modules[n], paths[n], params[n], quick)
            for n in names}
    conflicts = [f"{n} ({plan[n][1]})" for n in names if plan[n][0] == "conflict"]
    if conflicts:
        raise ValueError(f"{out_dir} holds results of another setting: "
                         f"{'; '.join(conflicts)}; use --force (force=True) to replace them, "
                         "or another --out")
    report_md = os.path.join(out_dir, "report.md")
    if os.path.lexists(report_md) and not force:
        stamp = read_report_stamp(report_md)
        if stamp is None:
            raise ValueError(f"{out_dir} already holds a report that reproduce cannot "
                             "read back; use --force to replace it")
        if (sorted(stamp["experiments"]) != sorted(names)
                or stamp["quick"] is not bool(quick)):
            raise ValueError(f"{out_dir} already holds a report of other experiments or "
                             f"settings ({', '.join(stamp['experiments'])}, quick "
                             f"{str(stamp['quick']).lower()}); use --force to replace it, "
                             "or another --out")
    return plan


def _reproduce(out_dir, names, modules, params, quick, skipped, progress, force, log,
               workers, page=None):
    """:func:`reproduce` once its input is checked, holding the lock (the plan is made
    again: another run may have finished in between)."""
    plan = _plan(out_dir, names, modules, params, quick, force)
    results_dir = os.path.join(out_dir, "results")
    figures_dir = os.path.join(out_dir, "figures")
    paths = {n: os.path.join(results_dir, f"{n}.npz") for n in names}
    for d in (out_dir, results_dir, figures_dir):
        os.makedirs(d, exist_ok=True)
        for name in remove_temporaries(d):
            if log is not None:
                log(f"removed {os.path.join(d, name)}, left by an interrupted run")
    progress = progress or TqdmProgress(quiet=True)
    t_all = time.perf_counter()
    entries, saved, reused, computed = {}, [], [], []
    try:
        with run_settings(workers):
            for n in names:
                t0 = time.perf_counter()
                stem = os.path.join(figures_dir, n)
                if plan[n][0] == "reuse":
                    _, res, claims = plan[n]
                    figs = _fresh_figures(stem, paths[n])
                    what = "reused (finished by an earlier run)"
                    if figs is None:
                        try:
                            fig = read_with(modules[n].plot, res, paths[n])
                        except ValueError as exc:
                            plan[n] = ("compute", f"its figure could not be drawn: {exc}")
                        else:
                            figs = save_figure(fig, stem)
                            what = "reused results; figures redrawn from them"
                if plan[n][0] == "reuse":
                    reused.append(n)
                else:
                    res = _run(modules[n], params[n], quick, progress)
                    save_results(paths[n], res)
                    figs = save_figure(modules[n].plot(res), stem)
                    claims = modules[n].claims(res)
                    what = f"{time.perf_counter() - t0:.1f} s"
                    if plan[n][1]:
                        what += f" (recomputed: {plan[n][1]})"
                    computed.append(n)
                saved.append(n)
                entries[n] = (res, claims, figs)
                if log is not None:
                    log(f"{n}: {what}")
            page = _page(out_dir, page, quick, force, log, workers)
        seconds = time.perf_counter() - t_all
        report = write_report(out_dir, entries, quick=quick, seconds=seconds,
                              skipped=skipped, reused=reused, page=page)
    except KeyboardInterrupt:
        raise Interrupted(saved, out_dir) from None
    return {"entries": entries, "report": report, "seconds": seconds, "skipped": skipped,
            "reused": reused, "computed": computed}
