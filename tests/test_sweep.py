"""Sweeps: validation, seeding, bit-identical engines, resume after a kill, the command line.

Every network here is tiny (width <= 16, depth <= 3, points <= 16).  The tests that start
processes are marked ``slow``: they kill real ``gradsim sweep`` processes (serial, or the
driver of a local Dask cluster, whose workers must die with it) and resume them.  Only
the cluster tests need dask (``distributed``).  Process trees are read from ``/proc``.
"""

import contextlib
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import listing

from gradsim import GridSpec, NetSpec, simulate
from gradsim.cli import main
from gradsim.compare import pair_statistics
from gradsim.stats import lag1
from gradsim.sweep import (
    CELL_FORMAT,
    compute_cell,
    load_sweep,
    parse_sweep,
    run_sweep,
    sweep_status,
)
from gradsim.sweep.cells import PAIR_STATISTICS
from gradsim.sweep.file import exact_grid_bytes
from gradsim.sweep.store import TEMPORARY
from gradsim.theory import covers
from gradsim.theory.exact import NO_ANGLE

BASE = """\
nets = 6
chunk = 4
seed = 3
gp_nets = 40
figures = []

[spec]
width = 4

[grid]
points = 8

[axes]
arch = ["feedforward", "resnet"]
batchnorm = [false, true]
depth = [1, 2]
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def cells_of(out):
    """Cell records by file name, without the wall time (the one field that varies) and
    the checksum (which covers it)."""
    recs = {}
    for name in listing(out / "cells"):
        rec = json.loads((out / "cells" / name).read_text())
        del rec["seconds"], rec["checksum"]
        recs[name] = rec
    return recs


def stamps(out):
    """(inode, mtime) of each cell file: a rewritten file changes both."""
    return {n: ((out / "cells" / n).stat().st_ino, (out / "cells" / n).stat().st_mtime_ns)
            for n in listing(out / "cells")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted serial run of BASE, its directory and its cell records."""
    out = tmp_path_factory.mktemp("ref") / "out"
    res = run_sweep(parse_sweep(BASE), out, engine="serial")
    return out, res, cells_of(out)


# --------------------------------------------------------------------------- seeds, numbers


def test_cell_seed_depends_only_on_the_spec_and_the_sweep_seed():
    a = parse_sweep(BASE)
    # reordered axes and values, an extra value, a default spelled out: same cell seeds
    b = parse_sweep(BASE.replace('arch = ["feedforward", "resnet"]\nbatchnorm = [false, true]',
                                 'batchnorm = [true, false]\narch = ["resnet", "feedforward"]')
                    .replace("depth = [1, 2]", "depth = [3, 2, 1]")
                    .replace("width = 4", "width = 4\nbias_var = 0.0"))
    seeds = {c.spec: c.seed for c in b.cells}
    assert len(b.cells) == 12 and len(set(seeds.values())) == 12
    for c in a.cells:
        assert seeds[c.spec] == c.seed
    other = parse_sweep(BASE.replace("seed = 3", "seed = 4"))
    assert all(c.seed != d.seed for c, d in zip(a.cells, other.cells))
    # the cell order is the product order, the last axis fastest
    assert [c.params for c in a.cells][:3] == [
        {"arch": "feedforward", "batchnorm": False, "depth": 1},
        {"arch": "feedforward", "batchnorm": False, "depth": 2},
        {"arch": "feedforward", "batchnorm": True, "depth": 1}]


def test_cell_statistics_are_those_of_simulate_and_chunking_changes_no_bit():
    spec, grid = NetSpec(depth=2, width=6), GridSpec(points=12)
    seed, nets, pair = 11, 9, (2, 9)
    out = compute_cell(spec, grid, seed, nets, chunk=4, pair=pair, theory=("exact",),
                       gp_nets=40)
    g = simulate(spec, grid, nets=nets, seed=seed).grad
    want = pair_statistics(g[:, pair[0]], g[:, pair[1]]) | {"lag1": lag1(g)}
    for name, est in want.items():
        got = out["estimates"][name]
        np.testing.assert_allclose([got["value"], got["se"]], [est.value, est.se],
                                   rtol=1e-10, err_msg=name)
        assert got["n"] == nets
    for chunk in (1, 9, 100):
        again = compute_cell(spec, grid, seed, nets, chunk=chunk, pair=pair,
                             theory=("exact",), gp_nets=40)
        assert {k: v for k, v in again.items() if k != "seconds"} == \
            {k: v for k, v in out.items() if k != "seconds"}
    assert out["theory"]["exact"]["lag1"]["covered"]


