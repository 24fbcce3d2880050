"""The package files a step runs, found by a static walk of its asym imports: a stage depends on
them (editing one reruns exactly the jobs that run it), and a training job's resume fingerprint
includes them. Kept apart from the stage table, so that editing the table retrains nothing."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from asym.layout import PACKAGE
from asym.models import registry

# The registry file is left out of the code a training stage depends on: an entry's own content
# reaches the stage through its digest in the command line, so adding a model does not rerun every
# other one. Package markers hold docstrings only.
NOT_TRACKED = {"asym/models/registry.py", "asym/__init__.py", "asym/models/__init__.py"}


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for candidate in (PACKAGE.parent / rel.with_suffix(".py"), PACKAGE.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> frozenset[str]:
    """asym modules a file imports, anywhere in it (static: nothing is imported). Each file is
    parsed once per version of it: the DAG asks for the code of every one of its jobs."""
    stat = path.stat()
    return _parsed_imports(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "asym")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "asym":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)   # `from asym.x import module`
    return frozenset(found)


def code_deps(modules: tuple[str, ...] | list[str], model: str | None = None) -> list[str]:
    """The package files (repository-relative) that `modules` run, with registry entry `model`'s
    module when given."""
    todo = [*modules, *([registry.get(model).target.split(":")[0]] if model is not None else [])]
    seen: dict[str, Path] = {}
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if path is None or module in seen:
            continue
        seen[module] = path
        todo.extend(_imports(path))
    files = {p.relative_to(PACKAGE.parent).as_posix() for p in seen.values()}
    return sorted(files - NOT_TRACKED)
