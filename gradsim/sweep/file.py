"""Sweep files: parse and validate a TOML sweep, expand its cells, seed them.

:func:`load_sweep` / :func:`parse_sweep` check every key before anything is written
(``docs/sweeps.md`` lists them); a :class:`Sweep` expands into :class:`Cell` objects, the
Cartesian product of its axes.  Cell ``c`` with spec ``S`` draws its networks from
:func:`cell_seed` ``(seed, S)``: a seed spawned from the sweep seed and a hash of ``S``
alone.  Computing a cell is :mod:`.cells`, its files :mod:`.store`, running them
:mod:`.engines` and :mod:`.run`, the summary and figures :mod:`.outputs`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os

import numpy as np

from ..compare import MODELS
from ..families.sampling import SAMPLERS, gram_refusal, resolve_sampler
from ..grids import GridSpec
from ..kernels.arccos import pair_layout
from ..montecarlo import MAX_NETS, network_bytes
from ..spec import NetSpec
from ..theory import covers
from ..theory.exact import defined_at
from ..util import check_int, check_memory, check_real

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Format tag of the sweep index and of a sweep's canonical content.
FORMAT = "gradsim-sweep-1"

__all__ = ["Sweep", "Cell", "SweepResult", "STATISTICS", "load_sweep", "parse_sweep",
           "cell_seed", "MAX_CELLS", "MAX_ENTRIES", "FORMAT", "canonical_json", "gradient_mode",
           "exact_grid_bytes"]


#: Statistics a sweep can keep (pair statistics at two grid points, and lag-1 along it).
STATISTICS = ("variance", "covariance", "correlation", "lag1")
#: Upper bound on the number of cells (each is one file).
MAX_CELLS = 10_000
#: Upper bound on gradient entries computed by a sweep (cells x nets x points x input_dim).
MAX_ENTRIES = 10**11
_FIELDS = {f.name: f.default for f in dataclasses.fields(NetSpec)}
_GRID_NAMES = {"kind": "grid", "points": "points", "lo": "range lo", "hi": "range hi",
               "seed": "grid seed", "radius": "radius"}
_TOP = ("spec", "grid", "axes", "nets", "seed", "chunk", "statistics", "theory", "pair",
        "gp_nets", "skip_invalid", "x_axis", "figures", "sampler")
_FORMATS = ("png", "pdf", "svg")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the sweep: its position in the product order, axis values and spec."""

    index: int
    params: dict
    spec: NetSpec
    grid: GridSpec
    seed: int

    @property
    def id(self):
        """File stem, ``cell-0012``."""
        return f"cell-{self.index:04d}"


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep file (build with :func:`load_sweep` or :func:`parse_sweep`).

    ``cells`` are the valid cells in product order (the last axis varies fastest);
    ``skipped`` lists ``(params, reason)`` of invalid ones left out by ``skip_invalid``.
    """

    spec: dict
    grid: dict
    axes: tuple
    nets: int
    seed: int
    chunk: int
    statistics: tuple
    theory: tuple
    pair: tuple | None
    pair_index: tuple
    gp_nets: int
    skip_invalid: bool
    x_axis: str
    figures: tuple
    cells: tuple
    skipped: tuple
    sampler: str = "auto"

    def canonical(self):
        """The sweep's content as plain data: what its hash covers.

        ``chunk`` and ``figures`` are left out: they change no number; so is ``pair``,
        whose grid indices count.
        """
        base = {k: v for k, v in self.spec.items() if v != _FIELDS[k]}
        return {"format": FORMAT, "spec": base, "grid": self.grid,
                "axes": [[n, list(v)] for n, v in self.axes], "nets": self.nets,
                "seed": self.seed, "statistics": list(self.statistics),
                "theory": list(self.theory), "pair_index": list(self.pair_index),
                "gp_nets": self.gp_nets, "sampler": self.sampler,
                "skip_invalid": self.skip_invalid, "x_axis": self.x_axis}

    @functools.cached_property
    def digest(self):
        """SHA-256 of :meth:`canonical` as sorted, compact JSON."""
        return hashlib.sha256(canonical_json(self.canonical()).encode()).hexdigest()


@dataclasses.dataclass
class SweepResult:
    """What :func:`run_sweep` did: cells computed now and reused, records and outputs."""

    out_dir: str
    total: int
    computed: int
    reused: int
    skipped: int
    records: list
    outputs: list


def canonical_json(data):
    """``data`` as sorted, compact, strict JSON: the text every sweep hash is taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- parsing


