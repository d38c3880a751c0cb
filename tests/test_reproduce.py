"""gradsim reproduce resumes: finished experiments are reused (and the log says so), stale
or broken ones recomputed, other settings refused without --force; leftovers of an
interrupted write are removed; bad output locations and malformed results files given to
gradsim plot are one line and exit 2; worker processes never change a number."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import listing, raw
from test_experiments import _tiny

from gradsim import experiments, parallel
from gradsim.cli import main
from gradsim.experiments import base, common
from gradsim.experiments import reproduce as rep
from gradsim.experiments.base import load_results, save_results
from gradsim.experiments.report import read_report_stamp
from gradsim.experiments.reproduce import Interrupted, reproduce, run_one
from gradsim.parallel import available_cores as default_workers
from gradsim.util import TMP_PREFIX, remove_temporaries

LINUX = sys.platform.startswith("linux")
NAMES = ["gradients", "kurtosis"]
OVERRIDES = {n: _tiny(n) for n in NAMES}
SETS = [a for n in NAMES for k, v in _tiny(n).items() for a in ("--set", f"{n}.{k}={v}")]


def _files(root):
    """Relative path -> (bytes, mtime_ns) of every file under ``root``."""
    out = {}
    for d, _, names in os.walk(root):
        for f in names:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (fh.read(), os.stat(p).st_mtime_ns)
    return out


def _count_runs(monkeypatch, names=NAMES):
    """Wrap each experiment's ``run``; returns the dict of call counts."""
    calls = dict.fromkeys(names, 0)
    for n in names:
        mod = experiments.get(n)

        def counted(params, progress=None, _real=mod.run, _n=n):
            calls[_n] += 1
            return _real(params, progress)

        monkeypatch.setattr(mod, "run", counted)
    return calls


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A directory one finished tiny run wrote (copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    reproduce(str(out), only=NAMES, overrides=OVERRIDES)
    return out


@pytest.fixture
def done(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)  # copy2: mtimes kept
    return out


def _rerun(out, monkeypatch, **kw):
    calls = _count_runs(monkeypatch)
    lines = []
    res = reproduce(str(out), only=NAMES, overrides=kw.pop("overrides", OVERRIDES),
                    log=lines.append, **kw)
    return res, calls, lines


def test_rerun_of_a_finished_directory_reuses_everything(done, monkeypatch):
    before = _files(done)
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 0, "kurtosis": 0}
    assert res["reused"] == NAMES and res["computed"] == []
    assert lines == [f"{n}: reused (finished by an earlier run)" for n in NAMES]
    after = _files(done)
    assert sorted(after) == sorted(before)
    for path, (data, mtime) in before.items():
        if not path.startswith("report."):  # results and figures untouched
            assert after[path] == (data, mtime), path
    md = (done / "report.md").read_text()
    assert "Reused from an earlier run (same parameters, quick flag, versions and code): " \
           "gradients, kurtosis." in md and "X5" in md
    assert read_report_stamp(done / "report.md") == {"experiments": NAMES, "quick": False}
    # the claims come from the results file, as a fresh run's would
    fresh = experiments.get("kurtosis").claims(load_results(done / "results" / "kurtosis.npz"))
    assert [c.to_dict() for c in res["entries"]["kurtosis"][1]] == [c.to_dict() for c in fresh]


