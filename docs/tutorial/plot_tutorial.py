"""
Shattered gradients, step by step
=================================

This tutorial teaches the statistics of input gradients of random ReLU networks, the
subject of "The Shattered Gradients Problem" (Balduzzi et al., ICML 2017), with
gradsim.  We look at the derivative ``df/dx`` of a randomly initialised network
``f: R -> R`` along a line of inputs, and ask how much it looks like a smooth curve
(*brown noise*, a random walk) or like static (*white noise*).

Everything runs at small sizes (width 64, 256 inputs, at most 16 networks, depth at
most 20) so the page builds in seconds; the paper uses width 200 and depths up to 50.
Download the script at the bottom of the page and make the numbers bigger to see the
effects more sharply.
"""

# %%
# Setup
# -----
#
# Every network is described by a :class:`~gradsim.spec.NetSpec` (architecture, depth,
# width, batch norm, activation, initialisation) and every batch of inputs by a
# :class:`~gradsim.grids.GridSpec`.  The default grid is the paper's: 256 equally
# spaced inputs in ``[-2, 2]``.  Arrays of gradients always have the axis order
# ``(nets, points, input_dim)``.

import matplotlib.pyplot as plt
import numpy as np

import gradsim
from gradsim import stats

WIDTH, POINTS, NETS, DEPTH = 64, 256, 16, 20

grid = gradsim.GridSpec(points=POINTS)
x = grid.points_array()  # shape (256, 1): one row per input
print("grid:", x.shape, "from", x[0, 0], "to", x[-1, 0])

# %%
# Step 1: one network's gradient along the line
# ---------------------------------------------
#
# :func:`~gradsim.nets.sample_network` draws one network's weights from a spec and a
# random generator; :func:`~gradsim.montecarlo.network_rng` gives network ``i`` of a
# run seeded with ``seed`` its own independent stream, so every network can be
# reproduced on its own.  :func:`~gradsim.nets.input_gradient` returns ``df/dx`` at
# every input, shape ``(points, input_dim)``.
#
# Start with one hidden layer (``depth=1``).

shallow = gradsim.NetSpec(depth=1, width=WIDTH)
net = gradsim.sample_network(shallow, gradsim.network_rng(seed=0, index=0))
f = gradsim.forward(net, x)  # shape (256,)
g = gradsim.input_gradient(net, x)  # shape (256, 1)
print("f:", f.shape, " df/dx:", g.shape)

fig, (ax_f, ax_g) = plt.subplots(2, 1, figsize=(6.4, 4.4), sharex=True,
                                 layout="constrained")
ax_f.plot(x[:, 0], f)
ax_f.set_ylabel("f(x)")
ax_g.plot(x[:, 0], g[:, 0], drawstyle="steps-mid")
ax_g.set_ylabel("df/dx")
ax_g.set_xlabel("input x")
ax_f.set_title("One random network with one hidden layer of 64 ReLUs")

# %%
# What to notice: ``f`` is piecewise linear, so ``df/dx`` is piecewise constant.  Each
# hidden unit ``i`` switches on or off at its own kink ``x = -b_i / w_i``, and the
# gradient jumps there by ``+- u_i w_i``.  Between kinks nothing changes.  With many
# units the jumps pile up into a random walk: the gradient of a shallow network is
# *brown noise* (as the width grows it tends to a Brownian motion).  Neighbouring
# inputs have almost the same gradient.
#
# Step 2: depth, batch norm and skip connections
# ----------------------------------------------
#
# Now three networks side by side: the shallow one, a deep feedforward network with
# batch norm before every ReLU, and a deep resnet (also with batch norm).  Each is one
# random draw.

specs = {
    "1 hidden layer": shallow,
    f"feedforward + BN, depth {DEPTH}": gradsim.NetSpec(depth=DEPTH, width=WIDTH,
                                                      batchnorm=True),
    f"resnet + BN, depth {DEPTH}": gradsim.NetSpec(arch="resnet", depth=DEPTH, width=WIDTH,
                                                 batchnorm=True),
}
fig, axes = plt.subplots(1, 3, figsize=(9.6, 2.8), sharey=False, layout="constrained")
for k, (ax, (label, spec)) in enumerate(zip(axes, specs.items())):
    g = gradsim.input_gradient(gradsim.sample_network(spec, gradsim.network_rng(0, k)), x)
    ax.plot(x[:, 0], g[:, 0], lw=0.8)
    ax.set_title(label, fontsize=9)
    ax.set_xlabel("input x")
axes[0].set_ylabel("df/dx")

