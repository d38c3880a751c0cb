"""The comparison harness and the theory / compare commands."""

import json
import math

import numpy as np
import pytest

from gradsim import GridSpec, NetSpec, simulate
from gradsim.cli import main
from gradsim.compare import assert_agrees, compare, compare_spec, pair_statistics, predict
from gradsim.stats import Estimate
from gradsim.theory import LABELS


def test_compare_z_and_relative_error():
    c = compare(2.0, Estimate(2.5, 0.25, 100), "variance", "model")
    assert (c.z, c.rel_error, c.name, c.label) == (2.0, 0.25, "variance", "model")
    assert compare(0.0, Estimate(0.0, 0.0, 3)).z == 0.0
    assert math.isinf(compare(1.0, Estimate(2.0, 0.0, 3)).z)
    assert compare(1.0, Estimate(1.0 - 1e-16, 0.0, 3)).z == 0.0  # equal to rounding
    assert compare(1.0, Estimate(1.3, 0.3, 3), theory_se=0.4).z == pytest.approx(0.6)


def test_assert_agrees_fails_when_it_should():
    assert_agrees(1.0, Estimate(1.3, 0.1, 10))
    with pytest.raises(AssertionError, match="theory"):
        assert_agrees(1.0, Estimate(1.5, 0.1, 10))
    assert_agrees(1.0, Estimate(1.5, 0.1, 10), allowance=0.2)


def test_pair_statistics_on_known_gaussians():
    rng = np.random.default_rng(0)
    n, rho = 20000, 0.6
    gx = rng.standard_normal(n)
    gy = rho * gx + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    est = pair_statistics(gx, gy)
    assert_agrees(1.0, est["variance"])
    assert_agrees(rho, est["covariance"])
    assert_agrees(rho, est["correlation"])


def test_exact_theory_tracks_monte_carlo_where_the_paper_model_misses():
    """1-D line, depth 3, width 200: exact within 4 SE (+5% finite width); the paper's
    2^-L covariance misses the sign of the far-apart correlation."""
    spec = NetSpec(depth=3, width=200)
    # the NumPy twins keep this fast when NUMBA_DISABLE_JIT=1 turns the kernels into Python
    sim = simulate(spec, GridSpec(points=64), nets=100, seed=0, backend="numpy")
    i, j = 15, 48
    rows = {r.label.split()[0] + " " + r.name: r
            for r in compare_spec(spec, sim.grad[:, i], sim.grad[:, j], sim.x[i], sim.x[j])}
    ex = rows["exact correlation"]
    assert_agrees(ex.theory, Estimate(ex.estimate, ex.se, 100), allowance=0.05,
                  name="exact correlation")
    paper = rows["paper correlation"]
    assert paper.theory > 0 > paper.estimate


def _run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr); ``compare`` runs on one worker (the
    default, all cores, would start processes: only slow tests do)."""
    argv = list(argv) + (["--workers", "1"] if argv and argv[0] == "compare" else [])
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_theory_json_has_the_documented_keys(capsys):
    for model in ("paper", "independence", "exact"):
        code, out, _ = _run(capsys, "theory", "--depth", "1000", "--model", model, "--json")
        data = json.loads(out)
        assert code == 0
        assert {"model", "depth", "variance", "covariance", "correlation"} <= set(data)
        assert data["depth"] == 1000
    code, out, _ = _run(capsys, "theory", "--depth", "5", "--model", "paper", "--json")
    assert json.loads(out)["correlation"] == pytest.approx(2.0**-5)


def test_theory_out_writes_the_grid_covariance(tmp_path, capsys):
    out = tmp_path / "cov.npz"
    code, _, err = _run(capsys, "theory", "--depth", "4", "--points", "16", "--out", str(out))
    assert code == 0, err
    with np.load(out) as data:
        assert data["covariance"].shape == (16, 16)
        np.testing.assert_allclose(data["covariance"], data["covariance"].T, atol=1e-12)
    code, _, err = _run(capsys, "theory", "--depth", "4", "--model", "paper", "--out",
                        str(tmp_path / "p.npz"))
    assert code == 2 and "--model exact" in err and not (tmp_path / "p.npz").exists()


def test_compare_command(capsys):
    code, out, _ = _run(capsys, "compare", "--depth", "2", "--width", "16", "--points", "16",
                        "--nets", "20", "--seed", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["nets"] == 20
    labels = {row["label"] for row in data["rows"]}
    # paper, independence, exact, finite width (first and second order), exact
    # Gaussian-process samples
    assert len(labels) == 6
    assert [r["name"] for r in data["rows"]][-1] == "lag1"
    code, out, _ = _run(capsys, "compare", "--depth", "2", "--width", "16", "--points", "16",
                        "--first-bias-var", "0", "--nets", "40", "--seed", "1", "--json")
    rows = {r["name"]: r for r in json.loads(out)["rows"]}
    assert rows["kurtosis"]["theory"] == pytest.approx(3 * (1 + 5 / 16) ** 2)
    assert all(math.isfinite(r["z"]) for r in json.loads(out)["rows"] if r["label"] != LABELS[
        "paper"])
    code, out, _ = _run(capsys, "compare", "--depth", "2", "--width", "16", "--points", "16",
                        "--nets", "20", "--seed", "1")
    assert code == 0 and "exact infinite width" in out and "rel err" in out


@pytest.mark.parametrize("argv, match", [
    (["theory", "--depth", "3", "--model", "magic"], "model"),
    (["theory", "--depth", "3", "--batchnorm", "--model", "exact"], "batch norm"),
    (["theory", "--depth", "3", "--pair", "nan", "1"], "pair"),
    (["compare", "--depth", "2", "--nets", "1", "--seed", "0"], "nets"),
    (["compare", "--depth", "2", "--nets", "5", "--seed", "0", "--grid", "gaussian",
      "--index", "0", "999"], "index"),
])
def test_theory_and_compare_errors(capsys, argv, match):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_predict_rejects_unknown_model():
    with pytest.raises(ValueError, match="model"):
        predict(NetSpec(), "guess", [0.0], [1.0])