def test_interrupted_run_resumes_computing_only_the_rest(tmp_path, monkeypatch):
    out = tmp_path / "out"
    mod = experiments.get("kurtosis")
    real = mod.run
    monkeypatch.setattr(mod, "run", lambda params, progress=None: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(Interrupted, match="the same command resumes") as info:
        reproduce(str(out), only=NAMES, overrides=OVERRIDES)
    assert info.value.saved == ["gradients"]
    assert not (out / "report.md").exists()
    gradients = _files(out / "results")
    monkeypatch.setattr(mod, "run", real)
    res, calls, lines = _rerun(out, monkeypatch)
    assert calls == {"gradients": 0, "kurtosis": 1}
    assert res["reused"] == ["gradients"] and res["computed"] == ["kurtosis"]
    assert lines[0] == "gradients: reused (finished by an earlier run)"
    assert lines[1].startswith("kurtosis: ") and lines[1].endswith(" s")
    assert _files(out / "results")["gradients.npz"] == gradients["gradients.npz"]
    assert sorted(os.listdir(out / "figures")) == ["gradients.pdf", "gradients.png",
                                                  "kurtosis.pdf", "kurtosis.png"]
    # --force recomputes everything
    res, calls, _ = _rerun(out, monkeypatch, force=True)
    assert calls == {"gradients": 1, "kurtosis": 1} and res["reused"] == []


def test_other_parameters_are_refused_without_force_and_nothing_changes(done, monkeypatch):
    before = _files(done)
    other = dict(OVERRIDES, kurtosis=dict(OVERRIDES["kurtosis"], nets="21"))
    with pytest.raises(ValueError, match=r"holds results of another setting: kurtosis \(was "
                                         r"computed with other nets\); use --force"):
        _rerun(done, monkeypatch, overrides=other)
    with pytest.raises(ValueError, match=r"gradients \(was computed with other .*quick"):
        reproduce(str(done), only=NAMES, quick=True)
    assert _files(done) == before
    res, calls, _ = _rerun(done, monkeypatch, overrides=other, force=True)
    assert calls == {"gradients": 1, "kurtosis": 1}
    assert load_results(done / "results" / "kurtosis.npz").params["nets"] == 21


def test_results_of_other_code_are_recomputed_and_say_why(done, monkeypatch):
    monkeypatch.setattr(rep, "code_checksum", lambda: "0" * 64)
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 1, "kurtosis": 1}
    assert all("(recomputed: its results came from other code (gradsim source changed))"
               in line for line in lines), lines
    assert load_results(done / "results" / "gradients.npz").meta["checksum"] == "0" * 64
    monkeypatch.undo()
    # another numerical stack: one version changed in the file
    path = done / "results" / "gradients.npz"
    old = load_results(path)
    old.meta["versions"]["numpy"] = "0.0"
    save_results(path, old)
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 1, "kurtosis": 1}  # kurtosis: source checksum "0" * 64
    assert f"numpy 0.0 -> {np.__version__}" in lines[0]
    # a parameter that another version added or removed is not another setting
    old = load_results(path)
    old.params.pop("seed")
    old.params["retired"] = 1
    old.meta["checksum"] = "1" * 64
    save_results(path, old)
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 1, "kurtosis": 0}
    assert "recomputed: its results came from other code (gradsim source changed)" in lines[0]


@pytest.mark.skipif(bool(experiments.missing_requirements("training")), reason="digits")
def test_run_settings_do_not_enter_the_resume_check(tmp_path, monkeypatch):
    """training's ``workers`` says how to run, not what: results of another value are
    reused."""
    out = tmp_path / "out"
    over = {"training": _tiny("training")}
    reproduce(str(out), only=["training"], overrides=over)
    calls = _count_runs(monkeypatch, ["training"])
    res = reproduce(str(out), only=["training"],
                    overrides={"training": dict(over["training"], workers="2")})
    assert res["reused"] == ["training"] and calls == {"training": 0}


def test_unreadable_or_unfit_results_are_recomputed(done, monkeypatch):
    path = done / "results" / "gradients.npz"
    path.write_bytes(path.read_bytes()[:200])  # truncated by a crash of the disk, say
    kpath = done / "results" / "kurtosis.npz"
    k = load_results(kpath)
    save_results(kpath, base.Results(k.name, k.params, {}, k.meta))  # no arrays
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 1, "kurtosis": 1}
    assert "recomputed: its results file was unreadable" in lines[0]
    assert "recomputed: its results file did not fit the experiment" in lines[1]
    assert set(raw(kpath)) > {"__meta__", "kurtosis", "theory"}
    load_results(done / "results" / "gradients.npz")  # readable again


def test_missing_or_stale_figures_are_redrawn_from_the_results(done, monkeypatch):
    (done / "figures" / "gradients.pdf").unlink()
    res_path = done / "results" / "kurtosis.npz"
    png = done / "figures" / "kurtosis.png"
    t = os.stat(res_path).st_mtime_ns
    os.utime(png, ns=(t - 10**9, t - 10**9))  # drawn before its results were written
    results = _files(done / "results")
    res, calls, lines = _rerun(done, monkeypatch)
    assert calls == {"gradients": 0, "kurtosis": 0}
    assert lines == [f"{n}: reused results; figures redrawn from them" for n in NAMES]
    assert (done / "figures" / "gradients.pdf").exists()
    assert os.stat(png).st_mtime_ns >= t
    assert _files(done / "results") == results