def test_cell_does_not_depend_on_the_blas_thread_count():
    """The exact lag-1 expectation samples a Gaussian process with BLAS and LAPACK, whose
    rounding depends on their thread count at 256 points: a dask worker has one thread,
    the serial driver all of them."""
    from threadpoolctl import threadpool_limits

    args = (NetSpec(depth=2, width=4), GridSpec(points=256), 5, 2)
    kw = dict(pair=(64, 191), statistics=("lag1",), theory=("exact",), gp_nets=4000)
    with threadpool_limits(limits=1):
        one = compute_cell(*args, **kw)
    with threadpool_limits(limits=2):
        two = compute_cell(*args, **kw)
    assert one["theory"] == two["theory"] and one["theory"]["exact"]["lag1"]["covered"]


def test_theory_not_covered_is_recorded(reference):
    _, res, _ = reference
    for rec in res.records:
        exact = rec["theory"]["exact"]
        if rec["params"]["batchnorm"]:  # exact theory has no batch norm
            assert not exact["correlation"]["covered"]
            assert "batch norm" in exact["correlation"]["reason"]
            # the reason is the family's own (gradsim.theory.covers)
            reason = covers(NetSpec.from_dict(rec["spec"]), "exact")
            assert {exact[s]["reason"] for s in exact} == {reason}
        else:
            assert exact["correlation"]["covered"] and exact["lag1"]["covered"]
            assert np.isfinite(exact["correlation"]["z"])
        assert not rec["theory"]["paper"]["lag1"]["covered"]
        assert rec["theory"]["paper"]["variance"]["covered"]


def test_inputs_without_an_angle_are_not_covered():
    """Without a first-layer bias an input at 0 has no angle: exact and independence
    theory do not cover a pair or a grid through it; the paper model ignores inputs."""
    spec, grid = NetSpec(depth=2, width=4, first_bias_var=0.0), GridSpec(points=9)
    assert grid.points_array()[4] == 0
    models = ("paper", "independence", "exact")
    at0 = compute_cell(spec, grid, 1, 4, pair=(0, 4), theory=models, gp_nets=40)["theory"]
    for model in ("independence", "exact"):
        assert {s: at0[model][s] for s in PAIR_STATISTICS} == \
            {s: {"covered": False, "reason": NO_ANGLE} for s in PAIR_STATISTICS}
    assert at0["exact"]["lag1"] == {"covered": False, "reason": NO_ANGLE}
    assert all(at0["paper"][s]["covered"] for s in PAIR_STATISTICS)
    off0 = compute_cell(spec, grid, 1, 4, pair=(0, 8), theory=models, gp_nets=40)["theory"]
    assert all(off0[m][s]["covered"] for m in models for s in PAIR_STATISTICS)
    assert off0["exact"]["lag1"] == {"covered": False, "reason": NO_ANGLE}


def test_an_error_in_a_covering_theory_is_raised_not_recorded(monkeypatch):
    """Coverage is decided before predicting: a theory that covers the cell and then
    fails is a bug, and compute_cell raises it."""
    import gradsim.sweep.cells

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(gradsim.sweep.cells, "predict", broken)
    with pytest.raises(ValueError, match="a bug"):
        compute_cell(NetSpec(depth=1, width=4), GridSpec(points=8), 1, 4,
                     statistics=("correlation",), theory=("exact",))


# --------------------------------------------------------------------------- files


def test_serial_run_writes_cells_index_and_summary(reference):
    out, res, cells = reference
    assert (res.total, res.computed, res.reused, res.skipped) == (8, 8, 0, 0)
    assert listing(out) == [".sweep.lock", "cells", "summary.csv", "summary.json",
                            "sweep.json"]
    assert list(cells) == [f"cell-{i:04d}.json" for i in range(8)]
    index = json.loads((out / "sweep.json").read_text())
    assert index["complete"] and index["sweep"] == parse_sweep(BASE).digest
    assert [c["file"] for c in index["cells"]] == [f"cells/{n}" for n in cells]
    rec = cells["cell-0003.json"]
    assert rec["format"] == CELL_FORMAT and rec["nets"] == 6
    assert rec["params"] == {"arch": "feedforward", "batchnorm": True, "depth": 2}
    assert NetSpec.from_dict(rec["spec"]) == NetSpec(depth=2, width=4, batchnorm=True)
    assert rec["sums"]["pair"]["count"] == 6
    text = (out / "summary.csv").read_text()
    assert text.startswith("cell,arch,batchnorm,depth,nets,seed,variance,variance_se,")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["cell"] for r in rows] == [f"cell-{i:04d}" for i in range(8)]
    for row, rec in zip(rows, res.records):
        assert float(row["lag1"]) == rec["estimates"]["lag1"]["value"]
        assert row["lag1_paper"] == "not covered" and row["lag1_paper_z"] == ""
        bn = row["batchnorm"] == "True"
        assert (row["correlation_exact"] == "not covered") == bn
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["cells"]] == [f"cell-{i:04d}" for i in range(8)]


