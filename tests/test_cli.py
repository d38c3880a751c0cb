"""The ``gradsim`` command line, through :func:`gradsim.cli.main` (and two subprocess runs).

Every network here is tiny (width <= 8, depth <= 3, points <= 16, nets <= 4).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import listing, raw

import gradsim
from gradsim import GridSpec, NetSpec
from gradsim.cli import main

DEPTH, WIDTH, POINTS, NETS, SEED = 2, 4, 8, 3, 1


def base_args(out, *extra):
    """``simulate`` argv for a tiny run writing ``out``; ``extra`` options come last and win.

    One worker: the default (all cores) would start processes, which only slow tests do.
    """
    return ["simulate", "--depth", str(DEPTH), "--width", str(WIDTH), "--points", str(POINTS),
            "--nets", str(NETS), "--seed", str(SEED), "--workers", "1", "--out", str(out),
            *map(str, extra)]


def run(capsys, argv):
    """Run ``main(argv)``; return (exit code, stdout, stderr)."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- success


def test_simulate_writes_loadable_npz(tmp_path, capsys):
    out = tmp_path / "run.npz"
    code, stdout, stderr = run(capsys, base_args(out))
    assert code == 0
    assert stderr == ""
    assert f"wrote {out}" in stdout and f"{NETS} nets x {POINTS} points" in stdout
    # nothing but the result: no temporary file left beside it
    assert listing(tmp_path) == ["run.npz"]

    data = raw(out)
    assert data["x"].shape == (POINTS,)
    assert data["grad"].shape == (NETS, POINTS)
    assert data["grad"].dtype == np.float64
    assert np.all(np.isfinite(data["grad"]))
    spec = NetSpec(depth=DEPTH, width=WIDTH)
    assert NetSpec.from_json(str(data["spec"])) == spec
    grid = GridSpec(points=POINTS)
    assert GridSpec.from_json(str(data["grid"])) == grid
    np.testing.assert_array_equal(data["x"], np.linspace(-2.0, 2.0, POINTS))
    meta = json.loads(str(data["meta"]))
    assert meta["seed"] == SEED and meta["nets"] == NETS
    assert meta["mode"] == "forward" and meta["dtype"] == "float64"
    assert meta["version"] == gradsim.__version__
    assert "active" not in data and "coactive" not in data

    sim = gradsim.load(out)
    assert sim.grad.shape == (NETS, POINTS, 1)
    assert sim.x.shape == (POINTS, 1)
    assert sim.spec == spec and sim.grid == grid
    assert sim.nets == NETS and sim.seed == SEED
    # the command line holds no numerics: it writes exactly what the library computes
    ref = gradsim.simulate(spec, grid, nets=NETS, seed=SEED)
    np.testing.assert_array_equal(sim.grad, ref.grad)


def test_simulate_multidim_gaussian_grid(tmp_path, capsys):
    out = tmp_path / "g.npz"
    code, _, stderr = run(capsys, base_args(out, "--input-dim", 3, "--grid", "gaussian",
                                            "--grid-seed", 5))
    assert code == 0, stderr
    data = raw(out)
    assert data["x"].shape == (POINTS, 3)
    assert data["grad"].shape == (NETS, POINTS, 3)
    assert NetSpec.from_json(str(data["spec"])) == NetSpec(depth=DEPTH, width=WIDTH, input_dim=3)
    assert GridSpec.from_json(str(data["grid"])) == GridSpec("gaussian", POINTS, dim=3, seed=5)
    sim = gradsim.load(out)
    assert sim.grad.shape == (NETS, POINTS, 3)
    np.testing.assert_array_equal(sim.grad, data["grad"])


def test_simulate_spec_options_reach_the_spec(tmp_path, capsys):
    out = tmp_path / "r.npz"
    code, _, stderr = run(capsys, base_args(out, "--arch", "resnet", "--alpha", 0.5,
                                            "--beta", 0.25, "--branch-depth", 2,
                                            "--activation", "leaky", "--slope-neg", 0.2,
                                            "--batchnorm", "--bn-grad", "through"))
    assert code == 0, stderr
    expected = NetSpec(arch="resnet", depth=DEPTH, width=WIDTH, alpha=0.5, beta=0.25,
                       branch_depth=2, activation="leaky", slope_neg=0.2, batchnorm=True,
                       bn_grad="through")
    assert NetSpec.from_json(str(raw(out)["spec"])) == expected
    assert gradsim.load(out).spec == expected


