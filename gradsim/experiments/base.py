"""What every experiment shares: parameters, results files, claims.

An experiment is a module with

* ``NAME`` and ``TITLE``;
* ``DEFAULTS``: the paper's sizes, a dict of parameter -> value;
* ``QUICK``: overrides for the quick setting (a few seconds each);
* ``run(params, progress=None) -> Results``: the numbers, nothing drawn;
* ``plot(results) -> matplotlib.figure.Figure``: the figure, from the results alone;
* ``claims(results) -> list[Claim]``: rows of the report, verdicts computed from the
  numbers in ``results``;
* optionally ``REQUIRES`` (optional modules -> extra) and ``RUN_SETTINGS`` (parameters
  that say how to run, never what is computed, such as ``workers``).

:func:`resolve` merges defaults, the quick setting and ``key=value`` overrides, checking
every key and value; :func:`save_results` / :func:`load_results` write and read the
results file (``.npz`` arrays plus JSON metadata, written atomically);
:func:`check_results` and :func:`read_with` turn a results file that does not fit its
experiment into a ``ValueError`` naming the file; :func:`code_checksum` is the code
version the resume check of ``reproduce`` compares.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import zipfile
import zlib

import numpy as np

from .._version import __version__
from ..io import write_npz

__all__ = ["Results", "Claim", "resolve", "parse_overrides", "save_results", "load_results",
           "check_results", "read_with", "versions", "code_checksum", "FORMAT"]

#: The format tag of a results file's ``__meta__``.
FORMAT = "gradsim-results-1"


@dataclasses.dataclass
class Results:
    """The numbers of one experiment run.

    Attributes
    ----------
    name : str
        The experiment.
    params : dict
        The parameters used (after :func:`resolve`).
    arrays : dict of str -> ndarray
    meta : dict
        JSON-ready extras: versions, wall time, labels.
    """

    name: str
    params: dict
    arrays: dict
    meta: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, key):
        return self.arrays[key]


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row of the report.

    ``verdict`` is ``"holds"`` or ``"fails"`` (from ``passed``), or ``"info"`` for a
    row that states a measurement without a pass/fail criterion.
    """

    target: str
    claim: str
    setting: str
    theory: str
    estimate: str
    score: str
    passed: bool | None
    criterion: str = ""

    @property
    def verdict(self):
        """``holds`` / ``fails`` / ``info``."""
        if self.passed is None:
            return "info"
        return "holds" if self.passed else "fails"

    def to_dict(self):
        """JSON-ready dict, with the verdict."""
        return dataclasses.asdict(self) | {"verdict": self.verdict}


def versions():
    """Versions of Python, gradsim and the numerical stack, for results and reports."""
    import matplotlib
    import numba
    import scipy

    return {"gradsim": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "matplotlib": matplotlib.__version__}


@functools.cache
def code_checksum():
    """SHA-256 (hex) of the gradsim package's Python source: every ``.py`` file under
    ``gradsim/``, by relative path and content.

    The code version a finished results file must match to be reused by ``reproduce``:
    any edit of the package (without a new version number) invalidates earlier results.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        files += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda f: os.path.relpath(f, root).replace(os.sep, "/")):
        with open(path, "rb") as fh:
            data = fh.read()
        digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _coerce(name, key, default, value):
    """``value`` (possibly a string from the command line) as the type of ``default``."""
    kind = type(default)
    try:
        if isinstance(value, str) and kind is not str:
            if kind is bool:
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = low in ("true", "1", "yes")
            elif kind in (list, tuple):
                items = [v for v in value.replace(",", " ").split() if v]
                elem = type(default[0]) if default else float
                value = [elem(v) for v in items]
            else:
                value = kind(value)
        if kind is bool and not isinstance(value, bool):
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError
            value = int(value)
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError
        if kind in (list, tuple):
            value = list(value)
            if not value:
                raise ValueError
            elem = type(default[0]) if default else float
            value = [elem(v) for v in value]
            if elem is float and not all(math.isfinite(v) for v in value):
                raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name}: parameter {key} must be {_describe(default)}, "
                         f"got {value!r}") from None
    return value


def _describe(default):
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a finite number"
    if isinstance(default, (list, tuple)):
        return "a non-empty comma-separated list of " + (
            "integers" if default and isinstance(default[0], int) else "numbers")
    return "a string"


def resolve(module, quick=False, overrides=None):
    """Parameters for ``module``: ``DEFAULTS``, then ``QUICK`` if ``quick``, then overrides.

    Every override key must be a parameter of the experiment and its value of the
    parameter's type; the module's ``check(params)`` then checks ranges.  Raises
    ``ValueError`` naming the key.
    """
    params = dict(module.DEFAULTS)
    if quick:
        params.update(module.QUICK)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ValueError(f"{module.NAME}: unknown parameter {key!r}; known: "
                             f"{', '.join(sorted(params))}")
        params[key] = _coerce(module.NAME, key, module.DEFAULTS[key], value)
    check = getattr(module, "check", None)
    if check is not None:
        check(params)
    return params


def parse_overrides(items):
    """``['nets=40', 'depths=1,2,4']`` -> ``{'nets': '40', 'depths': '1,2,4'}``."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def check_range(name, params, key, lo, hi):
    """Raise ``ValueError`` unless every value of ``params[key]`` lies in ``[lo, hi]``."""
    vals = params[key] if isinstance(params[key], list) else [params[key]]
    for v in vals:
        if not lo <= v <= hi:
            raise ValueError(f"{name}: parameter {key} must be in [{lo}, {hi}], got {v}")