def test_leftover_temporary_files_are_removed_and_nothing_else(done, monkeypatch):
    leftovers = [done / f"{TMP_PREFIX}0a1b2c3d4e5f.tmp",
                 done / "results" / f"{TMP_PREFIX}00ff00ff00ff.tmp",
                 done / "figures" / f"{TMP_PREFIX}abcdef012345.tmp"]
    keep = [done / f"{TMP_PREFIX}notahexdigit.tmp", done / f"{TMP_PREFIX}abc.tmp",
            done / "figures" / f"{TMP_PREFIX}0a1b2c3d4e5f.tmp.keep",
            done / "figures" / "gradsim-0a1b2c3d4e5f.tmp", done / "results" / "notes.tmp",
            done / "figures" / f"x{TMP_PREFIX}0a1b2c3d4e5f.tmp",
            done / "results" / f"{TMP_PREFIX}0A1B2C3D4E5F.tmp"]
    for p in leftovers + keep:
        p.write_bytes(b"partial")
    folder = done / "results" / f"{TMP_PREFIX}ffffffffffff.tmp"
    folder.mkdir()  # a directory of that name is not ours
    res, calls, lines = _rerun(done, monkeypatch)
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep) and folder.is_dir()
    assert sum("left by an interrupted run" in line for line in lines) == 3
    assert remove_temporaries(done / "missing") == []


@pytest.mark.skipif(not LINUX, reason="flock")
def test_a_second_run_into_the_same_directory_is_refused(done, monkeypatch):
    import fcntl

    before = _files(done)
    with open(done / rep.LOCK, "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        with pytest.raises(ValueError, match="is in use by another gradsim reproduce"):
            _rerun(done, monkeypatch)
    assert _files(done) == before
    assert _rerun(done, monkeypatch)[0]["reused"] == NAMES  # released: runs


def test_report_of_other_experiments_or_unknown_origin_is_refused(done, monkeypatch):
    before = _files(done)
    with pytest.raises(ValueError, match=r"already holds a report of other experiments or "
                                         r"settings \(gradients, kurtosis, quick false\)"):
        reproduce(str(done), only=["gradients"], overrides={"gradients": _tiny("gradients")})
    assert _files(done) == before
    (done / "report.md").write_text("# my own notes\n")
    with pytest.raises(ValueError, match="already holds a report that reproduce cannot read"):
        _rerun(done, monkeypatch)
    res, calls, _ = _rerun(done, monkeypatch, force=True)
    assert calls == {"gradients": 1, "kurtosis": 1}
    # the order of --only does not make another report
    res = reproduce(str(done), only=NAMES[::-1], overrides=OVERRIDES)
    assert res["reused"] == NAMES[::-1]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_resume_says_which_experiments_were_reused(done, capsys):
    code, out, err = _run(capsys, "reproduce", "--only", *NAMES, *SETS, "--out", done,
                          "--workers", "1")
    assert code == 0, err
    assert ("gradsim: reused 2 finished experiments (same parameters and code; --force "
            "recomputes them): gradients, kurtosis") in err
    assert "gradients: reused" in err and "wrote" in out


def _one_line_error(code, err, match):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("gradsim: error: ") and match in err, err


def test_cli_reproduce_out_not_a_writable_directory_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    cases = [(tmp_path / "file", "exists and is not a directory"),
             (tmp_path / "file" / "sub", "is not a directory")]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "results").write_text("not a directory")
    cases.append((tmp_path / "d", "results' exists and is not a directory"))
    if LINUX:
        cases.append(("/proc/gradsim-out", "cannot write in directory '/proc'"))
    for out, match in cases:
        code, _, err = _run(capsys, "reproduce", "--only", "gradients", "--out", out)
        _one_line_error(code, err, match)
    assert listing(tmp_path) == ["d", "file"] and listing(tmp_path / "d") == ["results"]
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.skipif(not LINUX, reason="needs /proc")
def test_cli_run_and_plot_into_unwritable_directory_exit_2(finished, capsys):
    code, _, err = _run(capsys, "run", "gradients", "--out", "/proc/gradsim-x.npz")
    _one_line_error(code, err, "cannot write in directory '/proc'")
    code, _, err = _run(capsys, "plot", finished / "results" / "gradients.npz", "--out",
                        "/proc/gradsim-x.png")
    _one_line_error(code, err, "cannot write in directory '/proc'")


