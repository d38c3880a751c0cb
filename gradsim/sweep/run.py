"""Resumable parameter sweeps: a TOML file -> cells -> one results file per cell.

A sweep file names a base :class:`~gradsim.spec.NetSpec` (``[spec]``), a grid
(``[grid]``), axes (``[axes]``: NetSpec field -> list of values) whose Cartesian product
gives the cells, the networks per cell and the statistics and theories to keep
(``docs/sweeps.md`` lists every key).  :func:`load_sweep` validates all of it before
anything is written.  :func:`run_sweep` computes the missing cells, in process or on
Dask, writes each finished cell atomically as it arrives, and then a summary (CSV,
JSON) and one figure per statistic.  Rerunning resumes: cell files that match the sweep
are kept, the others are computed.

Cell ``c`` with spec ``S`` draws its networks from ``cell_seed(seed, S)``: a seed
spawned from the sweep seed and a hash of ``S`` alone, so a cell's numbers do not depend
on the other cells, on the order of the axes or their values, on the engine or on the
chunk size, bit for bit.  :func:`compute_cell` is a pure function of the cell, so Dask
may rerun it on another worker when one dies.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import time

import numpy as np

from ..compare import compare, predict
from ..montecarlo import iter_chunks
from ..stats import Estimate, Moments, Stream, acf_rows
from ..util import atomic_write, check_int
from .file import (
    _PAIR_STATS,
    _STYLES,
    FORMAT,
    MAX_CELLS,
    MAX_ENTRIES,
    STATISTICS,
    Cell,
    Sweep,
    SweepResult,
    _dumps,
    _mode,
    cell_seed,
    load_sweep,
    parse_sweep,
)

__all__ = ["Sweep", "Cell", "SweepResult", "STATISTICS", "load_sweep", "parse_sweep",
           "cell_seed", "compute_cell", "run_sweep", "sweep_status", "MAX_CELLS",
           "MAX_ENTRIES"]

CELL_FORMAT = "gradsim-sweep-cell-1"
INDEX, CELL_DIR, LOCK = "sweep.json", "cells", ".sweep.lock"


# --------------------------------------------------------------------------- one cell


def _pair_estimates(mom):
    """Variance, covariance and correlation from streamed sums of ``(xx, yy, xy)``.

    The same estimates, with the same delta-method standard error, as
    :func:`gradsim.compare.pair_statistics` of the kept gradients (to rounding).
    """
    n = mom.count
    a, b, c = mom.mean
    cov = mom.covariance / n
    ok = a > 0 and b > 0
    corr = c / math.sqrt(a * b) if ok else math.nan
    g = np.array([-0.5 * corr / a, -0.5 * corr / b, 1 / math.sqrt(a * b)]) if ok else None
    corr_se = float(np.sqrt(max(g @ cov @ g, 0.0))) if ok else math.nan
    return {"variance": Estimate(a, math.sqrt(cov[0, 0]), n),
            "covariance": Estimate(c, math.sqrt(cov[2, 2]), n),
            "correlation": Estimate(corr, corr_se, n)}


def _lag1_estimate(stream):
    if stream.count < 2:  # constant gradients (looks-linear): undefined
        return Estimate(math.nan, math.nan, stream.count)
    est = stream.estimate()
    return Estimate(est.value[1], est.se[1], est.n)


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _floats(a):
    """Nested lists of floats, null where not finite (the files are strict JSON)."""
    a = np.asarray(a, dtype=float)
    return [_floats(r) for r in a] if a.ndim > 1 else [_num(v) for v in a]


def _estimate_dict(est):
    return {"value": _num(est.value), "se": _num(est.se), "n": int(est.n)}


def _comparison(theory, est, name, label, theory_se=0.0):
    """A covered theory beside an estimate (z-score null when either is undefined)."""
    row = {"covered": True, "label": label, "theory": _num(theory),
           "theory_se": _num(theory_se)}
    if math.isfinite(float(est.value)) and math.isfinite(float(theory)):
        c = compare(theory, est, name, label, theory_se)
        return row | {"z": _num(c.z), "rel_error": _num(c.rel_error)}
    return row | {"z": None, "rel_error": None}


def _not_covered(reason):
    return {"covered": False, "reason": reason}


def _theory(model, cell_args, est, statistics):
    spec, grid, seed, pair, gp_nets = cell_args
    out = {}
    pts = grid.points_array()
    names = [s for s in statistics if s in _PAIR_STATS]
    if names:
        try:
            pred = predict(spec, model, pts[pair[0]], pts[pair[1]])
        except ValueError as exc:
            out |= {s: _not_covered(str(exc)) for s in names}
        else:
            out |= {s: _comparison(pred[s], est[s], s, pred["model"]) for s in names}
    if "lag1" in statistics:
        out["lag1"] = _lag1_theory(model, spec, grid, est["lag1"], gp_nets, seed)
    return out


def _lag1_theory(model, spec, grid, est, gp_nets, seed):
    """Expected lag-1 under the exact infinite-width Gaussian process, by sampling it.

    BLAS and LAPACK run on one thread here: their rounding depends on the thread count
    (measured: 2e-13 at 256 points), and a cell must not depend on where it ran.
    """
    from threadpoolctl import threadpool_limits

    from ..theory.exact import exact_gradient_covariance
    from ..theory.gp import gp_statistics

    if model != "exact":
        return _not_covered(f"model {model!r} has no lag-1 prediction")
    try:
        cov = exact_gradient_covariance(spec, grid.points_array())[..., 0, 0]
        with threadpool_limits(limits=1):
            th = gp_statistics(cov, nets=gp_nets, seed=seed % 10**6, max_lag=1)
    except ValueError as exc:
        return _not_covered(str(exc))
    return _comparison(th["lag1"].value, est, "lag1", th["label"], float(th["lag1"].se))


def compute_cell(spec, grid, seed, nets, chunk=16, pair=(0, 1), statistics=STATISTICS,
                 theory=(), gp_nets=4000, progress=None):
    """Monte Carlo sums, estimates and theory comparisons of one cell: a pure function.

    Networks ``0 .. nets - 1`` come from :func:`gradsim.montecarlo.iter_chunks` (network
    ``i`` from ``network_rng(seed, i)``) and are added network by network in index
    order to :class:`~gradsim.stats.Moments` of ``(g_x . g_x, g_y . g_y, g_x . g_y)`` at
    the pair's grid points and a :class:`~gradsim.stats.Stream` of lag-0/1
    autocorrelations, so memory is one chunk and the result does not depend on ``chunk``.

    Parameters
    ----------
    spec : NetSpec
    grid : GridSpec
    seed : int
        The cell's seed (:func:`cell_seed`).
    nets, chunk : int
    pair : (int, int)
        Grid indices of the pair statistics.
    statistics : sequence of str
        From :data:`STATISTICS`.
    theory : sequence of str
        Models of :func:`gradsim.compare.predict`; ``exact`` also gives lag-1 (from
        ``gp_nets`` Gaussian-process draws seeded with ``seed % 10**6``).
    progress : callable, optional
        ``progress(done, nets)`` after each chunk.

    Returns
    -------
    dict
        ``sums``, ``estimates`` (value, se, n; null where undefined), ``theory``
        (model -> statistic -> comparison or ``{"covered": false, "reason": ...}``) and
        ``seconds``.
    """
    t0 = time.perf_counter()
    i, j = pair
    mom, acf = Moments(3), Stream(2)
    for ch in iter_chunks(spec, grid, nets, seed, chunk, mode=_mode(spec)):
        gx, gy = ch.grad[:, i, :], ch.grad[:, j, :]
        mom.update(np.stack([(gx * gx).sum(1), (gy * gy).sum(1), (gx * gy).sum(1)], axis=1))
        if "lag1" in statistics:
            acf.update(acf_rows(ch.grad, max_lag=1))
        if progress is not None:
            progress(ch.start + len(ch.grad), nets)
    est = _pair_estimates(mom) | {"lag1": _lag1_estimate(acf)}
    args = (spec, grid, seed, pair, gp_nets)
    sums = {"pair": {"count": mom.count, "total": _floats(mom.total),
                     "outer": _floats(mom.outer)}}
    if "lag1" in statistics:
        sums["acf"] = {"count": acf.count, "dropped": acf.dropped,
                       "total": _floats(acf.total), "squares": _floats(acf.squares)}
    return {"sums": sums, "estimates": {s: _estimate_dict(est[s]) for s in statistics},
            "theory": {m: _theory(m, args, est, statistics) for m in theory},
            "seconds": round(time.perf_counter() - t0, 3)}


def _task_args(sweep, cell):
    return (cell.spec, cell.grid, cell.seed, sweep.nets, sweep.chunk, sweep.pair_index,
            sweep.statistics, sweep.theory, sweep.gp_nets)


# --------------------------------------------------------------------------- files


def _header(sweep, cell):
    """What a cell file must record to belong to ``sweep``."""
    return {"format": CELL_FORMAT, "sweep": sweep.digest, "id": cell.id, "index": cell.index,
            "params": cell.params, "spec": cell.spec.to_dict(), "grid": cell.grid.to_dict(),
            "seed": cell.seed, "nets": sweep.nets, "pair_index": list(sweep.pair_index)}


def _checksum(record):
    return hashlib.sha256(_dumps({k: v for k, v in record.items() if k != "checksum"})
                          .encode()).hexdigest()


def _cell_path(out, cell):
    return os.path.join(out, CELL_DIR, f"{cell.id}.json")


def _write_json(path, data, indent=None):
    text = json.dumps(data, sort_keys=True, indent=indent, allow_nan=False)
    with atomic_write(path) as fh:
        fh.write(text.encode() + b"\n")


def _write_cell(out, sweep, cell, result):
    record = _header(sweep, cell) | result
    record["checksum"] = _checksum(record)
    _write_json(_cell_path(out, cell), record)
    return record


def _read_cell(out, sweep, cell):
    """The cell's record if its file is intact and belongs to ``sweep``, else None."""
    try:
        with open(_cell_path(out, cell), "rb") as fh:
            record = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("checksum") != _checksum(record):
        return None
    if any(record.get(k) != v for k, v in _header(sweep, cell).items()):
        return None
    return record