def save_results(path, results):
    """Write ``results`` to ``path`` (``.npz``, compressed) atomically."""
    meta = {"name": results.name, "params": results.params, "meta": results.meta,
            "format": FORMAT}
    if "__meta__" in results.arrays:
        raise ValueError("array name __meta__ is reserved")
    return write_npz(path, {"__meta__": json.dumps(meta), **results.arrays}, compressed=True)


def load_results(path):
    """Read a results file written by :func:`save_results`.

    Checks the container and the header only: a readable ``.npz`` archive whose
    ``__meta__`` is JSON text of an object with the format tag, an experiment name (a
    string), parameters and metadata (objects), and whose arrays are numbers.  Whether
    they fit the experiment is :func:`check_results`.

    Raises
    ------
    ValueError
        If the file is not a gradsim results file (the message names the file).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a results file")
    try:
        meta, arrays = _read_npz(path)
    except FileNotFoundError:
        raise ValueError(f"results file {path} does not exist") from None
    except (_NotResults, OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise ValueError(f"{path} is not a gradsim results file ({_one_line(exc)})") from None
    return Results(meta["name"], meta["params"], arrays, meta.get("meta", {}))


class _NotResults(Exception):
    """A readable file that is not a gradsim results file (the message says why)."""


def _read_npz(path):
    """``(header, arrays)`` of a results file, checked as :func:`load_results` says."""
    with open(path, "rb") as fh:  # closed whatever np.load makes of it
        data = np.load(fh, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _NotResults("not an .npz archive")
        with data:
            if "__meta__" not in data.files:
                raise _NotResults("no __meta__ entry")
            raw = data["__meta__"]
            if raw.ndim != 0 or raw.dtype.kind != "U":
                raise _NotResults("__meta__ is not JSON text")
            meta = json.loads(str(raw))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _NotResults("no format tag")
    if not isinstance(meta.get("name"), str):
        raise _NotResults("__meta__ has no experiment name")
    if not isinstance(meta.get("params"), dict):
        raise _NotResults("__meta__ params is not a JSON object")
    if not isinstance(meta.get("meta", {}), dict):
        raise _NotResults("__meta__ meta is not a JSON object")
    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise _NotResults(f"array {key} holds {value.dtype}, not numbers")
    return meta, arrays


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def check_results(results, source="results"):
    """The experiment module of ``results``, after checking that its parameters are that
    experiment's (the same names, of the right types and in range).

    ``source`` (the file) heads every message.  Raises ``ValueError``.
    """
    from . import get

    try:
        module = get(results.name)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    have, want = set(results.params), set(module.DEFAULTS)
    if have != want:
        parts = [f"missing {', '.join(sorted(want - have))}" if want - have else "",
                 f"unknown {', '.join(sorted(have - want))}" if have - want else ""]
        raise ValueError(f"{source}: parameters are not those of experiment {module.NAME} "
                         f"({'; '.join(p for p in parts if p)})")
    try:
        resolved = resolve(module, overrides=results.params)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if resolved != results.params:
        wrong = sorted(k for k in want if resolved[k] != results.params[k])
        raise ValueError(f"{source}: parameters {', '.join(wrong)} are not of the types of "
                         f"experiment {module.NAME}")
    return module


def read_with(fn, results, source="results"):
    """``fn(results)`` (an experiment's ``plot`` or ``claims``); an error from results that
    lack the arrays it reads, or hold them in other shapes, becomes a ``ValueError``
    naming ``source``."""
    try:
        return fn(results)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError,
            ZeroDivisionError) as exc:
        what = f"no array {exc}" if isinstance(exc, KeyError) else _one_line(exc)
        raise ValueError(f"{source} does not hold the numbers experiment {results.name} "
                         f"needs ({type(exc).__name__}: {what})") from None
