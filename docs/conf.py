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


def _gallery_selection():
    """Experiment names chosen by GRADSIM_GALLERY, or None for all of them."""
    chosen = os.environ.get("GRADSIM_GALLERY", "").strip()
    if not chosen:
        return None
    names = [] if chosen.lower() == "none" else [n.strip() for n in chosen.split(",")]
    unknown = sorted(set(names) - set(experiments.NAMES))
    if unknown:
        raise ValueError(f"GRADSIM_GALLERY: unknown experiment(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(experiments.NAMES)}")
    return names


_chosen = _gallery_selection()
_ignore = r"__init__\.py"
if _chosen is not None:
    # Skip the other scripts (the pattern is matched against the file name, or in older
    # sphinx-gallery its path), leave out their pages from earlier builds, and accept
    # that links to them from the built pages cannot resolve.
    _keep = "|".join(re.escape(n) for n in _chosen) or "(?!)"
    _ignore += rf"|(?:^|{re.escape(os.sep)})plot_\d+_(?!(?:{_keep})\.py$)"
    exclude_patterns += [f"auto_gallery/plot_[0-9][0-9]_{n}.rst" for n in experiments.NAMES
                         if n not in _chosen]
    suppress_warnings = ["ref.ref"]

sphinx_gallery_conf = {
    "examples_dirs": ["tutorial", "gallery"],
    "gallery_dirs": ["auto_tutorial", "auto_gallery"],
    "filename_pattern": re.escape(os.sep) + "plot_",
    "ignore_pattern": _ignore,
    "within_subsection_order": "FileNameSortKey",
    # "figure_scraper" (docs/_ext) saves figures made without pyplot (gradsim.figures);
    # it must come before "matplotlib", which closes pyplot's figures.
    "image_scrapers": ("figure_scraper", "matplotlib"),
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
html_sidebars = {"index": [], "theory": [], "architecture": [], "conventions": []}  # no sub-pages
html_static_path = []
html_show_sourcelink = True