# %%
# What to notice: the deep feedforward network's gradient jumps around from one input
# to the next.  Its value at ``x`` tells you almost nothing about its value at a
# neighbouring input: the gradient has *shattered*.  The resnet, equally deep, sits in
# between: rough, but still with visible structure on the scale of many grid steps.
# This is the paper's first figure; its explanation is the number of active paths
# from input to output, which grows exponentially with depth, and units switch on and
# off all along the line.
#
# Step 3: the two reference signals, brown and white noise
# --------------------------------------------------------
#
# To measure "how shattered", compare with two reference signals.
# :func:`~gradsim.stats.white_noise` is i.i.d. Gaussian; :func:`~gradsim.stats.brown_noise`
# is its running sum, a random walk.  Both have shape ``(nets, points)``.

white = stats.white_noise(1, POINTS, seed=0)[0]
brown = stats.brown_noise(1, POINTS, seed=0)[0]
fig, axes = plt.subplots(1, 2, figsize=(8, 2.6), layout="constrained")
axes[0].plot(x[:, 0], brown, lw=0.8, color="#8c510a")
axes[0].set_title("brown noise (random walk)", fontsize=9)
axes[1].plot(x[:, 0], white, lw=0.8, color="0.4")
axes[1].set_title("white noise (independent values)", fontsize=9)
for ax in axes:
    ax.set_xlabel("position along the grid")

# %%
# What to notice: the shallow network's gradient looks like the brown noise, the deep
# feedforward network's like the white noise.  The number that tells them apart is
# the *autocorrelation*: how strongly the signal at one point correlates with the
# signal ``k`` steps further on.  Brown noise has autocorrelation near 1 at small
# lags; white noise has autocorrelation near 0 at every lag ``k >= 1``.
#
# Step 4: autocorrelation, averaged over networks, with standard errors
# ---------------------------------------------------------------------
#
# One network is one random draw.  A statistic worth quoting is an average over many
# independent networks, with its standard error.  :func:`~gradsim.montecarlo.simulate`
# draws ``nets`` networks (network ``i`` from ``network_rng(seed, i)``) and keeps their
# gradients in ``sim.grad``, shape ``(nets, points, 1)``.
# :func:`~gradsim.stats.autocorrelation` removes each network's mean, computes its
# autocorrelation along the grid, and returns an :class:`~gradsim.stats.Estimate`:
# the mean over networks (``.value``) and its standard error (``.se``).

MAX_LAG = 30
sims, acfs = {}, {}
for label, spec in specs.items():
    sims[label] = gradsim.simulate(spec, grid, nets=NETS, seed=1)
    acfs[label] = stats.autocorrelation(sims[label].grad, max_lag=MAX_LAG)
print("gradients of one run:", sims[label].grad.shape)
acfs["brown noise"] = stats.autocorrelation(stats.brown_noise(NETS, POINTS, seed=2), MAX_LAG)
acfs["white noise"] = stats.autocorrelation(stats.white_noise(NETS, POINTS, seed=3), MAX_LAG)

fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
lags = np.arange(MAX_LAG + 1)
for label, est in acfs.items():
    style = dict(ls="--") if "noise" in label else dict(marker="o", ms=3)
    ax.errorbar(lags, est.value, yerr=est.se, capsize=2, label=label, **style)
ax.axhline(0, color="0.7", lw=0.8)
ax.set_xlabel("lag k (grid steps)")
ax.set_ylabel("autocorrelation r(k)")
ax.legend(fontsize=8)
ax.set_title(f"Mean over {NETS} networks, +- one standard error", fontsize=9)

for label, est in acfs.items():
    print(f"lag-1 autocorrelation, {label:28s} {est.value[1]: .3f} +- {est.se[1]:.3f}")

# %%
# What to notice: the shallow network's curve follows the brown noise (lag-1 about
# 0.97 on 256 points: target T7 of the paper).  The deep feedforward network with batch norm drops
# to about zero right after lag 0, like white noise (T8).  The resnet is in between
# (T9).  The error bars say how far a number could move if you drew a fresh set of
# networks: differences of many standard errors are real, differences of one are not.
#
# :func:`~gradsim.stats.lag1` is the one-number summary, the autocorrelation at lag 1:

est = stats.lag1(sims[f"feedforward + BN, depth {DEPTH}"].grad)
print(f"lag-1 = {est.value:.3f} +- {est.se:.3f} from {est.n} networks")

# %%
# Step 5: lag-1 autocorrelation versus depth, in one pass
# -------------------------------------------------------
#
# How fast does the gradient shatter as depth grows?  Simulating each depth separately
# would cost ``1 + 2 + ... + L`` layers per network.
# :func:`~gradsim.montecarlo.simulate_depths` reads out every depth ``1 .. L`` of one
# deep network with an independent readout at each depth, in a single forward pass;
# each depth's gradient is distributed exactly as that of a network of that depth.  The
# result has shape ``(nets, depth, points, 1)``.