def _read_index(out):
    path = os.path.join(out, INDEX)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as fh:
            index = json.loads(fh.read())
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise ValueError
    except (OSError, ValueError):
        raise ValueError(f"out: {path} is not a readable sweep index; use --force "
                         "(force=True) to start over") from None
    return index


def _check_out(out, sweep, force):
    """Refuse, before writing anything, an out dir we cannot or must not use."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out: {out!r} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ValueError(f"out: directory {parent!r} does not exist")
    target = out if os.path.isdir(out) else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"out: directory {target!r} is not writable")
    try:
        index = _read_index(out)
    except ValueError:
        if force:
            return {}
        raise
    if index is not None and index.get("sweep") != sweep.digest and not force:
        raise ValueError(f"out: {out} holds the results of a different sweep (the sweep file "
                         "changed since); use another --out, or --force (force=True) to "
                         "delete its cells and start over")
    return index


_OURS = re.compile(r"cell-\d+\.json|\.gradsim-[0-9a-f]+\.tmp")


def _start_over(out, index):
    """Delete the previous run's index, cell files and recorded outputs; nothing else."""
    names = [os.path.join(CELL_DIR, n) for n in _listdir(os.path.join(out, CELL_DIR))
             if _OURS.fullmatch(n)]
    names += [n for n in (index or {}).get("outputs", []) if isinstance(n, str)
              and n == os.path.basename(n) and n not in (INDEX, LOCK)]
    for name in [*names, INDEX]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, name))


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def _locked(out):
    """Hold ``out/.sweep.lock`` exclusively (released by the kernel if we die)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(os.path.join(out, LOCK), os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"out: {out} is in use by another gradsim sweep") from None
        yield
    finally:
        os.close(fd)


def _index(sweep, complete=False, outputs=()):
    from .._version import __version__

    cells = [{"id": c.id, "index": c.index, "params": c.params, "seed": c.seed,
              "file": f"{CELL_DIR}/{c.id}.json"} for c in sweep.cells]
    cells += [{"index": i, "params": p, "skipped": reason} for i, p, reason in sweep.skipped]
    return {"format": FORMAT, "version": __version__, "sweep": sweep.digest,
            "content": sweep.canonical(), "cells": sorted(cells, key=lambda c: c["index"]),
            "complete": complete, "outputs": list(outputs)}


def sweep_status(sweep, out_dir):
    """``(done, total)``: cells of ``sweep`` whose files in ``out_dir`` are intact."""
    out = os.fspath(out_dir)
    return sum(_read_cell(out, sweep, c) is not None for c in sweep.cells), len(sweep.cells)


# --------------------------------------------------------------------------- engines


def _engine(engine, scheduler, workers):
    if engine not in (None, "serial", "dask"):
        raise ValueError(f"engine must be serial or dask, got {engine!r}")
    if workers is not None:
        workers = check_int("workers", workers, 0, 256)
    serial = engine == "serial" or workers == 0
    if serial and scheduler is not None:
        raise ValueError("scheduler: cannot be combined with the serial engine")
    if scheduler is not None and workers is not None:
        raise ValueError("workers: only for a local cluster; the cluster at --scheduler "
                         "has its own")
    if serial:
        return "serial"
    try:
        import distributed  # noqa: F401
    except ImportError:
        if engine == "dask" or scheduler is not None or workers is not None:
            raise ValueError("dask is not installed: pip install 'gradsim[dask]', or run "
                             "serially (--serial, workers=0)") from None
        return "serial"
    return "dask"


def _run_serial(sweep, todo, on_result, progress):
    for cell in todo:
        def nets(done, total):
            progress("networks", done, total)

        on_result(cell, compute_cell(*_task_args(sweep, cell),
                                     progress=None if progress is None else nets))


@contextlib.contextmanager
def _client(scheduler, workers):
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"scheduler: cannot connect to {scheduler!r}: {exc}") from None
        with contextlib.closing(client):
            yield client
        return
    # Dask sets MALLOC_TRIM_THRESHOLD_ for workers, which turns off glibc's adaptive mmap
    # threshold: every large NumPy temporary is then mapped and unmapped (measured: cells
    # of docs/examples/sweep_depth.toml 2x slower, mostly system time).  Leave glibc's
    # default.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR, env={"NUMBA_NUM_THREADS": "1"},
                               preload=[__name__])
    with contextlib.closing(cluster), contextlib.closing(Client(cluster)) as client:
        yield client


def dask_setup(worker):
    """Dask preload hook of the local cluster's workers: ignore Ctrl-C.

    A terminal sends SIGINT to every process of the foreground group; the driver alone
    handles it, closing the cluster, which stops the workers without tracebacks.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_dask(sweep, todo, on_result, scheduler, workers):
    """One task per cell, at most two per worker thread in flight; results as they come."""
    from distributed import as_completed

    with _client(scheduler, workers) as client:
        limit = 2 * max(1, sum(client.nthreads().values()))
        queue, cells, done = iter(todo), {}, as_completed()

        def submit():
            cell = next(queue, None)
            if cell is not None:
                fut = client.submit(compute_cell, *_task_args(sweep, cell), pure=False,
                                    key=f"gradsim-sweep-{sweep.digest[:16]}-{cell.id}")
                cells[fut.key] = cell
                done.add(fut)

        for _ in range(limit):
            submit()
        for fut in done:
            result = fut.result()
            on_result(cells.pop(fut.key), result)
            fut.release()
            submit()


