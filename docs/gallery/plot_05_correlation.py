"""
Correlation versus depth: Monte Carlo and theory
================================================

(a) The correlation of ``df/dx`` at the inputs ``x = -1`` and ``y = 1`` versus depth:
Monte Carlo with standard errors for feedforward nets with and without batch norm,
resnets, highway and looks-linear nets, beside the paper model (independent activation
patterns, dotted) and the exact infinite-width theory (solid).  On the 1-D line the
correlations can turn negative, which the paper model cannot show.

(b) The paper's own setting for its ``2^-L`` law: high-dimensional Gaussian inputs, a
feedforward net with batch norm, and the ratio of the mean off-diagonal to the mean
diagonal gradient inner product.

Targets: T3 (that ratio is ~ ``2^-L``), and two rows past the paper: X1 (on the line
the exact infinite-width theory predicts the correlation and the paper model does not)
and X2 (exact theory against Monte Carlo at every depth).
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

NAME = "correlation"
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
