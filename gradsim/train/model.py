"""Trainable dense classifiers with hand-written parameter gradients.

Four families, each ``depth`` hidden layers (or residual blocks) of ``width`` units
between an input layer and a linear ``classes``-way head:

* ``relu``: ``h <- relu(W h + b)``, He init (Gaussian, variance ``2 / fan_in``);
* ``relu-bn``: ``h <- relu(BN(W h))`` with a trainable scale and shift per unit;
* ``resnet-bn``: pre-activation blocks ``x <- x + W relu(BN(x))`` after the input layer,
  then ``relu(BN(x))`` before the head;
* ``crelu-ll``: ``h <- CReLU(W h + b)`` with looks-linear init: the input layer is
  orthogonal, every later layer (and the head) is mirrored ``[P, -P]`` with ``P``
  orthogonal (the head's ``P`` Gaussian), so the net is exactly linear at init.

and their convolutional twins ``conv-relu``, ``conv-relu-bn``, ``conv-resnet-bn`` and
``conv-crelu-ll`` on square images (``input_dim`` pixels), ``width`` channels, 3 x 3
convolutions with zero padding (:mod:`gradsim.train.conv`), the head reading the flattened
last feature map: He init is Gaussian of variance ``2 / (9 C_in)``; the looks-linear
convnet's kernels are delta-orthogonal (zero but an orthogonal centre tap), mirrored
``[P, -P]`` over the CReLU's channel halves, so it too is exactly linear at init.

Arrays are feature-major: a batch is ``(features, B)``.  Batch norm uses the batch's
statistics in training and running averages (momentum 0.1, biased variance) in
evaluation.  Elementwise work uses :mod:`gradsim.kernels` (or its NumPy twin).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..families.sampling import orthogonal
from ..kernels import backend as get_backend
from ..util import check_int, check_real
from .conv import Conv, Flatten, Image, delta_orthogonal, image_side

__all__ = ["FAMILIES", "DENSE_FAMILIES", "CONV_FAMILIES", "ModelSpec", "Model", "init_model",
           "softmax_cross_entropy"]

DENSE_FAMILIES = ("relu", "relu-bn", "resnet-bn", "crelu-ll")
CONV_FAMILIES = ("conv-relu", "conv-relu-bn", "conv-resnet-bn", "conv-crelu-ll")
FAMILIES = DENSE_FAMILIES + CONV_FAMILIES


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A classifier's architecture (see the module docstring).

    Attributes
    ----------
    family : str
        One of :data:`FAMILIES` (the dense ones and their ``conv-`` twins).
    depth : int
        Hidden layers (residual blocks for ``resnet-bn``), ``1 .. 2000``.
    width : int
        Units per hidden layer (channels for a convnet), ``1 .. 4096``.
    input_dim, classes : int
    bn_eps : float
    bn_momentum : float
        Weight of the newest batch in the running averages, in ``(0, 1]``.
    """

    family: str = "relu"
    depth: int = 10
    width: int = 32
    input_dim: int = 64
    classes: int = 10
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        set_ = object.__setattr__
        set_(self, "depth", check_int("depth", self.depth, 1, 2000))
        set_(self, "width", check_int("width", self.width, 1, 4096))
        set_(self, "input_dim", check_int("input_dim", self.input_dim, 1, 10**6))
        set_(self, "classes", check_int("classes", self.classes, 2, 10**5))
        if self.family in CONV_FAMILIES:
            image_side(self.input_dim)
        set_(self, "bn_eps", check_real("bn_eps", self.bn_eps, 0.0, 1.0, lo_open=True))
        set_(self, "bn_momentum", check_real("bn_momentum", self.bn_momentum, 0.0, 1.0,
                                             lo_open=True))

    def to_dict(self):
        """Plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


class _Dense:
    """``z = W h (+ b)``; parameters ``{name}.w`` and ``{name}.b``."""

    def __init__(self, name, bias):
        self.w, self.b = f"{name}.w", (f"{name}.b" if bias else None)

    def forward(self, m, h, train):
        z = m.params[self.w] @ h
        if self.b is not None:
            z += m.params[self.b][:, None]
        return z, h

    def backward(self, m, g, h, grads):
        grads[self.w] = g @ h.T
        if self.b is not None:
            grads[self.b] = g.sum(axis=1)
        return m.params[self.w].T @ g


class _BatchNorm:
    """Batch norm with scale ``{name}.gamma`` and shift ``{name}.beta``."""

    def __init__(self, name):
        self.name = name
        self.gamma, self.beta = f"{name}.gamma", f"{name}.beta"

    def forward(self, m, z, train):
        n = z.shape[0]
        gamma, beta = m.params[self.gamma][:, None], m.params[self.beta][:, None]
        if not train:
            mean, var = m.buffers[f"{self.name}.mean"], m.buffers[f"{self.name}.var"]
            inv = 1.0 / np.sqrt(var + m.spec.bn_eps)
            zhat = (z - mean[:, None]) * inv[:, None]
            return gamma * zhat + beta, (zhat, inv, False)
        zhat = np.empty_like(z)
        inv = np.empty(n, dtype=z.dtype)
        m.kern.bn_fwd(np.ascontiguousarray(z), z.shape[1], m.spec.bn_eps, True, zhat, inv)
        mom = m.spec.bn_momentum
        # the batch variance from the kernel's 1 / sqrt(var + eps), saving a pass
        var = 1.0 / (inv * inv) - m.spec.bn_eps
        for key, value in (("mean", z.mean(axis=1)), ("var", var)):
            buf = m.buffers[f"{self.name}.{key}"]
            buf *= 1.0 - mom
            buf += mom * value
        return gamma * zhat + beta, (zhat, inv, True)

    def backward(self, m, g, cache, grads):
        zhat, inv, through = cache  # through: batch statistics (training mode)
        grads[self.gamma] = (g * zhat).sum(axis=1)
        grads[self.beta] = g.sum(axis=1)
        gz = np.ascontiguousarray(g * m.params[self.gamma][:, None])
        out = np.empty_like(gz)
        m.kern.bn_bwd(np.ascontiguousarray(zhat), inv, gz, through, out)
        return out


class _Act:
    """ReLU or CReLU."""

    def __init__(self, kind):
        self.kind = kind

    def forward(self, m, z, train):
        z = np.ascontiguousarray(z)
        p = z.shape[1]
        if self.kind == "crelu":
            out = np.empty((2 * z.shape[0], p), dtype=z.dtype)
            m.kern.crelu_fwd(z, p, out)
        else:
            out = np.empty_like(z)
            m.kern.act_fwd(z, p, 1.0, 0.0, out)
        return out, z

    def backward(self, m, g, z, grads):
        g = np.ascontiguousarray(g)
        out = np.empty(z.shape, dtype=g.dtype)
        if self.kind == "crelu":
            m.kern.crelu_bwd(z, g, out)
        else:
            m.kern.act_bwd(z, g, 1.0, 0.0, out)
        return out


class _Residual:
    """``x <- x + branch(x)``."""

    def __init__(self, branch):
        self.branch = branch

    def forward(self, m, x, train):
        f, caches = _run(m, self.branch, x, train)
        return x + f, caches

    def backward(self, m, g, caches, grads):
        return g + _back(m, self.branch, g, caches, grads)


def _run(m, layers, h, train):
    caches = []
    for layer in layers:
        h, c = layer.forward(m, h, train)
        caches.append(c)
    return h, caches


def _back(m, layers, g, caches, grads):
    for layer, c in zip(reversed(layers), reversed(caches)):
        g = layer.backward(m, g, c, grads)
    return g


@dataclasses.dataclass
class Model:
    """A classifier: its spec, parameters, BN running statistics and layers.

    Attributes
    ----------
    spec : ModelSpec
    params : dict of str -> ndarray
        Trainable parameters, in a fixed order.
    buffers : dict of str -> ndarray
        Batch-norm running means and variances.
    layers : list
    kern : module
        Elementwise kernels (:mod:`gradsim.kernels` or :mod:`gradsim.reference`).
    """

    spec: ModelSpec
    params: dict
    buffers: dict
    layers: list
    kern: object

    def logits(self, x, train=False):
        """Logits ``(B, classes)`` of inputs ``x`` ``(B, input_dim)``."""
        z, _ = _run(self, self.layers, np.ascontiguousarray(np.asarray(x, float).T), train)
        return z.T

    def loss_and_grads(self, x, y, input_gradient=False):
        """Mean softmax cross-entropy on a batch (training mode) and its gradients.

        Parameters
        ----------
        x : ndarray, shape (B, input_dim)
        y : ndarray of int, shape (B,)
        input_gradient : bool
            Also return ``dL/dx``, shape ``(B, input_dim)`` (batch statistics moving
            with the inputs, as in training).

        Returns
        -------
        loss : float
        grads : dict of str -> ndarray
            Same keys and shapes as :attr:`params`.
        gx : ndarray, only if ``input_gradient``
        """
        z, caches = _run(self, self.layers, np.ascontiguousarray(x.T), True)
        loss, gz = softmax_cross_entropy(z, y)
        grads = {}
        gx = _back(self, self.layers, gz, caches, grads)
        return (loss, grads, gx.T) if input_gradient else (loss, grads)

    def input_gradient(self, x, cls):
        """``d logit_cls / dx`` at every input, evaluation mode (BN running statistics).

        Parameters
        ----------
        x : ndarray, shape (B, input_dim)
        cls : int

        Returns
        -------
        ndarray, shape (B, input_dim)
        """
        z, caches = _run(self, self.layers, np.ascontiguousarray(x.T), False)
        g = np.zeros_like(z)
        g[cls] = 1.0
        return _back(self, self.layers, g, caches, {}).T


def softmax_cross_entropy(z, y):
    """Mean cross-entropy of logits ``z`` ``(classes, B)`` for labels ``y``; and ``dL/dz``."""
    b = z.shape[1]
    s = z - z.max(axis=0, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=0, keepdims=True))
    loss = -logp[y, np.arange(b)].mean()
    g = np.exp(logp)
    g[y, np.arange(b)] -= 1.0
    return float(loss), g / b


def _gauss(rng, shape, var):
    return rng.standard_normal(shape) * math.sqrt(var)


def init_model(spec, rng, backend="numba"):
    """Draw a model's initial parameters from ``rng`` (layer by layer, in network order).

    Parameters
    ----------
    spec : ModelSpec
    rng : numpy.random.Generator
    backend : {'numba', 'numpy'}

    Returns
    -------
    Model
    """
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    kern = get_backend(backend)
    if spec.family in CONV_FAMILIES:
        params, buffers, layers = _conv_layers(spec, rng)
        return Model(spec, params, buffers, layers, kern)
    s, n = spec, spec.width
    params, buffers, layers = {}, {}, []
    bn = s.family in ("relu-bn", "resnet-bn")
    dense, batchnorm = _makers(params, buffers, rng, n)

    if s.family == "crelu-ll":
        layers += [dense("in", n, s.input_dim, w=orthogonal(rng, n, s.input_dim, 1.0,
                                                             np.float64)), _Act("crelu")]
        for i in range(s.depth - 1):
            p = orthogonal(rng, n, n, 1.0, np.float64)
            layers += [dense(f"h{i}", n, 2 * n, w=np.concatenate([p, -p], axis=1)),
                       _Act("crelu")]
        u = _gauss(rng, (s.classes, n), 1.0 / n)
        layers.append(dense("head", s.classes, 2 * n, w=np.concatenate([u, -u], axis=1)))
    elif s.family == "resnet-bn":
        layers.append(dense("in", n, s.input_dim))
        for i in range(s.depth):
            layers.append(_Residual([batchnorm(f"b{i}.bn"), _Act("relu"),
                                     dense(f"b{i}", n, n, bias=False)]))
        layers += [batchnorm("out.bn"), _Act("relu")]
        layers.append(dense("head", s.classes, n, w=_gauss(rng, (s.classes, n), 1.0 / n)))
    else:
        for i in range(s.depth):
            name = "in" if i == 0 else f"h{i - 1}"
            layers.append(dense(name, n, s.input_dim if i == 0 else n, bias=not bn))
            if bn:
                layers.append(batchnorm(f"{name}.bn"))
            layers.append(_Act("relu"))
        layers.append(dense("head", s.classes, n, w=_gauss(rng, (s.classes, n), 1.0 / n)))
    return Model(spec, params, buffers, layers, kern)


def _makers(params, buffers, rng, n):
    """``dense(name, rows, cols, bias=True, w=None)`` and ``batchnorm(name)``: register
    a layer's parameters (He-Gaussian weights unless ``w`` is given) and return it."""

    def dense(name, rows, cols, bias=True, w=None):
        params[f"{name}.w"] = _gauss(rng, (rows, cols), 2.0 / cols) if w is None else w
        if bias:
            params[f"{name}.b"] = np.zeros(rows)
        return _Dense(name, bias)

    def batchnorm(name):
        params[f"{name}.gamma"], params[f"{name}.beta"] = np.ones(n), np.zeros(n)
        buffers[f"{name}.mean"], buffers[f"{name}.var"] = np.zeros(n), np.ones(n)
        return _BatchNorm(name)

    return dense, batchnorm


