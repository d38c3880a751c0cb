"""Experiments: run and plot at tiny sizes, results files, the report's verdicts (read
through the one z-score of gradsim.compare), the command line, interruption, and the
quick reproduction's targets."""

import functools
import importlib.util
import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from gradsim import experiments
from gradsim.cli import main
from gradsim.compare import agrees, assert_agrees, zscore
from gradsim.experiments.base import (
    Claim,
    check_results,
    load_results,
    parse_overrides,
    resolve,
    save_results,
)
from gradsim.experiments.report import write_report
from gradsim.experiments.reproduce import Interrupted, reproduce, run_one
from gradsim.spec import NetSpec
from gradsim.stats import Estimate
from gradsim.theory import covers

JIT_OFF = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

#: Smaller than the quick setting, so every experiment runs in a second or two even
#: with the kernels interpreted (NUMBA_DISABLE_JIT=1).
TINY = {
    "gradients": dict(width=8, points=16, depth_ff=3, depth_resnet=3),
    "covariance": dict(width=8, points=16, depth_ff=3, depth_resnet=3),
    "autocorrelation": dict(width=8, points=16, nets=3, depth=3, shown_depths=[1, 3],
                            max_lag=4, gp_nets=20, theory_depths=[1, 3]),
    "activity": dict(width=8, points=8, nets=3, depth=3),
    "correlation": dict(width=8, depth=3, nets=4, bn_nets=3, ll_nets=2, points=16, t3_depth=2,
                        t3_nets=3, t3_dim=4, t3_points=4, t3_width=8),
    "looks_linear": dict(width=6, points=16, ll_depth=4, bn_depth=3, bn_nets=3,
                         mirror_depth=3, mirrors=[0.0, 1.0], nets=3),
    "spectra": dict(width=8, points=16, nets=3, depths=[2, 3], resnet_depth=2),
    "kurtosis": dict(widths=[4], depth=2, nets=20, check_depth=1),
    "width_scan": dict(widths=[8, 16, 32], depths=[2, 3], net_budget=64, min_nets=4,
                       max_nets=20, tail=1),
    "finite_width": dict(widths=[8, 16], depths=[2, 3], nets=20),
    "kinks": dict(depth=3, width=8, nets=3, nets_other=2, widths=[4, 8], scan_depth=2,
                  scan_nets=3,
                  teach_depths=[1, 3], teach_width=4, grid_points=16),
    "paper_model": dict(width=4, depth=3, nets=20, bn_depths=[1, 3]),
    "convnets": dict(channels=1, points=8, nets=2, depths=[1, 2]),
    "training": dict(families="relu,crelu-ll", depths=[1, 3], width=4, max_epochs=2,
                     plateau_window=1, lrs=[0.01], seeds=2, grad_depths=[1, 2],
                     grad_widths=[4], grad_seeds=2, track_points=8, track_lines=1,
                     workers=1, conv_depths=[1, 2], conv_width=2, conv_lrs=[0.01],
                     conv_seeds=2,
                     # interpreted im2col on the 8 x 8 digits takes minutes: the convnet
                     # study runs in the compiled pass
                     conv_families="" if JIT_OFF else "conv-relu,conv-resnet-bn,conv-crelu-ll"),
}


#: Verdicts the tiny runs must give whatever their size: exact identities hold, and
#: informational rows carry no verdict.
EXPECTED = {"T12": "holds", "CV4": "holds", "X2": "info", "X3": "info", "K4": "holds",
            "K1": "info", "K2": "info"}


