"""Sweeps: validation, seeding, bit-identical engines, resume after a kill, the command line.

Every network here is tiny (width <= 8, depth <= 3, points <= 16, nets <= 24).  Only the
cluster test needs dask (``distributed``); one test kills a real ``gradsim sweep``
process and resumes it.  Those two are marked ``slow``.
"""

import contextlib
import csv
import io
import json
import os
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
    ({'width = 4': 'width = 1000000'}, 'chunk: one chunk of networks .* memory'),
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
