"""
Training deep nets without skips
================================

The paper's last claim is practical: looks-linear (LL) initialisation, which makes a
CReLU net exactly linear at init so its gradients do not shatter, lets very deep nets
without skip connections train close to resnets, where plain deep nets degrade.  The
paper shows it with convnets on CIFAR-10; here dense nets learn scikit-learn's
handwritten digits (8 x 8 images, a fixed stratified split), which ship offline with
the ``digits`` extra.

Four families at several depths: plain ReLU (He init), ReLU with batch norm, a BN
resnet, and CReLU with LL init.  Each family gets its best learning rate at each depth,
chosen on a validation split carved from the training set, and every run trains until
its loss curve is flat (the plateau rule); several seeds give error bars.  Beside the
accuracy, each run tracks the lag-1 autocorrelation of ``d logit / dt`` along lines
between pairs of validation images, at init and after every epoch (1: a smooth or
constant derivative, 0: white noise), and the last panel shows why deep BN nets without
skips do not train: their input gradient at init grows by about ``pi / (pi - 1)`` per
layer.  The quick setting below uses tiny depths and a few epochs (too few to reach a
plateau, so its verdicts say info); the default uses depths 10 and 50 and
``--set training.study=full`` depths up to 200.
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

NAME = "training"
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
