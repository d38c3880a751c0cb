"""
The paper model's closed forms
==============================

The paper's closed forms come from the *independent-pattern model*: each unit active
with probability 1/2, co-active at two inputs with probability 1/4, independently across
units and layers and of the weights.  This experiment simulates that model itself
(Gaussian weights, independent Bernoulli masks) and sets its variance and correlation
versus depth beside the closed forms of :func:`gradsim.theory.paper_model`, for
feedforward nets, resnets (``alpha = beta = 1``, ``alpha = 1/sqrt 2``, ``beta = 0.5``)
and batch-normalised resnets.  So the formulas are checked under their own assumptions;
whether real networks follow them is the subject of the
:ref:`correlation experiment <sphx_glr_auto_gallery_plot_05_correlation.py>`.

Targets: T1 (feedforward variance 1 at every depth), T2 (correlation ``2^-L``), T4
(resnet: variance ``2^L``, covariance ``(3/2)^L``, correlation ``(3/4)^L``), T5 (the
``alpha`` and ``beta`` formulas) and T6 (BN resnet: variance ``1 + beta^2 L``,
correlation ~ ``1/sqrt L``).
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

NAME = "paper_model"
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
