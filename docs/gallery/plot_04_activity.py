"""
Active and co-active units
==========================

The paper's activation statistics.  For every layer of a deep feedforward network
(depth 50 in the paper; the quick setting's depth is printed below), the proportion of
units that are *active* at an input (pre-activation > 0) and the proportion *co-active*
at a pair of inputs, averaged over inputs, pairs and networks, with and without batch
norm.

Target T11: the active proportion stays near 1/2 everywhere; with batch norm the
co-active proportion stays near 1/4 (what independent switching predicts), while without
batch norm it climbs towards 1/2: units switch on and off together, which is why
feedforward nets without batch norm do not shatter on the 1-D line (T10).
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

NAME = "activity"
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