def test_simulate_activity_mode_dtype(tmp_path, capsys):
    fwd, rev, f32 = tmp_path / "f.npz", tmp_path / "r.npz", tmp_path / "s.npz"
    assert run(capsys, base_args(fwd, "--activity"))[0] == 0
    assert run(capsys, base_args(rev, "--mode", "reverse"))[0] == 0
    code, _, stderr = run(capsys, base_args(f32, "--dtype", "float32"))
    assert code == 0, stderr
    f, r, s = raw(fwd), raw(rev), raw(f32)
    assert f["active"].shape == f["coactive"].shape == (NETS, DEPTH)
    # the proportions the library records for the same networks
    ref = gradsim.simulate(NetSpec(depth=DEPTH, width=WIDTH), GridSpec(points=POINTS),
                           nets=NETS, seed=SEED, activity=True)
    np.testing.assert_array_equal(gradsim.load(fwd).activity, ref.activity)
    assert "active" not in r
    assert json.loads(str(r["meta"]))["mode"] == "reverse"
    # same networks, the other differentiation mode
    np.testing.assert_allclose(r["grad"], f["grad"], rtol=1e-10, atol=1e-12)
    assert s["grad"].dtype == np.float32 and s["grad"].shape == (NETS, POINTS)
    assert json.loads(str(s["meta"]))["dtype"] == "float32"
    assert gradsim.load(f32).grad.dtype == np.float32


def test_quiet_prints_nothing(tmp_path, capsys):
    code, stdout, stderr = run(capsys, base_args(tmp_path / "q.npz", "--quiet"))
    assert code == 0
    assert stdout == "" and stderr == ""
    assert (tmp_path / "q.npz").is_file()


def test_chunk_never_changes_numbers_but_seed_does(tmp_path, capsys):
    nets = 4  # chunk 3 leaves a partial last chunk
    grads = {}
    for name, extra in [("c1", ["--chunk", 1]), ("c3", ["--chunk", 3]),
                        ("s2", ["--chunk", 3, "--seed", 2])]:
        out = tmp_path / f"{name}.npz"
        code, _, stderr = run(capsys, base_args(out, "--nets", nets, *extra))
        assert code == 0, stderr
        grads[name] = raw(out)["grad"]
    assert grads["c1"].shape == (nets, POINTS)
    assert grads["c1"].tobytes() == grads["c3"].tobytes()
    assert not np.array_equal(grads["c1"], grads["s2"])


# --------------------------------------------------------------------------- help, version


