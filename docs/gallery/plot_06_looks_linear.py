"""
Looks-linear initialisation
===========================

(a) ``df/dx`` along the grid for a deep CReLU network with looks-linear (mirrored,
orthogonal) initialisation, beside a CReLU network with independent halves and batch
norm.  With mirrored weights ``[W, -W]`` every layer computes ``W z``: the network is
linear at initialisation and its gradient is the same at every input.  (b) Lag-1
autocorrelation versus depth: CReLU without mirroring shatters like ReLU.  (c) Partial
mirroring ``[P, -alpha P]`` interpolates between ReLU (``alpha = 0``) and looks-linear
(``alpha = 1``): the correlation of ``df/dx`` at ``x = -1`` and ``y = 1`` versus
``alpha``, Monte Carlo beside the exact infinite-width and gradient-independence curves.

Targets: T12 (looks-linear: ``df/dx`` identical at all points to rounding, equal to
``u^T W_L ... W_1``), T13 (CReLU without mirroring shatters like ReLU) and X3 (partial
mirroring, past the paper).
"""

# %%
# Run the experiment
# ------------------
#
# :func:`~gradsim.experiments.reproduce.run_one` resolves the parameters (the experiment's
# ``DEFAULTS`` with its ``QUICK`` overrides) and runs it with the same code as
# ``gradsim reproduce --quick``.  The results hold only numbers; nothing is drawn yet.

from gradsim import experiments
from gradsim.experiments.report import format_claims, format_run
from gradsim.experiments.reproduce import run_one

NAME = "looks_linear"
experiment = experiments.get(NAME)
res = run_one(NAME, quick=True)
print(format_run(res))

# %%
# The figure
# ----------
#
# ``plot`` draws the figure from the results alone.

fig = experiment.plot(res)

# %%
# Claims
# ------
#
# ``claims`` turns the numbers into rows of the reproduction report: the target, the
# claim, the setting, the theory's value, the estimate (with its standard error), the
# score and the verdict (``holds``, ``fails``, or ``info`` for a measurement without a
# pass/fail criterion).

print(format_claims(experiment.claims(res)))