def _tiny(name):
    return {k: (",".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in TINY[name].items()}


@functools.cache
def _tiny_run(name):
    """One tiny run per experiment, shared by the tests that only read it."""
    return run_one(name, overrides=_tiny(name))


def _nan_allowed(name, res):
    """Arrays of ``res`` that are nan by design: correlation's theory curves for nets a
    theory does not cover."""
    if name != "correlation":
        return set()
    from gradsim.experiments.correlation import ARCHS

    p = res.params
    return {f"{model}_{arch}" for arch, (_, kw, _) in ARCHS.items()
            for model in ("paper", "exact")
            if covers(NetSpec(depth=p["depth"], width=p["width"], **kw), model) is not None}


def _nan_rows(name, res):
    """Per-family arrays of the kinks experiment: nan in the rows of the families the
    Rice formula does not cover (batch norm), and a looks-linear net's jump and lag-1
    correlations (no jumps, a constant gradient)."""
    if name != "kinks":
        return {}
    from gradsim.experiments.kinks import family_spec

    fams = res.params["families"]
    uncovered = np.array([covers(family_spec(f, 2, 4), "exact") is not None for f in fams])
    linear = np.array([f == "looks_linear" for f in fams])
    return {"rice_per_unit": uncovered, "rice_breakpoints": uncovered, "jump_corr": linear,
            "jump_corr_se": linear, "lag1": linear, "lag1_se": linear}


def test_registry_lists_every_experiment():
    assert set(TINY) == set(experiments.NAMES)
    for name, title in experiments.describe():
        mod = experiments.get(name)
        assert mod.NAME == name and title == mod.TITLE
        assert set(mod.QUICK) <= set(mod.DEFAULTS)
        resolve(mod), resolve(mod, quick=True)  # the shipped settings pass their checks
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.get("nope")


@pytest.mark.parametrize("name", experiments.NAMES)
def test_run_plot_claims_and_results_file(name, tmp_path):
    res = _tiny_run(name)
    assert res.name == name and res.params["seed"] == experiments.get(name).DEFAULTS["seed"]
    nan_ok = _nan_allowed(name, res)
    nan_rows = _nan_rows(name, res)
    for key, arr in res.arrays.items():
        arr = np.asarray(arr, dtype=float)
        if key in nan_rows:  # per family: nan exactly in the rows not covered
            rows = nan_rows[key]
            assert np.all(np.isnan(arr[rows])) and np.all(np.isfinite(arr[~rows])), key
        elif key in nan_ok:  # not covered: nan at every depth
            assert np.all(np.isnan(arr)), key
        else:
            assert np.all(np.isfinite(arr)), key
    path = tmp_path / "r.npz"
    save_results(path, res)
    back = load_results(path)
    assert back.params == res.params and back.meta["versions"]["gradsim"]
    for key in res.arrays:
        np.testing.assert_array_equal(back[key], res[key])
    mod = experiments.get(name)
    assert check_results(back, path) is mod  # what plot and the resume check read
    fig = mod.plot(back)
    assert isinstance(fig, Figure) and fig.axes
    claims = mod.claims(back)
    assert [c.to_dict() for c in claims] == [c.to_dict() for c in mod.claims(res)]
    for c in claims:
        assert isinstance(c, Claim) and c.target and c.claim and c.criterion
        # a plain bool (numpy's bool_ is not JSON), or None exactly for the rows that
        # state a measurement
        assert c.passed is None or type(c.passed) is bool, (c.target, type(c.passed))
        assert (c.passed is None) == c.criterion.startswith(("informational", "measurement"))
        assert json.loads(json.dumps(c.to_dict()))["verdict"] == c.verdict
        if c.target in EXPECTED:
            assert c.verdict == EXPECTED[c.target], c
    assert sorted(os.listdir(tmp_path)) == ["r.npz"]  # plotting wrote nothing


def test_same_seed_same_numbers():
    a = _tiny_run("autocorrelation")
    b = run_one("autocorrelation", overrides=_tiny("autocorrelation"))
    for key in a.arrays:
        np.testing.assert_array_equal(a[key], b[key])


def test_resolve_checks_keys_types_and_ranges():
    mod = experiments.get("autocorrelation")
    p = resolve(mod, overrides={"nets": "5", "shown_depths": "1,2", "width": 12})
    assert p["nets"] == 5 and p["shown_depths"] == [1, 2] and p["width"] == 12
    for bad, match in (({"netz": "3"}, "unknown parameter 'netz'"),
                       ({"nets": "many"}, "nets must be an integer"),
                       ({"nets": "2.5"}, "nets must be an integer"),
                       ({"nets": "0"}, r"nets must be in \[2"),
                       ({"shown_depths": ""}, "shown_depths must be a non-empty"),
                       ({"shown_depths": "1,99"}, r"shown_depths must be in \[1, 50\]"),
                       ({"width": "nan"}, "width must be an integer")):
        with pytest.raises(ValueError, match=match):
            resolve(mod, overrides=bad)
    with pytest.raises(ValueError, match="finite"):
        resolve(experiments.get("correlation"), overrides={"x": "inf"})
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["nets"])


def _ff_variance(res):
    return Estimate(res["ff_mc_variance"], res["ff_mc_variance_se"], res.params["nets"])


