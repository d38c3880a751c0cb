"""``gradsim explore``: the page's numbers are gradsim's, its settings and CLI refuse bad
input, and the page is one offline file (the browser test is ``test_explore_browser.py``)."""

import base64
import gzip
import importlib.util
import json
import os
import re
import sys

import numpy as np
import pytest

from gradsim.cli import main
from gradsim.explore import FAMILIES, QUICK, ExploreSettings, build_data
from gradsim.explore.data import family_spec
from gradsim.grids import GridSpec
from gradsim.kinks import breakpoints, line_points
from gradsim.montecarlo import network_rng, simulate, simulate_depths
from gradsim.nets import sample_network
from gradsim.stats import acf_rows, autocorrelation, brown_noise, white_noise


@pytest.fixture(scope="module")
def quick_data():
    return build_data(QUICK)


def test_quick_data_are_gradsims_numbers(quick_data):
    """Each family's embedded gradients are simulate's (the deepest depth, the same seed and
    networks) and simulate_depths' (every depth), as float32; the lag-1 and its s.e. are
    autocorrelation's over all networks; the kinks are breakpoints' of the same networks."""
    s, d = QUICK, quick_data
    grid = GridSpec(points=s.points)
    assert np.array_equal(d["t"], grid.points_array()[:, 0].astype(np.float32))
    assert list(d["families"]) == list(FAMILIES) and d["depths"].tolist() == list(
        range(1, s.depth + 1))
    for k, key in enumerate(FAMILIES):
        spec = family_spec(key, s)
        deep = simulate(spec, grid, s.nets, s.seed + k).grad[..., 0]  # (nets, P)
        every = simulate_depths(spec, grid, s.nets, s.seed + k)[..., 0]
        got = d[key]["grad"]
        assert got.dtype == np.float32 and got.shape == (s.shown, s.depth, s.points)
        np.testing.assert_allclose(got[:, -1], deep[:s.shown].astype(np.float32),
                                   rtol=1e-6, atol=1e-6 * np.abs(deep).max())
        assert np.array_equal(got, every[:s.shown].astype(np.float32))
        acf = np.stack([acf_rows(every[:s.shown, j], s.max_lag) for j in range(s.depth)], 1)
        assert np.array_equal(d[key]["acf"], acf.astype(np.float32), equal_nan=True)
        lag = d[key]["lag1"]
        if key == "ll":  # exactly linear at init: a constant gradient has no lag-1
            assert np.isnan(lag).all()
            assert np.ptp(every, axis=-1).max() <= 1e-12 * np.abs(every).max()
        else:
            est = autocorrelation(deep, 1)
            assert lag[-1] == np.float32(est.value[1])
            assert d[key]["lag1_se"][-1] == np.float32(est.se[1])
        x0, u = line_points(spec)
        net = sample_network(spec, network_rng(s.seed + k, 0), taps=True)
        want = breakpoints(net, -2.0, 2.0, grid=grid.points_array()[:, 0], x0=x0,
                           direction=u).tap_breakpoints
        assert d[key]["kinks_note"] is None and len(d[key]["kinks"]) == s.kink_nets
        for j in range(s.depth):
            assert np.array_equal(d[key]["kinks"][0][j], np.asarray(want[j], np.float32))
    assert np.array_equal(d["noise"]["white"]["signal"],
                          white_noise(s.nets, s.points, seed=s.seed)[0].astype(np.float32))
    assert np.array_equal(d["noise"]["brown"]["signal"],
                          brown_noise(s.nets, s.points, seed=s.seed)[0].astype(np.float32))


def test_quick_data_show_the_paper_effect(quick_data):
    """At depth 6 the plain net's lag-1 is below the resnet's (beta 0.1) and the theory
    curve falls with depth (the infinite-width feedforward net shatters)."""
    d = quick_data
    assert d["ff"]["lag1"][-1] < d["res01"]["lag1"][-1]
    th = d["theory"]["lag1"]
    assert d["theory"]["depths"].tolist() == [1, 2, 3, 4, 6] and th[-1] < th[0]
    # the infinite-width theory against the finite-width nets: within 4 s.e. at depth 1
    z = (d["ff"]["lag1"][0] - th[0]) / np.hypot(d["ff"]["lag1_se"][0], d["theory"]["lag1_se"][0])
    assert abs(z) < 4


