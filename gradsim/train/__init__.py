"""Training dense classifiers by hand-written backpropagation, on real data.

:mod:`~gradsim.train.model` (families, parameters and their gradients),
:mod:`~gradsim.train.optim` (SGD with momentum, Adam) and :mod:`~gradsim.train.loop`
(seeded, checkpointed, resumable training to a plateau that tracks the input gradient's
lag-1 autocorrelation) and :mod:`~gradsim.train.diagnostics` (batch norm's gradient
growth with depth).  Data: :mod:`~gradsim.train.data` (scikit-learn's digits, the
``digits`` extra).
"""

from .data import Digits, digit_images, load_digits
from .loop import (
    Diverged,
    History,
    TrainConfig,
    evaluate,
    load_checkpoint,
    plateaued,
    track_lag1,
    train,
)
from .model import FAMILIES, Model, ModelSpec, init_model, softmax_cross_entropy
from .optim import OPTIMIZERS, SGD, Adam, make_optimizer

__all__ = ["TrainConfig", "History", "Diverged", "train", "evaluate", "track_lag1",
           "load_checkpoint", "plateaued",
           "FAMILIES", "ModelSpec", "Model", "init_model", "softmax_cross_entropy",
           "OPTIMIZERS", "SGD", "Adam", "make_optimizer", "Digits", "load_digits",
           "digit_images"]