from gradsim.montecarlo import simulate_depths  # noqa: E402

families = {
    "feedforward + BN": gradsim.NetSpec(depth=DEPTH, width=WIDTH, batchnorm=True),
    "feedforward, no BN": gradsim.NetSpec(depth=DEPTH, width=WIDTH),
    "resnet + BN, beta = 1": gradsim.NetSpec(arch="resnet", depth=DEPTH, width=WIDTH,
                                             batchnorm=True),
    "resnet + BN, beta = 0.1": gradsim.NetSpec(arch="resnet", depth=DEPTH, width=WIDTH,
                                               batchnorm=True, beta=0.1),
}
depths = np.arange(1, DEPTH + 1)
by_depth = {}
lag1_by_depth = {}
for k, (label, spec) in enumerate(families.items()):
    g = simulate_depths(spec, grid, nets=NETS, seed=10 + k)
    by_depth[label] = g
    lag1_by_depth[label] = [stats.lag1(g[:, d]) for d in range(DEPTH)]
print("simulate_depths:", g.shape)

fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
for label, ests in lag1_by_depth.items():
    ax.errorbar(depths, [e.value for e in ests], yerr=[e.se for e in ests], marker="o",
                ms=3, capsize=2, label=label)
ax.axhline(0, color="0.7", lw=0.8)
ax.set_xlabel("depth L")
ax.set_ylabel("lag-1 autocorrelation")
ax.set_xticks([1, 5, 10, 15, 20])
ax.legend(fontsize=8)

# %%
# What to notice: the ordering of the paper (T15).  Feedforward nets with batch norm
# whiten fastest, reaching about zero by depth 15 or so.  Without batch norm a
# feedforward net on this 1-D line does *not* whiten (T10): its pre-activations at
# different inputs become more and more alike with depth, so units switch together.
# Resnets with batch norm decay slowly (``beta = 1``), and with a small branch scale
# (``beta = 0.1``) they stay close to 1: skip connections preserve the correlation.
#
# Step 6: theory beside Monte Carlo
# ---------------------------------
#
# The paper explains shattering with a simple model: each unit is active with
# probability 1/2, and at two distinct inputs co-active with probability 1/4,
# independently of everything else.  Then each ReLU layer halves the correlation of the
# gradients at two inputs, which becomes ``2^-L``.
# :func:`~gradsim.theory.paper_model` returns those predictions versus depth
# (``.depth``, ``.variance``, ``.covariance``, ``.correlation``, and ``.label``
# naming the assumption).

from gradsim.theory import paper_model  # noqa: E402

spec_ff = gradsim.NetSpec(depth=DEPTH, width=WIDTH)  # no batch norm: exact theory applies
paper = paper_model(spec_ff)
print(paper.label)
print("depths     ", paper.depth[:6])
print("correlation", np.round(paper.correlation[:6], 4))

# %%
# Two further theories compute the same numbers for the actual inputs.
# :func:`~gradsim.compare.predict` returns, for ``model`` in ``paper``,
# ``independence`` (mean-field angles, gradient independence) and ``exact`` (the exact
# infinite-width covariance), the variance at ``x``, the covariance between ``x`` and
# ``y`` and their correlation.  We take two inputs four grid steps apart and put the
# three theories beside the Monte Carlo correlation from the no-BN run of step 5
# (:func:`~gradsim.compare.pair_statistics`, with delta-method standard errors).

from gradsim.compare import pair_statistics, predict  # noqa: E402

i, j = POINTS // 2, POINTS // 2 + 4
xi, xj = x[i], x[j]
print(f"inputs x = {xi[0]:.3f} and y = {xj[0]:.3f}")
theory_corr = {m: [predict(spec_ff.replace(depth=int(d)), m, xi, xj)["correlation"]
                   for d in depths] for m in ("paper", "independence", "exact")}
g_ff = by_depth["feedforward, no BN"]
mc_corr = [pair_statistics(g_ff[:, d, i], g_ff[:, d, j])["correlation"] for d in range(DEPTH)]

fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
for m, corr in theory_corr.items():
    ax.plot(depths, corr, label=f"theory: {m}")
ax.errorbar(depths, [e.value for e in mc_corr], yerr=[e.se for e in mc_corr], fmt="o", ms=3,
            capsize=2, color="k", label=f"Monte Carlo, width {WIDTH}, {NETS} nets")