@pytest.mark.parametrize("kw, match", [
    (dict(depth=0), r"depth must be an integer in \[1, 200\]"),
    (dict(depth=201), r"depth must be an integer in \[1, 200\]"),
    (dict(width=-1), r"width must be an integer in \[1, 1024\]"),
    (dict(nets=1), r"nets must be an integer in \[2, 1000\]"),
    (dict(nets=float("nan")), r"nets must be an integer"),
    (dict(shown=5, nets=4), r"shown must be an integer in \[1, 4\]"),
    (dict(points=8), r"points must be an integer in \[16, 1024\]"),
    (dict(max_lag=64, points=64), r"max_lag must be an integer in \[1, 63\]"),
    (dict(theory_depths=(1, 99)), r"theory_depths must be an integer in \[1, 50\]"),
    (dict(theory_depths=()), r"theory_depths must hold at least one depth"),
    (dict(seed=-1), r"seed must be an integer"),
    (dict(depth=200, points=1024, nets=1000, shown=1000), r"MiB"),
])
def test_settings_refuse_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        ExploreSettings(**kw)


def test_default_theory_depths_follow_depth():
    assert ExploreSettings(depth=10).theory_depths == (1, 2, 3, 4, 6, 8, 10)
    assert ExploreSettings().theory_depths[-1] == 50


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, match", [
    (["--depth", "0"], r"--depth must be an integer in \[1, 200\], got 0"),
    (["--nets", "1"], r"--nets must be an integer in \[2, 1000\], got 1"),
    (["--width", "5000"], r"--width must be an integer in \[1, 1024\], got 5000"),
    (["--seed", "-3"], r"--seed must be an integer"),
    (["--depth", "x"], r"invalid int value"),
])
def test_cli_refuses_bad_flags(tmp_path, capsys, argv, match):
    code, out, err = _run(capsys, "explore", "--out", str(tmp_path / "p.html"), *argv)
    assert code == 2 and re.search(match, err) and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not os.listdir(tmp_path)


