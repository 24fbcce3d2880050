"""The DAG's one stage table: each stage's wildcards, command, inputs, outputs, the params keys it
reads, its code and its data dependencies.

Both DAGs are read off this table: the Snakemake rules (asym.dag.snakefile, looped over in
workflow/rules/stages.smk) and dvc.yaml (asym.dag.dvc_yaml). A stage's files come from
asym.layout, given wildcard values that are either concrete (`{"dataset": "dvlog"}`, for DVC and
for Snakemake's input functions) or patterns (`{"dataset": "{dataset}"}`, for Snakemake's outputs).

Each seed's resume.pt (asym.resume) sits beside a training stage's outputs and is never one of
them: both tools remove a job's outputs before running it again, never that file, so a killed job
goes on inside its seeds.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asym.config import STUDY_PROTOCOLS
from asym.data.splits import SELECT_ON_TEST
from asym.layout import EVAL_FILES, PACKAGE, PLOTS, TRAIN_FILES, Layout
from asym.models import registry

if TYPE_CHECKING:
    from asym.config import Params

Wild = Mapping[str, str]                      # wildcard -> its value, or its pattern
Files = dict[str, list[str]]                  # named groups of files


@dataclass(frozen=True)
class Stage:
    name: str                                  # the Snakemake rule
    step: str                                  # the `asym` command it runs (and its log folder)
    wildcards: tuple[str, ...]
    message: str                               # with `{dataset}`, `{model}`, `{protocol}`, `{seeds}`
    instances: Callable[[Params], list[dict[str, str]]]
    inputs: Callable[[Params, Layout, Wild], Files]        # the DAG's own files (code and data deps apart)
    outputs: Callable[[Params, Layout, Wild], Files]
    options: Callable[[Params, Wild], list[str]] = lambda p, w: [a for k in ("dataset", "model") if k in w
                                                                 for a in (f"--{k}", w[k])]
    trains: bool = False                       # holds `train.threads` and a GPU slot
    directories: frozenset[str] = frozenset()  # output groups that are folders
    dvc_kinds: Mapping[str, str] = field(default_factory=dict)   # output group -> metrics | plots | uncached

    def dvc_name(self, w: Wild) -> str:
        return "-".join([self.step, *(w[k] for k in self.wildcards)])

    def log(self, lay: Layout, w: Wild) -> str:
        return lay.log(self.step, *(w[k] for k in self.wildcards))

    def command(self, p: Params, w: Wild) -> list[str]:
        """The `asym` command line after `asym --params <file>`."""
        return [self.step, *self.options(p, w)]

    def params_keys(self, p: Params, w: Wild) -> list[str]:
        return stage_params(p, self.step, w.get("dataset"), w.get("model"), protocol=w.get("protocol"))

    def code(self, w: Wild) -> list[str]:
        return code_deps(self.step, w.get("model"))

    def data(self, p: Params, w: Wild, absolute: bool = False) -> list[str]:
        """Under the optimism study's protocol a split reads nothing besides the Parquet file."""
        study = p.for_protocol(w["protocol"]) if "protocol" in w else p
        return stage_data_deps(study, self.step, w.get("dataset"), absolute=absolute)


# --- the grids ----------------------------------------------------------------------------------
def _per_dataset(p: Params) -> list[dict[str, str]]:
    return [{"dataset": d} for d in p.datasets]


def _per_model(p: Params) -> list[dict[str, str]]:
    return [{"dataset": d, "model": m} for d in p.datasets for m in p.models]


def study_protocols(p: Params) -> list[str]:
    """The optimism study's protocols: none when its model list is empty (the study is off)."""
    return list(STUDY_PROTOCOLS) if p.study_models else []


def _per_protocol(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d} for pr in study_protocols(p) for d in p.datasets]


def _per_protocol_model(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d, "model": m} for pr in study_protocols(p) for d in p.datasets
            for m in p.study_models]