def test_resume_computes_only_missing_or_damaged_cells(reference, tmp_path):
    _, _, want = reference
    out = tmp_path / "out"
    run_sweep(parse_sweep(BASE), out, engine="serial")
    (out / "cells" / "cell-0001.json").unlink()
    (out / "cells" / "cell-0002.json").write_text('{"format": "gradsim-sw')  # truncated
    tampered = json.loads((out / "cells" / "cell-0005.json").read_text())
    tampered["estimates"]["variance"]["value"] = 1.0
    (out / "cells" / "cell-0005.json").write_text(json.dumps(tampered))
    (out / "cells" / ".gradsim-0123456789ab.tmp").write_text("left by a kill")
    before = stamps(out)
    res = run_sweep(parse_sweep(BASE), out, engine="serial")
    assert (res.computed, res.reused) == (3, 5)
    after = stamps(out)
    for name in set(before) - {"cell-0001.json", "cell-0002.json", "cell-0005.json",
                               ".gradsim-0123456789ab.tmp"}:
        assert after[name] == before[name], name
    assert cells_of(out) == want
    # a changed chunk size changes no number: everything is reused
    res = run_sweep(parse_sweep(BASE.replace("chunk = 4", "chunk = 1")), out,
                    engine="serial")
    assert (res.computed, res.reused) == (0, 8)
    assert stamps(out) == after


def temporaries(out):
    """Temporary files of atomic writes in ``out`` and ``out/cells``."""
    return sorted(str(p.relative_to(out)) for d in (out, out / "cells") if d.is_dir()
                  for p in d.iterdir() if TEMPORARY.fullmatch(p.name) and p.is_file())


def test_the_temporary_pattern_is_that_of_atomic_write(tmp_path):
    """``store.TEMPORARY`` matches the files ``gradsim.util.atomic_write`` really makes."""
    from gradsim.util import atomic_write

    for _ in range(20):
        with atomic_write(tmp_path / "target") as fh:
            fh.write(b"x")
            (tmp,) = [n for n in listing(tmp_path) if n != "target"]
            assert TEMPORARY.fullmatch(tmp), tmp
    assert listing(tmp_path) == ["target"]


def test_rerun_and_force_remove_temporaries_left_in_both_folders_and_nothing_else(
        reference, tmp_path):
    """A killed run can leave a temporary file beside any file it writes: the index, the
    summary and figures in the out dir, the cells in ``cells/``.  The next run deletes
    exactly those (regular files named like ``atomic_write``'s), with or without
    ``--force``; a refused run deletes nothing."""
    _, _, want = reference
    out = tmp_path / "out"
    run_sweep(parse_sweep(BASE), out, engine="serial")
    names = {"": listing(out), "cells": listing(out / "cells")}
    decoys = [".gradsim-0123456789AB.tmp", ".gradsim-0123456789ab.tmp.bak",
              "gradsim-0123456789ab.tmp", ".gradsim-0123456789abc.tmp", ".gradsim-.tmp",
              ".gradsim-012345678.tmp", "x.gradsim-0123456789ab.tmp", "notes.txt"]
    kept = [*decoys, ".gradsim-abcdefabcdef.tmp"]  # the last one is a directory
    left = [".gradsim-0123456789ab.tmp", ".gradsim-ba9876543210.tmp"]

    def litter():
        for folder in (out, out / "cells"):
            (folder / left[0]).write_text("left by a kill")
            (folder / left[1]).write_bytes(b"")
            for name in decoys:
                (folder / name).write_text("mine")
            (folder / kept[-1]).mkdir(exist_ok=True)

    def files():
        """Every file but the temporaries and those a run rewrites."""
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()
                and not TEMPORARY.fullmatch(p.name)
                and p.name not in ("sweep.json", "summary.csv", "summary.json")}

    litter()
    before, cells_before = files(), stamps(out)
    assert temporaries(out) == [*left, *(f"cells/{n}" for n in left)]
    # a refused run (another sweep, no --force) writes and deletes nothing
    with pytest.raises(ValueError, match="holds the results of a different sweep"):
        run_sweep(parse_sweep(BASE.replace("seed = 3", "seed = 4")), out, engine="serial")
    assert files() == before and len(temporaries(out)) == 4
    # the same sweep resumes: every cell reused, the temporaries gone, nothing else touched
    res = run_sweep(parse_sweep(BASE), out, engine="serial")
    assert (res.computed, res.reused) == (0, 8)
    for folder, was in names.items():
        assert listing(out / folder) == sorted(was + kept), folder
    assert files() == before
    assert {n: s for n, s in stamps(out).items() if n.startswith("cell-")} == \
        {n: s for n, s in cells_before.items() if n.startswith("cell-")}
    # --force too (from the command line)
    litter()
    assert main(["sweep", str(write(tmp_path, BASE)), "--out", str(out), "--serial",
                 "--force", "--quiet"]) == 0
    for folder, was in names.items():
        assert listing(out / folder) == sorted(was + kept), folder
    assert all((out / d / n).read_text() == "mine" for d in names for n in decoys)
    for name in decoys:
        (out / "cells" / name).unlink()
    (out / "cells" / kept[-1]).rmdir()
    assert cells_of(out) == want


