"""What a job's outputs depend on in the code: a digest that moves when, and only when, an edit can
change them. Kept apart from the stage table, so that editing the table retrains nothing.

Which modules. A stage runs its `modules` (and, for training, its registry entry's module: the
model's own file); the modules it depends on are those reached by a static walk of their asym
imports, anywhere in a file (nothing is imported). The walk neither counts nor goes through the
modules that cannot change what a job writes (UNTRACKED): config parsing (asym.config,
asym.schema, asym.models.families), the layout and the run grid (asym.layout, asym.grid), io,
errors and a job's own figures (asym.jobstats), the DAG itself (asym.dag), the registry's collection (asym.models.registry, the package
markers), the format table (asym.data.formats: a job that reads a format's files counts its row
instead, `format_values`) and the command line. The report and tracking are never reached from training: they are the code of the report and track
stages only. So a training job depends on the model's own file (not on another model's, unless it
imports it), its layers, asym.nn, asym.train, the data readers and splits, asym.metrics (the
checkpoint is chosen by a metric) and asym.models.factory.

Which edits. Each module counts by the digest of its syntax tree, without its docstrings or any
other bare string statement, and without positions; comments never reach the tree. A comment, a
docstring, blank lines or a re-wrapped line change nothing; any other edit of a tracked module
(a constant, an expression, a renamed local) counts. The tree is written out by `_dump` rather
than `ast.dump`, leaving out empty and None fields, so that a digest does not move with the
Python version (newer versions add fields that are empty in this code, and change what
`ast.dump` shows).

How it reaches the DAGs. A stage's digest (`code_digest`: its modules' digests, plus the defaults
of the params.yaml sections it reads, below) is part of its command line, `--code-digest` (see
Stage.command), like the registry entry's digest. Snakemake sees the command in the job's
`params:` and reruns a job whose params changed (its default rerun triggers); DVC sees it in the
stage's `cmd` and reruns a stage whose command changed. No file stands for the code, so no mtime
and no content hash of a .py file is involved: a job reruns exactly when its digest changes.
dvc.yaml holds the digests, so it is stale after a real edit of a tracked module (`asym dvc-yaml
--check` fails until it is written again), and a job refuses a digest that is not its code's
(asym.cli), so a stale dvc.yaml never records results under another code's command.

What a value means. Values reach a job through its params slices (Snakemake's `settings`, DVC's
`params`), read raw from params.yaml. What a job makes of a value is the code of its tracked
modules (the model's constructor, the training loop, the readers): an edit there changes the
digest. What config parsing adds to the raw values is the defaults of keys params.yaml leaves
out (`precision: fp32`, a recipe's `threshold`): the digest includes the defaults of every
section the stage reads (`config_defaults`), so changing a default reruns the stages that read
that section and no other. Config parsing otherwise only refuses values (types, bounds, unknown
keys) or finds them (`Params.model_config` merges an entry's overrides, which the entry's
digest carries); an edit that changed what a parsed value is without a default moving would
have to be rerun by hand (`snakemake -R train`, `dvc repro -f`), and the resume fingerprint of a
half-finished seed (asym.train.job.inputs_digest) holds the resolved recipe and model config, so
such a seed starts again instead of resuming under the other meaning.

The resume fingerprint uses the same module digests (`code_digest`), so a docstring edit does
not throw away a half-finished seed either.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import os
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asym.data import formats
from asym.layout import PACKAGE
from asym.models import registry

if TYPE_CHECKING:
    from asym.config import Params

# Modules whose edits change no job's outputs: neither counted nor walked through. A package
# name ends with "." and covers every module under it.
UNTRACKED = ("asym", "asym.__main__", "asym.cli", "asym.config", "asym.schema", "asym.layout", "asym.grid",
             "asym.io", "asym.errors", "asym.jobstats", "asym.dag", "asym.dag.", "asym.models", "asym.models.registry",
             "asym.models.families", "asym.data.formats")


def untracked(module: str) -> bool:
    return any(module.startswith(u) if u.endswith(".") else module == u for u in UNTRACKED)


@functools.cache
def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for candidate in (PACKAGE.parent / rel.with_suffix(".py"), PACKAGE.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# --- one module ---------------------------------------------------------------------------------
def _is_string_statement(node: Any) -> bool:
    """A docstring, or any other bare string statement: it runs to nothing."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _dump(node: Any) -> str:
    """The tree as text, without positions, string statements, or empty and None fields."""
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                value = [v for v in value if not _is_string_statement(v)]
            if value is None or (isinstance(value, list) and not value):
                continue
            fields.append(f"{name}={_dump(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(_dump(v) for v in node) + "]"
    return repr(node)


@functools.cache
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple[frozenset[str], str]:
    """The asym modules a file imports (anywhere in it) and the digest of its tree. Each file is
    parsed once per version of it: the DAG asks for the code of every one of its jobs, and each
    job for its own again (a third of a second of its start-up), so the answers are also kept on
    disk (`_cache_file`), keyed by the file's content."""
    text = path.read_text(encoding="utf-8")
    try:
        cached = _cache_file(text)
    except RuntimeError:             # no home folder to keep it in
        return _parse(text)
    try:
        found, digest = json.loads(cached.read_text(encoding="utf-8"))
        return frozenset(found), digest
    except (OSError, ValueError, TypeError):
        pass
    result = _parse(text)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([sorted(result[0]), result[1]]), encoding="utf-8")
        os.replace(tmp, cached)
    except OSError:                  # a read-only home: parsed again next time
        pass
    return result


