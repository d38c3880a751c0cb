"""
Covariance images
=================

The paper's second figure, from the same networks and seeds as the
:ref:`gradients experiment <sphx_glr_auto_gallery_plot_01_gradients.py>`.  For each
signal ``g`` along the grid, the image ``|(g - mean g)(g - mean g)^T| / var(g)``: pixel
``(i, j)`` is dark where the signal is far from its mean at both inputs ``i`` and ``j``.

Brown noise and the shallow network give large smooth blocks (the signal at one input
says a lot about its neighbours); white noise and the deep feedforward network give a
fine plaid, changing from one grid step to the next (neighbours are unrelated); the
resnet lies in between.  An illustration of the
paper's picture of shattering; like the first figure it has no claims of its own.
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

NAME = "covariance"
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
