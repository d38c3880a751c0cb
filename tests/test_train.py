"""Training: hand-written parameter gradients against finite differences, optimisers by
hand, looks-linear linearity, seeded runs, checkpoints and resume."""

import dataclasses
import os
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradsim.cli import main
from gradsim.train import (
    FAMILIES,
    SGD,
    Adam,
    ModelSpec,
    TrainConfig,
    init_model,
    load_checkpoint,
    train,
)
from gradsim.train.data import split_digits
from gradsim.train.model import softmax_cross_entropy


def _dim(family):
    """Input size of the gradient checks: 2 x 2 images for a convnet, 5 features else."""
    return 4 if family.startswith("conv-") else 5


def _blobs(n=120, dim=6, classes=3, seed=0):
    """Gaussian blobs: a small separable problem with the digits' interface."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((classes, dim))
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.standard_normal((n, dim))
    return split_digits(x, y, test_fraction=0.25, split_seed=seed)


@pytest.mark.parametrize("family", FAMILIES)  # every family, dense and conv
@given(depth=st.integers(1, 3), width=st.integers(1, 4), seed=st.integers(0, 2**32),
       backend=st.sampled_from(["numba", "numpy"]))
def test_parameter_gradients_match_central_differences(family, depth, width, seed, backend):
    dim = _dim(family)
    spec = ModelSpec(family, depth=depth, width=width, input_dim=dim, classes=3)
    rng = np.random.default_rng(seed)
    model = init_model(spec, rng, backend)
    for k in model.params:  # move off the init (BN scale 1, shift 0, zero biases)
        model.params[k] = model.params[k] + 0.3 * rng.standard_normal(model.params[k].shape)
    x, y = rng.standard_normal((7, dim)), rng.integers(0, 3, 7)
    _, grads = model.loss_and_grads(x, y)
    assert set(grads) == set(model.params)
    h = 1e-6
    for k, p in model.params.items():
        assert grads[k].shape == p.shape
        fd = np.empty(p.size)
        for i in range(p.size):
            old = p.flat[i]
            p.flat[i] = old + h
            up = model.loss_and_grads(x, y)[0]
            p.flat[i] = old - h
            down = model.loss_and_grads(x, y)[0]
            p.flat[i] = old
            fd[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[k].ravel(), fd, rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("family", FAMILIES)
@given(depth=st.integers(1, 3), seed=st.integers(0, 2**32))
def test_input_gradient_matches_central_differences(family, depth, seed):
    dim = _dim(family)
    spec = ModelSpec(family, depth=depth, width=4, input_dim=dim, classes=3)
    rng = np.random.default_rng(seed)
    model = init_model(spec, rng)
    model.loss_and_grads(rng.standard_normal((9, dim)), rng.integers(0, 3, 9))  # BN buffers
    x = rng.standard_normal((4, dim))
    got = model.input_gradient(x, 2)
    h = 1e-6
    for j in range(dim):
        e = np.zeros(dim)
        e[j] = h
        fd = (model.logits(x + e)[:, 2] - model.logits(x - e)[:, 2]) / (2 * h)
        np.testing.assert_allclose(got[:, j], fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family,dim", [("crelu-ll", 6), ("conv-crelu-ll", 9)])
@pytest.mark.parametrize("depth", [1, 5, 60])
def test_looks_linear_model_is_linear_at_init(family, dim, depth):
    spec = ModelSpec(family, depth=depth, width=8, input_dim=dim, classes=4)
    model = init_model(spec, np.random.default_rng(depth))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, dim))
    t = np.linspace(-1, 1, 7)[:, None]
    z = model.logits(a + t * b)
    # affine along the line, and the same input gradient everywhere
    second = z[2:] - 2 * z[1:-1] + z[:-2]
    assert np.max(np.abs(second)) <= 1e-12 * np.max(np.abs(z))
    g = model.input_gradient(a + t * b, 1)
    assert np.max(np.abs(g - g[0])) <= 1e-12 * np.max(np.abs(g))


def test_softmax_cross_entropy_by_hand():
    z = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])  # (classes, B)
    loss, g = softmax_cross_entropy(z, np.array([2, 0]))
    p0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    want = -(np.log(p0[2]) + np.log(1 / 3)) / 2
    assert loss == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(g[:, 0], (p0 - [0, 0, 1]) / 2, rtol=1e-14)
    np.testing.assert_allclose(g.sum(axis=0), 0.0, atol=1e-16)


def test_optimisers_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    sgd = SGD(lr=0.1, momentum=0.5)
    sgd.step(p, {"w": np.array([1.0, 1.0])})
    sgd.step(p, {"w": np.array([2.0, 0.0])})
    # v1 = g1, v2 = 0.5 g1 + g2
    np.testing.assert_allclose(p["w"], [1.0 - 0.1 * 1 - 0.1 * 2.5, -2.0 - 0.1 - 0.1 * 0.5],
                               rtol=1e-15)
    p = {"w": np.array([1.0])}
    adam = Adam(lr=0.01)
    adam.step(p, {"w": np.array([3.0])})
    # first step of Adam moves by lr * sign(g) (up to eps)
    assert p["w"][0] == pytest.approx(1.0 - 0.01 * 3 / (3 + 1e-8), rel=1e-14)
    with pytest.raises(ValueError, match="lr"):
        SGD(lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.0)


def test_seeded_training_lowers_the_loss_and_repeats_exactly():
    data = _blobs()
    cfg = TrainConfig(ModelSpec("relu-bn", depth=3, width=16, input_dim=6, classes=3),
                      lr=0.01, batch=16, epochs=4, track_points=16, track_lines=2)
    _, h = train(cfg, data)
    # stated amount: the last epoch's mean loss is below half the first's
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.test_acc[-1] > 0.8
    _, again = train(cfg, data)
    assert np.array_equal(h.batch_loss, again.batch_loss)
    assert np.array_equal(h.lag1, again.lag1, equal_nan=True)


def test_resume_after_interruption_equals_the_uninterrupted_run(tmp_path):
    data = _blobs(seed=1)
    cfg = TrainConfig(ModelSpec("resnet-bn", depth=2, width=8, input_dim=6, classes=3),
                      optimizer="sgd", lr=0.05, batch=16, epochs=3, track_points=16,
                      track_lines=2)
    full_model, full = train(cfg, data, checkpoint=tmp_path / "full.npz")

    def stop_in_epoch_2(epoch, step, steps, loss):
        if epoch == 1 and step == 2:
            raise KeyboardInterrupt

    ck = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, checkpoint=ck, progress=stop_in_epoch_2)
    saved, arrays = load_checkpoint(ck)
    assert saved == cfg and len(arrays["history.train_loss"]) == 1  # epoch 1 kept
    model, hist = train(cfg, data, checkpoint=ck)
    for f in dataclasses.fields(hist):
        if f.name != "seconds":
            assert np.array_equal(getattr(hist, f.name), getattr(full, f.name),
                                  equal_nan=True), f.name
    for k in model.params:
        assert np.array_equal(model.params[k], full_model.params[k]), k
    for k in model.buffers:
        assert np.array_equal(model.buffers[k], full_model.buffers[k]), k
    # more epochs continue the same run
    longer = dataclasses.replace(cfg, epochs=4)
    _, h4 = train(longer, data, checkpoint=ck)
    assert h4.epochs == 4 and np.array_equal(h4.train_loss[:3], full.train_loss)


def test_checkpoint_of_another_configuration_or_malformed_is_refused(tmp_path):
    data = _blobs(seed=2)
    cfg = TrainConfig(ModelSpec("relu", depth=2, width=4, input_dim=6, classes=3),
                      epochs=1, track_points=8, track_lines=1)
    ck = tmp_path / "ck.npz"
    train(cfg, data, checkpoint=ck)
    before = ck.read_bytes()
    with pytest.raises(ValueError, match="different configuration"):
        train(dataclasses.replace(cfg, lr=0.5), data, checkpoint=ck)
    assert ck.read_bytes() == before
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a gradsim training checkpoint"):
        train(cfg, data, checkpoint=bad)


@pytest.mark.parametrize("make, match", [
    (lambda: ModelSpec(family="tanh"), "family must be one of"),
    (lambda: ModelSpec(depth=0), "depth must be an integer in"),
    (lambda: ModelSpec(width=-3), "width"),
    (lambda: ModelSpec(width=10**9), "width"),
    (lambda: TrainConfig(lr=float("nan")), "lr"),
    (lambda: TrainConfig(lr=-1.0), "lr"),
    (lambda: TrainConfig(batch=0), "batch"),
    (lambda: TrainConfig(epochs=10**9), "epochs"),
    (lambda: TrainConfig(optimizer="rmsprop"), "optimizer"),
    (lambda: TrainConfig(track_points=2), "track_points"),
])
def test_bad_settings_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data_and_unknown_settings():
    cfg = TrainConfig(ModelSpec(input_dim=6, classes=3, depth=1, width=2), epochs=1,
                      track_lines=1, track_points=4)
    data = _blobs()
    wrong = types.SimpleNamespace(**{**vars(data), "x_train": data.x_train[:, :5]})
    with pytest.raises(ValueError, match="x_train"):
        train(cfg, wrong)
    with pytest.raises(ValueError, match="track_lines"):
        train(dataclasses.replace(cfg, track_lines=10**4), data)
    with pytest.raises(ValueError, match="unknown training settings: colour"):
        TrainConfig.from_dict({"colour": 1})


def test_digits_split_is_fixed_and_stratified():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841 - the optional extra
    from gradsim.train.data import load_digits

    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1438, 64) and a.x_test.shape == (359, 64)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    np.testing.assert_allclose(a.x_train.mean(axis=0), 0.0, atol=1e-12)


#: Enough epochs (about 30 ms each) that a SIGINT sent once the first checkpoint exists
#: lands mid-run, not while a finished process exits (which gives returncode -SIGINT).
CLI_EPOCHS = 40


def _train_cmd(out, *extra):
    """``python -m gradsim train ...`` for a tiny run; ``[3:]`` is main()'s argv."""
    return [sys.executable, "-m", "gradsim", "train", "--family", "resnet-bn", "--depth", "2",
            "--width", "8", "--epochs", str(CLI_EPOCHS), "--batch", "32", "--track-points",
            "16", "--track-lines", "2", "--out", str(out), *extra]


