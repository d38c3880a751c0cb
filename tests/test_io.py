"""``gradsim.save`` / ``gradsim.load``: round trips, atomic writes, and clean errors.

Every simulation here is tiny (width <= 8, depth <= 3, points <= 16, nets <= 4).
"""

import json

import numpy as np
import pytest
from helpers import listing, raw

import gradsim
from gradsim import GridSpec, NetSpec, load, save, simulate


@pytest.fixture(scope="module")
def sim():
    """A 1-D run with activity recorded."""
    return simulate(NetSpec(depth=2, width=4), GridSpec(points=8), nets=3, seed=7, activity=True)


@pytest.fixture(scope="module")
def sim3():
    """A 3-D resnet run (two activation sites per block) without activity."""
    spec = NetSpec(arch="resnet", depth=2, width=4, input_dim=3, branch_depth=2)
    return simulate(spec, GridSpec("gaussian", 6, dim=3, seed=2), nets=2, seed=3,
                    mode="reverse", dtype="float32")


@pytest.fixture
def saved(tmp_path, sim):
    path = tmp_path / "sim.npz"
    save(path, sim)
    return path


def assert_same(a, b):
    assert a.spec == b.spec
    assert a.grid == b.grid
    assert (a.seed, a.nets, a.mode, a.dtype) == (b.seed, b.nets, b.mode, b.dtype)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.grad.dtype == b.grad.dtype
    np.testing.assert_array_equal(a.grad, b.grad)
    if b.activity is None:
        assert a.activity is None
    else:
        np.testing.assert_array_equal(a.activity, b.activity)


# --------------------------------------------------------------------------- round trip


def test_round_trip_with_activity(tmp_path, sim):
    path = tmp_path / "a.npz"
    assert save(path, sim) == path
    assert listing(tmp_path) == ["a.npz"]  # no temporary file left behind
    back = load(path)
    assert back.activity is not None and back.activity.shape == (3, 2, 2)
    assert back.grad.shape == (3, 8, 1) and back.x.shape == (8, 1)
    assert_same(back, sim)
    # the file itself holds the documented layout
    data = raw(path)
    assert data["x"].shape == (8,) and data["grad"].shape == (3, 8)
    assert data["active"].shape == data["coactive"].shape == (3, 2)
    assert json.loads(str(data["meta"]))["version"] == gradsim.__version__


def test_round_trip_multidim_float32(tmp_path, sim3):
    path = tmp_path / "b.npz"
    save(str(path), sim3)  # str paths work too
    back = load(str(path))
    assert back.grad.shape == (2, 6, 3) and back.grad.dtype == np.float32
    assert back.activity is None
    assert_same(back, sim3)
    data = raw(path)
    assert data["x"].shape == (6, 3) and data["grad"].shape == (2, 6, 3)
    assert "active" not in data


def test_save_needs_kept_gradients(tmp_path):
    nokeep = simulate(NetSpec(depth=1, width=2), GridSpec(points=4), nets=1, seed=0, keep=False)
    with pytest.raises(ValueError, match="kept gradients"):
        save(tmp_path / "x.npz", nokeep)
    with pytest.raises(ValueError, match="Simulation"):
        save(tmp_path / "x.npz", {"grad": np.zeros((1, 4))})
    assert listing(tmp_path) == []


def test_save_checks_the_path(tmp_path, sim):
    with pytest.raises(ValueError, match=r"\.npz"):
        save(tmp_path / "x.txt", sim)
    with pytest.raises(ValueError, match="does not exist"):
        save(tmp_path / "missing" / "x.npz", sim)
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- overwrite


def test_save_refuses_to_overwrite(tmp_path, sim, sim3):
    path = tmp_path / "x.npz"
    known = b"precious bytes"
    path.write_bytes(known)
    with pytest.raises(ValueError, match="exists"):
        save(path, sim)
    assert path.read_bytes() == known
    assert listing(tmp_path) == ["x.npz"]

    save(path, sim, force=True)
    assert_same(load(path), sim)
    # and a valid result is not overwritten either, unless forced
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exists"):
        save(path, sim3)
    assert path.read_bytes() == before
    save(path, sim3, force=True)
    assert_same(load(path), sim3)
    assert listing(tmp_path) == ["x.npz"]


# --------------------------------------------------------------------------- atomic writes


def _failing_savez(partial):
    def savez(file, *args, **kwargs):
        if partial:
            file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    return savez


@pytest.mark.parametrize("partial", [False, True], ids=["before-writing", "mid-write"])
def test_failed_write_leaves_nothing(tmp_path, sim, monkeypatch, partial):
    (tmp_path / "other.txt").write_text("unrelated")
    before = listing(tmp_path)
    monkeypatch.setattr(np, "savez", _failing_savez(partial))
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "x.npz", sim)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("partial", [False, True], ids=["before-writing", "mid-write"])
def test_failed_forced_write_keeps_old_file(tmp_path, sim, monkeypatch, partial):
    path = tmp_path / "x.npz"
    known = b"old result"
    path.write_bytes(known)
    monkeypatch.setattr(np, "savez", _failing_savez(partial))
    with pytest.raises(OSError, match="disk full"):
        save(path, sim, force=True)
    assert path.read_bytes() == known
    assert listing(tmp_path) == ["x.npz"]


