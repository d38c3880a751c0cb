"""Run experiments end to end: results files, figures, and the claims report.

``reproduce(out_dir, ...)`` runs the registry's experiments in order and writes::

    out_dir/results/NAME.npz     numbers (gradsim.experiments.base.save_results)
    out_dir/figures/NAME.png     figure, and NAME.pdf
    out_dir/report.md            one row per reproduction target, figures linked
    out_dir/report.html          the same, self-contained (figures embedded)

Each file is written atomically as soon as it is ready, so an interrupted run leaves
every finished experiment's files intact; :class:`Interrupted` says which.
"""

from __future__ import annotations

import os
import sys
import time

from .. import experiments
from ..figures import save_figure
from .base import resolve, save_results, versions
from .report import write_report

__all__ = ["reproduce", "run_one", "TqdmProgress", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`reproduce`; ``saved`` lists the experiments whose files exist."""

    def __init__(self, saved, out_dir):
        super().__init__(f"interrupted; saved {', '.join(saved) or 'nothing'} in {out_dir}")
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


def run_one(name, quick=False, overrides=None, progress=None):
    """Resolve parameters and run experiment ``name``; returns its Results."""
    module = experiments.get(name)
    params = resolve(module, quick, overrides)
    t0 = time.perf_counter()
    res = module.run(params, progress or TqdmProgress(quiet=True))
    res.meta |= {"versions": versions(), "quick": bool(quick),
                 "seconds": time.perf_counter() - t0}
    return res


def reproduce(out_dir, quick=False, only=None, overrides=None, progress=None, force=False,
              log=None):
    """Run experiments and write results, figures and the report into ``out_dir``.

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
        Replace an existing report in ``out_dir``.
    log : callable, optional
        Called with one line per finished experiment.

    Returns
    -------
    dict
        ``entries`` (name -> (Results, claims, figure paths)), ``report`` paths and
        ``seconds``.
    """
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
    if os.path.exists(os.path.join(out_dir, "report.md")) and not force:
        raise ValueError(f"{out_dir} already holds a report; use --force to replace it")
    os.makedirs(os.path.join(out_dir, "results"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    progress = progress or TqdmProgress(quiet=True)
    t_all = time.perf_counter()
    entries, saved = {}, []
    try:
        for n in names:
            t0 = time.perf_counter()
            res = modules[n].run(params[n], progress)
            res.meta |= {"versions": versions(), "quick": bool(quick),
                         "seconds": time.perf_counter() - t0}
            save_results(os.path.join(out_dir, "results", f"{n}.npz"), res)
            fig = modules[n].plot(res)
            figs = save_figure(fig, os.path.join(out_dir, "figures", n))
            saved.append(n)
            entries[n] = (res, modules[n].claims(res), figs)
            if log is not None:
                log(f"{n}: {time.perf_counter() - t0:.1f} s")
    except KeyboardInterrupt:
        raise Interrupted(saved, out_dir) from None
    seconds = time.perf_counter() - t_all
    report = write_report(out_dir, entries, quick=quick, seconds=seconds, skipped=skipped)
    return {"entries": entries, "report": report, "seconds": seconds, "skipped": skipped}
