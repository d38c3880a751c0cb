"""What every experiment shares: parameters, results files, claims.

An experiment is a module with

* ``NAME`` and ``TITLE``;
* ``DEFAULTS``: the paper's sizes, a dict of parameter -> value;
* ``QUICK``: overrides for the quick setting (a few seconds each);
* ``run(params, progress=None) -> Results``: the numbers, nothing drawn;
* ``plot(results) -> matplotlib.figure.Figure``: the figure, from the results alone;
* ``claims(results) -> list[Claim]``: rows of the report, verdicts computed from the
  numbers in ``results``.

:func:`resolve` merges defaults, the quick setting and ``key=value`` overrides, checking
every key and value; :func:`save_results` / :func:`load_results` write and read the
results file (``.npz`` arrays plus JSON metadata, written atomically).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform

import numpy as np

from .._version import __version__
from ..io import write_npz

__all__ = ["Results", "Claim", "resolve", "parse_overrides", "save_results", "load_results",
           "versions"]


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
            "format": "gradsim-results-1"}
    if "__meta__" in results.arrays:
        raise ValueError("array name __meta__ is reserved")
    return write_npz(path, {"__meta__": json.dumps(meta), **results.arrays}, compressed=True)


def load_results(path):
    """Read a results file written by :func:`save_results`.

    Raises
    ------
    ValueError
        If the file is not a gradsim results file (the message names the file).
    """
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
    except FileNotFoundError:
        raise ValueError(f"results file {path} does not exist") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a gradsim results file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "gradsim-results-1":
        raise ValueError(f"{path} is not a gradsim results file (no format tag)")
    return Results(meta["name"], meta["params"], arrays, meta.get("meta", {}))
