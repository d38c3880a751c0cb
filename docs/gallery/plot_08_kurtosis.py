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
# :func:`~gradsim.reproduce.run_one` resolves the parameters (the experiment's
# ``DEFAULTS`` with its ``QUICK`` overrides) and runs it with the same code as
# ``gradsim reproduce --quick``.  The results hold only numbers; nothing is drawn yet.

import textwrap

from gradsim import experiments
from gradsim.reproduce import run_one

NAME = "kurtosis"
experiment = experiments.get(NAME)
res = run_one(NAME, quick=True)
print(experiment.TITLE)
print(f"ran in {res.meta['seconds']:.1f} s with the quick setting's parameters:")
for key, value in res.params.items():
    print(f"    {key} = {value}")

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

claims = experiment.claims(res)
if not claims:
    print("No claims of its own: this figure illustrates claims checked elsewhere.")
for c in claims:
    print(textwrap.fill(f"{c.target} [{c.verdict}] {c.claim}", 70, subsequent_indent="    "))
    for field in ("setting", "theory", "estimate", "score", "criterion"):
        text = getattr(c, field)
        if text:
            print(textwrap.fill(f"{field}: {text}", 70, initial_indent="    ",
                                subsequent_indent="        "))
