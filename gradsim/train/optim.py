"""Optimisers: SGD with momentum and Adam, with state that checkpoints as arrays.

Both update the parameter dict in place.  Their state is a dict of arrays (plus the
step count), so a checkpoint holds it exactly and a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..util import check_real

__all__ = ["OPTIMIZERS", "SGD", "Adam", "make_optimizer"]

OPTIMIZERS = ("adam", "sgd")


class SGD:
    """``v <- momentum v + g``; ``p <- p - lr v`` (PyTorch's convention, no dampening).

    Parameters
    ----------
    lr : float
        In ``(0, 10]``.
    momentum : float
        In ``[0, 1)``.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = check_real("lr", lr, 0.0, 10.0, lo_open=True)
        self.momentum = check_real("momentum", momentum, 0.0, 1.0, hi_open=True)
        self.state = {}

    def step(self, params, grads):
        """Update ``params`` in place from ``grads`` (same keys)."""
        for k, g in grads.items():
            v = self.state.get(f"v:{k}")
            if v is None:
                v = self.state[f"v:{k}"] = np.zeros_like(g)
            v *= self.momentum
            v += g
            params[k] -= self.lr * v


class Adam:
    """Adam (Kingma and Ba 2015) with bias correction.

    Parameters
    ----------
    lr : float
        In ``(0, 10]``.
    beta1, beta2 : float
        In ``[0, 1)``.
    eps : float
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = check_real("lr", lr, 0.0, 10.0, lo_open=True)
        self.beta1 = check_real("beta1", beta1, 0.0, 1.0, hi_open=True)
        self.beta2 = check_real("beta2", beta2, 0.0, 1.0, hi_open=True)
        self.eps = check_real("eps", eps, 0.0, 1.0, lo_open=True)
        self.state = {"t": np.zeros(1)}

    def step(self, params, grads):
        """Update ``params`` in place from ``grads`` (same keys)."""
        self.state["t"] += 1.0
        t = float(self.state["t"][0])
        c1, c2 = 1.0 - self.beta1**t, 1.0 - self.beta2**t
        for k, g in grads.items():
            m = self.state.setdefault(f"m:{k}", np.zeros_like(g))
            v = self.state.setdefault(f"v:{k}", np.zeros_like(g))
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            params[k] -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def make_optimizer(name, lr, momentum=0.9):
    """``'adam'`` or ``'sgd'``; ValueError naming ``optimizer`` otherwise."""
    if name == "adam":
        return Adam(lr)
    if name == "sgd":
        return SGD(lr, momentum)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
