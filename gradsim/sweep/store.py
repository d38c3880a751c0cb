"""A sweep's output directory: cell files, the index ``sweep.json`` and the lock.

A cell file ``cells/cell-NNNN.json`` is the cell's header (what it must record to belong
to the sweep: the sweep's hash, the cell's parameters, spec, grid, seed, nets and pair),
its result, and a SHA-256 checksum of the rest; :func:`read_cell` accepts a file only if
all of these match, so a resumed run recomputes exactly the missing, damaged and foreign
cells.  Every file is written atomically (:func:`gradsim.util.atomic_write`); a run killed
mid-write leaves a temporary file beside the target, in the out dir or in ``cells/``,
which the next run (:func:`clear_temporaries`) deletes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re

from .._version import __version__
from ..util import TMP_PATTERN, atomic_write, remove_temporaries
from ..util import locked as util_locked
from .file import FORMAT, canonical_json

__all__ = ["CELL_FORMAT", "INDEX", "CELL_DIR", "LOCK", "TEMPORARY", "write_json",
           "write_cell", "read_cell", "write_index", "check_out", "start_over",
           "clear_temporaries", "locked"]

#: Format tag of a cell file.
CELL_FORMAT = "gradsim-sweep-cell-1"
#: The index, the cells' directory and the lock, relative to the out dir.
INDEX, CELL_DIR, LOCK = "sweep.json", "cells", ".sweep.lock"

#: Name of a temporary file of :func:`gradsim.util.atomic_write`.
TEMPORARY = TMP_PATTERN
_CELL_FILE = re.compile(r"cell-\d+\.json")


def write_json(path, data, indent=None):
    """``data`` as sorted, strict JSON at ``path``, atomically."""
    text = json.dumps(data, sort_keys=True, indent=indent, allow_nan=False)
    with atomic_write(path) as fh:
        fh.write(text.encode() + b"\n")


# --------------------------------------------------------------------------- cells


def _header(sweep, cell):
    """What a cell file must record to belong to ``sweep``."""
    return {"format": CELL_FORMAT, "sweep": sweep.digest, "id": cell.id, "index": cell.index,
            "params": cell.params, "spec": cell.spec.to_dict(), "grid": cell.grid.to_dict(),
            "seed": cell.seed, "nets": sweep.nets, "pair_index": list(sweep.pair_index)}


def _checksum(record):
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "checksum"})
                          .encode()).hexdigest()


def _cell_path(out, cell):
    return os.path.join(out, CELL_DIR, f"{cell.id}.json")


def write_cell(out, sweep, cell, result):
    """Write the cell's file (header, ``result`` of ``compute_cell``, checksum); returns
    the record written."""
    record = _header(sweep, cell) | result
    record["checksum"] = _checksum(record)
    write_json(_cell_path(out, cell), record)
    return record


def read_cell(out, sweep, cell):
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


# --------------------------------------------------------------------------- the index


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


def _index(sweep, complete, outputs):
    cells = [{"id": c.id, "index": c.index, "params": c.params, "seed": c.seed,
              "file": f"{CELL_DIR}/{c.id}.json"} for c in sweep.cells]
    cells += [{"index": i, "params": p, "skipped": reason} for i, p, reason in sweep.skipped]
    return {"format": FORMAT, "version": __version__, "sweep": sweep.digest,
            "content": sweep.canonical(), "cells": sorted(cells, key=lambda c: c["index"]),
            "complete": complete, "outputs": list(outputs)}


def write_index(out, sweep, complete=False, outputs=()):
    """Write ``out/sweep.json``: the sweep's hash and content, every cell and its file (or
    why it was skipped), whether the run is ``complete`` and the ``outputs`` it wrote."""
    write_json(os.path.join(out, INDEX), _index(sweep, complete, outputs), indent=1)


# --------------------------------------------------------------------------- the out dir


def check_out(out, sweep, force):
    """Refuse, before writing anything, an out dir we cannot or must not use.

    Returns
    -------
    dict or None
        The previous run's index (``{}`` if unreadable and ``force``), None if there is
        none.
    """
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


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def start_over(out, index):
    """Delete the previous run's index, cell files and recorded outputs; nothing else
    (:func:`clear_temporaries` deletes the temporary files)."""
    names = [os.path.join(CELL_DIR, n) for n in _listdir(os.path.join(out, CELL_DIR))
             if _CELL_FILE.fullmatch(n)]
    names += [n for n in (index or {}).get("outputs", []) if isinstance(n, str)
              and n == os.path.basename(n) and n not in (INDEX, LOCK)]
    for name in [*names, INDEX]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, name))


def clear_temporaries(out):
    """Delete the temporary files a killed run left in ``out`` and ``out/cells``
    (:func:`gradsim.util.remove_temporaries`); returns their paths.  Called with the lock
    held, so no run of this sweep is writing them."""
    return [os.path.join(folder, name) for folder in (out, os.path.join(out, CELL_DIR))
            for name in remove_temporaries(folder)]


def locked(out):
    """Hold ``out/.sweep.lock`` (:func:`gradsim.util.locked`)."""
    return util_locked(out, LOCK, "sweep")