def _once(p: Params) -> list[dict[str, str]]:
    return [{}]


# --- what each stage reads and writes -------------------------------------------------------------
def _run_files(p: Params, lay: Layout, keys: tuple[str, ...]) -> list[str]:
    return [lay.run_file(r.dataset, r.model, r.seed, k) for r in p.runs() for k in keys]


def _entry(p: Params, w: Wild) -> list[str]:
    """A training command names its registry entry's digest: the entry's content reaches the DAGs
    as a changed command line, so editing one entry reruns only its jobs (asym.cli checks it)."""
    return ["--dataset", w["dataset"], "--model", w["model"], *(["--protocol", w["protocol"]] if "protocol" in w else []),
            "--entry-digest", registry.get(w["model"]).digest()]


def study_reads(p: Params, lay: Layout) -> list[str]:
    """What the report reads of the optimism study: every run's predictions and train.json, each
    select-on-test run's epochs (its selection is made again inside the bootstrap: asym.optimism),
    and the splits."""
    read: set[str] = set()
    for pr in study_protocols(p):
        sl = lay.for_protocol(pr)
        keys = ("predictions", "summary", *(("epochs",) if pr in SELECT_ON_TEST else ()))
        read |= {sl.run_file(d, m, s, k) for d in p.datasets for m in p.study_models for s in p.study_seeds
                 for k in keys}
        read |= {f for d in p.datasets for f in (sl.split_csv(d), sl.split_json(d))}
    return sorted(read)


def _train_outputs(lay: Layout, w: Wild, seeds: list[int]) -> Files:
    return lay.train_outputs(w["dataset"], w["model"], seeds)


