"""The paper model: the independent-pattern model of Balduzzi et al. (2017), its closed
forms (:func:`paper_model`) and a Monte Carlo of the model itself (:func:`paper_model_mc`).

Assumption: units active with probability 1/2, co-active on two inputs with probability
1/4, independently across units and layers, and independent of the weights.  A block with
input-Jacobian ``a I + b W D`` multiplies the gradient variance by ``a^2 + b^2 sigma_w^2 /
2`` and the covariance by ``a^2 + b^2 sigma_w^2 / 4``.  Each architecture family states
its blocks (:class:`~gradsim.families.hooks.PaperBlock`); both functions here read them.
"""

from __future__ import annotations

import math

import numpy as np

from ..families.hooks import PaperMoments
from ..kernels.arccos import ab_map
from ..util import check_int
from .base import LABELS, Theory, over_depth, range_error, require
from .base import covers as _covers

__all__ = ["moments", "paper_model", "paper_model_mc", "closed_form", "covers"]


def covers(spec):
    """None if the paper model covers ``spec``, else why not."""
    return _covers(spec, "paper")


def moments(spec):
    """The model's mask and weight moments for ``spec``
    (:class:`~gradsim.families.hooks.PaperMoments`).

    With ``s`` the effective weight scale and ``(a, b)`` the effective slopes
    (:class:`~gradsim.families.activation.ActivationRule`): a masked layer multiplies the
    variance by ``dvar = s (a^2 + b^2) / 2`` (``theta = 0``) and the covariance by
    ``dcov = s E[phi'(u) phi'(v)]`` at ``theta = pi / 2``; a mask alone by ``(a^2 + b^2) /
    2`` and ``E[phi'(u) phi'(v)]``.
    """
    rule = spec.activation_rule
    s, a, b = rule.weight_scale, rule.a, rule.b
    g1 = ab_map(0.0, a, b)[1]
    return PaperMoments(s, s * (a * a + b * b) / 2, s * g1, (a * a + b * b) / 2, g1)


def _blocks(spec):
    require(spec, "paper")
    m = moments(spec)
    return m, spec.family.paper_blocks(spec, m)


