"""The experiments registry: one module per figure or claim of the paper.

Each module has ``NAME``, ``TITLE``, ``DEFAULTS``, ``QUICK``, ``run``, ``plot`` and
``claims`` (see :mod:`gradsim.experiments.base`).  :func:`get` returns a module by name;
:data:`NAMES` lists them in the order ``gradsim reproduce`` runs them.
"""

from __future__ import annotations

import importlib

__all__ = ["NAMES", "get", "describe", "missing_requirements"]

#: Experiment names, in run order.
NAMES = ("gradients", "covariance", "autocorrelation", "activity", "correlation",
         "looks_linear", "spectra", "kurtosis", "width_scan", "finite_width", "kinks",
         "paper_model", "convnets", "training")


def get(name):
    """The experiment module called ``name``; ``ValueError`` listing the names if unknown."""
    if name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def describe():
    """``[(name, title), ...]`` for ``gradsim list``."""
    return [(n, get(n).TITLE) for n in NAMES]


def missing_requirements(name):
    """``[(module, extra), ...]`` of optional modules experiment ``name`` needs but lacks."""
    import importlib.util

    req = getattr(get(name), "REQUIRES", {})
    return [(m, extra) for m, extra in req.items() if importlib.util.find_spec(m) is None]