def test_exact_grid_bytes_are_those_the_exact_theory_asks_for(monkeypatch):
    """The sweep file's estimate is the memory ``theory.exact`` checks for before it
    evaluates a grid, for a lag-1 cell and in higher input dimension."""
    import gradsim.theory.exact
    from gradsim.theory.exact import exact_gradient_covariance

    asked = []
    monkeypatch.setattr(gradsim.theory.exact, "check_memory",
                        lambda nbytes, what: asked.append(nbytes))
    compute_cell(NetSpec(depth=2, width=4), GridSpec(points=12), 1, 4, statistics=("lag1",),
                 theory=("exact",), gp_nets=40)
    assert asked == [exact_grid_bytes(12, 1)]
    x = GridSpec(kind="gaussian", points=5, dim=3).points_array()
    exact_gradient_covariance(NetSpec(depth=2, input_dim=3), x)
    assert asked[1:] == [exact_grid_bytes(5, 3)] == [8 * 25 * (3 * 24 + 2 * 9 + 3)]


def test_a_grid_too_large_for_the_exact_theory_is_refused_when_parsed(monkeypatch):
    """With 1 GiB available, the exact lag-1 theory fits ~2000 grid points.  A sweep that
    would evaluate it on more is refused before anything runs, naming grid.points; one
    that never evaluates it on the grid (no lag1, no exact, or no covered cell) is not."""
    import gradsim.util

    monkeypatch.setattr(gradsim.util, "available_memory", lambda: 2**30)
    limit = int((0.8 * 2**30 / exact_grid_bytes(1, 1)) ** 0.5)
    assert exact_grid_bytes(limit, 1) <= 0.8 * 2**30 < exact_grid_bytes(limit + 1, 1)
    text = BASE.replace("points = 8", f"points = {limit + 1}")
    with pytest.raises(ValueError, match=rf"^grid.points: the exact theory's lag-1 "
                                         rf"expectation on {limit + 1} grid points .* "
                                         "GiB of memory, more than the 0.8 GiB"):
        parse_sweep(text)
    parse_sweep(BASE.replace("points = 8", f"points = {limit}"))
    for edit in ('nets = 6\nstatistics = ["variance", "correlation"]',
                 'nets = 6\ntheory = ["paper", "independence"]'):
        parse_sweep(text.replace("nets = 6", edit))
    # batch norm: the exact theory covers none of the cells
    only_bn = text.replace("batchnorm = [false, true]", "batchnorm = [true]")
    assert len(parse_sweep(only_bn).cells) == 4
    # no first-layer bias and a grid through 0: not evaluated either
    odd = text.replace(f"points = {limit + 1}", f"points = {limit + 1 + limit % 2}")
    with pytest.raises(ValueError, match="grid.points: the exact theory"):
        parse_sweep(odd)
    parse_sweep(odd.replace("width = 4", "width = 4\nfirst_bias_var = 0.0"))


def test_changed_sweep_is_refused_and_force_starts_over(reference, tmp_path):
    out = tmp_path / "out"
    run_sweep(parse_sweep(BASE), out, engine="serial")
    (out / "notes.txt").write_text("mine")
    (out / "cells" / "mine.json").write_text("{}")
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    changed = parse_sweep(BASE.replace("nets = 6", "nets = 5"))
    with pytest.raises(ValueError, match=f"out: {out} holds the results of a different"):
        run_sweep(changed, out, engine="serial")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    res = run_sweep(changed, out, engine="serial", force=True)
    assert res.computed == 8
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "cells" / "mine.json").read_text() == "{}"
    assert json.loads((out / "sweep.json").read_text())["sweep"] == changed.digest
    assert all(r["nets"] == 5 for r in res.records)
    # force with the same sweep starts over too
    assert run_sweep(changed, out, engine="serial", force=True).computed == 8


def test_skip_invalid_leaves_out_invalid_cells(tmp_path):
    text = BASE.replace("batchnorm = [false, true]", "beta = [1.0, 0.5]")
    with pytest.raises(ValueError, match=r"axes: cell \(arch='feedforward', beta=0.5, "
                                         r"depth=1\) is not valid: beta applies only"):
        parse_sweep(text)
    sweep = parse_sweep(text.replace("seed = 3", "seed = 3\nskip_invalid = true"))
    assert len(sweep.cells) == 6 and len(sweep.skipped) == 2
    res = run_sweep(sweep, tmp_path / "out", engine="serial")
    assert res.skipped == 2
    skipped = json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"]
    assert [s["index"] for s in skipped] == [2, 3]
    assert "beta applies only" in skipped[0]["reason"]


