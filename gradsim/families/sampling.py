"""Drawing one network's parameters from its own generator, in a fixed order.

Every family builds its layers with a :class:`Sampler`: the spec's initialisation
(Gaussian, orthogonal or looks-linear mirrored) is read here, once.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import Dense

__all__ = ["Sampler", "gaussian", "orthogonal", "tap_readouts", "stream_readout", "SAMPLERS",
           "GAUSSIAN_COST", "GRAM_COST", "gram_refusal", "state_columns", "sampler_cost",
           "resolve_sampler"]


def gaussian(rng, shape, var, dtype):
    """I.i.d. ``N(0, var)`` entries of ``dtype`` (scaled in place: no second copy)."""
    out = rng.standard_normal(shape, dtype=dtype)
    out *= dtype(math.sqrt(var))
    return out


def orthogonal(rng, rows, cols, scale2, dtype):
    """A semi-orthogonal ``rows x cols`` matrix times ``sqrt(scale2)``.

    QR of a Gaussian with the signs of ``diag(R)`` moved into ``Q`` (Haar-distributed).
    """
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q * math.sqrt(scale2), dtype=dtype)


class Sampler:
    """Draws the parameters of one network, in a fixed order, from one generator.

    Parameters
    ----------
    spec : NetSpec
    rng : numpy.random.Generator
    dtype : numpy float type
    rule : ActivationRule
        The spec's :func:`~gradsim.families.activation.activation_rule`.
    columns : int, optional
        Draw in Gram space for states of this many columns: every weight ``rows x cols``
        becomes ``rows x min(cols, columns)`` i.i.d. Gaussians of the same variance
        (:func:`~gradsim.families.layers.gram_product`), every readout likewise; needs
        i.i.d. Gaussian weights (:func:`gram_refusal`).
    """

    def __init__(self, spec, rng, dtype, rule, columns=None):
        self.spec, self.rng, self.dtype, self.rule = spec, rng, dtype, rule
        self.columns = columns

    @property
    def gram(self):
        """True when drawing in Gram space."""
        return self.columns is not None

    def _used(self, cols):
        return cols if self.columns is None else min(cols, self.columns)

    def linear(self, w, b=None, half=None):
        """A :class:`~gradsim.families.layers.Dense` layer of drawn ``w`` and ``b``."""
        return Dense(w, b, half, self.gram)

    def weight(self, rows, cols, consumes_act):
        """Weight for a layer with ``cols`` inputs; mirrored if it consumes CReLU features
        of a looks-linear net.  Returns ``(w, half)`` (``half`` is ``P`` or None).  In
        Gram space, ``rows x min(cols, columns)`` Gaussians of variance
        ``weight_var / cols``."""
        s = self.spec
        if self.gram:
            return gaussian(self.rng, (rows, self._used(cols)), s.weight_var / cols,
                            self.dtype), None
        if consumes_act and self.rule.mirrored:
            half_cols = cols // 2
            half = orthogonal(self.rng, rows, half_cols,
                              s.weight_var * rows / (2 * min(rows, half_cols)), self.dtype)
            w = np.concatenate([half, -self.dtype(s.mirror) * half], axis=1)
            return w, half
        if s.init == "he":
            return gaussian(self.rng, (rows, cols), s.weight_var / cols, self.dtype), None
        scale2 = s.weight_var * rows / min(rows, cols)
        return orthogonal(self.rng, rows, cols, scale2, self.dtype), None

    def bias(self, rows, var):
        """A bias of variance ``var``, or None (nothing drawn) when ``var = 0``."""
        return gaussian(self.rng, rows, var, self.dtype) if var > 0 else None

    def dense(self, rows, cols, consumes_act, bias_var):
        """A :class:`~gradsim.families.layers.Dense` layer: its weight, then its bias."""
        w, half = self.weight(rows, cols, consumes_act)
        return self.linear(w, self.bias(rows, bias_var), half)

    def embedding(self):
        """The first layer ``W_0 x + b_0`` (input dimension to width, first-layer bias)."""
        s = self.spec
        return self.dense(s.width, s.input_dim, False, s.first_bias_var)

    def dense_run(self, count, rows, cols, bias_var):
        """``count`` layers consuming the activation, as ``count`` calls of :meth:`dense`
        would draw them.  With He init they come from one call of the generator (weights
        and biases interleaved as in single draws), which gives the same numbers: a
        generator's output does not depend on how it is split into calls."""
        if self.spec.init != "he" or count == 0:
            return [self.dense(rows, cols, True, bias_var) for _ in range(count)]
        w, b = self.dense_block(count, rows, cols, bias_var)
        return [self.linear(w[i], None if b is None else b[i]) for i in range(count)]

    def dense_block(self, count, rows, cols, bias_var):
        """The weights ``(count, rows, k)`` and biases ``(count, rows)`` (None for
        ``bias_var = 0``) of :meth:`dense_run`'s He layers, from one generator call (views
        into one block: weights and biases interleaved as in single draws)."""
        nb = rows if bias_var > 0 else 0
        k = self._used(cols)
        block = self.rng.standard_normal((count, rows * k + nb), dtype=self.dtype)
        w = block[:, : rows * k].reshape(count, rows, k)  # a view, scaled in place
        w *= self.dtype(math.sqrt(self.spec.weight_var / cols))
        b = None
        if nb:
            b = block[:, rows * k:]
            b *= self.dtype(math.sqrt(bias_var))
        return w, b

    def readout(self, cols, consumes_act):
        """The readout ``u`` over ``cols`` features (mirrored ``[v, -mirror v]`` on CReLU
        features of a looks-linear net).  Returns ``(u, v)`` (``v`` None unmirrored)."""
        s = self.spec
        if consumes_act and self.rule.mirrored and not self.gram:
            half = gaussian(self.rng, cols // 2, s.readout_var / cols, self.dtype)
            return np.concatenate([half, -self.dtype(s.mirror) * half]), half
        return gaussian(self.rng, self._used(cols), s.readout_var / cols, self.dtype), None


class _ReadoutProbe:
    """Stands in for a :class:`Sampler` to learn what a family's readout hook asks for."""

    args = None

    def readout(self, cols, consumes_act):
        self.args = (cols, consumes_act)
        return None, None


def tap_readouts(spec, draw, count):
    """``count`` readouts as ``count`` calls of the family's readout hook would draw them
    (the same numbers: a generator's output does not depend on how it is split into
    calls); unmirrored ones come from one generator call (rows of one array)."""
    probe = _ReadoutProbe()
    spec.family.readout(spec, probe)
    if probe.args is None or count == 0:
        return [spec.family.readout(spec, draw)[0] for _ in range(count)]
    cols, consumes_act = probe.args
    if consumes_act and draw.rule.mirrored and not draw.gram:
        return [draw.readout(cols, consumes_act)[0] for _ in range(count)]
    block = draw.rng.standard_normal((count, draw._used(cols)), dtype=draw.dtype)
    block *= draw.dtype(math.sqrt(spec.readout_var / cols))
    return list(block)


def stream_readout(spec, draw):
    """The linear readout of a stream of width ``N`` (``f = u . x_L``): the ``readout``
    hook of the families whose output is their residual or highway stream."""
    return draw.readout(spec.width, False)



#: The samplers :func:`gradsim.simulate` offers.
SAMPLERS = ("explicit", "gram", "auto")
#: Cost model of :func:`sampler_cost`, in units of one float64 multiply-add in a matrix
#: product: one standard Gaussian, and one multiply-add of the Gram matrix and its
#: factorisation (chosen so that ``auto`` picks the faster sampler in the measurements of
#: ``docs/conventions.md``, "Samplers").
GAUSSIAN_COST, GRAM_COST = 300.0, 4.0


def gram_refusal(spec, mode="forward"):
    """Why the Gram-space sampler cannot draw ``spec``'s networks, or None if it can.

    It is exact in law only where every weight matrix has i.i.d. Gaussian entries
    (``init='he'``, not looks-linear) acting on independent rows (not a conv net's shared
    kernels), and it carries no weights to transpose, so it is forward mode only.
    """
    from ..conv.spec import ConvSpec  # noqa: PLC0415 - conv depends on families

    if isinstance(spec, ConvSpec):
        return ("conv nets share each kernel across positions, so the rows of a layer are "
                "not independent given its input")
    if mode != "forward":
        return f"it is forward mode only (mode={mode!r} given)"
    if spec.activation_rule.mirrored:
        return ("it needs i.i.d. Gaussian weights, and looks-linear weights are mirrored "
                "orthogonal matrices")
    if spec.init != "he":
        return (f"it needs i.i.d. Gaussian weights (init='he'), and init={spec.init!r} "
                "draws orthogonal matrices")
    return None


def state_columns(spec, points, mode="forward"):
    """Columns of the forward-mode state on ``points`` inputs: the values, then one block
    of tangents per direction (``d``, or ``P d`` with batch norm differentiated
    ``through``).  Reverse mode carries the values only."""
    if mode != "forward":
        return points
    through = spec.batchnorm and spec.bn_grad == "through"
    return (1 + (points * spec.input_dim if through else spec.input_dim)) * points


def sampler_cost(rows, cols, columns, sampler):
    """Cost of one ``rows x cols`` layer on a state of ``columns`` columns.

    Explicit: ``rows cols`` Gaussians and ``rows cols m`` multiply-adds.  Gram space, with
    ``k = min(cols, m)``: ``rows k`` Gaussians, the Gram matrix and its pivoted Cholesky
    (``cols m (m + 1) / 2 + m^2 k`` multiply-adds at :data:`GRAM_COST` each) and the
    product (``rows k m``).  Units: one multiply-add of a matrix product; one Gaussian
    costs :data:`GAUSSIAN_COST`.
    """
    m = columns
    if sampler == "explicit":
        return GAUSSIAN_COST * rows * cols + rows * cols * m
    k = min(cols, m)
    return (GAUSSIAN_COST * rows * k + GRAM_COST * (cols * m * (m + 1) / 2 + m * m * k)
            + rows * k * m)


def resolve_sampler(spec, points, mode="forward", sampler="auto"):
    """The sampler a run uses: ``'explicit'`` or ``'gram'``.

    ``'auto'`` takes Gram space where it applies (:func:`gram_refusal`) and the cost model
    (:func:`sampler_cost`, for a hidden ``width x features`` layer on the run's state)
    says it is cheaper; ``'gram'`` where it does not apply raises.

    Raises
    ------
    ValueError
        For an unknown sampler, or ``'gram'`` where it does not apply (the message names
        ``sampler`` and why).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if sampler == "explicit":
        return sampler
    why = gram_refusal(spec, mode)
    if sampler == "gram":
        if why is not None:
            raise ValueError(f"sampler='gram' does not apply: {why}")
        return sampler
    if why is not None:
        return "explicit"
    m = state_columns(spec, points, mode)
    rows, cols = spec.width, spec.features
    cheaper = sampler_cost(rows, cols, m, "gram") < sampler_cost(rows, cols, m, "explicit")
    return "gram" if cheaper else "explicit"
