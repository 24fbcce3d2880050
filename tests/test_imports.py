"""No import circle in the package: its modules form a layered graph, read from the source (nothing
is imported).

Every import of a package module counts, wherever it is: at the top, inside a function or method,
and under `if TYPE_CHECKING:` (a circle hidden in a function or a type hint is still one: the two
modules cannot be read, tested or moved apart). A relative import is resolved against its module's
package. `from pkg.x import y` is an edge to the module pkg.x.y when there is one (pkg/x/y.py or
pkg/x/y/__init__.py), else to pkg.x (y is a name in it). Importing pkg.a.b is an edge to pkg.a.b
only, and also to pkg.a when pkg/a/__init__.py imports package modules of its own (Python runs it
first) and the importer is outside pkg.a (inside it, pkg.a is already being run).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT

Edge = tuple[str, str, int]            # importer, imported, line


def _modules(package: Path) -> dict[str, Path]:
    """Module name -> file, for every module under the package folder `package`."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The package modules one import statement names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base not in known:
        return []
    return sorted({f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names})


def import_edges(package: Path) -> list[Edge]:
    """Every import of a module of `package` (a folder with an __init__.py) by another, anywhere in
    the importer's file."""
    known = _modules(package)
    direct: dict[str, list[tuple[str, int]]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        direct[module] = [(target, node.lineno) for node in ast.walk(tree)
                          if isinstance(node, ast.Import | ast.ImportFrom)
                          for target in _imported(module, path, node, known)]
    runs_imports = {m for m, p in known.items() if p.name == "__init__.py" and direct[m]}
    edges = set()
    for module, targets in direct.items():
        for target, line in targets:
            edges.add((module, target, line))
            parts = target.split(".")
            for i in range(1, len(parts)):       # the packages Python runs on the way to `target`
                parent = ".".join(parts[:i])
                if parent in runs_imports and not (module == parent or module.startswith(parent + ".")):
                    edges.add((module, parent, line))
    return sorted(edges)


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """The edges of each circle: a strongly connected component of more than one module, or a
    module that imports itself (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for c in components:
        inside = [e for e in edges if e[0] in c and e[1] in c]
        if len(c) > 1 or inside:
            found.append(inside)
    return sorted(found)


def describe(found: list[list[Edge]]) -> str:
    return "\n\n".join(f"circle of {len({a for a, _, _ in c})} modules:\n"
                       + "\n".join(f"  {a}:{line} imports {b}" for a, b, line in c) for c in found)


def test_the_package_has_no_import_circle():
    found = cycles(import_edges(ROOT / "asym"))
    assert not found, describe(found)


def test_a_planted_circle_is_found_wherever_its_imports_are(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg.sub import b\n",                                   # b is a module
        "sub/__init__.py": "X = 1\n",
        "sub/b.py": "def f():\n    from ..c import g\n    return g\n",        # relative, in a function
        "c.py": ("from typing import TYPE_CHECKING\nfrom pkg.sub import X\n"    # X is a name in pkg.sub
                 "if TYPE_CHECKING:\n    import pkg.a\ndef g(): ...\n"),
        "d.py": "import pkg.d\n",                                             # itself
        "e.py": "import pkg.a\n",                                             # into the circle, not of it
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = import_edges(pkg)
    assert ("pkg.a", "pkg.sub.b", 1) in edges and ("pkg.c", "pkg.sub", 2) in edges
    assert ("pkg.a", "pkg.sub", 1) not in edges          # pkg/sub/__init__.py imports nothing
    assert cycles(edges) == [[("pkg.a", "pkg.sub.b", 1), ("pkg.c", "pkg.a", 4), ("pkg.sub.b", "pkg.c", 2)],
                             [("pkg.d", "pkg.d", 1)]]
    assert "pkg.sub.b:2 imports pkg.c" in describe(cycles(edges))


def test_a_package_that_runs_imports_is_imported_with_its_modules(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "import pkg.sub.b\n", "sub/__init__.py": "from pkg import a\n",
             "sub/b.py": "from . import c\n", "sub/c.py": ""}
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = import_edges(pkg)
    assert ("pkg.a", "pkg.sub", 1) in edges
    assert ("pkg.sub.b", "pkg.sub.c", 1) in edges and ("pkg.sub.b", "pkg.sub", 1) not in edges
    assert cycles(edges) == [[("pkg.a", "pkg.sub", 1), ("pkg.sub", "pkg.a", 1)]]
