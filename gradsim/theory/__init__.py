"""Closed forms for gradient statistics, each labelled with the assumption behind it.

=============================  ====================================================
module                         theory (label in :data:`LABELS`)
=============================  ====================================================
:mod:`.paper`                  the paper's independent-pattern model, and its own
                               Monte Carlo
:mod:`.gradient_independence`  gradient independence with mean-field angles
:mod:`.exact`                  exact infinite width: the NNGP kernel's mixed
                               derivative
:mod:`.gp`                     Gaussian-process limits: the shallow net's Brownian
                               limit, grid statistics of any exact covariance
:mod:`.finite`                 the finite-width kurtosis identity
:mod:`.finite_width`           the finite-width Gram chain to first order in 1/n
:mod:`.orthant`                orthant moments of a bivariate normal: the closed
                               forms behind ReLU expectations at two inputs
=============================  ====================================================

Each reads the network through its architecture family (:mod:`gradsim.families`): what
a theory needs of a family is plain data (``paper_blocks``, ``kernel_plan``), and whether
it applies is the family's ``covers(spec, model)`` (:func:`covers`).
"""

from __future__ import annotations

from .base import LABELS, Theory, ab_moments, covers, relu_moments
from .exact import exact_gradient_covariance, nngp_kernel
from .finite import kurtosis_identity
from .gp import gp_sample, gp_statistics, shallow_diffusion
from .gradient_independence import independence
from .paper import paper_model, paper_model_mc

__all__ = ["Theory", "LABELS", "covers", "relu_moments", "ab_moments", "paper_model",
           "paper_model_mc", "independence", "kurtosis_identity", "exact_gradient_covariance",
           "nngp_kernel", "gp_sample", "gp_statistics", "shallow_diffusion"]