def test_figures_one_per_statistic(tmp_path):
    text = (BASE.replace("figures = []", 'figures = ["png"]\nstatistics = ["lag1", '
                         '"correlation"]').replace("batchnorm = [false, true]", ""))
    res = run_sweep(parse_sweep(text), tmp_path / "out", engine="serial")
    names = [os.path.basename(p) for p in res.outputs]
    assert names == ["summary.csv", "summary.json", "fig_correlation.png", "fig_lag1.png"]
    for p in res.outputs[2:]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_modules_are_small_share_no_private_names_and_have_no_cycle():
    """The package's layout: each module under 500 lines, imports of sibling modules
    (top level or lazy) only of public names, and no import cycle."""
    import ast

    import gradsim.sweep

    root = Path(gradsim.sweep.__file__).parent
    graph = {}
    for path in sorted(root.glob("*.py")):
        text = path.read_text()
        assert text.count("\n") < 500, path.name
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                mod = node.module
                if mod is None:  # from . import x: x are modules
                    deps |= {a.name for a in node.names}
                    continue
                deps.add(mod)
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from .{mod}"
    graph.pop("__init__")

    def reach(mod, seen):
        for dep in graph.get(mod, ()):
            assert dep != start, f"import cycle through {start} and {mod}"
            if dep not in seen:
                seen.add(dep)
                reach(dep, seen)

    for start in graph:
        reach(start, set())


# --------------------------------------------------------------------------- bad input

BAD = [
    ({'nets = 6': 'nets = 6\nfoo = 1'}, 'foo: unknown key'),
    ({'nets = 6': ''}, 'nets: missing'),
    ({'nets = 6': 'nets = 1'}, 'nets: must be an integer in \\[2,'),
    ({'nets = 6': 'nets = true'}, 'nets: must be an integer'),
    ({'chunk = 4': 'chunk = 0'}, 'chunk: must be an integer'),
    ({'seed = 3': 'seed = -1'}, 'seed: must be an integer'),
    ({'width = 4': 'width = 0'}, 'spec.width: must be an integer in \\[1,'),
    ({'width = 4': 'widht = 4'}, 'spec.widht: not a NetSpec field'),
    ({'width = 4': 'width = 4\ninit = "xavier"'}, 'spec.init: must be one of'),
    ({'points = 8': 'points = 8\ndim = 2'}, 'grid.dim: not a sweep key'),
    ({'points = 8': 'points = 0'}, 'grid.points: points must be an integer'),
    ({'points = 8': 'points = 8\nlo = 3.0'}, 'grid: range must have lo < hi'),
    ({'depth = [1, 2]': 'depth = []'}, 'axes.depth: must be a non-empty list'),
    ({'depth = [1, 2]': 'depth = 2'}, 'axes.depth: must be a non-empty list'),
    ({'depth = [1, 2]': 'depth = [1, 0]'}, 'axes.depth: must be an integer in \\[1,'),
    ({'depth = [1, 2]': 'depth = [1, 1.0]'}, 'axes.depth: repeated value 1'),
    ({'depth = [1, 2]': 'detph = [1, 2]'}, 'axes.detph: not a NetSpec field'),
    ({'depth = [1, 2]': 'depth = [1, 2]\nwidth = [4]'}, 'axes.width: also set in \\[spec\\]'),
    ({'arch = ["feedforward", "resnet"]\nbatchnorm = [false, true]\ndepth = [1, 2]': ''},
     'axes: must have at least one axis'),
    ({'depth = [1, 2]': 'depth = [1, 2]\nalpha = [0.5]'}, "axes: cell \\(arch='feedforward'"),
    ({'depth = [1, 2]': f'depth = {list(range(1, 101))}\n'
                        f'weight_var = {[i / 10 for i in range(1, 31)]}'},
     'axes: 12000 cells .* more than 10000'),
    ({'width = 4': 'width = 1000000', 'nets = 6': 'nets = 6\nsampler = "explicit"'},
     'chunk: one chunk of networks .* memory'),
    ({'nets = 6': 'nets = 6\nsampler = "fast"'}, 'sampler: must be one of explicit, gram, auto'),
    ({'width = 4': 'width = 4\ninit = "orthogonal"', 'nets = 6': 'nets = 6\nsampler = "gram"'},
     'sampler: gram does not apply to cell .* orthogonal'),
    ({'nets = 6': 'nets = 6\nstatistics = ["kurtosis"]'}, "statistics: 'kurtosis' is not"),
    ({'nets = 6': 'nets = 6\nstatistics = []'}, 'statistics: must be a non-empty list'),
    ({'nets = 6': 'nets = 6\ntheory = ["exact", "gp"]'}, "theory: 'gp' is not one of"),
    ({'nets = 6': 'nets = 6\npair = [-1.0, 5.0]'}, 'pair: must be a finite number in \\[-2.0'),
    ({'nets = 6': 'nets = 6\npair = [0.0, 0.1]'}, 'pair: both points are grid point'),
    ({'nets = 6': 'nets = 6\nx_axis = "width"'}, 'x_axis: must name an axis'),
    ({'nets = 6': 'nets = 6\nskip_invalid = 1'}, 'skip_invalid: must be true or false'),
    ({'figures = []': 'figures = ["jpg"]'}, "figures: 'jpg' is not one of"),
    ({'width = 4': 'width = 4\ninput_dim = 2'}, 'statistics: lag1 needs input_dim = 1'),
    ({'nets = 6': 'nets = = 6'}, 'not valid TOML'),
    ({'[spec]': '[spec]\n[spec]'}, 'not valid TOML'),
    ({'nets = 6': 'nets = 1000000000', 'points = 8': 'points = 256'},
     'nets: the sweep would compute .* gradient entries'),
    ({'points = 8': 'points = 100000'}, "grid.points: the exact theory's lag-1 .* memory"),
]