@functools.cache
def _parser_digest() -> str:
    """This module's own code: an answer kept by another version of the parsing is not taken."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _cache_file(text: str) -> Path:
    """Where the answer for a file's text is kept: $XDG_CACHE_HOME/asym/code (~/.cache/asym/code),
    one file per text, Python version (whose parser reads it) and version of this module."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{sys.version_info[:2]}\n{_parser_digest()}\n{text}".encode()).hexdigest()[:40]
    return home / "asym" / "code" / f"{key}.json"


def _parse(text: str) -> tuple[frozenset[str], str]:
    tree = ast.parse(text)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "asym")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "asym":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)   # `from asym.x import module`
    return frozenset(found), hashlib.sha256(_dump(tree).encode()).hexdigest()


def _module(path: Path) -> tuple[frozenset[str], str]:
    stat = path.stat()
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


def module_imports(path: str | Path) -> frozenset[str]:
    """The asym modules a Python file imports, anywhere in it (a plug-in's, read like the package's)."""
    return _module(Path(path).resolve())[0]


def module_digest(path: str | Path) -> str:
    """The digest of a Python file's code: equal for two files that differ only in comments,
    docstrings and layout."""
    return _module(Path(path).resolve())[1]


# --- a stage ------------------------------------------------------------------------------------
def _walk(modules: Iterable[str], model: str | None) -> dict[str, str]:
    """Repository-relative path -> digest of every tracked module `modules` run, with registry
    entry `model`'s module when given."""
    todo = [*modules, *([registry.get(model).target.split(":")[0]] if model is not None else [])]
    seen: dict[str, str] = {}
    done: set[str] = set()
    while todo:
        module = todo.pop()
        if module in done or untracked(module):
            continue
        done.add(module)
        path = _module_file(module)
        if path is None:
            continue
        imports, digest = _module(path)
        seen[path.relative_to(PACKAGE.parent).as_posix()] = digest
        todo.extend(imports)
    return seen


def code_deps(modules: Iterable[str], model: str | None = None) -> list[str]:
    """The package files (repository-relative) whose code `modules` run, with registry entry
    `model`'s module when given: what `code_digest` is a digest of."""
    return sorted(_walk(modules, model))


def code_digest(modules: Iterable[str], model: str | None = None, sections: Iterable[str] = (),
                resolved: dict[str, Any] | None = None) -> str:
    """A short digest of the code `modules` run (see `code_deps`), of the defaults config parsing
    gives the params.yaml `sections` they read, and of the `resolved` values the job takes from
    config parsing's methods (a training job's learning rate for its dataset, its model's config
    with the entry's overrides): an edit of the parsing that changes one of them changes the digest."""
    facts = {"code": dict(sorted(_walk(modules, model).items())),
             "defaults": {s: config_defaults(s) for s in sorted(set(sections))},
             "resolved": resolved or {}}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


def training_values(p: Params, dataset: str, model: str) -> dict[str, Any]:
    """What config parsing resolves for a training job through its methods rather than as read: the
    recipe's values for the dataset and the model's config with its entry's overrides. Untracked
    modules compute them (asym.config, asym.models.families), so they enter the job's code digest."""
    recipe = p.recipe(registry.get(model).recipe)
    return {"lr": recipe.lr_for(dataset),
            "plateau_factor": recipe.plateau.factor_for(dataset) if recipe.scheduler == "plateau" else None,
            "min_frames": recipe.crop.min_frames_for(dataset) if recipe.crop.kind != "none" else 0,
            "model_config": p.model_config(model, dataset).kwargs(),
            "readers": formats.dataset_settings(p.dataset(dataset), p.readers)}


def format_values(p: Params, dataset: str) -> dict[str, Any]:
    """The dataset's row of the format table (asym.data.formats, an untracked table of
    declarations): what a job reading or writing its files runs with."""
    return {"format": dataclasses.asdict(formats.get(p.dataset(dataset).format))}


# --- the defaults of config parsing ---------------------------------------------------------------
@functools.cache
def config_defaults(section: str) -> dict[str, str]:
    """`class.field` -> repr of its default, for every block of asym.config under params.yaml's
    top-level key `section` (the model families' blocks are their model files' code)."""
    from asym.config import ParamsFile

    field = ParamsFile.model_fields.get(section)
    return {} if field is None else _defaults(field.annotation, set())


def _defaults(tp: Any, seen: set[Any]) -> dict[str, str]:
    from pydantic import BaseModel

    out: dict[str, str] = {}
    for arg in typing.get_args(tp):
        out.update(_defaults(arg, seen))
    if isinstance(tp, type) and issubclass(tp, BaseModel) and tp.__module__ == "asym.config" and tp not in seen:
        seen.add(tp)
        for name, f in tp.model_fields.items():
            if not f.is_required():
                out[f"{tp.__qualname__}.{name}"] = repr(f.get_default(call_default_factory=True))
            out.update(_defaults(f.annotation, seen))
    return out