STAGES: tuple[Stage, ...] = (
    Stage("fetch", "fetch", ("dataset",), "Fetching the {dataset} release", _per_dataset,
          inputs=lambda p, lay, w: {},
          outputs=lambda p, lay, w: {"raw": [lay.raw_dir(w["dataset"])], "provenance": [lay.provenance(w["dataset"])]},
          directories=frozenset({"raw"})),
    Stage("convert", "convert", ("dataset",), "Validating {dataset} and writing Parquet", _per_dataset,
          inputs=lambda p, lay, w: {"raw": [lay.raw_dir(w["dataset"])], "provenance": [lay.provenance(w["dataset"])]},
          outputs=lambda p, lay, w: {"parquet": [lay.parquet(w["dataset"])], "card": [lay.card_json(w["dataset"])],
                                     "card_md": [lay.card_md(w["dataset"])]}),
    Stage("split", "split", ("dataset",), "Splitting {dataset} by its protocol", _per_dataset,
          inputs=lambda p, lay, w: {"parquet": [lay.parquet(w["dataset"])]},
          outputs=lambda p, lay, w: {"csv": [lay.split_csv(w["dataset"])], "summary": [lay.split_json(w["dataset"])]}),
    Stage("train", "train", ("dataset", "model"), "Training {model} on {dataset} (seeds {seeds})", _per_model,
          inputs=lambda p, lay, w: {"data": [lay.parquet(w["dataset"])], "split": [lay.split_csv(w["dataset"])]},
          outputs=lambda p, lay, w: _train_outputs(lay, w, p.seeds), options=_entry, trains=True),
    Stage("split_protocol", "split", ("protocol", "dataset"),
          "Splitting {dataset} by {protocol} (optimism study)", _per_protocol,
          inputs=lambda p, lay, w: {"parquet": [lay.parquet(w["dataset"])]},
          outputs=lambda p, lay, w: {"csv": [lay.for_protocol(w["protocol"]).split_csv(w["dataset"])],
                                     "summary": [lay.for_protocol(w["protocol"]).split_json(w["dataset"])]},
          options=lambda p, w: ["--dataset", w["dataset"], "--protocol", w["protocol"]]),
    Stage("train_protocol", "train", ("protocol", "dataset", "model"),
          "Training {model} on {dataset} under {protocol} (optimism study)", _per_protocol_model,
          inputs=lambda p, lay, w: {"data": [lay.parquet(w["dataset"])],
                                    "split": [lay.for_protocol(w["protocol"]).split_csv(w["dataset"])]},
          outputs=lambda p, lay, w: _train_outputs(lay.for_protocol(w["protocol"]), w, p.study_seeds),
          options=_entry, trains=True),
    Stage("evaluate", "evaluate", (), "Evaluating every run from its saved predictions", _once,
          inputs=lambda p, lay, w: {"predictions": _run_files(p, lay, ("predictions",)),
                                    "summaries": _run_files(p, lay, ("summary",))},
          outputs=lambda p, lay, w: {"metrics": _run_files(p, lay, ("metrics",)),
                                     "confusion": _run_files(p, lay, ("confusion",))},
          dvc_kinds={"metrics": "metrics"}),
    Stage("report", "report", (), "Aggregating every run into the report tables and plots", _once,
          inputs=lambda p, lay, w: {
              "metrics": _run_files(p, lay, ("metrics",)), "predictions": _run_files(p, lay, ("predictions",)),
              "summaries": _run_files(p, lay, ("summary",)),
              "splits": [lay.split_json(d) for d in p.datasets] + [lay.split_csv(d) for d in p.datasets],
              "cards": [lay.card_json(d) for d in p.datasets],         # the model cards' training-data section
              "study": study_reads(p, lay)},
          outputs=lambda p, lay, w: {k: [f] for k, f in lay.report_outputs(p.models, p.datasets, bool(p.study_models)).items()},
          dvc_kinds={**{k: "plots" for k in PLOTS}, "summary_json": "metrics"}),
    Stage("track", "track", (), "Logging every finished run and the report to MLflow", _once,
          inputs=lambda p, lay, w: {
              "runs": _run_files(p, lay, (*TRAIN_FILES, *EVAL_FILES)),
              "data": [lay.parquet(d) for d in p.datasets],             # each run's input dataset, by digest
              "report": list(lay.report_outputs(p.models, p.datasets, bool(p.study_models)).values())},
          outputs=lambda p, lay, w: {"record": [lay.tracking_record()]},
          dvc_kinds={"record": "uncached"}),
)
BY_NAME = {s.name: s for s in STAGES}


def get(name: str) -> Stage:
    return BY_NAME[name]


# --- the params keys a stage reads ----------------------------------------------------------------
def _grid(params: Params) -> list[str]:
    return ["scale", "run.datasets", "run.models", f"run.seeds.{params.scale}"]


def _study_switch(params: Params) -> list[str]:
    """The optimism study when it is on (with the k of its folds); when it is off, what says so
    (its model list)."""
    if params.data.optimism is None:
        return []
    return ["optimism", "split.kfold"] if params.study_models else [f"optimism.models.{params.scale}"]


def stage_params(params: Params, stage: str, dataset: str | None = None, model: str | None = None,
                 protocol: str | None = None) -> list[str]:
    """The dotted params.yaml keys a step reads: editing any other key never reruns it. With
    `protocol`, the optimism study's split and train steps: its seeds instead of the run's.
    (tests/dag/test_slices.py records every key each step reads.)"""
    scale = params.scale
    if protocol is not None and stage == "train":
        return [k if k != f"run.seeds.{scale}" else f"optimism.seeds.{scale}"
                for k in stage_params(params, stage, dataset, model)]
    if protocol is not None and stage == "split":
        return ["scale", f"datasets.{dataset}.format", "split"]
    if stage in ("fetch", "convert", "train"):
        fmt = params.dataset(dataset).format
        readers = [f"readers.{fmt}"] if hasattr(params.readers, fmt) else []
    if stage == "fetch":
        return [f"datasets.{dataset}", "synth.seed", f"synth.{fmt}"]
    if stage == "convert":
        return [f"datasets.{dataset}", *readers]
    if stage == "split":
        return ["scale", f"datasets.{dataset}", "split"]
    if stage == "train":
        entry = registry.get(model)
        return ["scale", f"datasets.{dataset}.format", f"datasets.{dataset}.protocol", *readers,
                f"model.{scale}.{entry.family}", f"recipes.{scale}.{entry.recipe}", "train", f"run.seeds.{scale}"]
    if stage == "evaluate":
        return _grid(params)
    if stage == "report":
        described = [f"datasets.{d}.{k}" for d in params.datasets for k in ("protocol", "source")]
        return ["scale", "run", "report", *described, *_study_switch(params)]
    if stage == "track":
        return ["mlflow", *_grid(params), *_study_switch(params)]
    raise ValueError(f"unknown stage {stage!r}")