def run_sweep(sweep, out_dir, scheduler=None, workers=None, progress=None, force=False,
              engine=None):
    """Compute the missing cells of ``sweep`` into ``out_dir``, then the summary.

    Parameters
    ----------
    sweep : Sweep or path
    out_dir : path
        Created if missing (its parent must exist).  Holds ``sweep.json`` (the index),
        ``cells/cell-NNNN.json``, ``summary.csv``, ``summary.json`` and ``fig_*``.
    scheduler : str, optional
        Address of a running Dask scheduler (its workers must have gradsim installed).
    workers : int, optional
        Workers of the local Dask cluster (default 2); 0 runs serially in process.
    progress : callable, optional
        ``progress(kind, done, total)`` with kind ``'cells'`` (at the start and after
        every cell) or ``'networks'`` (within a cell, serial engine only).
    force : bool
        Start over: delete the previous run's index, cell files and outputs (nothing
        else) even if they belong to another sweep.
    engine : {None, 'serial', 'dask'}
        Default: Dask (a local cluster, or ``scheduler``) if ``distributed`` is
        installed, else serial.

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        Before anything is written, if the sweep or the options are bad or ``out_dir``
        holds another sweep's results (without ``force``).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = os.fspath(out_dir)
    engine = _engine(engine, scheduler, workers)
    _check_out(out, sweep, force)
    os.makedirs(os.path.join(out, CELL_DIR), exist_ok=True)
    with _locked(out):
        index = _check_out(out, sweep, force)
        if force:
            _start_over(out, index)
        for name in _listdir(os.path.join(out, CELL_DIR)):
            if name.startswith(".gradsim-") and _OURS.fullmatch(name):  # left by a kill
                os.unlink(os.path.join(out, CELL_DIR, name))
        _write_json(os.path.join(out, INDEX), _index(sweep), indent=1)
        records = {c.index: _read_cell(out, sweep, c) for c in sweep.cells}
        todo = [c for c in sweep.cells if records[c.index] is None]
        reused, total = len(sweep.cells) - len(todo), len(sweep.cells)
        report = progress or (lambda kind, done, n: None)
        report("cells", reused, total)
        count = [reused]

        def on_result(cell, result):
            records[cell.index] = _write_cell(out, sweep, cell, result)
            count[0] += 1
            report("cells", count[0], total)

        if engine == "serial":
            _run_serial(sweep, todo, on_result, progress)
        elif todo:
            _run_dask(sweep, todo, on_result, scheduler, workers)
        recs = [records[c.index] for c in sweep.cells]
        outputs = _write_outputs(out, sweep, recs)
        _write_json(os.path.join(out, INDEX), _index(sweep, True, outputs), indent=1)
    return SweepResult(out, total, len(todo), reused, len(sweep.skipped), recs,
                       [os.path.join(out, n) for n in outputs])


# --------------------------------------------------------------------------- outputs


def _columns(sweep):
    cols = []
    for s in sweep.statistics:
        cols += [s, f"{s}_se"]
        for m in sweep.theory:
            cols += [f"{s}_{m}", f"{s}_{m}_z"]
    return cols


def _csv_row(sweep, rec):
    row = [rec["id"], *(rec["params"][n] for n, _ in sweep.axes), rec["nets"], rec["seed"]]
    for s in sweep.statistics:
        est = rec["estimates"][s]
        row += [est["value"], est["se"]]
        for m in sweep.theory:
            th = rec["theory"][m][s]
            row += [th["theory"], th["z"]] if th["covered"] else ["not covered", None]
    return ["" if v is None else v for v in row]


def _write_outputs(out, sweep, records):
    """``summary.csv``, ``summary.json`` and ``fig_<statistic>.<format>``; returns names."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cell", *(n for n, _ in sweep.axes), "nets", "seed", *_columns(sweep)])
    writer.writerows(_csv_row(sweep, r) for r in records)
    with atomic_write(os.path.join(out, "summary.csv")) as fh:
        fh.write(buf.getvalue().encode())
    keep = ("id", "params", "seed", "nets", "estimates", "theory", "seconds")
    _write_json(os.path.join(out, "summary.json"), {
        "sweep": sweep.digest, "axes": [[n, list(v)] for n, v in sweep.axes],
        "statistics": list(sweep.statistics), "theory": list(sweep.theory),
        "pair_index": list(sweep.pair_index), "cells": [{k: r[k] for k in keep}
                                                         for r in records],
        "skipped": [{"index": i, "params": p, "reason": why} for i, p, why in sweep.skipped],
    }, indent=1)
    names = ["summary.csv", "summary.json"]
    for stat in sweep.statistics if sweep.figures else ():
        fig = _figure(sweep, stat, records)
        names += [os.path.basename(p) for p in _save(fig, os.path.join(out, f"fig_{stat}"),
                                                       sweep.figures)]
    return names


