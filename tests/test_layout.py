"""The shape of the package: small modules, no import cycle (lazy or not), no module
reaching into another's private names.  Read from the source with :mod:`ast`."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "gradsim"
MODULES = sorted(ROOT.rglob("*.py"))
#: Lines a module may have ("modules of 100-400 lines; none over ~500").
MAX_LINES = 500


def _name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {_name(p): p for p in MODULES}


def _imports(path):
    """``(module imported, names imported from it, line)`` for every import in a file,
    module-level or inside a function, relative imports resolved."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            names = [a.name for a in node.names]
            # "from . import x": x may be a submodule
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in NAMES]
            out += [(s, [], node.lineno) for s in subs]
            rest = [n for n in names if f"{mod}.{n}" not in NAMES]
            if rest or not subs:
                out.append((mod, rest, node.lineno))
    return [(m, n, line) for m, n, line in out if m in NAMES]


GRAPH = {name: {m for m, _, _ in _imports(path)} - {name} for name, path in NAMES.items()}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_no_import_cycle():
    """Tarjan's strongly connected components over explicit imports (also those inside
    functions); a package's ``__init__`` counts only for what it imports itself."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{_name(p)}:{line} imports {n} from {m}" for p in MODULES
           for m, names, line in _imports(p) for n in names
           if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def _extras():
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(ROOT.parent / "setup.cfg")
    out = {}
    for extra, text in cfg["options.extras_require"].items():
        reqs = [line.strip() for line in text.splitlines() if line.strip()]
        out[extra] = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}
    return out


def test_docs_extra_installs_what_the_gallery_needs():
    """The gallery runs every experiment: the ``docs`` extra must install every extra an
    experiment needs (``REQUIRES``), so ``pip install -e ".[docs]"`` alone builds the docs."""
    from gradsim import experiments

    extras = _extras()
    for name in experiments.NAMES:
        for extra in getattr(experiments.get(name), "REQUIRES", {}).values():
            missing = extras[extra] - extras["docs"]
            assert not missing, f"docs extra lacks {missing} (needed by {name})"
