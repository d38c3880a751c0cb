"""The training study's parts: the plateau rule, the validation split, batch statistics at
evaluation, the input gradient in training mode, batch norm's gradient growth."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_train import _blobs

from gradsim.train import ModelSpec, TrainConfig, evaluate, init_model, plateaued, train
from gradsim.train.data import carve_validation
from gradsim.train.diagnostics import BN_RELU_RATE, growth_rate, input_gradient_norms


def test_plateau_rule_by_hand():
    # windows of 2: means 1.0 then 0.995 fall by 0.5% <= 1%: flat
    assert plateaued([2.0, 1.5, 1.0, 1.0, 1.0, 0.99], 2, 0.01)
    # 1.0 then 0.9: a 10% fall, not flat at tol 5%, flat at tol 20%
    loss = [1.0, 1.0, 0.9, 0.9]
    assert not plateaued(loss, 2, 0.05) and plateaued(loss, 2, 0.2)
    assert plateaued([1.0, 1.0, 1.1, 1.2], 2, 0.0)  # rising counts as flat
    assert not plateaued([1.0, 0.5, 0.25], 2, 0.5)  # fewer than 2 windows of epochs
    assert plateaued([1.0, 0.5, 1e-4], 2, 0.0, floor=1e-3)  # the data are fit
    assert not plateaued([], 2, 0.5) and not plateaued([1.0, 1.0], 0, 0.5)


def test_seeded_run_stops_at_its_plateau_and_not_before():
    data = _blobs(n=160)
    kw = dict(model=ModelSpec("relu", depth=2, width=8, input_dim=6, classes=3), lr=0.01,
              batch=16, seed=3, track_points=8, track_lines=1)
    window, tol = 3, 0.05
    _, h = train(TrainConfig(epochs=80, plateau_window=window, plateau_tol=tol, **kw), data)
    loss = h.train_loss
    assert 2 * window <= h.epochs < 80
    assert plateaued(loss, window, tol, 1e-3)
    assert not any(plateaued(loss[:e], window, tol, 1e-3) for e in range(1, h.epochs))
    # the same run with a fixed budget makes the same updates up to the stop
    _, fixed = train(TrainConfig(epochs=h.epochs, **kw), data)
    np.testing.assert_array_equal(fixed.train_loss, loss)


def test_validation_split_is_stratified_disjoint_and_fixed():
    data = _blobs(n=400)
    a, b = carve_validation(data, 0.25, seed=1), carve_validation(data, 0.25, seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    rows = {tuple(r) for r in data.x_train}
    fit, val = {tuple(r) for r in a.x_train}, {tuple(r) for r in a.x_test}
    assert fit.isdisjoint(val) and fit | val == rows
    for c in range(3):
        count = int((data.y_train == c).sum())
        assert int((a.y_test == c).sum()) == round(0.25 * count)
    assert len(a.x_test) + len(a.x_train) == len(data.x_train)
    assert not np.array_equal(carve_validation(data, 0.25, seed=2).x_test, a.x_test)
    with pytest.raises(ValueError, match="fraction"):
        carve_validation(data, 0.0)


def test_batch_statistics_at_evaluation_leave_the_running_averages():
    data = _blobs(n=160)
    model = init_model(ModelSpec("relu-bn", depth=3, width=5, input_dim=6, classes=3),
                       np.random.default_rng(0))
    model.loss_and_grads(data.x_train[:20], data.y_train[:20])  # move the averages
    before = {k: v.copy() for k, v in model.buffers.items()}
    loss, acc = evaluate(model, data.x_test, data.y_test, batch=16, batch_statistics=True)
    for k, v in before.items():
        np.testing.assert_array_equal(model.buffers[k], v)
    # by hand: each chunk of 16 normalised with its own statistics
    right = 0
    for a in range(0, len(data.x_test), 16):
        z = model.logits(data.x_test[a:a + 16], train=True)
        for k, v in before.items():
            model.buffers[k][...] = v
        right += int((z.argmax(axis=1) == data.y_test[a:a + 16]).sum())
    assert acc == right / len(data.x_test)
    assert math.isfinite(loss)


@given(st.sampled_from(["relu", "relu-bn", "resnet-bn", "crelu-ll"]), st.integers(1, 3),
       st.integers(0, 2**32))
def test_training_mode_input_gradient_matches_central_differences(family, depth, seed):
    rng = np.random.default_rng(seed)
    model = init_model(ModelSpec(family, depth=depth, width=4, input_dim=3, classes=3), rng)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    _, _, gx = model.loss_and_grads(x, y, input_gradient=True)
    dx = rng.standard_normal(x.shape)
    h = 1e-6

    def loss(t):
        saved = {k: v.copy() for k, v in model.buffers.items()}
        out = model.loss_and_grads(x + t * dx, y)[0]
        for k, v in saved.items():
            model.buffers[k][...] = v
        return out

    fd = (4 * (loss(h / 2) - loss(-h / 2)) / h - (loss(h) - loss(-h)) / (2 * h)) / 3
    assert fd == pytest.approx(float(np.sum(gx * dx)), rel=1e-5, abs=1e-8)


def test_growth_rate_of_an_exact_geometric_sequence():
    depths = [1, 3, 4, 9]
    norms = np.array([[2.0 * 1.3**d, 5.0 * 1.3**d] for d in depths])
    rate, se = growth_rate(depths, norms)
    assert rate == pytest.approx(1.3, rel=1e-12) and se == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="two depths"):
        growth_rate([1], norms[:1])


def test_batch_norm_explodes_the_input_gradient_plain_relu_does_not():
    data = _blobs(n=200)
    x, y = data.x_train[:64], data.y_train[:64]
    depths = [2, 8, 16, 24]
    bn = growth_rate(depths, input_gradient_norms("relu-bn", depths, 64, x, y, 6))
    plain = growth_rate(depths, input_gradient_norms("relu", depths, 64, x, y, 6))
    # wide, large batch: pi / (pi - 1) = 1.467 per layer; plain ReLU keeps the norm
    assert bn[0] == pytest.approx(BN_RELU_RATE, abs=0.1)
    assert abs(plain[0] - 1.0) < 0.1
    assert (bn[0] - 1.0) / bn[1] > 10


@pytest.mark.parametrize("family", ["conv-relu-bn", "conv-crelu-ll"])
def test_convnet_in_runs_of_images_matches_one_run(family, monkeypatch):
    """The convolutions build their columns a few images at a time (and rebuild them in
    the backward pass); the loss, parameter and input gradients equal one run's."""
    from gradsim.train import conv

    spec = ModelSpec(family, depth=3, width=3, input_dim=9, classes=3)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((11, 9)), rng.integers(0, 3, 11)
    whole = init_model(spec, np.random.default_rng(1)).loss_and_grads(x, y, True)
    monkeypatch.setattr(conv, "CHUNK_ELEMENTS", 2 * 9 * 6 * 9)  # 2 images of 9 x 6 rows
    assert len(conv._runs(6 * 9, 11, 3)[0]) == 6
    runs = init_model(spec, np.random.default_rng(1)).loss_and_grads(x, y, True)
    assert runs[0] == pytest.approx(whole[0], rel=1e-14)
    for k, g in whole[1].items():
        np.testing.assert_allclose(runs[1][k], g, rtol=1e-12, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(runs[2], whole[2], rtol=1e-12, atol=1e-14)
