"""Floating-point range (issue 14): no public function and no command returns, prints or
writes a non-finite number without an error.

Each class of overflow is run through the command that meets it (exit code, the one line
on stderr, the files on disk afterwards) and through the API (the ``ValueError`` naming
the parameters and the depth where the range runs out, or the finite log-scale form);
a property test sweeps specs near the edge of float range.
"""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import listing
from hypothesis import given
from hypothesis import strategies as st

from gradsim import GridSpec, NetSpec, network_rng, sample_network, simulate
from gradsim.cli import main
from gradsim.compare import compare_spec, grid_rows, pair_statistics, predict
from gradsim.families import ARCHS
from gradsim.montecarlo import Simulation, iter_chunks, simulate_depths
from gradsim.nets import input_gradient_by_depth
from gradsim.stats import Moments, Stream, acf_rows
from gradsim.theory import (
    Theory,
    covers,
    exact_gradient_covariance,
    gp_statistics,
    independence,
    kurtosis_identity,
    nngp_kernel,
    paper_model,
    paper_model_mc,
    shallow_diffusion,
)

LOG10_2 = math.log10(2.0)

#: Monte Carlo specs whose gradients overflow: a resnet without batch norm (variance
#: 2^L), a large weight_var (200^L), a float32 resnet (float32 ends at 3.4e38 = 2^128).
MC_OVERFLOW = {
    "resnet-5000": (["--arch", "resnet", "--depth", "5000", "--width", "48"],
                    NetSpec(arch="resnet", depth=5000, width=48), "float64"),
    "weight-var-300": (["--depth", "300", "--width", "8", "--weight-var", "400"],
                       NetSpec(depth=300, width=8, weight_var=400.0), "float64"),
    "float32-resnet-400": (["--arch", "resnet", "--depth", "400", "--width", "32",
                            "--dtype", "float32"],
                           NetSpec(arch="resnet", depth=400, width=32), "float32"),
}
GRID = GridSpec(points=8)