def test_cli_without_bokeh_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "bokeh", None)  # import bokeh -> ImportError
    code, _, err = _run(capsys, "explore", "--quick", "--out", str(tmp_path / "p.html"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install "gradsim[explore]"' in err and not os.listdir(tmp_path)


def test_cli_refuses_a_wrong_suffix_and_keeps_an_existing_file(tmp_path, capsys):
    pytest.importorskip("bokeh")
    code, _, err = _run(capsys, "explore", "--quick", "--out", str(tmp_path / "p.png"))
    assert code == 2 and "ending in .html" in err
    page = tmp_path / "p.html"
    page.write_text("keep me")
    code, _, err = _run(capsys, "explore", "--quick", "--out", str(page))
    assert code == 2 and "--force" in err and page.read_text() == "keep me"


def _models(doc_json):
    """Every serialised Bokeh model (a dict with ``attributes``) in ``doc_json``."""
    stack = [doc_json]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if "attributes" in x:
                yield x
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def _ndarray(v):
    """A serialised ndarray (Bokeh's ``{"type": "ndarray", ...}``) back as NumPy."""
    assert v["type"] == "ndarray" and v["order"] == "little"
    raw = base64.b64decode(v["array"]["data"])
    if raw[:2] == b"\x1f\x8b":  # Bokeh gzips large arrays
        raw = gzip.decompress(raw)
    return np.frombuffer(raw, dtype=v["dtype"]).reshape(v["shape"])


def read_embedded(path):
    """``{source name: {column: array}}`` of the page's named ColumnDataSources."""
    text = path.read_text(encoding="utf-8")
    blobs = re.findall(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>',
                       text, flags=re.S)
    assert len(blobs) == 1
    out = {}
    for m in _models(json.loads(blobs[0])):
        a = m["attributes"]
        if m.get("name") == "ColumnDataSource" and a.get("name"):
            out[a["name"]] = {k: _ndarray(v) if isinstance(v, dict) else np.asarray(v)
                              for k, v in a["data"]["entries"]}
    return out


def test_quick_page_is_offline_and_embeds_the_data(tmp_path, capsys, quick_data):
    """The page is one file with inline resources (no src/href to anything), and the
    arrays read back from it are build_data's, bit for bit."""
    pytest.importorskip("bokeh")
    from gradsim.explore.write import read_stamp, stamp

    page = tmp_path / "p.html"
    code, out, _ = _run(capsys, "explore", "--quick", "--out", str(page), "--workers", "1")
    assert code == 0 and "wrote" in out
    text = page.read_text(encoding="utf-8")
    tags = re.findall(r"<script[^>]*>", text)  # the tags only; Bokeh's inline JS holds
    outside = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)  # HTML strings
    assert tags and not any(re.search(r"\bsrc=", t) for t in tags)
    assert not re.search(r"<(link|img|iframe)\b", outside)
    assert os.path.getsize(page) < 4 * 2**20
    got = read_embedded(page)
    D, P = QUICK.depth, QUICK.points
    for key in FAMILIES:
        grad = got["grad_store"][f"grad_{key}"]
        assert grad.dtype == np.float32
        assert np.array_equal(grad.reshape(QUICK.shown, D, P), quick_data[key]["grad"])
        acf = got["acf_store"][f"acf_{key}"].reshape(QUICK.shown, D, QUICK.max_lag + 1)
        assert np.array_equal(acf, quick_data[key]["acf"], equal_nan=True)
        off = got["kink_offsets"][f"off_{key}"]
        pos = got[f"kinks_{key}"]["pos"]
        count = got["kink_offsets"][f"count_{key}"]
        for j in range(D):
            assert np.array_equal(pos[off[j]:off[j + 1]], quick_data[key]["kinks"][0][j])
            assert count[j] == len(quick_data[key]["kinks"][0][j])
    # the views start on family 1, network 1, depth min(D, 10): the gradient view's data
    assert np.array_equal(got["gradient"]["g"], quick_data["ff"]["grad"][0, D - 1])
    from gradsim.experiments.base import code_checksum

    assert read_stamp(page) == json.loads(json.dumps(stamp(QUICK, code_checksum())))
    assert "gradsim explore --out" in text and "--quick" in text


def test_an_interrupted_build_leaves_no_file(tmp_path, monkeypatch):
    pytest.importorskip("bokeh")
    from gradsim.explore import page as page_mod
    from gradsim.explore.write import write_page

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(page_mod, "page_html", boom)
    out = tmp_path / "p.html"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        write_page(str(out), QUICK, quick=True, force=True)
    assert os.listdir(tmp_path) == ["p.html"] and out.read_text() == "old"


def test_reproduce_reuses_its_page_and_refuses_a_foreign_one(tmp_path):
    """``reproduce``'s page: built once, reused while the settings and code are the same,
    and a file of that name gradsim did not write is refused without force."""
    pytest.importorskip("bokeh")
    from gradsim.experiments import reproduce as rp

    log = []
    assert rp._page(str(tmp_path), QUICK, True, False, log.append, 1) == rp.PAGE
    page = tmp_path / rp.PAGE
    before = page.stat().st_mtime_ns
    rp._page(str(tmp_path), QUICK, True, False, log.append, 1)
    assert page.stat().st_mtime_ns == before and "reused" in log[-1]
    assert "gradsim explore --out explore.html --quick" in page.read_text()
    rp._plan_page(str(tmp_path), QUICK, False)  # gradsim's own page: fine
    page.write_text("<html>a lecturer's own page</html>")
    with pytest.raises(ValueError, match="did not write"):
        rp._plan_page(str(tmp_path), QUICK, False)
    rp._plan_page(str(tmp_path), QUICK, True)
    assert page.read_text() == "<html>a lecturer's own page</html>"


def test_dense_breakpoints_keep_their_count_not_their_ticks(quick_data):
    from gradsim.explore.page import kink_columns

    keys = list(FAMILIES)
    full_pos, full_off = kink_columns(quick_data, keys, QUICK.depth)
    cap = 10
    pos, off = kink_columns(quick_data, keys, QUICK.depth, max_ticks=cap)
    for k in keys:
        kinks = quick_data[k]["kinks"][0]
        assert np.array_equal(off[f"count_{k}"][:-1], [len(b) for b in kinks])
        assert np.array_equal(full_off[f"count_{k}"], off[f"count_{k}"])
        kept = [b for b in kinks if len(b) <= cap]
        assert np.array_equal(pos[f"pos_{k}"], np.concatenate(kept) if kept else [])
        assert np.array_equal(np.diff(off[f"off_{k}"]),
                              [len(b) if len(b) <= cap else 0 for b in kinks])
        assert len(full_pos[f"pos_{k}"]) == sum(len(b) for b in kinks)
    assert any(len(b) > cap for k in keys for b in quick_data[k]["kinks"][0])


def test_reproduce_builds_the_page_only_with_bokeh(monkeypatch):
    from gradsim.experiments import reproduce as rp

    if importlib.util.find_spec("bokeh") is not None:
        assert rp._page_settings(True) == QUICK and rp._page_settings(False) == ExploreSettings()
    monkeypatch.setitem(sys.modules, "bokeh", None)
    assert rp._page_settings(False) is None


def test_reproduce_page_flag(tmp_path, monkeypatch):
    """``page=True`` without Bokeh is refused before anything is written, and so is a bad
    value (``--no-page`` passing ``page=False``: tests/test_reproduce.py)."""
    from gradsim.experiments.reproduce import reproduce

    with pytest.raises(ValueError, match="page must be None, True or False"):
        reproduce(str(tmp_path / "x"), only=["gradients"], page="yes")
    monkeypatch.setitem(sys.modules, "bokeh", None)
    with pytest.raises(ValueError, match=r'the page needs Bokeh: pip install "gradsim\[explore\]"'):
        reproduce(str(tmp_path / "y"), only=["gradients"], page=True)
    assert not os.listdir(tmp_path)
