"""
Finite width: kurtosis of the gradient
======================================

Past the paper, at finite width.  For bias-free He-initialised ReLU nets with Gaussian
weights, the kurtosis of ``df/dx`` (scalar input, Gaussian readout) is exactly
``3 prod_l (1 + 5 / n_l)`` over the hidden widths ``n_l``: the gradient is Gaussian only
in the infinite-width limit, and its tails grow with depth over width.  The figure shows
the Monte Carlo kurtosis versus depth for several widths, with standard errors, beside
this identity (solid lines) and the Gaussian value 3.

Row X5 checks the identity within 4 standard errors.
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

NAME = "kurtosis"
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
