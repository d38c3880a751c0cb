"""Write the ``gradsim explore`` page: one HTML file, atomically, stamped for reuse.

The last line of the page is an HTML comment ``<!-- gradsim-explore {...} -->`` recording
the settings, the gradsim version and the code checksum the caller passes
(:func:`gradsim.experiments.base.code_checksum`; this layer sits below the experiments).
:func:`gradsim.experiments.reproduce` reads it back (:func:`read_stamp`) to reuse a page
that the same code built with the same settings, as it reuses results files.
"""

from __future__ import annotations

import json
import time

from .._version import __version__
from ..util import atomic_write, check_output
from .data import QUICK, ExploreSettings, build_data

__all__ = ["EXTRA_HINT", "require_bokeh", "write_page", "read_stamp", "stamp"]

#: What to install for the page.
EXTRA_HINT = 'pip install "gradsim[explore]"'
_STAMP = "<!-- gradsim-explore "
_MIN_BOKEH = (3, 1)


def require_bokeh():
    """Import Bokeh, or raise ImportError naming the ``explore`` extra."""
    try:
        import bokeh
    except ImportError:
        raise ImportError("gradsim explore needs Bokeh, the 'explore' extra: "
                          f"{EXTRA_HINT}") from None
    have = tuple(int(p) for p in bokeh.__version__.split(".")[:2] if p.isdigit())
    if have < _MIN_BOKEH:
        raise ImportError(f"gradsim explore needs Bokeh >= 3.1, found {bokeh.__version__}: "
                          f"{EXTRA_HINT}")
    return bokeh


def stamp(settings, checksum=None):
    """The JSON a page built with ``settings`` records (``checksum``: the code's, given by
    the caller, :func:`gradsim.experiments.base.code_checksum`)."""
    return {"settings": settings.to_dict(), "version": __version__, "checksum": checksum}


def read_stamp(path):
    """The stamp of the page at ``path``, or None (no page, or not one gradsim wrote)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    at = tail.rfind(_STAMP)
    if at < 0:
        return None
    try:
        out = json.loads(tail[at + len(_STAMP):].split("-->")[0])
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def write_page(out, settings=None, quick=False, force=False, progress=None, command=None,
               workers=1, checksum=None):
    """Compute the page's data and write the page to ``out``.

    Parameters
    ----------
    out : str
        The ``.html`` file; checked before any work (:func:`gradsim.util.check_output`)
        and written atomically, so an interrupted build leaves nothing behind.
    settings : ExploreSettings, optional
        Default :data:`~gradsim.explore.data.QUICK` when ``quick``, else the defaults.
    quick : bool
    force : bool
        Replace an existing file.
    progress : callable, optional
        ``progress(message)`` before each step.
    command : str, optional
        The command shown on the page (default: :func:`~gradsim.explore.page.command_line`).
    workers : int
        Processes for the networks; the numbers do not depend on it.
    checksum : str, optional
        The code checksum the page's stamp records.

    Returns
    -------
    dict
        ``path``, ``bytes``, ``seconds_data`` and ``seconds`` (the whole build).

    Raises
    ------
    ImportError
        Without Bokeh (the ``explore`` extra), before any work.
    ValueError
        A bad ``out`` or settings, before any work.
    """
    require_bokeh()
    from .page import command_line, page_html

    out = check_output(out, force, suffix=".html")
    s = settings if settings is not None else (QUICK if quick else ExploreSettings())
    if not isinstance(s, ExploreSettings):
        raise ValueError(f"settings must be ExploreSettings, got {type(s).__name__}")
    t0 = time.perf_counter()
    data = build_data(s, progress, workers)
    text = page_html(data, command or command_line(s, out, quick))
    text += "\n" + _STAMP + json.dumps(stamp(s, checksum), sort_keys=True) + " -->\n"
    body = text.encode("utf-8")
    with atomic_write(out) as fh:
        fh.write(body)
    return {"path": out, "bytes": len(body), "seconds_data": data["seconds"],
            "seconds": time.perf_counter() - t0}