def test_report_verdicts_come_from_the_numbers(tmp_path):
    """Break one number on purpose: the report says the claim fails."""
    res = run_one("paper_model", overrides=_tiny("paper_model"))
    mod = experiments.get("paper_model")
    assert_agrees(res["ff_variance"], _ff_variance(res), name="T1 variance")
    good = {c.target: c.verdict for c in mod.claims(res)}
    res.arrays["ff_mc_variance"] = res.arrays["ff_mc_variance"] * 0 + 50.0
    assert not agrees(res["ff_variance"], _ff_variance(res)).any()
    bad = {c.target: c.verdict for c in mod.claims(res)}
    assert bad["T1"] == "fails" and good["T1"] == "holds"
    entries = {"paper_model": (res, mod.claims(res), [])}
    md, html = write_report(str(tmp_path), entries, quick=True)
    with open(md) as fh:
        row = next(line for line in fh.read().splitlines() if line.startswith("| T1 "))
    assert row.rstrip(" |").endswith("fails")
    with open(html) as fh:
        assert "class='fails'" in fh.read()


def _kurtosis_claim(res, kurtosis, se):
    res = type(res)(res.name, res.params, dict(res.arrays, kurtosis=kurtosis, kurtosis_se=se))
    (claim,) = experiments.get("kurtosis").claims(res)
    return claim


def test_claims_read_z_scores_through_the_harness():
    """A claim's score is gradsim.compare.zscore of its numbers, with its conventions:
    agreement to rounding is z = 0 whatever the standard error, a difference with no
    standard error is infinitely many."""
    res = _tiny_run("kurtosis")
    theory, se = res["theory"], np.full_like(res["theory"], 0.25)
    for k, verdict in ((3.0, "holds"), (-3.99, "holds"), (4.01, "fails")):
        c = _kurtosis_claim(res, theory + k * se, se)
        assert c.score == f"max |z| = {abs(k):.2f}" and c.verdict == verdict
        np.testing.assert_allclose(zscore(theory + k * se, theory, se), k)
    c = _kurtosis_claim(res, theory * (1 + 1e-14), 0 * se)
    assert c.score == "max |z| = 0.00" and c.verdict == "holds"
    c = _kurtosis_claim(res, theory + 1e-3, 0 * se)
    assert c.score == "max |z| = inf" and c.verdict == "fails"
    c = _kurtosis_claim(res, theory + np.nan, se)
    assert c.score == "max |z| = nan" and c.verdict == "fails"