def _conv_layers(s, rng):
    """Parameters, buffers and layers of a ``conv-`` family, drawn in network order."""
    n, side = s.width, image_side(s.input_dim)
    params, buffers = {}, {}
    _, batchnorm = _makers(params, buffers, rng, n)

    def conv(name, rows, cols, bias=True, w=None):
        params[f"{name}.w"] = _gauss(rng, (rows, 9 * cols), 2.0 / (9 * cols)) if w is None else w
        if bias:
            params[f"{name}.b"] = np.zeros(rows)
        return Conv(name, bias, side)

    def head(cols, mirrored=False):
        u = _gauss(rng, (s.classes, cols), 1.0 / cols)
        params["head.w"] = np.concatenate([u, -u], axis=1) if mirrored else u
        params["head.b"] = np.zeros(s.classes)
        return [Flatten(side), _Dense("head", True)]

    layers = [Image()]
    if s.family == "conv-crelu-ll":
        layers += [conv("in", n, 1, w=delta_orthogonal(rng, n, 1, orthogonal)), _Act("crelu")]
        for i in range(s.depth - 1):
            p = delta_orthogonal(rng, n, n, orthogonal).reshape(n, n, 9)
            w = np.concatenate([p, -p], axis=1).reshape(n, 2 * n * 9)
            layers += [conv(f"h{i}", n, 2 * n, w=w), _Act("crelu")]
        return params, buffers, layers + head(side * side * n, mirrored=True)
    if s.family == "conv-resnet-bn":
        layers.append(conv("in", n, 1))
        for i in range(s.depth):
            layers.append(_Residual([batchnorm(f"b{i}.bn"), _Act("relu"),
                                     conv(f"b{i}", n, n, bias=False)]))
        layers += [batchnorm("out.bn"), _Act("relu")]
        return params, buffers, layers + head(side * side * n)
    bn = s.family == "conv-relu-bn"
    for i in range(s.depth):
        name = "in" if i == 0 else f"h{i - 1}"
        layers.append(conv(name, n, 1 if i == 0 else n, bias=not bn))
        if bn:
            layers.append(batchnorm(f"{name}.bn"))
        layers.append(_Act("relu"))
    return params, buffers, layers + head(side * side * n)