def load_sweep(path):
    """Read and validate a sweep file.

    Parameters
    ----------
    path : path
        A TOML file (``docs/sweeps.md`` lists its keys).

    Returns
    -------
    Sweep

    Raises
    ------
    ValueError
        If the file is missing, not UTF-8 TOML, or not a valid sweep (the message names
        the key, as for :func:`parse_sweep`).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such sweep file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a sweep file") from None
    return parse_sweep(raw, source=path)


def _toml(text, source):
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return tomllib.loads(text)
    except UnicodeDecodeError:
        raise ValueError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None


def parse_sweep(data, source="sweep"):
    """Validate a sweep given as TOML text (str or bytes) or as a dict.

    Returns
    -------
    Sweep

    Raises
    ------
    ValueError
        Naming the key: unknown keys, bad values, empty axes, invalid cells, or sizes
        beyond :data:`MAX_CELLS`, :data:`MAX_ENTRIES` or the available memory.
    """
    if isinstance(data, (str, bytes)):
        data = _toml(data, source)
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must be a table of keys")
    for key in data:
        if key not in _TOP:
            raise ValueError(f"{key}: unknown key; known keys: {', '.join(_TOP)}")
    for key in ("nets", "axes"):
        if key not in data:
            raise ValueError(f"{key}: missing (required)")
    base = _spec_table(data.get("spec", {}))
    grid = _grid_table(data.get("grid", {}))
    axes = _axes_table(data["axes"], base)
    pair, pair_index = _pair(data.get("pair"), grid)
    stats = _names("statistics", data.get("statistics", list(STATISTICS)), STATISTICS)
    theory = data.get("theory", ["exact", "paper"])
    theory = () if theory in ("none", []) else _names("theory", theory, MODELS)
    x_axis = data.get("x_axis", max((n for n, _ in axes), key=lambda n: len(dict(axes)[n])))
    if not isinstance(x_axis, str) or x_axis not in dict(axes):
        raise ValueError(f"x_axis: must name an axis ({', '.join(n for n, _ in axes)}), "
                         f"got {x_axis!r}")
    skip = data.get("skip_invalid", False)
    if not isinstance(skip, bool):
        raise ValueError(f"skip_invalid: must be true or false, got {skip!r}")
    seed = _int("seed", data.get("seed", 0), 0, 2**63 - 1)
    figures = data.get("figures", ["png", "pdf"])
    figures = () if figures == [] else _names("figures", figures, _FORMATS)
    grid = {k: v for k, v in grid.to_dict().items() if k != "dim"}
    sampler = data.get("sampler", "auto")
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ValueError(f"sampler: must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    sweep = Sweep(base, grid, axes,
                  _int("nets", data["nets"], 2, MAX_NETS), seed,
                  _int("chunk", data.get("chunk", 16), 1, MAX_NETS), stats, theory, pair,
                  pair_index, _int("gp_nets", data.get("gp_nets", 4000), 2, 10**6), skip,
                  x_axis, figures, (), (), sampler)
    cells, skipped = _expand(sweep)
    _check_size(sweep, cells)
    return dataclasses.replace(sweep, cells=tuple(cells), skipped=tuple(skipped))


def _int(key, value, lo, hi):
    try:
        return check_int(key, value, lo, hi)
    except ValueError as exc:
        raise ValueError(f"{key}: {str(exc)[len(key) + 1:]}") from None


def _table(key, value):
    if not isinstance(value, dict):
        raise ValueError(f"{key}: must be a table, got {value!r}")
    return value


def _spec_value(key, name, value):
    """``value`` for NetSpec field ``name`` with the field's type, or a ValueError at ``key``."""
    try:
        NetSpec(**{name: value})
    except ValueError as exc:  # the field's own check, not a consistency rule
        if str(exc).startswith(f"{name} must"):
            raise ValueError(f"{key}: {str(exc)[len(name) + 1:]}") from None
    default = _FIELDS[name]
    return value if isinstance(default, (bool, str)) else type(default)(value)