def run(capsys, argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line(code, stdout, stderr, *words):
    """Exit 2, nothing on stdout, exactly one line on stderr holding ``words``."""
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("gradsim: error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    for word in words:
        assert word in stderr, (word, stderr)


def strict_json(text):
    """JSON as the standard defines it: NaN and Infinity are refused."""
    def refuse(name):
        raise AssertionError(f"non-finite number {name} in JSON output")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------- Monte Carlo: gradsim simulate


@pytest.mark.slow  # networks thousands of layers deep
@pytest.mark.parametrize("name", MC_OVERFLOW)
def test_simulate_command_refuses_overflow_and_writes_nothing(tmp_path, capsys, name):
    opts, spec, dtype = MC_OVERFLOW[name]
    out = tmp_path / "run.npz"
    code, stdout, stderr = run(capsys, ["simulate", *opts, "--points", 8, "--nets", 2,
                                        "--seed", 0, "--workers", 1, "--out", out])
    assert_one_line(code, stdout, stderr, f"gradients overflow {dtype}",
                    f"of {spec.depth} (network", f"arch={spec.arch}", f"depth={spec.depth}",
                    f"width={spec.width}", "weight_var=", "batchnorm=False", f"dtype={dtype}",
                    "reduce depth")
    assert listing(tmp_path) == []


def test_simulate_command_overflow_keeps_the_old_file(tmp_path, capsys):
    opts, _, _ = MC_OVERFLOW["weight-var-300"]
    out = tmp_path / "keep.npz"
    out.write_bytes(b"old result")
    code, stdout, stderr = run(capsys, ["simulate", *opts, "--points", 8, "--nets", 2,
                                        "--seed", 0, "--workers", 1, "--out", out, "--force"])
    assert_one_line(code, stdout, stderr, "gradients overflow float64")
    assert out.read_bytes() == b"old result" and listing(tmp_path) == ["keep.npz"]


@pytest.mark.parametrize("sampler", ["explicit", "gram"])
@pytest.mark.parametrize("name", MC_OVERFLOW)
def test_simulate_names_the_depth_where_the_range_runs_out(name, sampler):
    """The depth in the message is where that network's gradient first leaves range: its
    gradients at every depth (taps) are finite up to there and near the top of range
    (in Gram space too: the Gram matrix is scaled so that it stays in range)."""
    _, spec, dtype = MC_OVERFLOW[name]
    with pytest.raises(ValueError, match=r"gradients overflow .* at depth (\d+) of") as exc:
        simulate(spec, GRID, nets=2, seed=0, dtype=dtype, backend="numpy", sampler=sampler)
    msg = str(exc.value)
    depth = int(msg.split("at depth ")[1].split(" ")[0])
    index = int(msg.split("(network ")[1].split(")")[0])
    net = sample_network(spec, network_rng(0, index), dtype, taps=True, sampler=sampler,
                         points=GRID.points)
    with np.errstate(all="ignore"):
        g = input_gradient_by_depth(net, GRID.points_array(dtype), backend="numpy")
    assert np.isfinite(g[:depth - 1]).all() and not np.isfinite(g[depth - 1]).all()
    assert np.abs(g[:depth - 1]).max() > np.finfo(dtype).max ** 0.75


def test_iter_chunks_and_simulate_depths_refuse_overflow():
    _, spec, _ = MC_OVERFLOW["weight-var-300"]
    with pytest.raises(ValueError, match=r"gradients overflow float64 .* at depth \d+ of 300"):
        list(iter_chunks(spec, GRID, nets=3, seed=0, chunk=1, backend="numpy"))
    with pytest.raises(ValueError, match=r"gradients overflow float64 .* at depth \d+ of 300"
                                         r" \(network \d\) for arch=feedforward"):
        simulate_depths(spec, GRID, nets=2, seed=0, backend="numpy")


def test_streamed_statistics_refuse_overflow():
    """Finite gradients whose powers are not: moments (g^8: |g| ~ 1e46 here), the
    autocorrelation (sums of squares: |g| ~ 1e161), which would otherwise count the
    network as constant and drop it."""
    spec = NetSpec(depth=40, width=8, weight_var=400.0)
    assert np.isfinite(simulate(spec, GRID, nets=2, seed=0, backend="numpy").grad).all()
    with pytest.raises(ValueError, match="streamed moments .* overflow float64 for "
                                         "arch=feedforward, depth=40"):
        simulate(spec, GRID, nets=2, seed=0, keep=False, moments=True, backend="numpy")
    deep = spec.replace(depth=144)
    g = simulate(deep, GRID, nets=2, seed=0, backend="numpy").grad
    with np.errstate(all="ignore"):
        assert np.isfinite(g).all() and np.isnan(acf_rows(g)).all()  # as if constant
    for flag in ("acf", "spectrum"):
        with pytest.raises(ValueError, match="autocorrelation and periodogram sums out of "
                                             "float64 range .* depth=144"):
            simulate(deep, GRID, nets=2, seed=0, backend="numpy", **{flag: True})


def test_comparisons_refuse_gradients_beyond_their_statistics():
    big = np.full((4, 1), 1e100) * np.array([[1.0], [-1.0], [2.0], [0.5]])
    with pytest.raises(ValueError, match="fourth powers overflow"):
        pair_statistics(big, big)
    spec = NetSpec(depth=2, width=8)
    with pytest.raises(ValueError, match="pair statistics out of float64 range for "
                                         "arch=feedforward"):
        compare_spec(spec, big, big, [-1.0], [1.0])
    grad = np.full((3, 4, 1), 1e40) * np.arange(1, 5)[None, :, None]
    with pytest.raises(ValueError, match="kurtosis"):
        grid_rows(spec.replace(first_bias_var=0.0), GridSpec(points=4), grad, 0)
    with pytest.raises(ValueError, match="autocorrelation"):
        grid_rows(spec, GridSpec(points=4), grad * 1e120, 0)


# ------------------------------------------------------------- gradsim compare


@pytest.mark.parametrize("depth, width, words", [
    pytest.param(5000, 48, ["simulate: gradients overflow float64"], id="mc"),
    # the networks stay finite (up to 1e182), their squares' squares do not
    pytest.param(1500, 16, ["pair statistics out of float64 range"], id="squares"),
    # narrow: finite statistics (up to 1e27); the paper model's 2^5000 is out of range
    pytest.param(5000, 8, ["paper model: the gradient variance overflows",
                           "at depth 1024 of 5000"], id="theory"),
])
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.slow  # networks thousands of layers deep
def test_compare_on_a_deep_resnet_is_one_line(tmp_path, capsys, monkeypatch, depth, width,
                                              words, json_flag):
    """Issue 14: 9 lines (RuntimeWarnings, then the error) are now one."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(capsys, ["compare", "--arch", "resnet", "--depth", depth,
                                        "--width", width, "--points", 8, "--nets", 4,
                                        "--seed", 0, "--workers", 1, *json_flag])
    assert_one_line(code, stdout, stderr, *words, "arch=resnet", f"depth={depth}")
    assert listing(tmp_path) == []


@pytest.mark.slow
def test_compare_in_a_subprocess_prints_one_line(tmp_path):
    """As a user runs it: no RuntimeWarning reaches stderr (in-process, pytest would turn
    one into an error), whatever the worker count."""
    for workers in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "gradsim", "compare", "--arch", "resnet",
                               "--depth", "5000", "--width", "48", "--points", "8",
                               "--nets", "40", "--chunk", "4", "--seed", "0",
                               "--workers", workers],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert_one_line(proc.returncode, proc.stdout, proc.stderr,
                        "simulate: gradients overflow float64", "depth=5000")
        assert listing(tmp_path) == []


# ------------------------------------------------------------- gradsim theory


@pytest.mark.parametrize("model", ["paper", "independence", "exact"])
def test_theory_command_gives_the_log_variance_where_it_overflows(capsys, model):
    argv = ["theory", "--arch", "resnet", "--depth", 5000, "--model", model]
    want = predict(NetSpec(arch="resnet", depth=5000), model, [-1.0], [1.0], log_scale=True)
    code, stdout, stderr = run(capsys, [*argv, "--json"])
    assert code == 0 and stderr == ""
    data = strict_json(stdout)
    assert data["variance"] is None and data["covariance"] is None
    assert math.isfinite(data["correlation"]) and abs(data["correlation"]) <= 1
    assert data["correlation"] == want["correlation"]
    assert data["log10_variance"] == pytest.approx(5000 * LOG10_2, rel=1e-3)
    if model == "paper":  # exactly 2^L, covariance 1.5^L
        assert data["log10_variance"] == pytest.approx(5000 * LOG10_2, rel=1e-12)
        assert data["log10_abs_covariance"] == pytest.approx(5000 * math.log10(1.5),
                                                             rel=1e-12)
    code, stdout, stderr = run(capsys, argv)
    assert code == 0 and stderr == ""
    assert not re.search(r"\b(inf|nan)\b", stdout)
    assert f"variance     10^{data['log10_variance']:.6g} (beyond float64)" in stdout
    assert f"correlation  {data['correlation']:.6g}" in stdout


def test_theory_command_large_weight_var(capsys):
    """Depth 300 at weight_var 40: the exact variance is 20^300 = 10^390."""
    code, stdout, _ = run(capsys, ["theory", "--depth", 300, "--weight-var", 40, "--json"])
    data = strict_json(stdout)
    assert code == 0 and data["variance"] is None
    assert data["log10_variance"] == pytest.approx(300 * math.log10(20), rel=1e-3)
    # in range: the keys and numbers of before, no log fields
    code, stdout, _ = run(capsys, ["theory", "--depth", 30, "--weight-var", 40, "--json"])
    data = strict_json(stdout)
    assert code == 0 and set(data) == {"model", "depth", "variance", "covariance",
                                       "correlation", "x", "y"}
    assert data["variance"] == predict(NetSpec(depth=30, weight_var=40.0), "exact", [-1.0],
                                       [1.0])["variance"]


@pytest.mark.slow  # the exact theory on a grid, thousands of layers deep
def test_theory_out_refuses_overflow_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "cov.npz"
    argv = ["theory", "--arch", "resnet", "--depth", 5000, "--points", 8, "--out", out]
    code, stdout, stderr = run(capsys, argv)
    assert_one_line(code, stdout, stderr, "exact theory: the covariance overflows float64",
                    "at depth ~1024 of 5000", "arch=resnet", "batchnorm=False")
    assert listing(tmp_path) == []
    out.write_bytes(b"old")
    code, stdout, stderr = run(capsys, [*argv, "--force", "--json"])
    assert_one_line(code, stdout, stderr, "overflows float64")
    assert out.read_bytes() == b"old" and listing(tmp_path) == ["cov.npz"]


# ------------------------------------------------------------- the theories' API


RESNET = NetSpec(arch="resnet", depth=5000)
X, Y = [-1.0], [1.0]


def test_closed_forms_refuse_overflow_or_give_the_log_scale():
    with pytest.raises(ValueError, match=r"paper model: the gradient variance overflows "
                                         r"float64 at depth 1024 of 5000 \(log10 variance "
                                         r"1505.15 at depth 5000\) for arch=resnet"):
        paper_model(RESNET)
    th = paper_model(RESNET, log_scale=True)
    np.testing.assert_allclose(th.log_scale, np.arange(1, 5001) * math.log(2), rtol=1e-12)
    np.testing.assert_allclose(th.correlation[:2000], 0.75 ** np.arange(1, 2001),
                               rtol=1e-10)
    assert th.correlation[-1] == 0.0  # 0.75^5000 = 10^-625: below range, not stuck there
    assert np.all(th.variance == 1) and np.array_equal(th.covariance, th.correlation)
    with pytest.raises(ValueError, match=r"gradient independence: the gradient variance "
                                         r"overflows float64 at depth 102\d of 5000"):
        independence(RESNET, X, Y)
    th = independence(RESNET, X, Y, log_scale=True)
    assert np.isfinite(th.log_scale).all() and np.isfinite(th.correlation).all()
    assert th.log_scale[-1] == pytest.approx(5000 * math.log(2), rel=1e-3)


def test_exact_theory_refuses_overflow_or_gives_the_log_scale():
    x = np.array([[-1.0], [1.0]])
    for fn, what in ((exact_gradient_covariance, "covariance"), (nngp_kernel, "output kernel")):
        with pytest.raises(ValueError, match=rf"exact theory: the {what} overflows float64 "
                                             r"at depth ~10\d\d of 5000 for arch=resnet"):
            fn(RESNET, x)
        v, ls = fn(RESNET, x, log_scale=True)
        assert np.isfinite(v).all() and ls == pytest.approx(5000 * math.log(2), rel=1e-12)
    c, _ = exact_gradient_covariance(RESNET, x, log_scale=True)
    corr = c[0, 1, 0, 0] / math.sqrt(c[0, 0, 0, 0] * c[1, 1, 0, 0])
    # the one-pair answer runs on the NumPy twin: the same to rounding
    assert predict(RESNET, "exact", X, Y, log_scale=True)["correlation"] == pytest.approx(
        corr, rel=1e-12)


@pytest.mark.parametrize("model", ["paper", "independence", "exact"])
def test_predict_refuses_overflow_or_gives_the_logs(model):
    with pytest.raises(ValueError, match=r"the gradient variance overflows float64 at depth "
                                         r"~?10\d\d of 5000"):
        predict(RESNET, model, X, Y)
    p = predict(RESNET, model, X, Y, log_scale=True)
    assert p["variance"] is None and p["covariance"] is None
    assert all(math.isfinite(p[k]) for k in ("correlation", "log10_variance",
                                             "log10_abs_covariance"))
    inside = NetSpec(arch="resnet", depth=50)
    q, r = predict(inside, model, X, Y), predict(inside, model, X, Y, log_scale=True)
    assert {k: r[k] for k in q} == q  # the same numbers, bit for bit, in range
    assert r["log10_variance"] == pytest.approx(math.log10(q["variance"]), rel=1e-12)


def test_other_theories_refuse_overflow():
    with pytest.raises(ValueError, match="kurtosis overflows float64 at depth 396 of 400 "
                                         "for arch=feedforward, depth=400, width=1"):
        kurtosis_identity(NetSpec(depth=400, width=1, first_bias_var=0.0))
    assert np.isfinite(kurtosis_identity(NetSpec(depth=395, width=1, first_bias_var=0.0))).all()
    with pytest.raises(ValueError, match=r"paper_model_mc: the model's gradients or their "
                                         r"statistics overflow float64 at depth \d+ of 3000"):
        paper_model_mc(NetSpec(arch="resnet", depth=3000, width=2), nets=2)
    for cov in (1e305 * np.eye(4), 1e-320 * np.eye(4)):
        with pytest.raises(ValueError, match="float64"):
            gp_statistics(cov, nets=4)
    with pytest.raises(ValueError, match="variance factor of a block is 0"):
        paper_model(NetSpec(arch="resnet", depth=3, alpha=0.0))


# ------------------------------------------------------------- property: near the edge


def _finite(value):
    """Every number in a result is finite (None marks a value out of range)."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, (Theory, Simulation)):
        return all(_finite(getattr(value, f)) for f in value.__dataclass_fields__
                   if f not in ("spec", "grid"))
    if isinstance(value, (Moments, Stream)):
        return all(_finite(v) for v in vars(value).values() if isinstance(v, np.ndarray))
    if isinstance(value, np.floating):
        return bool(np.isfinite(value))
    raise AssertionError(f"unexpected result type {type(value)}")


def finite_or_value_error(fn, *args, **kwargs):
    """``fn(...)`` returns finite numbers or raises ValueError (warnings are errors)."""
    try:
        out = fn(*args, **kwargs)
    except ValueError:
        return None
    assert _finite(out), (fn.__name__, out)
    return out


@st.composite
def edge_specs(draw):
    """Specs near the edge of float range: deep, large or tiny weight_var, tiny or huge
    readout_var, residual scales that grow; every family, with and without batch norm."""
    arch = draw(st.sampled_from(ARCHS))
    kw = {"arch": arch,
          "depth": draw(st.sampled_from([1, 2, 127, 128, 300, 1023, 1024, 1025, 2500])
                        | st.integers(1, 2500)),
          "width": 4,
          "weight_var": draw(st.sampled_from([1e-300, 1e-6, 0.5, 2.0, 40.0, 400.0, 1e6])),
          "readout_var": draw(st.sampled_from([5e-324, 1e-300, 1e-30, 1.0, 1e6])),
          "first_bias_var": draw(st.sampled_from([0.0, 1.0, 1e6])),
          "bias_var": draw(st.sampled_from([0.0, 0.1])),
          "batchnorm": draw(st.booleans()),
          "activation": draw(st.sampled_from(["relu", "leaky"]))}
    if arch in ("resnet", "post-resnet"):
        kw["alpha"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
        kw["beta"] = draw(st.sampled_from([0.1, 1.0, 10.0]))
    return NetSpec(**kw)


@given(edge_specs(), st.sampled_from(["float64", "float32"]), st.integers(0, 3))
def test_every_public_function_is_finite_or_refuses(spec, dtype, seed):
    grid = GridSpec(points=4)
    x = grid.points_array()
    finite_or_value_error(simulate, spec, grid, nets=2, seed=seed, dtype=dtype,
                          backend="numpy", moments=True, acf=True, spectrum=True)
    finite_or_value_error(simulate_depths, spec.replace(depth=min(spec.depth, 300)), grid,
                          nets=2, seed=seed, dtype=dtype, backend="numpy")
    for model in ("paper", "independence", "exact"):
        if covers(spec, model) is None:
            for log_scale in (False, True):
                p = finite_or_value_error(predict, spec, model, x[0], x[-1],
                                          log_scale=log_scale)
                if p is not None and model != "independence":  # independence: cov / var_x
                    assert abs(p["correlation"]) <= 1 + 1e-9, p
    if covers(spec, "paper") is None:
        for log_scale in (False, True):
            finite_or_value_error(paper_model, spec, log_scale=log_scale)
        finite_or_value_error(paper_model_mc, spec.replace(depth=min(spec.depth, 300)),
                              nets=2, seed=seed, width=2)
    if covers(spec, "independence") is None:
        for log_scale in (False, True):
            finite_or_value_error(independence, spec, x[0], x[-1], log_scale=log_scale)
    if covers(spec, "exact") is None:
        for log_scale in (False, True):
            finite_or_value_error(exact_gradient_covariance, spec, x, backend="numpy",
                                  log_scale=log_scale)
            finite_or_value_error(nngp_kernel, spec, x, backend="numpy", log_scale=log_scale)
    if covers(spec, "kurtosis") is None:
        finite_or_value_error(kurtosis_identity, spec)
    if covers(spec, "shallow") is None:
        finite_or_value_error(shallow_diffusion, spec, x[:, 0])
