"""A sphinx-gallery image scraper for figures made without pyplot.

gradsim draws its figures with :class:`matplotlib.figure.Figure` directly
(:func:`gradsim.figures.new_figure`), so pyplot never sees them and sphinx-gallery's
matplotlib scraper cannot find them.  After each code block this scraper saves every
such figure bound to a module-level name of the example (``fig = ...plot(res)``) that
it has not saved before.  Figures that pyplot manages are left to the matplotlib
scraper, which must come after this one in ``image_scrapers``.

It is named in ``conf.py`` by module name (``"figure_scraper"``): sphinx-gallery then
calls :func:`_get_sg_image_scraper`, and the configuration stays picklable.
"""

from __future__ import annotations

__all__ = ["scrape_figures"]

_SEEN = {}  # example source file -> figures already saved for it


def scrape_figures(block, block_vars, gallery_conf, **kwargs):
    """Save new pyplot-free figures of the example's globals; return their reST.

    Runs before the matplotlib scraper: figures that pyplot holds open are marked as
    seen (never saved here), so they are not picked up again after pyplot closes them.
    """
    import sys

    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = _SEEN.setdefault(block_vars.get("src_file"), [])
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        seen.extend(plt.figure(num) for num in plt.get_fignums())
    images = []
    for value in list(block_vars["example_globals"].values()):
        if not isinstance(value, Figure) or any(value is s for s in seen):
            continue
        seen.append(value)
        if getattr(value.canvas, "manager", None) is not None:
            continue
        path = next(block_vars["image_path_iterator"])
        value.savefig(path, dpi=110)
        images.append(path)
    return figure_rst(images, gallery_conf["src_dir"])


def _get_sg_image_scraper():
    """The scraper, for sphinx-gallery's ``image_scrapers`` by module name."""
    return scrape_figures