def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _meta(name="kurtosis", params=None, **extra):
    params = TINY_PARAMS if params is None else params
    return json.dumps({"name": name, "params": params, "meta": {}, "format": base.FORMAT}
                      | extra)


TINY_PARAMS = base.resolve(experiments.get("kurtosis"), overrides=_tiny("kurtosis"))


def _malformed(tmp, case, good):
    p = tmp / "bad.npz"
    arrays = raw(good)
    if case == "header only, no arrays":
        _write_npz(p, __meta__=_meta())
    elif case == "one array missing":
        arrays.pop("kurtosis_se")
        _write_npz(p, **arrays)
    elif case == "wrong shape":
        _write_npz(p, **dict(arrays, kurtosis=np.zeros(1)))
    elif case == "wrong dtype":
        _write_npz(p, **dict(arrays, kurtosis=np.array(["a", "b"])))
    elif case == "unknown experiment":
        _write_npz(p, __meta__=_meta("nope"))
    elif case == "meta not a dict":
        _write_npz(p, __meta__=json.dumps([1, 2]))
    elif case == "meta not JSON text":
        _write_npz(p, __meta__=np.zeros(3))
    elif case == "no meta":
        _write_npz(p, kurtosis=np.zeros(3))
    elif case == "params not a dict":
        _write_npz(p, __meta__=_meta(params=[1, 2]))
    elif case == "params of another experiment":
        _write_npz(p, __meta__=_meta(params={"nets": 3}))
    elif case == "param of the wrong type":
        _write_npz(p, **dict(arrays, __meta__=_meta(params=dict(TINY_PARAMS, nets="many"))))
    elif case == "name not a string":
        _write_npz(p, __meta__=_meta(name=["kurtosis"]))
    elif case == "truncated zip":
        p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    elif case == "corrupt compressed data":
        data = bytearray(good.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 40] = bytes(40)
        p.write_bytes(bytes(data))
    elif case == "not an npz":
        p.write_text("x, y\n1, 2\n")
    elif case == "an npy array":
        with open(p, "wb") as fh:
            np.save(fh, np.zeros(3))
    elif case == "a directory":
        p.mkdir()
    return p


MALFORMED = {
    "header only, no arrays": "does not hold the numbers experiment kurtosis needs "
                              "(KeyError: no array 'kurtosis')",
    "one array missing": "does not hold the numbers experiment kurtosis needs",
    "wrong shape": "does not hold the numbers experiment kurtosis needs (IndexError",
    "wrong dtype": "is not a gradsim results file (array kurtosis holds <U1, not numbers)",
    "unknown experiment": "bad.npz: unknown experiment 'nope'",
    "meta not a dict": "is not a gradsim results file (no format tag)",
    "meta not JSON text": "is not a gradsim results file (__meta__ is not JSON text)",
    "no meta": "is not a gradsim results file (no __meta__ entry)",
    "params not a dict": "(__meta__ params is not a JSON object)",
    "params of another experiment": "parameters are not those of experiment kurtosis "
                                    "(missing check_depth, depth, seed, widths)",
    "param of the wrong type": "bad.npz: kurtosis: parameter nets must be an integer",
    "name not a string": "(__meta__ has no experiment name)",
    "truncated zip": "is not a gradsim results file",
    "corrupt compressed data": "is not a gradsim results file",
    "not an npz": "is not a gradsim results file",
    "an npy array": "is not a gradsim results file (not an .npz archive)",
    "a directory": "is a directory, not a results file",
}


@pytest.mark.parametrize("case", MALFORMED)
def test_cli_plot_of_a_malformed_results_file_is_one_line_exit_2(case, finished, tmp_path,
                                                                 capsys):
    bad = _malformed(tmp_path, case, finished / "results" / "kurtosis.npz")
    before = listing(tmp_path)
    code, _, err = _run(capsys, "plot", bad, "--out", tmp_path / "f.png")
    _one_line_error(code, err, MALFORMED[case])
    assert listing(tmp_path) == before  # nothing written, no temporary file left


def test_plot_of_a_good_file_still_works(finished, tmp_path, capsys):
    code, out, err = _run(capsys, "plot", finished / "results" / "kurtosis.npz", "--out",
                          tmp_path / "k.pdf")
    assert code == 0 and listing(tmp_path) == ["k.pdf"], err


