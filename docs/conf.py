"""Sphinx configuration for the gradsim documentation.

Build (from the repository root; warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The tutorial (docs/tutorial) and the gallery of experiments (docs/gallery) are
sphinx-gallery scripts, executed at build time.  ``GRADSIM_GALLERY=gradients,covariance``
builds only those experiments' gallery pages (``GRADSIM_GALLERY=none``: none of them);
unset, every experiment of ``gradsim.experiments.NAMES`` is built.
"""

from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

import gradsim  # noqa: E402
from gradsim import experiments  # noqa: E402

# -- Project -------------------------------------------------------------------------

project = "gradsim"
author = "gradsim developers"
copyright = "gradsim developers"
release = version = gradsim.__version__

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_ext", "_templates", "Thumbs.db", ".DS_Store"]
default_role = "py:obj"

# -- API reference -------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_validation_checks = set()  # report rendering problems, not style

# -- Markdown pages (docs/conventions.md, docs/theory.md) ----------------------------

myst_heading_anchors = 3

# -- Tutorial and gallery (sphinx-gallery) -------------------------------------------


def _gallery_ignore_pattern():
    """Regex for gallery scripts to skip: those not named in GRADSIM_GALLERY."""
    chosen = os.environ.get("GRADSIM_GALLERY", "").strip()
    base = r"__init__\.py"
    if not chosen:
        return base
    names = [] if chosen.lower() == "none" else [n.strip() for n in chosen.split(",")]
    unknown = sorted(set(names) - set(experiments.NAMES))
    if unknown:
        raise ValueError(f"GRADSIM_GALLERY: unknown experiment(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(experiments.NAMES)}")
    sep = re.escape(os.sep)
    keep = "|".join(re.escape(n) for n in names) or "(?!)"
    return rf"{base}|gallery{sep}plot_\d+_(?!(?:{keep})\.py$)"


sphinx_gallery_conf = {
    "examples_dirs": ["tutorial", "gallery"],
    "gallery_dirs": ["auto_tutorial", "auto_gallery"],
    "filename_pattern": re.escape(os.sep) + "plot_",
    "ignore_pattern": _gallery_ignore_pattern(),
    "within_subsection_order": "FileNameSortKey",
    # "figure_scraper" (docs/_ext) saves figures made without pyplot (gradsim.figures).
    "image_scrapers": ("matplotlib", "figure_scraper"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"gradsim {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_static_path = []
html_show_sourcelink = True