@pytest.mark.slow
def test_cli_train_ctrl_c_then_resume_equals_uninterrupted(tmp_path):
    """SIGINT after the first checkpoint: exit 130, one line naming the checkpoint; the
    same command then resumes, and the history equals an uninterrupted run's."""
    pytest.importorskip("sklearn")
    import signal
    import subprocess
    import time

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = tmp_path / "full.npz"
    assert main(_train_cmd(full, "--quiet")[3:]) == 0
    out = tmp_path / "run.npz"
    ck = tmp_path / "run.npz.ckpt.npz"
    proc = subprocess.Popen(_train_cmd(out, "--quiet"), stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    deadline = time.time() + 120
    while not ck.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before its first checkpoint: {proc.communicate()[1]}")
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    if out.exists():  # a heavily loaded machine: the whole run finished before the signal
        pytest.skip(f"the run finished before it could be interrupted ({proc.returncode})")
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    assert ck.exists() and not out.exists()
    assert main(_train_cmd(out, "--quiet")[3:]) == 0
    with np.load(full) as a, np.load(out) as b:
        for k in a.files:
            if k != "history.seconds":
                assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k


def test_cli_train_bad_input(tmp_path, capsys):
    assert main(["train", "--depth", "0", "--out", str(tmp_path / "a.npz")]) == 2
    assert "depth must be an integer in [1, 2000]" in capsys.readouterr().err
    assert main(["train", "--family", "tanh", "--out", str(tmp_path / "a.npz")]) == 2
    (tmp_path / "b.npz").write_bytes(b"keep")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "b.npz")]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "b.npz").read_bytes() == b"keep"