def _save(fig, stem, formats):
    from ..figures import save_figure

    return save_figure(fig, stem, formats)


_YLABELS = {"variance": "E[g(x)^2]", "covariance": "E[g(x) g(y)]",
            "correlation": "correlation of g(x), g(y)", "lag1": "lag-1 autocorrelation"}


def _series(sweep, stat, records):
    """What :func:`_figure` draws: x positions, tick labels (None for a numeric axis) and,
    per combination of the other axes, ``(label, value, se, {model: theory})`` arrays."""
    names = [n for n, _ in sweep.axes]
    xvals = dict(sweep.axes)[sweep.x_axis]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xvals)
    xs = np.array(xvals if numeric else range(len(xvals)), dtype=float)
    by_key = {tuple(r["params"][n] for n in names): r for r in records}
    others = [(n, v) for n, v in sweep.axes if n != sweep.x_axis]
    lines = []
    for combo in itertools.product(*(v for _, v in others)):
        fixed = dict(zip((n for n, _ in others), combo))
        recs = [by_key.get(tuple((fixed | {sweep.x_axis: x})[n] for n in names))
                for x in xvals]
        y, se = (np.array([_get(r, ("estimates", stat, f)) for r in recs], dtype=float)
                 for f in ("value", "se"))
        th = {m: np.array([_get(r, ("theory", m, stat, "theory")) for r in recs], dtype=float)
              for m in sweep.theory}
        lines.append((", ".join(f"{n}={v}" for n, v in fixed.items()) or stat, y, se, th))
    return xs, None if numeric else [str(v) for v in xvals], lines


