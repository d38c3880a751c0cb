"""``gradsim explore``: one self-contained, offline HTML page for the classroom.

:mod:`~gradsim.explore.data` computes every number the page shows (no Bokeh needed);
:mod:`~gradsim.explore.page` lays them out with Bokeh (the ``explore`` extra) as linked
views driven by a family selector, a depth slider and a network selector.
"""

from .data import FAMILIES, QUICK, ExploreSettings, build_data

__all__ = ["FAMILIES", "QUICK", "ExploreSettings", "build_data"]