def test_experiment_needing_a_missing_extra_is_skipped_or_refused(tmp_path, monkeypatch):
    """Without scikit-learn the full run skips the training experiment and says why in
    the report; asking for it by name is an error that names the extra."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert experiments.missing_requirements("training") == [("sklearn", "digits")]
    assert experiments.missing_requirements("gradients") == []
    with pytest.raises(ValueError, match=r"training needs sklearn \(pip install -e"):
        reproduce(str(tmp_path / "a"), only=["training"])
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(experiments, "NAMES", ("kurtosis", "training"))
    lines = []
    res = reproduce(str(tmp_path / "b"), overrides={"kurtosis": _tiny("kurtosis")},
                    log=lines.append, page=False)
    assert list(res["entries"]) == ["kurtosis"] and "training" in res["skipped"]
    assert any("training: skipped" in line for line in lines)
    assert "not run: training, needs sklearn" in (tmp_path / "b" / "report.md").read_text()


def test_reproduce_writes_exactly_its_files(tmp_path):
    out = tmp_path / "out"
    overrides = {n: _tiny(n) for n in ("gradients", "kurtosis")}
    res = reproduce(str(out), only=["gradients", "kurtosis"], overrides=overrides)
    files = sorted(os.path.relpath(os.path.join(d, f), out)
                   for d, _, fs in os.walk(out) for f in fs)
    assert files == [".reproduce.lock", "figures/gradients.pdf", "figures/gradients.png",
                     "figures/kurtosis.pdf",
                     "figures/kurtosis.png", "report.html", "report.md",
                     "results/gradients.npz", "results/kurtosis.npz"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "numpy" in html
    assert "X5" in (out / "report.md").read_text()
    assert res["seconds"] > 0
    with pytest.raises(ValueError, match="already holds a report"):
        reproduce(str(out), only=["gradients"], overrides={"gradients": _tiny("gradients")})


def test_interrupt_keeps_finished_results(tmp_path, monkeypatch):
    mod = experiments.get("kurtosis")

    def boom(params, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "run", boom)
    out = tmp_path / "out"
    with pytest.raises(Interrupted) as info:
        reproduce(str(out), only=["gradients", "kurtosis"],
                  overrides={"gradients": _tiny("gradients"), "kurtosis": _tiny("kurtosis")})
    assert info.value.saved == ["gradients"]
    assert load_results(out / "results" / "gradients.npz").name == "gradients"
    assert not (out / "results" / "kurtosis.npz").exists()
    assert not any(f.endswith(".tmp") for _, _, fs in os.walk(out) for f in fs)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_run_plot(tmp_path, capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0 and all(n in out for n in experiments.NAMES)
    res = tmp_path / "k.npz"
    sets = [a for k, v in _tiny("kurtosis").items() for a in ("--set", f"{k}={v}")]
    code, out, _ = _run(capsys, "run", "kurtosis", *sets, "--out", str(res), "--quiet",
                        "--workers", "1")
    assert code == 0 and load_results(res).params["nets"] == 20
    code, _, _ = _run(capsys, "plot", str(res), "--out", str(tmp_path / "k.svg"))
    assert code == 0 and sorted(os.listdir(tmp_path)) == ["k.npz", "k.svg"]
    code, _, err = _run(capsys, "plot", str(res), "--out", str(tmp_path / "k.svg"))
    assert code == 2 and "exists" in err


@pytest.mark.parametrize("argv, match", [
    (["run", "nope", "--out", "x.npz"], "unknown experiment"),
    (["run", "kurtosis", "--set", "nets=-3", "--out", "x.npz"], "nets must be in"),
    (["run", "kurtosis", "--set", "bogus=1", "--out", "x.npz"], "unknown parameter"),
    (["plot", "missing.npz", "--out", "f.png"], "does not exist"),
    (["plot", "bad.npz", "--out", "f.png"], "not a gradsim results file"),
    (["plot", "bad.npz", "--out", "f.jpeg"], "out must end in"),
    (["reproduce", "--only", "nope", "--out", "d"], "unknown experiment"),
    (["reproduce", "--set", "nets=3", "--out", "d"], "NAME.KEY=VALUE"),
    (["reproduce", "--only", "gradients", "--set", "kurtosis.nets=30", "--out", "d"],
     "not being run"),
])
def test_cli_errors_are_one_line(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    code, out, err = _run(capsys, *argv)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["bad.npz"]


def test_cli_reproduce_interrupted_says_what_was_saved(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiments.get("kurtosis"), "run",
                        lambda params, progress=None: (_ for _ in ()).throw(KeyboardInterrupt))
    argv = ["reproduce", "--only", "gradients", "kurtosis", "--quiet", "--out",
            str(tmp_path / "o")]
    argv += [a for k, v in _tiny("gradients").items() for a in ("--set", f"gradients.{k}={v}")]
    code, _, err = _run(capsys, *argv)
    assert code == 130 and "saved gradients" in err


@pytest.mark.slow
@pytest.mark.skipif(JIT_OFF, reason="minutes with interpreted kernels; the compiled run "
                    "covers it and the kernels' NumPy twins give the same numbers")
def test_quick_reproduction_meets_its_targets(tmp_path, capsys):
    """CI's quick reproduction: T7, T8, T10-T15 hold at their stated tolerances."""
    code, out, _ = _run(capsys, "reproduce", "--quick", "--quiet", "--out", str(tmp_path))
    assert code == 0
    report = (tmp_path / "report.html").read_text()
    if importlib.util.find_spec("bokeh") is None:  # the page needs the explore extra
        assert not (tmp_path / "explore.html").exists() and "explore.html" in report
    else:  # built with the quick settings, linked from the report
        from gradsim.explore.write import read_stamp

        assert read_stamp(tmp_path / "explore.html")["settings"]["depth"] == 6
        assert "<a href='explore.html'>" in report
    rows = [line.split(" | ") for line in (tmp_path / "report.md").read_text().splitlines()
            if line.startswith("| T")]
    verdict = {r[0].lstrip("| ").strip(): r[-1].rstrip(" |") for r in rows}
    for target in ("T7", "T8", "T10", "T11", "T12", "T13", "T14", "T15"):
        assert verdict[target] == "holds", (target, verdict)
    ll = load_results(tmp_path / "results" / "looks_linear.npz")
    rows = {c.target: json.loads(json.dumps(c.to_dict()))
            for c in experiments.get("looks_linear").claims(ll)}
    assert rows["T12"]["verdict"] == verdict["T12"] and rows["T12"]["passed"] is True
    z = zscore(float(ll["lag1_crelu"][-1]), float(ll["lag1_relu"][-1]),
               float(ll["lag1_se_crelu"][-1]), float(ll["lag1_se_relu"][-1]))
    assert rows["T13"]["score"] == f"z = {z:.2f}" and abs(z) <= 4


def test_plain_text_summaries():
    from gradsim.experiments.report import format_claims, format_run

    res = _tiny_run("paper_model")
    text = format_run(res)
    assert experiments.get("paper_model").TITLE in text and "nets = 20" in text
    claims = format_claims(experiments.get("paper_model").claims(res))
    assert "T1 [" in claims and "criterion:" in claims
    assert "No claims" in format_claims([])
