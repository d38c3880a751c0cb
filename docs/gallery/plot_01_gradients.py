"""
Gradients along the line
========================

The paper's first figure.  The derivative ``df/dx`` of one randomly initialised network
along the 1-D grid of inputs in ``[-2, 2]``, for a network with one hidden layer, a deep
feedforward network with batch norm and a deep resnet with batch norm, stacked beside
one draw of brown noise (a random walk) and one of white noise.  Each signal is scaled to
unit standard deviation, so only its shape matters.

The shallow network's gradient looks like brown noise; the deep feedforward network's
like white noise: it has *shattered*.  The resnet lies in between.  The figure
illustrates targets T7 (one hidden layer gives brown noise), T8 (deep feedforward + BN
whitens) and T14 (the two noise references); those are checked with standard errors
in :ref:`the autocorrelation experiment <sphx_glr_auto_gallery_plot_03_autocorrelation.py>`,
so this experiment has no claims of its own.  The quick setting's sizes are printed
below; the paper's are width 200, 256 points, depth 24 (feedforward) and 50 (resnet).
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

NAME = "gradients"
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