@pytest.mark.parametrize("argv, words", [
    (["--help"], ["usage: gradsim", "simulate", "--version"]),
    (["simulate", "--help"], ["usage: gradsim simulate", "--depth", "--nets", "--force",
                              "--workers", "default: all", "cores"]),
    (["compare", "--help"], ["usage: gradsim compare", "--workers", "default: all"]),
])
def test_help_exits_zero(capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gradsim {gradsim.__version__}"


# --------------------------------------------------------------------------- bad input

BAD = [
    pytest.param(["--depth", 0], ["depth"], id="depth0"),
    pytest.param(["--depth", -1], ["depth"], id="depth-neg"),
    pytest.param(["--depth", 1.5], ["depth"], id="depth-float"),
    pytest.param(["--width", 0], ["width"], id="width0"),
    pytest.param(["--width", 2_000_000], ["width"], id="width-over-max"),
    pytest.param(["--input-dim", 0], ["input_dim"], id="input-dim0"),
    pytest.param(["--points", 0], ["points"], id="points0"),
    pytest.param(["--nets", 0], ["nets"], id="nets0"),
    pytest.param(["--seed", -1], ["seed"], id="seed-neg"),
    pytest.param(["--grid-seed", -1], ["grid seed"], id="grid-seed-neg"),
    pytest.param(["--chunk", 0], ["chunk"], id="chunk0"),
    pytest.param(["--range", "nan", 2], ["range"], id="range-nan"),
    pytest.param(["--range", 2, -2], ["range"], id="range-reversed"),
    pytest.param(["--range", 0, "inf"], ["range"], id="range-inf"),
    pytest.param(["--weight-var", "nan"], ["weight_var"], id="weight-var-nan"),
    pytest.param(["--grid", "ring", "--input-dim", 2, "--radius", 0], ["radius"],
                 id="radius0"),
    pytest.param(["--arch", "foo"], ["arch", "foo"], id="arch-unknown"),
    pytest.param(["--activation", "foo"], ["activation", "foo"], id="activation-unknown"),
    pytest.param(["--mode", "sideways"], ["mode"], id="mode-unknown"),
    pytest.param(["--dtype", "float16"], ["dtype"], id="dtype-unknown"),
    pytest.param(["--bogus"], ["unrecognized", "--bogus"], id="unknown-option"),
    pytest.param(["--init", "looks-linear"], ["looks-linear", "crelu"], id="looks-linear-relu"),
    pytest.param(["--bn-grad", "through"], ["bn_grad", "batchnorm"], id="bn-grad-no-bn"),
    pytest.param(["--alpha", 0.5], ["alpha", "resnet"], id="alpha-feedforward"),
    pytest.param(["--gate-bias", 1], ["gate_bias", "highway"], id="gate-bias-feedforward"),
    pytest.param(["--grid", "ring"], ["ring", "input_dim"], id="ring-dim1"),
    pytest.param(["--mirror", 2, "--init", "looks-linear", "--activation", "crelu"],
                 ["mirror"], id="mirror-2"),
    pytest.param(["--mirror", 0.5], ["mirror", "looks-linear"], id="mirror-he"),
    pytest.param(["--points", 1, "--batchnorm"], ["points"], id="batchnorm-1-point"),
    pytest.param(["--width", 1_000_000, "--depth", 1_000_000], ["memory", "width", "depth"],
                 id="huge-network"),
    pytest.param(["--nets", 10**9, "--points", 10**6], ["memory", "nets", "points"],
                 id="huge-result"),
    pytest.param(["--nets", 10**9 + 1], ["nets"], id="nets-over-max"),
    pytest.param(["--workers", 0], ["workers", "[1, 256]"], id="workers0"),
    pytest.param(["--workers", 257], ["workers", "[1, 256]"], id="workers-over-max"),
    pytest.param(["--workers", "two"], ["--workers", "invalid int"], id="workers-not-int"),
]


def assert_clean_error(code, stdout, stderr, words):
    assert code == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith("gradsim")
    assert "error" in stderr
    for word in words:
        assert word in stderr, (word, stderr)


@pytest.mark.parametrize("extra, words", BAD)
def test_bad_input_is_one_clean_line_and_writes_nothing(tmp_path, capsys, extra, words):
    code, stdout, stderr = run(capsys, base_args(tmp_path / "out.npz", *extra))
    assert_clean_error(code, stdout, stderr, words)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("argv, words", [
    pytest.param([], ["COMMAND"], id="no-command"),
    pytest.param(["frobnicate"], ["frobnicate"], id="unknown-command"),
    pytest.param(["simulate", "--nets", 2, "--seed", 0, "--out", "OUT"], ["--depth"],
                 id="missing-depth"),
    pytest.param(["simulate", "--depth", 1, "--seed", 0, "--out", "OUT"], ["--nets"],
                 id="missing-nets"),
    pytest.param(["simulate", "--depth", 1, "--nets", 2, "--out", "OUT"], ["--seed"],
                 id="missing-seed"),
    pytest.param(["simulate", "--depth", 1, "--nets", 2, "--seed", 0], ["--out"],
                 id="missing-out"),
])
def test_missing_arguments(tmp_path, capsys, argv, words):
    argv = [str(tmp_path / "o.npz") if a == "OUT" else str(a) for a in argv]
    code, stdout, stderr = run(capsys, argv)
    assert_clean_error(code, stdout, stderr, words)
    assert listing(tmp_path) == []


def test_output_directory_missing(tmp_path, capsys):
    code, stdout, stderr = run(capsys, base_args(tmp_path / "nope" / "x.npz"))
    assert_clean_error(code, stdout, stderr, ["out", "nope", "does not exist"])
    assert listing(tmp_path) == []


def test_output_parent_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_bytes(b"x")
    code, stdout, stderr = run(capsys, base_args(tmp_path / "file" / "x.npz"))
    assert_clean_error(code, stdout, stderr, ["out", "does not exist"])
    assert listing(tmp_path) == ["file"]


@pytest.mark.parametrize("name", ["out.txt", "out", "out.npz.bak", ""])
def test_output_without_npz_suffix(tmp_path, capsys, name):
    out = tmp_path / name if name else ""
    code, stdout, stderr = run(capsys, base_args(out))
    assert_clean_error(code, stdout, stderr, ["out", ".npz"])
    assert listing(tmp_path) == []


def test_output_is_a_directory(tmp_path, capsys):
    (tmp_path / "d.npz").mkdir()
    code, stdout, stderr = run(capsys, base_args(tmp_path / "d.npz"))
    assert_clean_error(code, stdout, stderr, ["out", "directory"])
    assert listing(tmp_path) == ["d.npz"]
    assert list((tmp_path / "d.npz").iterdir()) == []


def test_existing_output_refused_then_forced(tmp_path, capsys):
    out = tmp_path / "keep.npz"
    known = b"known bytes, not an npz\n"
    out.write_bytes(known)

    code, stdout, stderr = run(capsys, base_args(out))
    assert_clean_error(code, stdout, stderr, ["exists", "--force"])
    assert out.read_bytes() == known
    assert listing(tmp_path) == ["keep.npz"]

    code, _, stderr = run(capsys, base_args(out, "--force"))
    assert code == 0, stderr
    assert out.read_bytes() != known
    assert listing(tmp_path) == ["keep.npz"]
    assert gradsim.load(out).grad.shape == (NETS, POINTS, 1)


def test_failed_forced_run_keeps_old_file(tmp_path, capsys):
    out = tmp_path / "keep.npz"
    known = b"old result"
    out.write_bytes(known)
    code, stdout, stderr = run(capsys, base_args(out, "--force", "--nets", 10**9,
                                                 "--points", 10**6))
    assert_clean_error(code, stdout, stderr, ["memory"])
    assert out.read_bytes() == known
    assert listing(tmp_path) == ["keep.npz"]


def test_interrupt_writes_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gradsim.cli.simulate.simulate", interrupted)
    code, stdout, stderr = run(capsys, base_args(tmp_path / "i.npz"))
    assert code == 130
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.count("\n") == 1 and "interrupted" in stderr
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- workers


def test_default_workers_are_all_cores_but_never_more_than_the_chunks():
    from argparse import Namespace

    from gradsim.cli.common import workers_from
    from gradsim.cli.simulate import tasks
    from gradsim.parallel import available_cores

    def workers_for(args):
        return workers_from(args, tasks(args))

    cores = available_cores()
    assert workers_for(Namespace(workers=None, nets=1000, chunk=None)) == cores
    assert workers_for(Namespace(workers=None, nets=1, chunk=None)) == 1  # one net
    assert workers_for(Namespace(workers=None, nets=10, chunk=5)) == min(cores, 2)
    assert workers_for(Namespace(workers=8, nets=10, chunk=1)) == 8
    for bad in (0, 257):  # refused whatever the cap
        with pytest.raises(ValueError, match=r"workers must be an integer in \[1, 256\]"):
            workers_for(Namespace(workers=bad, nets=1, chunk=None))


@pytest.mark.slow
def test_workers_never_change_the_numbers(tmp_path, capsys):
    """--workers 1, 2 and the default (all cores) write the same bytes and print the same
    comparison; an overflow in a worker process is still one line, nothing written."""
    from gradsim import parallel

    try:
        grads = {}
        for tag, extra in (("w1", ["--workers", 1]), ("w2", ["--workers", 2]),
                           ("default", [])):
            out = tmp_path / f"{tag}.npz"
            argv = [a for a in base_args(out, "--nets", 7, "--chunk", 2, *extra)]
            if not extra:  # drop base_args' --workers 1
                k = argv.index("--workers")
                del argv[k:k + 2]
            code, _, stderr = run(capsys, argv)
            assert code == 0, stderr
            grads[tag] = raw(out)["grad"]
            if tag == "w2":  # really in worker processes
                assert parallel.current_pool()._max_workers == 2
        assert grads["w1"].tobytes() == grads["w2"].tobytes() == grads["default"].tobytes()
        cmp_ = ["compare", "--depth", 2, "--width", 6, "--points", 8, "--nets", 12,
                "--chunk", 3, "--seed", 4, "--json"]
        outs = [run(capsys, [str(a) for a in cmp_ + w]) for w in (["--workers", "1"],
                                                                   ["--workers", "2"])]
        assert outs[0][0] == outs[1][0] == 0 and outs[0][1] == outs[1][1]
        bad = tmp_path / "bad.npz"
        code, stdout, stderr = run(capsys, base_args(bad, "--arch", "resnet", "--depth", 400,
                                                     "--width", 32, "--dtype", "float32",
                                                     "--nets", 6, "--chunk", 1,
                                                     "--workers", 2))
        assert code == 2 and stdout == "" and stderr.count("\n") == 1
        assert "gradients overflow float32" in stderr and "depth=400" in stderr
        assert not bad.exists()
    finally:
        parallel.shutdown()


# --------------------------------------------------------------------------- subprocess


@pytest.mark.slow
def test_subprocess_version(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gradsim", "--version"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gradsim {gradsim.__version__}"


@pytest.mark.slow
def test_subprocess_simulate(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gradsim", *base_args("sub.npz", "--quiet")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert listing(tmp_path) == ["sub.npz"]
    sim = gradsim.load(tmp_path / "sub.npz")
    assert sim.grad.shape == (NETS, POINTS, 1)
    assert sim.spec == NetSpec(depth=DEPTH, width=WIDTH)


def test_overlong_output_name_is_refused_before_work(tmp_path, capsys):
    out = tmp_path / ("a" * 252 + ".npz")
    code = main(["simulate", "--depth", "1", "--width", "4", "--points", "4", "--nets", "2",
                 "--seed", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "longer than" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_output_file_mode_follows_umask(tmp_path):
    out = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        assert main(["simulate", "--depth", "1", "--width", "4", "--points", "4", "--nets", "2",
                     "--seed", "0", "--out", str(out), "--quiet"]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("extra, why", [
    pytest.param(["--init", "orthogonal"], "init='orthogonal'", id="orthogonal"),
    pytest.param(["--activation", "crelu", "--init", "looks-linear"], "looks-linear",
                 id="looks-linear"),
    pytest.param(["--mode", "reverse"], "forward mode only", id="reverse"),
])
def test_sampler_gram_where_it_does_not_apply_is_one_line(tmp_path, capsys, extra, why):
    """--sampler gram with weights that are not i.i.d. Gaussian, or in reverse mode: exit 2,
    one line naming the option and why, an existing output untouched."""
    out = tmp_path / "keep.npz"
    out.write_bytes(b"old result")
    code, stdout, stderr = run(capsys, base_args(out, "--sampler", "gram", "--force", *extra))
    assert_clean_error(code, stdout, stderr, ["--sampler gram", why])
    assert out.read_bytes() == b"old result" and listing(tmp_path) == ["keep.npz"]


def test_sampler_is_recorded_and_printed(tmp_path, capsys):
    """The result file records the sampler used: auto resolves to gram on 2 points at
    width 256 and to explicit with --sampler explicit; the two differ (other Gaussians)."""
    used = {}
    for sampler in ("auto", "explicit"):
        out = tmp_path / f"{sampler}.npz"
        code, stdout, stderr = run(capsys, ["simulate", "--depth", "2", "--width", "256",
                                            "--points", "2", "--nets", "3", "--seed", "1",
                                            "--workers", "1", "--sampler", sampler,
                                            "--out", str(out)])
        assert code == 0, stderr
        sim = gradsim.load(out)
        used[sampler] = sim
        assert f"{sim.sampler} sampler" in stdout
    assert used["auto"].sampler == "gram" and used["explicit"].sampler == "explicit"
    assert not np.array_equal(used["auto"].grad, used["explicit"].grad)