@pytest.mark.parametrize("edits, message", BAD)
def test_bad_sweep_files_name_the_key_and_write_nothing(tmp_path, capsys, edits, message):
    text = BASE
    for old, new in edits.items():
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        load_sweep(path)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--serial"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("gradsim: error: ") and captured.err.count("\n") == 1
    assert not out.exists() and listing(tmp_path) == ["sweep.toml"]


def test_bad_run_options_write_nothing(tmp_path):
    sweep = parse_sweep(BASE)
    (tmp_path / "file").write_text("x")
    for kwargs, message in [
        ({"workers": -1}, "workers must be an integer in"),
        ({"engine": "threads"}, "engine must be serial or dask"),
        ({"engine": "serial", "scheduler": "tcp://127.0.0.1:1"}, "scheduler: cannot be"),
        ({"workers": 0, "scheduler": "tcp://127.0.0.1:1"}, "scheduler: cannot be"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_sweep(sweep, tmp_path / "out", **kwargs)
    with pytest.raises(ValueError, match="exists and is not a directory"):
        run_sweep(sweep, tmp_path / "file", engine="serial")
    with pytest.raises(ValueError, match="does not exist"):
        run_sweep(sweep, tmp_path / "no" / "out", engine="serial")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text("not json")
    with pytest.raises(ValueError, match="not a readable sweep index; use --force"):
        run_sweep(sweep, tmp_path / "bad", engine="serial")
    assert listing(tmp_path) == ["bad", "file"] and listing(tmp_path / "bad") == ["sweep.json"]


def test_missing_or_unreadable_sweep_file(tmp_path):
    with pytest.raises(ValueError, match="no such sweep file"):
        load_sweep(tmp_path / "none.toml")
    (tmp_path / "bin.toml").write_bytes(b"nets = 6\n\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_sweep(tmp_path / "bin.toml")


# --------------------------------------------------------------------------- command line


def test_cli_runs_resumes_and_is_quiet(reference, tmp_path, capsys):
    _, _, want = reference
    path, out = write(tmp_path, BASE), tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--serial"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"wrote {out}: 8 cells (8 computed, 0 reused)")
    assert cells_of(out) == want
    assert main(["sweep", str(path), "--out", str(out), "--serial", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_cli_usage_errors_and_refusal_are_one_line(tmp_path, capsys):
    path, out = write(tmp_path, BASE), tmp_path / "out"
    for argv in (["--serial", "--workers", "2"], ["--serial", "--scheduler", "x:1"],
                 ["--workers", "two"]):
        assert main(["sweep", str(path), "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert main(["sweep", str(path), "--out", str(out), "--serial", "--quiet"]) == 0
    changed = write(tmp_path, BASE.replace("seed = 3", "seed = 5"), "changed.toml")
    assert main(["sweep", str(changed), "--out", str(out), "--serial"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "--force" in err
    assert main(["sweep", str(changed), "--out", str(out), "--serial", "--force"]) == 0
    assert "8 computed, 0 reused" in capsys.readouterr().out


def test_cli_ctrl_c_saves_finished_cells_and_exits_130(reference, tmp_path, capsys,
                                                       monkeypatch):
    import gradsim.sweep.engines

    _, _, want = reference
    real, calls = gradsim.sweep.engines.compute_cell, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    # the engine looks compute_cell up in its own module
    monkeypatch.setattr(gradsim.sweep.engines, "compute_cell", interrupted)
    path, out = write(tmp_path, BASE), tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--serial"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err == (f"gradsim: interrupted; 3 of 8 cells are saved in {out}; rerun "
                            "the same command to resume\n")
    assert sweep_status(parse_sweep(BASE), out) == (3, 8)
    monkeypatch.setattr(gradsim.sweep.engines, "compute_cell", real)
    assert main(["sweep", str(path), "--out", str(out), "--serial"]) == 0
    assert "(5 computed, 3 reused)" in capsys.readouterr().out
    assert cells_of(out) == want


KILL = BASE.replace("nets = 6", "nets = 24").replace("width = 4", "width = 8") \
    .replace("points = 8", "points = 16").replace("chunk = 4", "chunk = 2")


@pytest.mark.slow
def test_killed_process_loses_no_finished_cell(tmp_path):
    """SIGKILL a real ``gradsim sweep`` (its whole process group) once some cells are
    saved; the same command computes only the rest, and the results equal a run that was
    never interrupted."""
    path, out = write(tmp_path, KILL), tmp_path / "out"
    want = run_sweep(load_sweep(path), tmp_path / "ref", engine="serial")
    proc = subprocess.Popen([sys.executable, "-m", "gradsim", "sweep", str(path), "--out",
                             str(out), "--serial", "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if len([n for n in listing(out / "cells") if n.startswith("cell-")]
                   if (out / "cells").is_dir() else []) >= 3:
                break
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    proc.stderr.close()
    before = {n: s for n, s in stamps(out).items() if n.startswith("cell-")}
    assert 3 <= len(before) < 8
    res = run_sweep(load_sweep(path), out, engine="serial")
    assert (res.computed, res.reused) == (8 - len(before), len(before))
    after = stamps(out)
    assert all(after[n] == s for n, s in before.items())
    assert cells_of(out) == cells_of(tmp_path / "ref")
    assert [r["estimates"] for r in res.records] == [r["estimates"] for r in want.records]


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_no_temporary_after_the_rerun(tmp_path):
    """SIGKILL ``gradsim sweep --force`` while it writes the index, a cell, or the summary
    and figures (the moment a temporary file appears there), and at seeded random times;
    each time the same command (every other time with ``--force``) removes every
    temporary file and gives the uninterrupted run's files."""
    text = KILL.replace("figures = []", 'figures = ["png"]')
    path, out, ref = write(tmp_path, text), tmp_path / "out", tmp_path / "ref"
    argv = ["sweep", str(path), "--out", str(out), "--serial", "--quiet"]
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "gradsim", *argv[:3], str(ref), *argv[4:]],
                   check=True)
    seconds = time.monotonic() - t0
    want_files = listing(ref)
    rng = random.Random(14)

    def writing(folder, after=0):
        """Kill when a temporary shows up in ``out/folder`` (once ``after`` cells exist)."""
        def now():
            if len([n for n in listing(out / "cells") if n.startswith("cell-")]) < after:
                return False
            return any(TEMPORARY.fullmatch(n) for n in listing(out / folder))
        return now

    def at(delay):
        return lambda: time.monotonic() - start > delay

    moments = [("index", writing("")), ("a cell", writing("cells")),
               ("the summary or a figure", writing("", after=8))]
    moments += [(f"{d:.2f} s", at(d)) for d in sorted(rng.uniform(0.2, seconds)
                                                        for _ in range(3))]
    caught = []
    for k, (moment, now) in enumerate(moments):
        for _attempt in range(3):
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "gradsim", *argv, "--force"],
                                    start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                while proc.poll() is None:
                    with contextlib.suppress(FileNotFoundError):
                        if now():
                            break
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            left = temporaries(out)
            if left or k >= 3:
                break
        caught.append((moment, proc.returncode, left))
        if k < 3:  # a kill while writing leaves the file being written
            assert proc.returncode == -signal.SIGKILL and left, caught
        assert main(argv + (["--force"] if k % 2 else [])) == 0
        assert temporaries(out) == [], (moment, temporaries(out))
        assert listing(out) == want_files
        assert cells_of(out) == cells_of(ref), moment
    assert any("cells/" in n for _, _, left in caught for n in left), caught
    assert any("/" not in n for _, _, left in caught for n in left), caught


# --------------------------------------------------------------------------- dask


@pytest.mark.slow
def test_local_dask_cluster_gives_bit_identical_cells_despite_a_killed_worker(reference,
                                                                           tmp_path):
    """Two local worker processes; one is SIGKILLed after the first cell arrives.  Dask
    reruns its task elsewhere, and every cell file equals the serial run's."""
    pytest.importorskip("distributed")
    import psutil

    _, _, want = reference
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}

    def workers():
        """Worker processes started by the run (spawned by multiprocessing)."""
        found = []
        for p in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if p.pid not in before and "spawn_main" in " ".join(p.cmdline()):
                    found.append(p)
        return found

    events, killed = [], []

    def progress(kind, done, total):
        events.append((kind, done, total))
        if done == 1 and not killed:
            killed.append(workers()[0].pid)
            os.kill(killed[0], signal.SIGKILL)

    res = run_sweep(parse_sweep(BASE), tmp_path / "out", workers=2, progress=progress)
    assert killed and res.computed == 8
    assert cells_of(tmp_path / "out") == want
    assert events[0] == ("cells", 0, 8) and events[-1] == ("cells", 8, 8)
    assert all(kind == "cells" for kind, _, _ in events)
    # the cluster is closed: no worker process is left
    deadline = time.monotonic() + 30
    while workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workers()


def process_table():
    """pid -> (parent pid, state, start time) of every process, from ``/proc/PID/stat``."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    stat = fh.read()
            except OSError:  # gone meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # from field 3, the state
            table[int(name)] = (int(fields[1]), fields[0], int(fields[19]))
    return table


def descendants(pid):
    """``(pid, start time)`` of every process below ``pid`` now (via parent pids)."""
    table, found, todo = process_table(), set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start) in table.items():
            if ppid == parent:
                found.add((child, start))
                todo.append(child)
    return found


def running(procs):
    """Those of ``procs`` (``(pid, start time)``) that still run: not gone, not zombies
    (an orphan's zombie waits for init)."""
    table = process_table()
    return {(pid, start) for pid, start in procs if pid in table
            and table[pid][2] == start and table[pid][1] != "Z"}


def wait_gone(procs, timeout):
    """Seconds until none of ``procs`` runs, or None after ``timeout``."""
    t0 = time.monotonic()
    while running(procs):
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.02)
    return time.monotonic() - t0


#: Cells long enough (seconds each) that a cluster is still busy after the first one.
DASK_KILL = BASE.replace("nets = 6", "nets = 5000").replace("width = 4", "width = 16") \
    .replace("chunk = 4", "chunk = 64")
#: Loaded at start-up in every Python process (``PYTHONPATH``): turns off distributed's own
#: watch of a worker's parent (a pipe), so that only gradsim's can end the workers.
NO_DASK_WATCH = """\
import distributed.process
distributed.process.AsyncProcess._immediate_exit_when_closed = classmethod(
    lambda cls, pipe: None)
"""


def start_dask_sweep(tmp_path, text, env=None):
    """``gradsim sweep --workers 2`` in its own session, and its out dir."""
    path, out = write(tmp_path, text), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gradsim", "sweep", str(path), "--out",
                             str(out), "--workers", "2", "--quiet"], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    return proc, out


def wait_for_cells(proc, out, count=1, timeout=120):
    """Every descendant of ``proc`` once ``count`` cells are saved (the workers run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "cells").is_dir() and sum(n.startswith("cell-")
                                            for n in listing(out / "cells")) >= count:
            procs = descendants(proc.pid)
            assert proc.poll() is None, "the sweep finished before it could be stopped"
            return procs
        time.sleep(0.02)
    raise AssertionError(f"no cell saved: {proc.poll()} {proc.communicate()}")


@pytest.mark.slow
@pytest.mark.parametrize("dask_watch", [True, False], ids=["dask-watch", "gradsim-watch-only"])
def test_a_killed_dask_driver_leaves_no_process(tmp_path, dask_watch):
    """SIGKILL only the driver of ``gradsim sweep --workers 2`` while its workers compute:
    within a few seconds no process it started runs (its workers, Dask's nannies, which
    run in the driver, and multiprocessing's resource tracker).  With distributed's own
    parent watch turned off, gradsim's (``engines.dask_setup``) alone does it."""
    pytest.importorskip("distributed")
    env = dict(os.environ)
    if not dask_watch:
        import distributed.process

        if not hasattr(distributed.process.AsyncProcess, "_immediate_exit_when_closed"):
            pytest.skip("this distributed has no parent watch to turn off")
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(NO_DASK_WATCH)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site),
                                                          env.get("PYTHONPATH")]))
    proc, out = start_dask_sweep(tmp_path, DASK_KILL, env)
    try:
        procs = wait_for_cells(proc, out)
        assert len(procs) >= 3, procs  # two workers and the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        seconds = wait_gone(procs, 10)
        assert seconds is not None, f"left running: {running(procs)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= sweep_status(load_sweep(tmp_path / "sweep.toml"), out)[0] < 8


@pytest.mark.slow
def test_dask_sweep_ctrl_c_and_finish_leave_no_process(tmp_path):
    """Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) while the
    workers compute: exit 130 with the one line, and every process the run started is
    gone within seconds.  A sweep that finishes leaves none either."""
    pytest.importorskip("distributed")
    proc, out = start_dask_sweep(tmp_path, DASK_KILL)
    try:
        procs = wait_for_cells(proc, out)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert stdout == ""
        assert re.fullmatch(rf"gradsim: interrupted; [1-7] of 8 cells are saved in "
                            rf"{re.escape(str(out))}; rerun the same command to resume\n",
                            stderr), stderr
        assert wait_gone(procs, 10) is not None, f"left running: {running(procs)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate(timeout=60)
    (tmp_path / "small").mkdir()
    proc, out = start_dask_sweep(tmp_path / "small", BASE)
    try:
        seen = set()
        while proc.poll() is None:
            seen |= descendants(proc.pid)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert (stdout, stderr) == ("", "")
        assert len(seen) >= 3, seen
        assert wait_gone(seen, 10) is not None, f"left running: {running(seen)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert sweep_status(parse_sweep(BASE), out) == (8, 8)