def test_workers_option_default_and_range(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake(out, **kw):
        seen.update(kw)
        return {"entries": {}, "report": ("r.md", "r.html"), "seconds": 0.0, "reused": [],
                "computed": []}

    import gradsim.cli.experiments as cli

    monkeypatch.setattr(cli, "reproduce", fake)
    assert _run(capsys, "reproduce", "--out", tmp_path / "o", "--quiet")[0] == 0
    assert seen["workers"] == default_workers() == min(len(os.sched_getaffinity(0)), 256)
    assert _run(capsys, "reproduce", "--out", tmp_path / "o", "--quiet", "--workers", "3")[0] == 0
    assert seen["workers"] == 3 and seen["page"] is None  # the page: when Bokeh is there
    assert _run(capsys, "reproduce", "--out", tmp_path / "o", "--quiet", "--no-page")[0] == 0
    assert seen["page"] is False
    for argv in (["reproduce", "--out", tmp_path / "o"], ["run", "gradients", "--out",
                                                          tmp_path / "x.npz"]):
        code, _, err = _run(capsys, *argv, "--workers", "0")
        _one_line_error(code, err, "workers must be an integer in [1, 256], got 0")
    assert listing(tmp_path) == []
    for command in ("reproduce", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"(default: all {default_workers()} cores; the numbers are the same" in text
    with pytest.raises(ValueError, match="workers must be an integer in"):
        reproduce(str(tmp_path / "o"), workers=0)
    with pytest.raises(ValueError, match="workers must be an integer in"):
        with common.run_settings(workers=300):
            pass
    assert common.run_workers() == 1 and common.run_workers(default=5) == 5
    with common.run_settings(workers=2):
        assert common.run_workers() == 2


#: The experiments that compute many networks (training through its parameter, capped by
#: the run's workers); each must give the same numbers from 1 and 2 processes.
PARALLEL = ["autocorrelation", "activity", "correlation", "looks_linear", "spectra",
            "kurtosis", "width_scan", "finite_width", "kinks",
            "convnets", "training"]


@pytest.mark.slow
def test_two_workers_give_bit_identical_results():
    """Experiments in two spawned worker processes = one process, bit for bit."""
    try:
        for name in PARALLEL:
            if experiments.missing_requirements(name):
                continue
            over = dict(_tiny(name), workers="2") if name == "training" else _tiny(name)
            one = run_one(name, overrides=over, workers=1)
            two = run_one(name, overrides=over, workers=2)
            assert parallel.current_pool() is not None, name  # really in processes
            assert sorted(one.arrays) == sorted(two.arrays), name
            for key in one.arrays:
                if key.endswith("seconds"):  # training's wall times
                    continue
                a, b = np.asarray(one[key]), np.asarray(two[key])
                assert a.dtype == b.dtype and a.shape == b.shape, (name, key)
                assert np.array_equal(a, b, equal_nan=True), (name, key)
    finally:
        parallel.shutdown()


def _gradsim(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(experiments.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return [sys.executable, "-m", "gradsim", *map(str, args)], env


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_cli_run_resumes_with_the_same_command(sig, tmp_path):
    """Kill ``gradsim reproduce`` after its first experiment (Ctrl-C or SIGKILL); the same
    command reuses it, computes the rest and leaves no temporary file."""
    out = tmp_path / "out"
    argv, env = _gradsim("reproduce", "--only", *NAMES, *SETS, "--out", out, "--workers", "1")
    slow = ["--set", "kurtosis.nets=400000"]  # long enough to be killed in
    with subprocess.Popen(argv + slow, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            for line in proc.stderr:
                if line.startswith("gradients: "):
                    break
            time.sleep(0.5)
            proc.send_signal(sig)
            err = proc.stderr.read()
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    if sig == signal.SIGINT:
        assert "saved gradients" in err and "the same command resumes" in err
    assert (out / "results" / "gradients.npz").exists()
    assert not (out / "results" / "kurtosis.npz").exists()
    (out / "figures" / f"{TMP_PREFIX}0123456789ab.tmp").write_bytes(b"as SIGKILL leaves")
    # the same command (kurtosis smaller, so that the test is quick: it was not finished)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "gradients: reused (finished by an earlier run)" in done.stderr
    assert "reused 1 finished experiments" in done.stderr and "computed kurtosis" in done.stderr
    left = [f for _, _, fs in os.walk(out) for f in fs if f.startswith(TMP_PREFIX)]
    assert left == [] and (out / "report.md").exists()