ax.set_xlabel("depth L")
ax.set_ylabel("correlation of df/dx at x and y")
ax.set_xticks([1, 5, 10, 15, 20])
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
ax.set_title("Feedforward ReLU nets without batch norm", fontsize=9)

# %%
# What to notice: on the 1-D line without batch norm the paper model's ``2^-L`` is far
# too pessimistic.  It assumes that units switch independently at ``x`` and ``y``; at
# nearby inputs most units switch together (and the pre-activations at the two inputs
# grow *more* alike with depth), so the gradients stay correlated for many layers.
# The exact infinite-width theory runs through the Monte Carlo points within their
# error bars, which are wide: 16 networks, and deep narrow networks have heavy-tailed
# gradients.  Gradient independence, which treats the weights of the backward pass as
# independent of the forward pass, lies higher; telling it from the exact theory at
# every depth takes more networks (the correlation experiment of the gallery does it on
# inputs further apart).  The paper model is the right picture where its assumption
# holds: with batch norm, or with high-dimensional inputs.
#
# The exact covariance of the gradient at every pair of grid points,
# :func:`~gradsim.theory.exact.exact_gradient_covariance` (shape ``(P, P, d, d)``), describes
# the infinite-width gradient as a Gaussian process.  Statistics that are not linear in
# the gradient, like the autocorrelation estimator, have no closed form, so
# :func:`~gradsim.theory.gp.gp_statistics` samples that Gaussian process; its ``lag1`` entry is
# the expected lag-1 autocorrelation, with a sampling error.

from gradsim.theory.exact import exact_gradient_covariance  # noqa: E402
from gradsim.theory.gp import gp_statistics  # noqa: E402

for d in (1, 4, DEPTH):
    cov = exact_gradient_covariance(spec_ff.replace(depth=d), x)
    gp = gp_statistics(cov[..., 0, 0], nets=400, seed=0, max_lag=1)
    mc = lag1_by_depth["feedforward, no BN"][d - 1]
    print(f"depth {d:2d}: exact theory lag-1 {gp['lag1'].value:.3f} +- {gp['lag1'].se:.3f}"
          f"   Monte Carlo {mc.value:.3f} +- {mc.se:.3f}")
print("covariance shape:", cov.shape)

# %%
# Step 7: looks-linear initialisation does not shatter
# ----------------------------------------------------
#
# The paper's remedy: concatenated ReLUs, ``CReLU(z) = [relu(z); relu(-z)]``, with
# mirrored weights ``[W, -W]``.  Since ``relu(z) - relu(-z) = z``, every layer
# computes ``W z``: at initialisation the whole network is linear, and its gradient is
# the same at every input.  Compare CReLU with ordinary (He, unmirrored) weights and
# batch norm, which shatters like ReLU (T13).

ll = gradsim.NetSpec(depth=DEPTH, width=WIDTH, activation="crelu", init="looks-linear")
crelu = gradsim.NetSpec(depth=DEPTH, width=WIDTH, activation="crelu", batchnorm=True)
g_ll = gradsim.input_gradient(gradsim.sample_network(ll, gradsim.network_rng(0, 0)), x)
g_cr = gradsim.input_gradient(gradsim.sample_network(crelu, gradsim.network_rng(0, 0)), x)
print(f"looks-linear: df/dx = {g_ll[0, 0]:.6f}, spread over the grid "
      f"{np.ptp(g_ll):.1e} (rounding)")

fig, axes = plt.subplots(1, 2, figsize=(8, 2.6), layout="constrained")
axes[0].plot(x[:, 0], g_ll[:, 0])
axes[0].set_ylim(g_ll[0, 0] - 1, g_ll[0, 0] + 1)
axes[0].set_title(f"CReLU, looks-linear init, depth {DEPTH}", fontsize=9)
axes[1].plot(x[:, 0], g_cr[:, 0], lw=0.8)
axes[1].set_title(f"CReLU, He init + BN, depth {DEPTH}", fontsize=9)
for ax in axes:
    ax.set_xlabel("input x")
axes[0].set_ylabel("df/dx")

# %%
# What to notice: the looks-linear network's gradient is one number, equal at every
# input to rounding (T12), however deep the network.  Training starts from a network
# whose gradients do not shatter, and the paper reports that such networks of about 200
# layers train without skip connections.
#
# Where next
# ----------
#
# * :doc:`/theory` states every closed form and its assumption;
#   :doc:`/conventions` states every default.
# * The :doc:`gallery of experiments </auto_gallery/index>` reproduces each figure and
#   claim of the paper, with verdicts against its targets.
# * ``gradsim simulate --help`` runs the same simulations from the command line.
