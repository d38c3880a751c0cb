"""
Autocorrelation versus lag and depth
====================================

The paper's third figure: the autocorrelation of ``df/dx`` along the grid, averaged over
networks with standard errors, versus lag; and its lag-1 value versus depth, from one
pass per family (every depth of one network is read out with its own readout).
Families: feedforward nets with and without batch norm, batch-normalised resnets with
branch scale ``beta = 1`` and ``beta = 0.1``, beside white and brown noise.  For nets
without batch norm the expected lag-1 autocorrelation under the exact infinite-width
theory (Gaussian-process samples) is drawn too.

Targets: T7 (one hidden layer: lag-1 ~ 0.98, brown noise), T8 (feedforward + BN: lag-1
falls to ~ 0 by depth 16-24), T9 (resnet + BN in between; ``beta = 0.1`` stays near 1),
T10 (feedforward without BN does not whiten on the 1-D line), T14 (noise references)
and T15 (the ordering of the decay).  The quick setting (sizes printed below) is
narrower, shallower and uses fewer networks than the paper's width 200 and depth 50.
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

NAME = "autocorrelation"
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