def _unknown_field(key):
    return ValueError(f"{key}: not a NetSpec field; fields: {', '.join(_FIELDS)}")


def _spec_table(table):
    out = {}
    for name, value in _table("spec", table).items():
        if name not in _FIELDS:
            raise _unknown_field(f"spec.{name}")
        out[name] = _spec_value(f"spec.{name}", name, value)
    return out


def _grid_table(table):
    out = {}
    for name, value in _table("grid", table).items():
        key = f"grid.{name}"
        if name == "dim":
            raise ValueError(f"{key}: not a sweep key; the grid's dimension is the "
                             "spec's input_dim")
        if name not in _GRID_NAMES:
            raise ValueError(f"{key}: unknown key; known keys: {', '.join(_GRID_NAMES)}")
        try:
            GridSpec(**{name: value})
        except ValueError as exc:
            if str(exc).startswith(f"{_GRID_NAMES[name]} must"):
                raise ValueError(f"{key}: {exc}") from None
        out[name] = value
    try:
        return GridSpec(**out, dim=2 if out.get("kind") == "ring" else 1)
    except ValueError as exc:
        raise ValueError(f"grid: {exc}") from None


def _axes_table(table, base):
    axes = []
    for name, values in _table("axes", table).items():
        key = f"axes.{name}"
        if name not in _FIELDS:
            raise _unknown_field(key)
        if name in base:
            raise ValueError(f"{key}: also set in [spec]; set it in one place")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{key}: must be a non-empty list")
        vals = []
        for v in values:
            v = _spec_value(key, name, v)
            if v in vals:
                raise ValueError(f"{key}: repeated value {v!r}")
            vals.append(v)
        axes.append((name, tuple(vals)))
    if not axes:
        raise ValueError("axes: must have at least one axis (NetSpec field = [values])")
    ncells = math.prod(len(v) for _, v in axes)
    if ncells > MAX_CELLS:
        raise ValueError(f"axes: {ncells} cells (the product of the axes' lengths), more "
                         f"than {MAX_CELLS}")
    return tuple(axes)


def _names(key, value, choices):
    """A non-empty list of distinct names from ``choices`` (a single name is allowed),
    in the order of ``choices``."""
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key}: must be a non-empty list of {', '.join(choices)}")
    for v in value:
        if v not in choices:
            raise ValueError(f"{key}: {v!r} is not one of {', '.join(choices)}")
        if value.count(v) > 1:
            raise ValueError(f"{key}: repeated value {v!r}")
    return tuple(c for c in choices if c in value)


def _pair(value, grid):
    """Positions of the pair statistics and their grid indices."""
    if grid.kind != "line":
        if value is not None:
            raise ValueError("pair: only for grid kind 'line' (other grids use their first "
                             "and last points)")
        pair, index = None, (0, grid.points - 1)
    else:
        pair = [-1.0, 1.0] if value is None else value
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"pair: must be a list of two positions, got {pair!r}")
        try:
            pair = tuple(check_real("pair", v, grid.lo, grid.hi) for v in pair)
        except ValueError as exc:
            raise ValueError(f"pair: {str(exc)[5:]}") from None
        t = np.linspace(grid.lo, grid.hi, grid.points)
        index = tuple(int(np.argmin(np.abs(t - v))) for v in pair)
    if index[0] == index[1]:
        raise ValueError(f"pair: both points are grid point {index[0]}; use points further "
                         "apart or a finer grid")
    return pair, index


