"""
Shattering in convnets
======================

The paper shows that convnets shatter too.  Here 2-D convolutional ReLU nets (3 x 3
kernels, 'same' padding, He init over fan-in = channels x 9) read 8 x 8 handwritten
digits, and we follow the directional derivative ``d f(x(t)) / dt`` along the straight
line ``x(t) = x0 + t (x1 - x0)`` between two real images.  Its lag-1 autocorrelation
along ``t`` falls with depth for plain convnets (faster with batch norm), stays high for a
BN residual convnet, and is exactly 1 for a CReLU convnet with looks-linear
(mirrored delta-orthogonal) init, which is linear at init.  Conventions:
:doc:`/convnets`.  Needs the ``digits`` extra (scikit-learn).
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

NAME = "convnets"
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
