"""
Power spectra along the grid
============================

The power spectrum of ``df/dx`` along the grid (mean periodogram over networks, log-log),
for feedforward nets with batch norm of increasing depth and a batch-normalised resnet,
beside white and brown noise, with the slope of a straight-line fit at low frequencies
in the legend.

Brown noise has spectrum ``~ 1/f^2`` (slope -2) and white noise a flat one (slope 0):
the paper's description of shattering as a passage from brown to white noise (target
T14 checks the two references).  Row X4 checks the slopes:
brown noise and the shallow net near -2, white noise and the deep feedforward net near 0.
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

NAME = "spectra"
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
