"""Every model, baseline and ablation variant, collected from the files that declare them.

A model is one file: asym/models/asym.py, asym/models/baselines/<family>.py, or (later) a file
of the user's own. The file opens with its declaration, its typed config and its entries, and
its torch code follows. asym/models/baselines/bilstm.py, for example:

    from pydantic import PositiveInt

    from asym.models import ModelConfig, Rate, register_model

    class BiLSTMConfig(ModelConfig):         # model.<scale>.bilstm in params.yaml
        hidden: PositiveInt
        layers: PositiveInt
        dropout: Rate

    register_model("bilstm", BiLSTMConfig, "BiLSTM", description="Per-modality BiLSTM, late fusion (floor)")

    import torch
    ...
    class BiLSTM(nn.Module):
        def __init__(self, audio_dim: int, visual_dim: int, hidden: int, layers: int, dropout: float): ...

Snakemake, DVC (via `asym dvc-yaml`), params.yaml's validation, the tests and the reports all
list models from here. An entry names its implementation (`module:Class`), the params.yaml block
it reads (model.<scale>.<family>: its name with `-` read as `_` unless `family=` says otherwise),
the training recipe it is trained with (recipes.<scale>.<recipe>), and the keys it overrides; a
variant is one more entry (`entry.variant(...)`, ASYM's eleven ablations). The name is written
once, in register_model. The values are params.yaml's: a config field has a default only where it
is a switch that entries override, and the constructor repeats none (a test checks).

Collected without torch. The Snakefile and params.yaml's validation read the registry at
start-up, which must not pay for torch (about 2 s), so a model file is imported in two steps:
its declaration, every top-level statement above its first `import torch` / `from torch ...`,
runs when the registry collects it; the rest runs in the same module the first time a name the
declaration does not define is looked up there (`factory.model_class`, `from asym.models.asym
import ASYM`). A declaration imports only what imports no torch: pydantic, typing, asym.models
and other model files' configs (read the same way). Imported the ordinary way, before the
registry collects it, a model file runs top to bottom and declares the same entries.

Which files: every module of this package whose source calls `register_model(`, found on disk,
so a new model file needs no line here; and the plug-ins a params file lists (`plugins:`, loaded
by asym.config.load_params through `load`), files or modules of the user's own project. A
plug-in's model is first-class (both DAGs, the tables, the model cards, `asym predict`, the
MLflow Model); `plugin_of(name)` says which file declared it and its sha256, which its
checkpoint records. Their order (the tables', dvc.yaml's) is ORDER, then any
other module by name, then modules loaded with `load`; within a file, the order of declaration.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import TypeAdapter, ValidationError

from asym.errors import ConfigError
from asym.models.families import ModelConfig
from asym.models.families import model_blocks as blocks_of

PACKAGE = "asym.models"
PACKAGE_DIR = Path(__file__).resolve().parent
# The order of the tables and of dvc.yaml: ASYM and its ablations, the floors, then the peers.
ORDER = ("asym", "baselines.mean_mlp", "baselines.bilstm", "baselines.transformer", "baselines.depression_detector",
         "baselines.mult", "baselines.tamfn", "baselines.mddformer", "baselines.depmamba", "baselines.caf_mamba",
         "baselines.mdd_net", "baselines.dynmultidep", "baselines.litedsps_mamba")
_NOT_MODELS = {"registry", "families", "factory", "layers"}

# What an entry is: ASYM itself, a variant of it (its ablations), another model (a peer or a
# floor), or a variant of a peer (its own paper's ablations: in the results table only, and left
# out of `run.models: all` unless `run.peer_ablations`). The tables group models by it;
# `asym models --kind` lists one of them.
Kind = Literal["asym", "ablation", "baseline", "peer-ablation"]
KINDS: tuple[Kind, ...] = get_args(Kind)
ASYM_KIND, ABLATION_KIND, BASELINE_KIND, PEER_ABLATION_KIND = KINDS


@dataclass(frozen=True)
class Entry:
    name: str
    target: str                    # "module:Class"
    family: str                    # params.yaml block under model.<scale>
    kind: Kind
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    recipe: str = "asym"           # params.yaml block under recipes.<scale>

    def digest(self) -> str:
        """A short fingerprint of what this entry means; a DVC stage's command carries it, so
        editing one entry reruns that model's stages and no other."""
        text = json.dumps({"target": self.target, "family": self.family, "recipe": self.recipe,
                           "overrides": dict(self.overrides)}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def variant(self, name: str, description: str, kind: Kind = ABLATION_KIND, **overrides: Any) -> Entry:
        """One more entry of this entry's model, config and recipe, with `overrides` on top of its own."""
        return _register(Entry(name, self.target, self.family, kind, description, {**self.overrides, **overrides},
                               self.recipe), _FAMILIES[self.family], _caller())


_ENTRIES: dict[str, Entry] = {}
_FAMILIES: dict[str, type[ModelConfig]] = {}     # family -> its config (the schema of its block)
_DECLARED_IN: dict[str, str] = {}                # entry -> the module that declared it
_MODULES: list[str] = []                         # modules collected, in the order of the tables
_FILES: dict[str, Path] = {}                     # module collected -> its file
_DIGESTS: dict[str, str] = {}                    # plug-in module -> its file's sha256 when it was loaded
_AS_FILE: set[str] = set()                       # plug-in modules loaded from a file's path (not by name)


def register_model(name: str, config: type[ModelConfig], model: str, *, description: str, kind: Kind = BASELINE_KIND,
                   recipe: str = "asym", family: str | None = None, **overrides: Any) -> Entry:
    """Declare model `name`: class `model` of the calling module, built from `config` (the schema
    of params.yaml's block model.<scale>.<family>), trained with recipes.<scale>.<recipe>, with
    `overrides` of the config's switches. Returns the entry (its `variant` declares variants)."""
    module = _caller()
    family = family or name.replace("-", "_")
    if not (isinstance(config, type) and issubclass(config, ModelConfig)):
        raise ConfigError(f"model {name!r}: its config must be a class deriving from asym.models.ModelConfig, "
                          f"not {config!r}")
    untyped = [k for k, f in config.model_fields.items() if k != "by_dataset" and f.annotation in _UNTYPED]
    if untyped:
        raise ConfigError(f"model {name!r}: config {config.__qualname__} leaves {untyped} untyped (annotate each "
                          "field with its type, e.g. `hidden: PositiveInt`), so params.yaml could not be checked")
    if not family.isidentifier():
        raise ConfigError(f"model {name!r}: family {family!r} is not a params.yaml key (letters, digits, _)")
    known = _FAMILIES.get(family)
    if known is not None and known is not config:
        raise ConfigError(f"model {name!r}: family {family!r} is declared with config {known.__module__}."
                          f"{known.__qualname__} already, not {config.__module__}.{config.__qualname__}")
    return _register(Entry(name, f"{module}:{model}", family, kind, description, overrides, recipe), config, module)


_UNTYPED = (Any, object, None)


def _caller() -> str:
    return sys._getframe(2).f_globals["__name__"]


def _register(entry: Entry, config: type[ModelConfig], module: str) -> Entry:
    if entry.kind not in KINDS:
        raise ConfigError(f"model {entry.name!r}: kind {entry.kind!r} is not one of {', '.join(KINDS)}")
    if entry.name in _ENTRIES:
        raise ConfigError(f"model {entry.name!r} is registered twice (by {_DECLARED_IN.get(entry.name)} and {module})")
    unknown = sorted(set(entry.overrides) - set(config.model_fields) - {"by_dataset"})
    if unknown:
        raise ConfigError(f"model {entry.name!r} overrides {unknown}, which family {entry.family!r} does not have")
    for key, value in entry.overrides.items():
        try:
            TypeAdapter(config.model_fields[key].rebuild_annotation()).validate_python(value)
        except ValidationError as exc:
            raise ConfigError(f"model {entry.name!r}: override {key}={value!r}: {exc.errors()[0]['msg']}") from None
    _FAMILIES.setdefault(entry.family, config)
    _ENTRIES[entry.name] = entry
    _DECLARED_IN[entry.name] = module
    return entry


# --- reading --------------------------------------------------------------------------------------
def names(kind: Kind | None = None, modules: Any = None) -> list[str]:
    """Every entry collected (of `kind`), in the order of the tables; with `modules`, only those
    declared by these modules (`builtins()` and one params file's plug-ins, say)."""
    _collect()
    chosen = None if modules is None else set(modules)
    return [n for n in sorted(_ENTRIES, key=_position) if (kind is None or _ENTRIES[n].kind == kind)
            and (chosen is None or _DECLARED_IN[n] in chosen)]


def builtins() -> list[str]:
    """The modules of this package that declare models."""
    return list(_builtin_files())


def declared_in(name: str) -> str:
    """The module that declared entry `name`."""
    entry = get(name)
    return _DECLARED_IN.get(name, entry.target.split(":")[0])     # an entry made by hand: its class's module


def module_file(module: str) -> Path:
    """The file a collected module was read from (a plug-in's as its params file named it, resolved)."""
    _collect()
    if module not in _FILES:
        raise ConfigError(f"{module}: not a module the model registry collected")
    return _FILES[module]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def plugin_of(name: str) -> dict[str, str] | None:
    """Entry `name`'s plug-in: {"module", "file" (absolute), "sha256" (of the file as it was
    loaded), "loaded_as" ("file": by its path; "module": by its importable name)}; None for a
    built-in."""
    module = declared_in(name)
    if module.startswith(f"{PACKAGE}.") or module not in _DIGESTS:      # built-in, or not loaded from a plug-in
        return None
    return {"module": module, "file": str(module_file(module)), "sha256": _DIGESTS[module],
            "loaded_as": "file" if module in _AS_FILE else "module"}


def plugin_code(name: str) -> Path | None:
    """What carries entry `name`'s plug-in elsewhere (an MLflow Model's code paths): its file, or
    for a module of a package, the package's top folder; None for a built-in."""
    plugin = plugin_of(name)
    if plugin is None:
        return None
    path, parts = Path(plugin["file"]), plugin["module"].split(".")
    if plugin["loaded_as"] == "file" or len(parts) == 1:
        return path
    top = path.parent if path.name == "__init__.py" else path
    for _ in parts[1:]:
        top = top.parent
    return top


def get(name: str) -> Entry:
    _collect()
    try:
        return _ENTRIES[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {names()}") from None


def families() -> dict[str, type[ModelConfig]]:
    """Every family's config, in the order of the tables."""
    ordered = dict.fromkeys(_ENTRIES[n].family for n in names())
    return {f: _FAMILIES[f] for f in ordered if f in _FAMILIES}


def family(name: str) -> type[ModelConfig]:
    """The config (schema) of family `name`."""
    try:
        return families()[name]
    except KeyError:
        raise ConfigError(f"no model family {name!r}; declared: {sorted(_FAMILIES)}") from None


def model_blocks(modules: Any = None) -> type:
    """The schema of params.yaml's `model.<scale>`: one block per family of the models collected
    so far (those of files loaded later included, once `load` has run), or of those declared by
    `modules`."""
    fams = families()
    if modules is not None:
        fams = {f: fams[f] for f in dict.fromkeys(_ENTRIES[n].family for n in names(modules=modules))}
    return _model_blocks(tuple(fams.items()))


_BLOCKS: dict[tuple, type] = {}


def _model_blocks(key: tuple) -> type:
    if key not in _BLOCKS:
        _BLOCKS[key] = blocks_of(dict(key))
    return _BLOCKS[key]


def _position(name: str) -> tuple[float, float]:
    module = _DECLARED_IN.get(name)
    rank = _MODULES.index(module) if module in _MODULES else float("inf")
    return rank, list(_ENTRIES).index(name) if module is not None else float("inf")


# --- collecting -------------------------------------------------------------------------------------
_COLLECTED = False
_LOCK = threading.RLock()


def _builtin_files() -> dict[str, Path]:
    """The modules of this package that declare models, in ORDER first, by name after."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).with_suffix("")
        if path.name == "__init__.py" or rel.as_posix() in _NOT_MODELS:
            continue
        if "register_model(" in path.read_text(encoding="utf-8"):
            found[".".join(rel.parts)] = path
    ordered = [m for m in ORDER if m in found] + sorted(set(found) - set(ORDER))
    return {f"{PACKAGE}.{m}": found[m] for m in ordered}


def _collect() -> None:
    global _COLLECTED
    with _LOCK:
        if not _COLLECTED:
            _COLLECTED = True
            _load(_builtin_files())


def load(*sources: str | Path, base: Path | None = None) -> list[str]:
    """Collect the models of more files: each an importable module's name, or a Python file's
    path (relative to `base`), imported as the module named by its file name. Built-ins first.
    Returns the modules' names."""
    _collect()
    files: dict[str, Path] = {}
    for source in sources:
        if isinstance(source, Path) or source.endswith(".py") or "/" in source:
            path = Path(source) if base is None or Path(source).is_absolute() else base / source
            if not path.is_file():
                raise ConfigError(f"{path}: no such model file")
            module = sys.modules.get(path.stem)
            if module is not None and Path(getattr(module, "__file__", "") or "").resolve() != path.resolve():
                raise ConfigError(f"{path}: its module name {path.stem!r} is taken by {module!r}; rename the file")
            files[path.stem] = path.resolve()
            _AS_FILE.add(path.stem)
        else:
            try:
                spec = importlib.util.find_spec(source)
            except (ImportError, ValueError) as exc:
                raise ConfigError(f"{source}: no such module to load models from ({exc})") from None
            if spec is None or spec.origin is None:
                raise ConfigError(f"{source}: no such module to load models from")
            files[source] = Path(spec.origin)
    with _LOCK:
        _load(files)
    return list(files)


def _load(files: Mapping[str, Path]) -> None:
    finder = _Declarations(files)
    sys.meta_path.insert(0, finder)
    try:
        for module, path in files.items():
            if module not in _MODULES:
                _MODULES.append(module)
            already = set(_ENTRIES)
            digest = None if module.startswith(f"{PACKAGE}.") or module in _FILES else file_digest(path)
            try:
                importlib.import_module(module)
            except Exception as exc:
                for name in set(_ENTRIES) - already:
                    del _ENTRIES[name], _DECLARED_IN[name]
                for unused in set(_FAMILIES) - {e.family for e in _ENTRIES.values()}:
                    del _FAMILIES[unused]
                if isinstance(exc, ConfigError):
                    raise ConfigError(f"{path}: {exc}") from None
                raise ConfigError(f"{path}: declaring its models failed: {type(exc).__name__}: {exc}") from exc
            if module not in _DECLARED_IN.values():
                _MODULES.remove(module)
                where = "above its first torch import" if module in _REST else "(no register_model call ran)"
                raise ConfigError(f"{path}: declares no model {where}: register_model(...) must come before "
                                  "`import torch`, which the registry reads without")
            if digest is not None:
                _DIGESTS[module] = digest
            _FILES.setdefault(module, Path(path).resolve())
    finally:
        sys.meta_path.remove(finder)


class _Declarations(importlib.abc.MetaPathFinder):
    """Finds the model modules being collected, for a `_DeclarationLoader` to import."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = files

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(name)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(name, file, loader=_DeclarationLoader(name, str(file)))


class _DeclarationLoader(importlib.machinery.SourceFileLoader):
    """Runs a model file's declaration now, and the rest on first use (see the module's docstring)."""

    def exec_module(self, module: types.ModuleType) -> None:
        source = importlib.util.decode_source(self.get_data(self.path))
        tree = ast.parse(source, self.path)
        cut = next((i for i, node in enumerate(tree.body) if _imports_torch(node)), len(tree.body))
        exec(compile(ast.Module(tree.body[:cut], []), self.path, "exec", dont_inherit=True), module.__dict__)
        if cut < len(tree.body):
            flags = sum(getattr(__import__("__future__"), a.name).compiler_flag for node in tree.body[:cut]
                        if isinstance(node, ast.ImportFrom) and node.module == "__future__" for a in node.names)
            _REST[module.__name__] = (ast.Module(tree.body[cut:], []), self.path, flags)
            module.__class__ = _Declared


def _imports_torch(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "torch" for a in node.names)
    return isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "torch"


_REST: dict[str, tuple[ast.Module, str, int]] = {}


class _Declared(types.ModuleType):
    """A model module whose declaration has run, and whose torch code runs on first use."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):    # the import system's questions
            raise AttributeError(name)
        with _LOCK:                       # another thread waits here until the code has run
            rest = _REST.get(self.__name__)
            if rest is not None:
                tree, path, flags = rest
                # on an error the code stays pending, so the next use raises the real error again
                exec(compile(tree, path, "exec", flags=flags, dont_inherit=True), self.__dict__)
                del _REST[self.__name__]
            self.__class__ = types.ModuleType
        if name in self.__dict__:
            return self.__dict__[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
