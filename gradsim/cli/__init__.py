"""The ``gradsim`` command line (console entry point ``gradsim.cli:main``).

===================  ===============================================
module               commands
===================  ===============================================
:mod:`.simulate`     ``simulate``
:mod:`.theory`       ``theory``, ``compare``
:mod:`.experiments`  ``list``, ``run``, ``plot``, ``reproduce``
:mod:`.sweep`        ``sweep``
:mod:`.train`        ``train``
:mod:`.common`       the parser, the network and grid options
:mod:`.main`         :func:`main` and :func:`build_parser`
===================  ===============================================
"""

from __future__ import annotations

from .common import UsageError, add_grid_options, add_spec_options, grid_from_args, spec_from_args
from .main import build_parser, main

__all__ = ["main", "build_parser", "add_spec_options", "spec_from_args", "add_grid_options",
           "grid_from_args", "UsageError"]