def _figure(sweep, stat, records):
    """``stat`` against the x axis: Monte Carlo with standard errors, one colour per
    combination of the other axes; covered theories as lines in the same colour."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from ..figures import COLORS, new_figure, plot_curves, plot_errorbars

    xs, ticks, lines = _series(sweep, stat, records)
    fig, axs = new_figure(size=(6.4, 4.2))
    ax = plot_errorbars(xs, [ln[1] for ln in lines], [ln[2] for ln in lines],
                        [ln[0] for ln in lines], ax=axs[0, 0])
    models = []
    for m in sweep.theory:
        drawn = [k for k, ln in enumerate(lines) if np.isfinite(ln[3][m]).any()]
        styles = {f"_{m}{k}": {"ls": _STYLES[m], "color": COLORS[k % len(COLORS)]}
                  for k in drawn}
        plot_curves(xs, [lines[k][3][m] for k in drawn], list(styles), ax=ax, styles=styles,
                    lw=1)
        models += [m] if drawn else []
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], color="k", ls=_STYLES[m], label=f"theory: {m}") for m in models]
    ax.legend(handles=handles, fontsize=7)
    if ticks is not None:
        ax.set_xticks(xs, ticks)
    elif all(isinstance(v, int) for v in dict(sweep.axes)[sweep.x_axis]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if stat == "variance" and all((ln[1][np.isfinite(ln[1])] > 0).all() for ln in lines):
        ax.set_yscale("log")
    ax.set_xlabel(sweep.x_axis)
    ax.set_ylabel(_YLABELS[stat])
    return fig


def _get(record, path):
    """``record[path[0]][path[1]]...`` or NaN where missing or null (a gap in a line)."""
    for key in path:
        if not isinstance(record, dict) or record.get(key) is None:
            return math.nan
        record = record[key]
    return record