# Keys a step reads that change none of its files, so editing them reruns nothing: whether training
# also logs each epoch to MLflow as it goes (the track step logs every run either way).
SIDE_EFFECTS = {"train": ("mlflow.live",)}


# --- the code a stage runs --------------------------------------------------------------------------
# The registry file is left out of the code a training stage depends on: an entry's own content
# reaches the stage through its digest in the command line, so adding a model does not rerun every
# other one.
_NOT_TRACKED = {"asym/models/registry.py", "asym/__init__.py", "asym/models/__init__.py"}
STAGE_MODULES = {"fetch": ["asym.data.fetch"], "convert": ["asym.data.convert"], "split": ["asym.data.splits"],
                 "train": ["asym.train.job"], "evaluate": ["asym.evaluate"], "report": ["asym.report.aggregate"],
                 "track": ["asym.tracking.track", "asym.tracking.mlflow_pyfunc"]}   # the MLflow Model's code, run by path


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for candidate in (PACKAGE.parent / rel.with_suffix(".py"), PACKAGE.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """asym modules a file imports, anywhere in it (static: nothing is imported)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "asym")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "asym":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)   # `from asym.x import module`
    return found


def code_deps(stage: str, model: str | None = None) -> list[str]:
    """The package files a step runs (repository-relative), by a static walk of asym imports."""
    roots = list(STAGE_MODULES[stage])
    if stage == "train" and model is not None:
        roots.append(registry.get(model).target.split(":")[0])
    seen: dict[str, Path] = {}
    todo = roots
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if path is None or module in seen:
            continue
        seen[module] = path
        todo.extend(_imports(path))
    files = {p.relative_to(PACKAGE.parent).as_posix() for p in seen.values()}
    return sorted(files - _NOT_TRACKED)


# --- files besides the DAG's own -----------------------------------------------------------------------
def stage_data_deps(params: Params, stage: str, dataset: str | None = None, absolute: bool = False) -> list[str]:
    """Files besides the DAG's own that a step reads: a user's subjects or split CSV, and the
    package's published split and published results."""
    def user(path: Any) -> str:
        return str(params.resolve(path)) if absolute else Path(path).as_posix()

    def package(rel: str) -> str:
        return str(PACKAGE.parent / rel) if absolute else rel

    out: list[str] = []
    if stage == "convert":
        ds = params.dataset(dataset)
        raw = params.resolve(params.paths.raw) / dataset
        if ds.subjects is not None and raw not in params.resolve(ds.subjects).parents:
            out.append(user(ds.subjects))      # a subjects CSV inside the fetched folder is covered by it
    elif stage == "split":
        protocol, ds = params.protocol(dataset), params.dataset(dataset)
        if protocol == "depmamba":
            out += [package("asym/reference/splits/lmvd_depmamba.csv"), package("asym/reference/splits/lmvd_depmamba.json")]
        if protocol == "csv" and ds.split_csv is not None:
            out.append(user(ds.split_csv))
    elif stage == "report":
        out.append(package("asym/reference/published_results.csv"))
    return out
