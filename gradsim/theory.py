"""Closed forms for gradient statistics, each labelled with the assumption behind it.

Two theories so far:

* the **paper model** (:func:`paper_model`): the independent-pattern model of Balduzzi et
  al. (2017) -- units active with probability 1/2, co-active on two inputs with
  probability 1/4, independently across units and layers, and independent of the
  weights.  A block with input-Jacobian ``a I + b W D`` multiplies the gradient variance
  by ``a^2 + b^2 sigma_w^2 / 2`` and the covariance by ``a^2 + b^2 sigma_w^2 / 4``.
  :func:`paper_model_mc` simulates that model itself, so its formulas can be checked
  under their own assumptions;
* **gradient independence** (:func:`independence`): the real pre-activation angles from
  the mean-field forward map (arc-cosine kernels), with weights in the backward pass
  treated as independent of the forward pass.

and the finite-width **kurtosis identity** (:func:`kurtosis_identity`).
Every result is a :class:`Theory` whose ``label`` names its assumption.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .spec import NetSpec, check_int

__all__ = ["Theory", "LABELS", "relu_moments", "ab_moments", "paper_model", "paper_model_mc",
           "independence", "kurtosis_identity"]

LABELS = {
    "paper": "paper model (independent activation patterns)",
    "independence": "gradient independence (mean-field angles)",
    "finite": "finite-width identity (exact)",
    "paper-mc": "Monte Carlo of the paper model",
}


@dataclasses.dataclass(frozen=True)
class Theory:
    """Predictions versus depth.

    Attributes
    ----------
    label : str
        Which theory, i.e. which assumption (see :data:`LABELS`).
    depth : ndarray, shape (L,)
        Depths ``1 .. L``.
    variance, covariance, correlation : ndarray, shape (L,)
        ``E[g(x)^2]``, ``E[g(x) g(y)]`` and their ratio at each depth.
    variance_se, covariance_se, correlation_se : ndarray or None
        Standard errors, for Monte Carlo results only.
    """

    label: str
    depth: np.ndarray
    variance: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    variance_se: np.ndarray | None = None
    covariance_se: np.ndarray | None = None
    correlation_se: np.ndarray | None = None


def relu_moments(rho):
    """Normalised ReLU Gaussian integrals at correlation ``rho``.

    For ``u, v`` jointly Gaussian with unit variances and correlation ``rho``,
    ``theta = arccos(rho)``:

    * ``k0 = E[relu'(u) relu'(v)] = (pi - theta) / (2 pi)``
    * ``k1 = E[relu(u) relu(v)] = (sin theta + (pi - theta) cos theta) / (2 pi)``

    Returns
    -------
    k0, k1 : ndarray
    """
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    theta = np.arccos(rho)
    k0 = (np.pi - theta) / (2 * np.pi)
    k1 = (np.sqrt(1 - rho**2) + (np.pi - theta) * rho) / (2 * np.pi)
    return k0, k1


def ab_moments(rho, a=1.0, b=0.0):
    """Gaussian integrals of the ab-ReLU ``phi(z) = a z (z > 0), b z (z <= 0)``.

    With ``phi(z) = b z + (a - b) relu(z)`` and ``theta = arccos(rho)``, unit variances:

    * ``E[phi'(u) phi'(v)] = (a^2 + b^2)(pi - theta)/(2 pi) + a b theta / pi``
    * ``E[phi(u) phi(v)] = b^2 rho + b (a - b) rho + (a - b)^2 k1(rho)``

    Returns
    -------
    dphi, phi : ndarray
    """
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    theta = np.arccos(rho)
    k0, k1 = relu_moments(rho)
    dphi = (a * a + b * b) * k0 + a * b * theta / np.pi
    phi = b * b * rho + b * (a - b) * rho + (a - b) ** 2 * k1
    return dphi, phi


def _ab(rho, a, b):
    """:func:`ab_moments` for one float, with :mod:`math` (the recursions' inner loop)."""
    rho = min(max(rho, -1.0), 1.0)
    theta = math.acos(rho)
    k1 = (math.sqrt(1 - rho * rho) + (math.pi - theta) * rho) / (2 * math.pi)
    dphi = (a * a + b * b) * (math.pi - theta) / (2 * math.pi) + a * b * theta / math.pi
    return dphi, b * b * rho + b * (a - b) * rho + (a - b) ** 2 * k1


def _growth(spec, a, b):
    """Common factor by which one layer (feedforward) or block (resnet) multiplies the
    mean-field kernel without batch norm; 1 where rescaling would be wrong or idle.

    The kernel recursions are homogeneous apart from the hidden biases, so they carry the
    kernel divided by ``f^l`` (and the biases divided by the same) to stay in
    floating-point range: a plain resnet's variance is ``2^L``.  With hidden biases and
    ``f < 1`` the kernel tends to a fixed point, and ``f = 1`` is used.
    """
    gd = (a * a + b * b) / 2
    s = _weight_scale(spec)
    if spec.arch == "resnet":
        f = spec.alpha**2 * (1 + spec.beta**2 * (s * gd) ** spec.branch_depth)
    else:
        f = s * gd
    if not math.isfinite(f) or f <= 0 or (spec.bias_var > 0 and f < 1):
        return 1.0
    return f


def _slopes(spec):
    """(a, b) of the effective ab-ReLU: looks-linear CReLU is LeakyReLU_{mirror}; CReLU
    with independent halves has ReLU's kernel maps exactly (Gaussian symmetry)."""
    if spec.activation == "relu":
        return 1.0, 0.0
    if spec.activation == "leaky":
        return spec.slope_pos, spec.slope_neg
    if spec.init == "looks-linear":
        return 1.0, spec.mirror
    # CReLU with independent weights on its two halves (fan-in 2n, variance s / 2n):
    # s/2 (E[relu(u)relu(v)] + E[relu(-u)relu(-v)]) = s E[relu(u)relu(v)] by symmetry,
    # and likewise for the derivatives, so every kernel map is ReLU's at scale s.
    return 1.0, 0.0


def _weight_scale(spec):
    """Effective ``sigma_w^2`` of the matrix multiplying the ab-ReLU output."""
    # mirrored [P, -a P]: P carries the whole Frobenius norm of a 2N-fan-in Gaussian
    return spec.weight_var / 2 if spec.init == "looks-linear" else spec.weight_var


def paper_model(spec):
    """The independent-pattern model's variance, covariance and correlation versus depth.

    Per block, with ``s = sigma_w^2`` (2 at He) and ``(a, b)`` the slopes of the activation:

    * feedforward: variance ``*= s E[phi'^2]``, covariance ``*= s E[phi'(u)phi'(v)]`` at
      ``theta = pi/2`` (2^-L correlation for ReLU at He);
    * resnet ``x <- alpha (x + beta F(x))``: variance ``*= alpha^2 (1 + beta^2 s/2)``,
      covariance ``*= alpha^2 (1 + beta^2 s/4)`` for a ReLU branch ((3/4)^L at
      alpha = beta = 1); a two-layer branch multiplies the branch factors;
    * resnet with batch norm: the branch at block ``l`` is rescaled by
      ``1/sqrt(v_{l-1})``, ``v_l = v_{l-1} + beta^2`` (the forward variance), so
      variance ``1 + beta^2 L`` and covariance ``prod (1 + beta^2 / (2 v_{l-1}))``;
    * highway with gate ``t = sigmoid(gate_bias)`` held at its bias (gate derivative
      neglected): variance ``*= (1 - t)^2 + t^2 s/2``, covariance
      ``*= (1 - t)^2 + t^2 s/4``.

    Values are relative to the gradient entering the first layer or block (the paper's
    normalisation): the readout and input embedding are left out.

    Parameters
    ----------
    spec : NetSpec

    Returns
    -------
    Theory
        Labelled ``LABELS['paper']``.
    """
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec must be a NetSpec, got {type(spec).__name__}")
    s = _weight_scale(spec)
    a, b = _slopes(spec)
    dvar = s * (a * a + b * b) / 2  # theta = 0
    dcov = s * float(ab_moments(0.0, a, b)[0])  # theta = pi / 2
    L = spec.depth
    var_f, cov_f = np.empty(L), np.empty(L)
    if spec.arch == "feedforward":
        var_f[:], cov_f[:] = dvar, dcov
    elif spec.arch == "resnet":
        bv, bc = dvar**spec.branch_depth, dcov**spec.branch_depth
        scale = np.ones(L)
        if spec.batchnorm:
            v = 1.0 + spec.beta**2 * bv * np.arange(L)  # forward variance before block l
            scale = 1.0 / v
        var_f[:] = spec.alpha**2 * (1 + spec.beta**2 * bv * scale)
        cov_f[:] = spec.alpha**2 * (1 + spec.beta**2 * bc * scale)
    else:
        t = 1.0 / (1.0 + math.exp(-spec.gate_bias))
        var_f[:] = (1 - t) ** 2 + t * t * dvar
        cov_f[:] = (1 - t) ** 2 + t * t * dcov
    with np.errstate(over="ignore"):  # a plain resnet's variance is 2^L: inf past ~1000
        var, cov = np.cumprod(var_f), np.cumprod(cov_f)
    return Theory(LABELS["paper"], np.arange(1, L + 1), var, cov, np.cumprod(cov_f / var_f))


def paper_model_mc(spec, nets=1000, seed=0, width=None):
    """Monte Carlo of the independent-pattern model itself (not of real networks).

    Each network draws Gaussian weights of variance ``s / N`` and, per layer, masks for
    two inputs that are independent Bernoulli(1/2) (so co-active with probability 1/4),
    independent of the weights; the gradient is pulled back through the blocks of
    :func:`paper_model`.  ReLU and ab-ReLU feedforward nets and resnets (with the same
    batch-norm rescaling) are covered.

    Parameters
    ----------
    spec : NetSpec
    nets : int
        Networks, ``>= 2``.
    seed : int
    width : int, optional
        Width of the simulated model (default ``spec.width``).

    Returns
    -------
    Theory
        Means over networks with standard errors (delta method for the correlation).
    """
    if spec.arch == "highway":
        raise ValueError("paper_model_mc covers arch feedforward and resnet")
    nets = check_int("nets", nets, 2, 10**7)
    n = spec.width if width is None else check_int("width", width)
    s = _weight_scale(spec)
    a, b = _slopes(spec)
    rng = np.random.default_rng(np.random.SeedSequence(check_int("seed", seed, 0, 2**63 - 1)))
    L = spec.depth
    gx = np.zeros((L, nets))
    gy = np.zeros((L, nets))
    sd = math.sqrt(s / n)
    bv = (s * (a * a + b * b) / 2) ** spec.branch_depth

    def layer(d):
        """One masked layer applied to cotangents d, shape (2, nets, n)."""
        w = rng.standard_normal((nets, n, n)) * sd
        m = rng.random((2, nets, n)) < 0.5
        slope = np.where(m, a, b)
        return np.einsum("kbi,bij->kbj", d * slope, w)

    # cotangent entering the top, i.i.d. N(0, 1) entries, shared by both inputs; the
    # gradient is its projection on a fixed unit vector, so E[g^2] starts at 1
    d = np.broadcast_to(rng.standard_normal((nets, n)), (2, nets, n)).copy()
    for k in range(L):  # k counts blocks from the top; depth k + 1 records after k + 1
        if spec.arch == "feedforward":
            d = layer(d)
        else:
            branch = d
            for _ in range(spec.branch_depth):
                branch = layer(branch)
            beta = spec.beta
            if spec.batchnorm:  # forward variance before the block, counted from the bottom
                beta = beta / math.sqrt(1.0 + spec.beta**2 * bv * (L - 1 - k))
            d = spec.alpha * (d + beta * branch)
        # the gradient of a depth-(k + 1) net: projection on the unit vector 1/sqrt(n)
        gx[k] = d[0].sum(axis=1) / math.sqrt(n)
        gy[k] = d[1].sum(axis=1) / math.sqrt(n)
    if spec.arch == "resnet" and spec.batchnorm:
        # the rescaling depends on a block's position from the bottom, so only depth L is
        # the model's net; report it alone
        gx, gy = gx[-1:], gy[-1:]
    return _mc_theory(gx, gy, spec, L)


def _mc_theory(gx, gy, spec, L):
    m = gx.shape[1]
    xx, xy, yy = gx * gx, gx * gy, gy * gy
    var = 0.5 * (xx.mean(1) + yy.mean(1))
    cov = xy.mean(1)
    var_se = np.sqrt(np.var(0.5 * (xx + yy), axis=1, ddof=1) / m)
    cov_se = np.sqrt(np.var(xy, axis=1, ddof=1) / m)
    corr = cov / var
    # delta method for a ratio of means
    cvr = np.array([np.cov(xy[k], 0.5 * (xx[k] + yy[k]))[0, 1] for k in range(len(var))]) / m
    corr_se = np.abs(corr) * np.sqrt(np.maximum(
        (cov_se / cov) ** 2 + (var_se / var) ** 2 - 2 * cvr / (cov * var), 0.0))
    depth = np.arange(1, L + 1) if len(var) == L else np.array([L])
    return Theory(LABELS["paper-mc"], depth, var, cov, corr, var_se, cov_se, corr_se)


def _forward_map(spec, q1, q2, c):
    """One layer's mean-field map of (q1, q2, c) after the ab-ReLU, without bias."""
    a, b = _slopes(spec)
    s = _weight_scale(spec)
    rho = c / math.sqrt(q1 * q2)
    _, phi = _ab(rho, a, b)
    _, phi_diag = _ab(1.0, a, b)
    return s * q1 * phi_diag, s * q2 * phi_diag, s * math.sqrt(q1 * q2) * phi, rho


def independence(spec, x, y):
    """Gradient covariance under gradient independence, with mean-field angles.

    Feedforward and resnets (one- or two-layer branch) without batch norm, ReLU,
    ab-ReLU or looks-linear CReLU.  The pre-activation kernels follow the mean-field map
    ``q <- s E[phi(u)^2] + sigma_b^2``, ``c <- s sqrt(q q') E[phi(u)phi(v)] + sigma_b^2``;
    the gradient inner product ``E[grad f(x) . grad f(y)]`` is
    ``readout_var * s * prod_l s E[phi'(u_l) phi'(v_l)]`` for feedforward nets
    (``R_ff = prod_l (1 - theta_l / pi)`` for ReLU at He), and for resnets
    ``readout_var * s * prod_l alpha^2 (1 + beta^2 prod_branch s E[phi' phi'])``.
    At ``theta_l = pi / 2`` this is the paper model.  The assumption is exact for the
    weights' own contribution at infinite width and large input dimension; on a 1-D
    input with biases it can be wrong (use the exact infinite-width theory there).

    Parameters
    ----------
    spec : NetSpec
    x, y : array_like, shape (d,)
        The two inputs.

    Returns
    -------
    Theory
        Labelled ``LABELS['independence']``; ``variance`` is at ``x``.
    """
    if spec.batchnorm or spec.arch == "highway":
        raise ValueError("independence covers feedforward and resnet nets without batch norm")
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if x.shape != (spec.input_dim,) or y.shape != x.shape:
        raise ValueError(f"x and y must have shape ({spec.input_dim},)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    a, b = _slopes(spec)
    sw, d = spec.weight_var, spec.input_dim
    q1 = float(sw * x @ x / d + spec.first_bias_var)
    q2 = float(sw * y @ y / d + spec.first_bias_var)
    c = float(sw * x @ y / d + spec.first_bias_var)
    if q1 <= 0 or q2 <= 0:
        raise ValueError("an input with zero norm and no first-layer bias has no angle")
    s = _weight_scale(spec)
    dvar = s * float(ab_moments(1.0, a, b)[0])
    L = spec.depth
    var_f, cov_f = np.empty(L), np.empty(L)
    f = _growth(spec, a, b)
    bias = spec.bias_var
    for k in range(L):
        if spec.arch == "feedforward":
            rho = c / math.sqrt(q1 * q2)
            var_f[k] = dvar
            cov_f[k] = s * _ab(rho, a, b)[0]
            q1, q2, c, _ = _forward_map(spec, q1, q2, c)
            bias /= f  # the kernel is carried divided by f^k (see _growth)
            q1, q2, c = q1 / f + bias, q2 / f + bias, c / f + bias
        else:
            bq1, bq2, bc = q1, q2, c
            bvar = bcov = 1.0
            for _ in range(spec.branch_depth):
                rho = bc / math.sqrt(bq1 * bq2)
                bvar *= dvar
                bcov *= s * _ab(rho, a, b)[0]
                bq1, bq2, bc, _ = _forward_map(spec, bq1, bq2, bc)
                bq1, bq2, bc = bq1 + bias, bq2 + bias, bc + bias
            al2, be2 = spec.alpha**2, spec.beta**2
            var_f[k] = al2 * (1 + be2 * bvar)
            cov_f[k] = al2 * (1 + be2 * bcov)
            al2 /= f
            bias /= f
            q1, q2, c = al2 * (q1 + be2 * bq1), al2 * (q2 + be2 * bq2), al2 * (c + be2 * bc)
    if spec.arch == "feedforward":
        # readout over the last activation (half of it for a mirrored readout), then the
        # first layer contributes sw rather than s
        head = spec.readout_var * (0.5 if spec.init == "looks-linear" else 1.0) * sw / s
    else:
        head = spec.readout_var * sw  # linear readout of x_L; embedding W_0
    with np.errstate(over="ignore"):  # a plain resnet's variance is 2^L: inf past ~1000
        var = head * np.cumprod(var_f)
        cov = head * np.cumprod(cov_f)
    return Theory(LABELS["independence"], np.arange(1, L + 1), var, cov,
                  np.cumprod(cov_f / var_f))


def kurtosis_identity(spec):
    """Exact kurtosis of df/dx at any input for bias-free He ReLU feedforward nets.

    ``E[g^4] / E[g^2]^2 = 3 prod_{l=1}^{L} (1 + 5 / n_l)`` for Gaussian weights and
    readout, any widths ``n_l`` (here all ``N``), any depth.

    Returns
    -------
    ndarray, shape (L,)
        The kurtosis at depths ``1 .. L``.
    """
    if (spec.arch != "feedforward" or spec.activation != "relu" or spec.init != "he"
            or spec.batchnorm or spec.first_bias_var or spec.bias_var):
        raise ValueError("the kurtosis identity needs a bias-free He ReLU feedforward net "
                         "without batch norm")
    return 3.0 * np.cumprod(np.full(spec.depth, 1.0 + 5.0 / spec.width))