def paper_model(spec, *, log_scale=False):
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
      ``*= (1 - t)^2 + t^2 s/4``;
    * post-activation resnet ``x <- act(x + beta F(x))``: the mask after the sum
      multiplies both by ``E[phi'^2] = 1/2`` and ``E[phi'(u) phi'(v)] = 1/4`` (ReLU).

    Each family describes its blocks as :class:`~gradsim.families.hooks.PaperBlock`
    objects (``family.paper_blocks``); this closed form and :func:`paper_model_mc` read
    the same blocks.

    Values are relative to the gradient entering the first layer or block (the paper's
    normalisation): the readout and input embedding are left out.

    Parameters
    ----------
    spec : NetSpec
    log_scale : bool
        Return the finite log-scale form, for nets so deep that the variance leaves
        floating-point range (a plain resnet's is ``2^L``, past float64 at ``L = 1024``):
        ``Theory.log_scale`` is the log of the variance at each depth, ``variance`` is 1
        and ``covariance`` the correlation.

    Returns
    -------
    Theory
        Labelled ``LABELS['paper']``.

    Raises
    ------
    ValueError
        Without ``log_scale``, where the variance or covariance overflows float64 (the
        message names the depth); and where a block's variance factor is 0 (``alpha =
        0``, say), which leaves the correlation undefined.

    References
    ----------
    Balduzzi et al., "The shattered gradients problem: if resnets are the answer, then
    what is the question?", ICML 2017.
    """
    return over_depth("paper", spec, *closed_form(spec)[:4], log_scale)


def closed_form(spec):
    """``(variance, covariance, correlation, log variance, log |covariance|)`` over depth.

    The variance and covariance are running products of the blocks' factors, ``inf``
    where they overflow (a plain resnet's variance is ``2^L``); the correlation is the
    running product of the ratios, and the logs are sums of logs: those stay finite.
    """
    m, blocks = _blocks(spec)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # huge alpha, beta or slopes
            var_f, cov_f = np.array([blk.factors(m) for blk in blocks]).T
    except OverflowError:  # a float power past range
        var_f = cov_f = np.full(spec.depth, np.inf)
    bad = ~(np.isfinite(var_f) & np.isfinite(cov_f) & (var_f > 0))
    if bad.any():
        k = int(np.argmax(bad))
        what = ("is 0, so the correlation is undefined" if var_f[k] == 0
                else "overflows float64 in one block")
        raise range_error("paper model", f"the variance factor of a block {what}", k + 1,
                          spec, width=False)
    with np.errstate(over="ignore", under="ignore"):  # past range: inf (or 0), checked
        var, cov = np.cumprod(var_f), np.cumprod(cov_f)
    with np.errstate(divide="ignore"):  # a covariance factor of 0: log |cov| = -inf
        log_cov = np.cumsum(np.log(np.abs(cov_f)))
    log_var = np.cumsum(np.log(var_f))
    with np.errstate(under="ignore"):
        corr = np.cumprod(cov_f / var_f)
        # a running product of ratios sticks at the smallest subnormals (0.75 times the
        # smallest one rounds back to it): below float64's normal range, round the
        # correlation from its log instead (0, or a subnormal)
        low = (corr != 0) & (np.abs(corr) < np.finfo(np.float64).tiny)
        corr[low] = np.sign(corr[low]) * np.exp(log_cov[low] - log_var[low])
    return var, cov, corr, log_var, log_cov




def paper_model_mc(spec, nets=1000, seed=0, width=None):
    """Monte Carlo of the independent-pattern model itself (not of real networks).

    Each network draws Gaussian weights of variance ``s / N`` and, per layer, masks for
    two inputs that are independent Bernoulli(1/2) (so co-active with probability 1/4),
    independent of the weights; the gradient is pulled back through the blocks of
    :func:`paper_model`, read from the same blocks.  Every family the paper model covers
    is covered.

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

    Raises
    ------
    ValueError
        Where the model's gradients or their statistics leave float64 range (the
        message names the depth).

    References
    ----------
    Balduzzi et al., ICML 2017 (the model).
    """
    m, blocks = _blocks(spec)
    nets = check_int("nets", nets, 2, 10**7)
    n = spec.width if width is None else check_int("width", width)
    rule = spec.activation_rule
    a, b = rule.a, rule.b
    rng = np.random.default_rng(np.random.SeedSequence(check_int("seed", seed, 0, 2**63 - 1)))
    L = spec.depth
    gx = np.zeros((L, nets))
    gy = np.zeros((L, nets))
    sd = math.sqrt(m.s / n)

    def mask(d):
        """Independent Bernoulli(1/2) masks for the two inputs, as slopes."""
        return d * np.where(rng.random((2, nets, n)) < 0.5, a, b)

    def weight(d):
        return np.einsum("kbi,bij->kbj", d, rng.standard_normal((nets, n, n)) * sd)

    def layer(d):
        """One masked layer applied to cotangents d, shape (2, nets, n)."""
        w = rng.standard_normal((nets, n, n)) * sd
        return np.einsum("kbi,bij->kbj", mask(d), w)

    # cotangent entering the top, i.i.d. N(0, 1) entries, shared by both inputs; the
    # gradient is its projection on a fixed unit vector, so E[g^2] starts at 1
    d = np.broadcast_to(rng.standard_normal((nets, n)), (2, nets, n)).copy()
    with np.errstate(all="ignore"):  # past float range: inf or nan, refused below
        th, bad = _simulate_model(blocks, d, gx, gy, mask, weight, layer, n, L)
    if bad is not None:
        top = np.abs(np.concatenate([gx[:bad], gy[:bad]])).max()
        what = ("the model's gradients or their statistics overflow float64"
                if not np.isfinite(top) or top > 1e77 else
                "the model's statistics are undefined (a variance or covariance of 0)")
        raise range_error("paper_model_mc", what, bad, spec, width=n, nets=nets)
    return th


def _simulate_model(blocks, d, gx, gy, mask, weight, layer, n, L):
    """The pull-back of :func:`paper_model_mc` and its statistics, and the first depth
    where either is not finite (None if all are)."""
    for k in range(L):  # k counts blocks from the top; depth k + 1 records after k + 1
        blk = blocks[L - 1 - k]
        if blk.outer:
            d = mask(d)
        branch = d
        for _ in range(blk.extra):
            branch = weight(branch)
        for _ in range(blk.masked):
            branch = layer(branch)
        beta = blk.beta / math.sqrt(blk.v) if blk.v != 1.0 else blk.beta
        d = blk.alpha * (beta * branch if blk.skip == 0 else blk.skip * d + beta * branch)
        # the gradient of a depth-(k + 1) net: projection on the unit vector 1/sqrt(n)
        gx[k] = d[0].sum(axis=1) / math.sqrt(n)
        gy[k] = d[1].sum(axis=1) / math.sqrt(n)
    if len(set(blocks)) > 1:
        # blocks depend on their position from the bottom (the batch-norm rescaling), so
        # only depth L is the model's net; report it alone
        gx, gy = gx[-1:], gy[-1:]
    th = _mc_theory(gx, gy, L)
    ok = np.all([np.isfinite(v) for v in (th.variance, th.covariance, th.correlation,
                                         th.variance_se, th.covariance_se,
                                         th.correlation_se)], axis=0)
    return th, (None if ok.all() else int(th.depth[np.argmax(~ok)]))


def _mc_theory(gx, gy, L):
    """Variance, covariance and correlation of the model's two (exchangeable) inputs.

    The variance is averaged over both inputs and the correlation is ``cov / var`` with
    a delta-method standard error for that ratio of means.
    """
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