def test_interrupted_write_leaves_nothing(tmp_path, sim, monkeypatch):
    def savez(file, *args, **kwargs):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path / "x.npz", sim)
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- bad files


def test_load_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load(tmp_path / "absent.npz")


def test_load_directory(tmp_path):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match="not a readable gradsim .npz file"):
        load(tmp_path / "d.npz")


@pytest.mark.parametrize("content", [
    pytest.param(b"x,grad\n1,2\n", id="csv"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\x93NUMPY", id="npy-magic-only"),
])
def test_load_not_an_npz(tmp_path, content):
    path = tmp_path / "fake.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="fake.npz is not a readable gradsim .npz file"):
        load(path)


# gradsim.load opens the file itself, so a truncated file leaks no handle (warnings are
# errors in this suite, so an unclosed-file ResourceWarning would fail this test).
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_load_truncated(tmp_path, saved, keep):
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="cut.npz is not a readable gradsim .npz file"):
        load(cut)


def test_load_corrupted_member(tmp_path, saved):
    data = bytearray(saved.read_bytes())
    # flip bytes inside the first stored member (past its local header), keep the directory
    for i in range(60, 90):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad.npz is not a readable gradsim .npz file"):
        load(bad)


def rewrite(tmp_path, saved, name="edit.npz", drop=(), **changes):
    """Copy of ``saved`` with entries dropped or replaced, written with plain numpy."""
    arrays = {k: v for k, v in raw(saved).items() if k not in drop}
    arrays.update(changes)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("missing", ["spec", "grid", "meta", "x", "grad"])
def test_load_missing_entry(tmp_path, saved, missing):
    path = rewrite(tmp_path, saved, drop=(missing,))
    with pytest.raises(ValueError, match=f"missing entries {missing}"):
        load(path)


def test_load_spec_not_json(tmp_path, saved):
    path = rewrite(tmp_path, saved, spec=np.array("{depth: 2, width"))
    with pytest.raises(ValueError, match="spec is not valid JSON"):
        load(path)


@pytest.mark.parametrize("spec, match", [
    pytest.param(np.array("[1, 2]"), "spec must be a JSON object", id="json-list"),
    pytest.param(np.array('{"depth": 2, "colour": "red"}'), "unknown keys: colour",
                 id="unknown-key"),
    pytest.param(np.array('{"depth": 0}'), "depth must be an integer", id="invalid-value"),
    pytest.param(np.arange(3), "'spec' is not JSON text", id="not-text"),
])
def test_load_bad_spec(tmp_path, saved, spec, match):
    path = rewrite(tmp_path, saved, spec=spec)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_load_meta_not_json(tmp_path, saved):
    path = rewrite(tmp_path, saved, meta=np.array("not json"))
    with pytest.raises(ValueError, match="not a readable gradsim .npz file"):
        load(path)


def test_load_object_array_refused(tmp_path, saved):
    path = rewrite(tmp_path, saved, grad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable gradsim .npz file"):
        load(path)


@pytest.mark.parametrize("change", [
    pytest.param({"x": np.zeros(7)}, id="x-too-short"),
    pytest.param({"grad": np.zeros((3, 7))}, id="grad-wrong-points"),
    pytest.param({"grad": np.zeros((2, 8))}, id="grad-wrong-nets"),
    pytest.param({"grad": np.zeros(8)}, id="grad-1d"),
    pytest.param({"grad": np.zeros((3, 8, 2))}, id="grad-wrong-dim"),
    pytest.param({"x": np.zeros((8, 2))}, id="x-wrong-dim"),
    pytest.param({"active": np.zeros((2, 2)), "coactive": np.zeros((2, 2))},
                 id="activity-wrong-nets"),
    pytest.param({"meta": np.array('["not", "a", "dict"]')}, id="meta-not-object"),
    pytest.param({"meta": np.array('{"seed": 7}')}, id="meta-without-nets"),
])
def test_load_inconsistent_shapes(tmp_path, saved, change):
    path = rewrite(tmp_path, saved, **change)
    with pytest.raises(ValueError, match="edit.npz is not a readable gradsim .npz file: "
                                         "inconsistent shapes"):
        load(path)


def test_load_mismatched_activity_arrays(tmp_path, saved):
    path = rewrite(tmp_path, saved, coactive=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="not a readable gradsim .npz file"):
        load(path)


def test_rewrite_helper_keeps_a_valid_file_valid(tmp_path, saved, sim):
    # guards the tests above: an unchanged rewrite still loads, so each failure is the change
    assert_same(load(rewrite(tmp_path, saved)), sim)