def cell_seed(seed, spec):
    """Root seed of the cell with ``spec`` in a sweep seeded with ``seed``.

    The key is the SHA-256 of the spec's fields that differ from NetSpec's defaults (sorted
    JSON); its first 16 bytes, as four little-endian 32-bit words, are the spawn key of
    ``SeedSequence(seed, spawn_key=key)``, whose first 64-bit state word shifted right by
    one is the seed.  Network ``i`` of the cell is then ``network_rng(cell_seed, i)``.
    """
    fields = {k: v for k, v in spec.to_dict().items() if v != _FIELDS[k]}
    digest = hashlib.sha256(canonical_json(fields).encode()).digest()
    key = tuple(int(w) for w in np.frombuffer(digest[:16], dtype="<u4"))
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _expand(sweep):
    names = [n for n, _ in sweep.axes]
    cells, skipped = [], []
    for index, combo in enumerate(itertools.product(*(v for _, v in sweep.axes))):
        params = dict(zip(names, combo))
        try:
            spec = NetSpec(**sweep.spec, **params)
            grid = GridSpec(**sweep.grid, dim=spec.input_dim)
        except ValueError as exc:
            if not sweep.skip_invalid:
                raise ValueError(f"axes: cell {_label(params)} is not valid: {exc} (set "
                                 "skip_invalid = true to leave such cells out)") from None
            skipped.append((index, params, str(exc)))
            continue
        _check_cell(sweep, spec, grid, params)
        cells.append(Cell(index, params, spec, grid, cell_seed(sweep.seed, spec)))
    if not cells:
        raise ValueError("axes: no valid cell")
    return cells, skipped


def _check_cell(sweep, spec, grid, params):
    if "lag1" in sweep.statistics and (spec.input_dim != 1 or grid.points < 3):
        raise ValueError("statistics: lag1 needs input_dim = 1 and at least 3 grid points")
    why = gram_refusal(spec, gradient_mode(spec)) if sweep.sampler == "gram" else None
    if why is not None:
        raise ValueError(f"sampler: gram does not apply to cell {_label(params)}: {why}")


def _label(params):
    return "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"


def gradient_mode(spec):
    """Reverse mode where forward mode would need a tangent per point (BN 'through')."""
    return "reverse" if spec.bn_grad == "through" else "forward"


def exact_grid_bytes(points, input_dim):
    """Bytes the exact theory needs on ``points`` inputs of dimension ``input_dim`` at once
    (every pair, as :func:`gradsim.theory.exact.exact_gradient_covariance` checks them):
    ``8 P^2 (3 s + 2 d^2 + 3)`` with ``s = 3 + 4 d + d^2`` values of a pair's kernel state."""
    d = input_dim
    return 8 * points * points * (3 * pair_layout(d).size + 2 * d * d + 3)


def _check_size(sweep, cells):
    entries = sum(sweep.nets * c.grid.points * c.spec.input_dim for c in cells)
    if entries > MAX_ENTRIES:
        raise ValueError(f"nets: the sweep would compute {entries:.3g} gradient entries "
                         f"(cells x nets x points x input_dim), more than {MAX_ENTRIES:.0e}; "
                         "reduce nets, grid.points or the axes")
    m = min(sweep.chunk, sweep.nets)
    worst = max(network_bytes(c.spec, c.grid.points, gradient_mode(c.spec),
                              sampler=resolve_sampler(c.spec, c.grid.points,
                                                      gradient_mode(c.spec), sweep.sampler))
                + 2 * m * c.grid.points * c.spec.input_dim * 8 for c in cells)
    check_memory(worst, "chunk: one chunk of networks of the largest cell (width, depth, "
                        "grid.points, chunk)")
    _check_exact_grid(sweep, cells)


def _check_exact_grid(sweep, cells):
    """Refuse now, rather than at a cell mid-run, a grid too large for the exact lag-1
    theory, which takes the covariance of every pair of grid points at once (the pair
    statistics use two points).  Cells the theory does not cover never evaluate it."""
    if "exact" not in sweep.theory or "lag1" not in sweep.statistics:
        return

    def need(c):
        return exact_grid_bytes(c.grid.points, c.spec.input_dim)

    for c in sorted((c for c in cells if covers(c.spec, "exact") is None), key=need,
                    reverse=True):
        if defined_at(c.spec, c.grid.points_array()):  # the largest evaluated cell
            check_memory(need(c), f"grid.points: the exact theory's lag-1 expectation on "
                                  f"{c.grid.points} grid points (all pairs at once)")
            return
