"""Public modules that moved when the package was given its layers, importable by their
old names.

``import gradsim.exact`` (and ``from gradsim.exact import ...``) gives the module now at
``gradsim.theory.exact``, the same module object, imported only when first asked for.
The table :data:`MOVED` is the whole list; ``docs/architecture.md`` shows it too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["MOVED", "install"]

#: Old module name -> where it lives now.
MOVED = {
    "gradsim.exact": "gradsim.theory.exact",
    "gradsim.gp": "gradsim.theory.gp",
    "gradsim.conv_spec": "gradsim.conv.spec",
    "gradsim.data": "gradsim.train.data",
    "gradsim.reproduce": "gradsim.experiments.reproduce",
    "gradsim.report": "gradsim.experiments.report",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name of :data:`MOVED` and loads it as the module at its new name.

    The import system stamps the alias's spec on the module it loads; :meth:`exec_module`
    puts the module's own spec back, so the module is unchanged.
    """

    def __init__(self):
        self._specs = {}

    def find_spec(self, name, path=None, target=None):  # noqa: D102
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):  # noqa: D102
        module = importlib.import_module(MOVED[spec.name])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):  # noqa: D102
        module.__spec__ = self._specs.pop(module.__spec__.name)


_FINDER = _Alias()


def install():
    """Put the finder on ``sys.meta_path`` (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
