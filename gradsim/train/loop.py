"""The training loop: seeded, checkpointed after every epoch, resumable bit for bit.

Randomness comes from ``SeedSequence(seed)`` children only: the initial parameters from
``spawn_key=(0,)`` and epoch ``e``'s shuffle from ``spawn_key=(1, e)``.  So no random
state needs saving: a run resumed from the checkpoint of epoch ``k`` makes exactly the
updates the uninterrupted run makes (tested).  The checkpoint (``.npz``, written
atomically after each finished epoch) holds the parameters, the batch-norm running
statistics, the optimiser state, the history and the configuration; resuming with a
different configuration (anything but ``epochs``) is refused.

While training we track shattering: the lag-1 autocorrelation, along a line between two
test images, of the directional derivative of the first image's class logit
(evaluation mode), for ``track_lines`` pairs of test images, at init and after every
epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ..io import write_npz
from ..stats import acf_rows
from ..util import check_int, check_real
from .model import ModelSpec, init_model, softmax_cross_entropy
from .optim import OPTIMIZERS, make_optimizer

__all__ = ["TrainConfig", "History", "Diverged", "train", "evaluate", "track_lag1",
           "load_checkpoint", "plateaued"]


class Diverged(FloatingPointError):
    """The training loss became inf or NaN; ``history`` holds the finished epochs."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the data split).

    Attributes
    ----------
    model : ModelSpec
    optimizer : {'adam', 'sgd'}
    lr : float
    momentum : float
        SGD only.
    batch : int
    epochs : int
    seed : int
    track_points : int
        Points on each tracking line (``>= 3``).
    track_lines : int
        Pairs of test images tracked (``>= 1``).
    plateau_window : int
        ``0``: train exactly ``epochs`` epochs.  Otherwise ``epochs`` is a cap and training
        stops once :func:`plateaued` holds for the epoch-mean training loss.
    plateau_tol : float
        Relative drop, between two windows, below which the loss counts as flat.
    loss_floor : float
        A training loss at or below which the data count as fit (also a plateau).
    """

    model: ModelSpec = ModelSpec()
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    batch: int = 64
    epochs: int = 10
    seed: int = 0
    track_points: int = 256
    track_lines: int = 8
    plateau_window: int = 0
    plateau_tol: float = 0.01
    loss_floor: float = 1e-3

    def __post_init__(self):
        if not isinstance(self.model, ModelSpec):
            raise ValueError(f"model must be a ModelSpec, got {type(self.model).__name__}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; "
                             f"got {self.optimizer!r}")
        set_ = object.__setattr__
        set_(self, "lr", check_real("lr", self.lr, 0.0, 10.0, lo_open=True))
        set_(self, "momentum", check_real("momentum", self.momentum, 0.0, 1.0, hi_open=True))
        set_(self, "batch", check_int("batch", self.batch, 1, 10**6))
        set_(self, "epochs", check_int("epochs", self.epochs, 1, 10**5))
        set_(self, "seed", check_int("seed", self.seed, 0, 2**63 - 1))
        set_(self, "track_points", check_int("track_points", self.track_points, 3, 10**5))
        set_(self, "track_lines", check_int("track_lines", self.track_lines, 1, 10**4))
        set_(self, "plateau_window", check_int("plateau_window", self.plateau_window, 0, 10**4))
        set_(self, "plateau_tol", check_real("plateau_tol", self.plateau_tol, 0.0, 1.0))
        set_(self, "loss_floor", check_real("loss_floor", self.loss_floor, 0.0, 10.0))

    def to_dict(self):
        """Plain dict (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; ValueError on unknown keys."""
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        if "model" in d:
            m = dict(d["model"])
            mknown = {f.name for f in dataclasses.fields(ModelSpec)}
            if set(m) - mknown:
                raise ValueError(f"unknown model settings: {', '.join(sorted(set(m) - mknown))}")
            d["model"] = ModelSpec(**m)
        return cls(**d)


@dataclasses.dataclass
class History:
    """What a run measured.

    Attributes
    ----------
    batch_loss : ndarray, shape (steps,)
        Training loss of every mini-batch, in order.
    train_loss : ndarray, shape (epochs,)
        Mean mini-batch loss of each epoch.
    test_loss, test_acc, train_acc : ndarray, shape (epochs + 1,)
        Evaluation-mode loss and accuracy, at init (``[0]``) and after each epoch.
    lag1 : ndarray, shape (epochs + 1, track_lines)
        Lag-1 autocorrelation of each tracked line's directional derivative.
    seconds : ndarray, shape (epochs,)
        Wall time of each epoch (not part of the results' identity).
    """

    batch_loss: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    train_acc: np.ndarray
    lag1: np.ndarray
    seconds: np.ndarray

    @property
    def epochs(self):
        """Finished epochs."""
        return len(self.train_loss)

    @classmethod
    def empty(cls, lines):
        """No epochs yet."""
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros((0, lines)), z)

    def to_arrays(self):
        """``{'history.<field>': array}``."""
        return {f"history.{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}


def evaluate(model, x, y, batch=512, batch_statistics=False):
    """Mean cross-entropy and accuracy on ``(x, y)``.

    Parameters
    ----------
    model : Model
    x : ndarray, shape (n, input_dim)
    y : ndarray of int, shape (n,)
    batch : int
        Inputs per forward pass.
    batch_statistics : bool
        False (evaluation mode): batch norm uses its running averages.  True: each
        ``batch`` of inputs is normalised with its own statistics, as in training; the
        running averages are left as they were.

    Returns
    -------
    loss, accuracy : float
    """
    losses, correct = 0.0, 0
    saved = {k: v.copy() for k, v in model.buffers.items()} if batch_statistics else None
    try:
        for a in range(0, len(x), batch):
            z = model.logits(x[a:a + batch], train=batch_statistics).T
            loss, _ = softmax_cross_entropy(z, y[a:a + batch])
            losses += loss * z.shape[1]
            correct += int((z.argmax(axis=0) == y[a:a + batch]).sum())
    finally:
        if saved is not None:
            for k, v in saved.items():
                model.buffers[k][...] = v
    return losses / len(x), correct / len(x)


def plateaued(train_loss, window, tol, floor=0.0):
    """Whether a training loss has flattened (the plateau rule).

    With ``a`` and ``b`` the means of the epoch losses over the two last windows of
    ``window`` epochs (``b`` the later), the loss is flat when ``a - b <= tol * a`` (it
    fell by at most a fraction ``tol``, or rose), or when the last epoch's loss is at
    most ``floor`` (the training set is fit).

    Parameters
    ----------
    train_loss : array_like
        Epoch-mean training losses, in order.
    window : int
        ``>= 1``; fewer than ``2 * window`` epochs are never flat (unless at the floor).
    tol, floor : float

    Returns
    -------
    bool
    """
    loss = np.asarray(train_loss, dtype=float)
    if window < 1 or len(loss) == 0:
        return False
    if loss[-1] <= floor:
        return True
    if len(loss) < 2 * window:
        return False
    a, b = loss[-2 * window:-window].mean(), loss[-window:].mean()
    return bool(a - b <= tol * a)


def _track_lines(data, cfg):
    """``(x0, direction, class)`` of each tracked pair of test images."""
    k = cfg.track_lines
    if 2 * k > len(data.x_test):
        raise ValueError(f"track_lines must be at most {len(data.x_test) // 2} "
                         f"(test images / 2), got {k}")
    return [(data.x_test[2 * i], data.x_test[2 * i + 1] - data.x_test[2 * i],
             int(data.y_test[2 * i])) for i in range(k)]


def track_lag1(model, lines, points):
    """Lag-1 autocorrelation along each line of ``d logit_c(x0 + t d) / dt``, ``t`` in [0, 1].

    Returns
    -------
    ndarray, shape (len(lines),)
        ``nan`` for a line along which the derivative is constant.
    """
    t = np.linspace(0.0, 1.0, points)
    out = np.empty(len(lines))
    for i, (x0, d, c) in enumerate(lines):
        g = model.input_gradient(x0[None, :] + t[:, None] * d[None, :], c) @ d
        out[i] = acf_rows(g[None, :, None], max_lag=1)[0, 1]
    return out


def _checkpoint_arrays(model, opt, hist, cfg):
    arrays = {f"param.{k}": v for k, v in model.params.items()}
    arrays.update({f"buffer.{k}": v for k, v in model.buffers.items()})
    arrays.update({f"opt.{k}": v for k, v in opt.state.items()})
    arrays.update(hist.to_arrays())
    arrays["config"] = json.dumps(cfg.to_dict(), sort_keys=True)
    return arrays


def _save_checkpoint(path, model, opt, hist, cfg):
    write_npz(path, _checkpoint_arrays(model, opt, hist, cfg))


def load_checkpoint(path):
    """``(config, arrays)`` from a checkpoint; ValueError naming the file if malformed."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        cfg = TrainConfig.from_dict(json.loads(str(arrays.pop("config"))))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is not a gradsim training "
                         f"checkpoint ({err})") from None
    return cfg, arrays


def _restore(path, cfg, model, opt):
    old, arrays = load_checkpoint(path)
    same = dataclasses.replace(old, epochs=cfg.epochs) == cfg
    if not same:
        raise ValueError(f"checkpoint {os.fspath(path)!r} was written by a different "
                         "configuration; use another path or delete it (only epochs may "
                         "change on resume)")
    try:
        for k in model.params:
            model.params[k][...] = arrays[f"param.{k}"]
        for k in model.buffers:
            model.buffers[k][...] = arrays[f"buffer.{k}"]
        opt.state = {k[4:]: v.copy() for k, v in arrays.items() if k.startswith("opt.")}
        hist = History(**{f.name: arrays[f"history.{f.name}"]
                          for f in dataclasses.fields(History)})
    except (KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is incomplete ({err})") from None
    return hist


def _append(hist, **new):
    for k, v in new.items():
        cur = getattr(hist, k)
        setattr(hist, k, np.concatenate([cur, np.asarray(v, dtype=cur.dtype)[None]
                                         if cur.ndim == 1 else np.asarray(v)[None]]))


def train(cfg, data, checkpoint=None, progress=None, backend="numba"):
    """Train a classifier; resume from ``checkpoint`` if it exists.

    Parameters
    ----------
    cfg : TrainConfig
    data : gradsim.data.Digits
        Or any object with ``x_train, y_train, x_test, y_test``.
    checkpoint : path, optional
        Written after every epoch; if it exists, training resumes from it.
    progress : callable, optional
        ``progress(epoch, step, steps_per_epoch, loss)`` after every mini-batch.
    backend : {'numba', 'numpy'}

    Returns
    -------
    model : Model
    history : History
    """
    import time

    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    x, y = np.asarray(data.x_train, float), np.asarray(data.y_train)
    if x.ndim != 2 or x.shape[1] != cfg.model.input_dim or len(x) != len(y):
        raise ValueError(f"data: x_train must have shape (n, {cfg.model.input_dim}) and "
                         "match y_train")
    if y.min() < 0 or y.max() >= cfg.model.classes:
        raise ValueError(f"data: labels must be in [0, {cfg.model.classes - 1}]")
    lines = _track_lines(data, cfg)
    root = np.random.SeedSequence(cfg.seed)
    model = init_model(cfg.model, np.random.default_rng(root.spawn(1)[0]), backend)
    opt = make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum)
    if checkpoint is not None and os.path.exists(checkpoint):
        hist = _restore(checkpoint, cfg, model, opt)
    else:
        hist = History.empty(cfg.track_lines)
    if hist.epochs == 0 and len(hist.test_acc) == 0:
        tl, ta = evaluate(model, data.x_test, data.y_test)
        _, tra = evaluate(model, x, y)
        _append(hist, test_loss=tl, test_acc=ta, train_acc=tra,
                lag1=track_lag1(model, lines, cfg.track_points))
    steps = -(-len(x) // cfg.batch)
    for epoch in range(hist.epochs, cfg.epochs):
        if cfg.plateau_window and plateaued(hist.train_loss, cfg.plateau_window,
                                            cfg.plateau_tol, cfg.loss_floor):
            break
        t0 = time.perf_counter()
        order = np.random.default_rng(
            np.random.SeedSequence(cfg.seed, spawn_key=(1, epoch))).permutation(len(x))
        losses = np.empty(steps)
        for s in range(steps):
            idx = order[s * cfg.batch:(s + 1) * cfg.batch]
            loss, grads = model.loss_and_grads(x[idx], y[idx])
            if not np.isfinite(loss):
                raise Diverged(f"training diverged at epoch {epoch + 1}, step {s + 1} "
                               f"(loss {loss}); try a lower lr", hist)
            opt.step(model.params, grads)
            losses[s] = loss
            if progress is not None:
                progress(epoch, s + 1, steps, loss)
        tl, ta = evaluate(model, data.x_test, data.y_test)
        _, tra = evaluate(model, x, y)
        hist.batch_loss = np.concatenate([hist.batch_loss, losses])
        _append(hist, train_loss=losses.mean(), test_loss=tl, test_acc=ta, train_acc=tra,
                lag1=track_lag1(model, lines, cfg.track_points),
                seconds=time.perf_counter() - t0)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, hist, cfg)
    return model, hist
