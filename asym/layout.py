"""Where every artefact lives, and what each DAG stage reads, writes and depends on.

This is the one description of the artefact layout: the Snakemake rules (workflow/rules), the
DVC stages (`asym dvc-yaml`) and the steps themselves all ask this module for paths, so a file
name is spelt once. Path builders take plain strings, so the same call yields a concrete path
(`run_file("dvlog", "asym", 0, ...)`), a Snakemake pattern (`"{dataset}"`) or a DVC template
(`"${item.dataset}"`).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asym.models import registry

if TYPE_CHECKING:
    from asym.config import Params

PACKAGE = Path(__file__).resolve().parent

# Per (dataset, model, seed) run folder.
TRAIN_FILES = {"checkpoint": "checkpoint.pt", "predictions": "predictions.parquet",
               "history": "history.csv", "summary": "train.json"}
# A seed's progress inside its epochs (asym.train.resume): rewritten after every epoch, removed when the
# seed completes. Not a declared output, so neither Snakemake nor DVC deletes it before a rerun.
RESUME_FILE = "resume.pt"
# The optimism study's runs keep one more file: every epoch's probabilities on the fold that chose
# the checkpoint, with the threshold that epoch would label at, so that the report can choose the
# epoch again inside each bootstrap resample (asym.report.optimism).
STUDY_TRAIN_FILES = {"epochs": "epochs.parquet"}
EVAL_FILES = {"metrics": "metrics.json", "confusion": "confusion.png"}

# reports/: tables (each as Markdown, CSV and LaTeX), aggregates and plots.
TABLE_FORMATS = ("md", "csv", "tex")
PLOTS = {"metrics_plot": "metrics.png", "confusion_plot": "confusion_matrices.png",
         "reliability_plot": "reliability.png", "published_plot": "published.png"}
AGGREGATES = {"summary_csv": "summary.csv", "summary_json": "summary.json", "runs_csv": "runs.csv"}
TRACKING_RECORD = "mlflow_runs.json"
MODEL_CARDS = "model_cards"          # reports/model_cards/<dataset>-<model>.md (asym.report.model_card)


def report_tables(models: list[str], study: bool = False) -> list[str]:
    """The tables a report over `models` writes: the ablation table only when ASYM and at least
    one of its variants are trained, the comparison only when ASYM or a baseline is, and
    `protocol_optimism` only when the optimism study is on (`study`)."""
    kinds = {registry.get(m).kind for m in models}
    tables = ["results"]
    if kinds & {"asym", "baseline"}:
        tables.append("comparison")
    if {"asym", "ablation"} <= kinds:
        tables.append("ablation")
    tables.append("fairness")
    if study:
        tables.append("protocol_optimism")
    return tables


def study_folder(root: str, protocol: str) -> str:
    """Where the optimism study's splits and runs under `protocol` live, inside the main folder
    `root` (splits or runs): `runs/protocols/kfold/dvlog/mean-mlp/seed0/...`. A pattern in
    `protocol` (`{protocol}`) gives Snakemake's."""
    return f"{root}/protocols/{protocol}"


KEYS = ("raw", "processed", "splits", "runs", "reports", "logs")
RUN_FILES = {**TRAIN_FILES, **STUDY_TRAIN_FILES, **EVAL_FILES}


@dataclass(frozen=True, order=True)
class Run:
    """One trained (dataset, model, seed): the unit every step after the split works on."""

    dataset: str
    model: str
    seed: int

    @property
    def key(self) -> str:
        """`dvlog/asym/seed0`: how logs, MLflow and the CLI name the run (and its folder under runs/)."""
        return f"{self.dataset}/{self.model}/seed{self.seed}"

    @classmethod
    def parse(cls, key: str) -> Run:
        dataset, model, seed = key.split("/")
        if not seed.startswith("seed") or not seed[4:].isdigit():
            raise ValueError(f"{key!r} is no run key (<dataset>/<model>/seed<k>)")
        return cls(dataset, model, int(seed[4:]))


@dataclass(frozen=True)
class RunFiles:
    """A run's files in one layout (the main runs', or the optimism study's under a protocol)."""

    run: Run
    layout: Layout

    @property
    def folder(self) -> Path:
        return Path(self.layout.run_dir(self.run.dataset, self.run.model, self.run.seed))

    def file(self, key: str) -> Path:
        return self.folder / RUN_FILES[key]

    @property
    def resume(self) -> Path:
        return self.folder / RESUME_FILE

    def complete(self) -> bool:
        """train.json is written last: its presence with every other file the training job
        writes (the study's runs keep one more) means the seed is done."""
        return all((self.folder / name).is_file() for name in self.layout.train_files().values())

    def evaluated(self) -> bool:
        return self.complete() and all(self.file(k).is_file() for k in EVAL_FILES)


@dataclass(frozen=True)
class Layout:
    raw: str
    processed: str
    splits: str
    runs: str
    reports: str
    logs: str
    datasets: tuple[str, ...] = ()      # the run's datasets: a model card is written for each
    study: bool = False                 # the optimism study's folders (`for_protocol`)

    @classmethod
    def of(cls, params: Params, absolute: bool = True) -> Layout:
        """Absolute paths for the steps; as written in params.yaml for dvc.yaml (which sits
        beside it)."""
        study = bool(getattr(params, "study", False))
        if absolute:
            return cls(**{k: str(params.path_of(k)) for k in KEYS}, datasets=tuple(params.datasets), study=study)
        return cls(**{k: Path(getattr(params.paths, k)).as_posix() for k in KEYS}, datasets=tuple(params.datasets),
                   study=study)

    @classmethod
    def from_cwd(cls, params: Params) -> Layout:
        """Paths relative to the working directory, for Snakemake: its records of a job's params
        and code are keyed by path, so a project folder can be moved or copied whole."""
        return cls(**{k: os.path.relpath(params.path_of(k)) for k in KEYS}, datasets=tuple(params.datasets),
                   study=bool(getattr(params, "study", False)))

    # --- data ------------------------------------------------------------------------
    def raw_dir(self, dataset: str) -> str:
        return f"{self.raw}/{dataset}"

    def provenance(self, dataset: str) -> str:
        return f"{self.raw}/{dataset}.provenance.json"

    def parquet(self, dataset: str) -> str:
        return f"{self.processed}/{dataset}.parquet"

    def card_json(self, dataset: str) -> str:
        return f"{self.processed}/{dataset}.card.json"

    def card_md(self, dataset: str) -> str:
        return f"{self.processed}/{dataset}.card.md"

    def split_csv(self, dataset: str) -> str:
        return f"{self.splits}/{dataset}.csv"

    def split_json(self, dataset: str) -> str:
        return f"{self.splits}/{dataset}.json"

    # --- runs ------------------------------------------------------------------------
    def run_dir(self, dataset: str, model: str, seed: int | str) -> str:
        return f"{self.runs}/{dataset}/{model}/seed{seed}"

    def run_file(self, dataset: str, model: str, seed: int | str, key: str) -> str:
        name = RUN_FILES[key]
        return f"{self.run_dir(dataset, model, seed)}/{name}"

    def train_files(self) -> dict[str, str]:
        """What a training job writes into each seed's folder (train.json, written last, marks it complete)."""
        return {**TRAIN_FILES, **(STUDY_TRAIN_FILES if self.study else {})}

    def resume_file(self, dataset: str, model: str, seed: int | str) -> str:
        return f"{self.run_dir(dataset, model, seed)}/{RESUME_FILE}"

    def run(self, run: Run) -> RunFiles:
        """`run`'s folder and files in this layout."""
        return RunFiles(run, self)

    def train_outputs(self, dataset: str, model: str, seeds: list[int]) -> dict[str, list[str]]:
        return {key: [self.run_file(dataset, model, s, key) for s in seeds] for key in self.train_files()}

    # --- reports ---------------------------------------------------------------------
    def report_file(self, name: str) -> str:
        return f"{self.reports}/{name}"

    def for_protocol(self, protocol: str) -> Layout:
        """The optimism study's layout under `protocol` (its own splits and runs folders)."""
        return replace(self, splits=study_folder(self.splits, protocol), runs=study_folder(self.runs, protocol),
                       study=True)

    def report_outputs(self, models: list[str], study: bool = False) -> dict[str, str]:
        """Every file `asym report` writes, by name (`study`: the optimism study is on)."""
        out = {f"{t}_{fmt}": self.report_file(f"{t}.{fmt}") for t in report_tables(models, study)
               for fmt in TABLE_FORMATS}
        out.update({k: self.report_file(v) for k, v in {**AGGREGATES, **PLOTS}.items()})
        out.update(self.model_cards(models))
        return out

    def model_card(self, dataset: str, model: str) -> str:
        return self.report_file(f"{MODEL_CARDS}/{dataset}-{model}.md")

    def model_cards(self, models: list[str]) -> dict[str, str]:
        """One model card per (dataset, model), keyed by a name Snakemake accepts as an output's."""
        return {f"model_card_{d}_{m}".replace("-", "_"): self.model_card(d, m) for d in self.datasets for m in models}

    def tracking_record(self) -> str:
        return self.report_file(TRACKING_RECORD)

    def log(self, *parts: str) -> str:
        return "/".join([self.logs, *parts]) + ".log"


# --- what each stage depends on ---------------------------------------------------------------
def stage_params(params: Params, stage: str, dataset: str | None = None, model: str | None = None,
                 protocol: str | None = None) -> list[str]:
    """The dotted params.yaml keys a stage reads: editing any other key never reruns it. With
    `protocol`, the optimism study's split and train stages: its seeds instead of the run's."""
    scale = params.scale
    if protocol is not None and stage == "train":
        return [k if k != f"run.seeds.{scale}" else f"optimism.seeds.{scale}"
                for k in stage_params(params, stage, dataset, model)]
    if protocol is not None and stage == "split":
        return ["scale", f"datasets.{dataset}.format", "split"]
    if stage == "fetch":
        fmt = params.dataset(dataset).format
        return [f"datasets.{dataset}", "synth.seed", f"synth.{fmt}"]
    if stage == "convert":
        fmt = params.dataset(dataset).format
        return [f"datasets.{dataset}", *([f"readers.{fmt}"] if hasattr(params.readers, fmt) else [])]
    if stage == "split":
        return ["scale", f"datasets.{dataset}", "split"]
    if stage == "train":
        entry = registry.get(model)
        return ["scale", f"model.{scale}.{entry.family}", f"recipes.{scale}.{entry.recipe}", "train",
                f"run.seeds.{scale}"]
    if stage == "evaluate":
        return []
    if stage == "report":
        return ["scale", "run", "report", *(["optimism"] if params.study_models else [])]
    if stage == "track":
        return ["mlflow"]
    raise ValueError(f"unknown stage {stage!r}")


# The registry file is left out of the code a training stage depends on: an entry's own
# content reaches the stage through its digest in the command line (see `asym dvc-yaml`), so
# adding a model does not rerun every other one.
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
    """The package files a stage runs (repository-relative), by a static walk of asym imports."""
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


def stage_data_deps(params: Params, stage: str, dataset: str | None = None, absolute: bool = False) -> list[str]:
    """Files besides the DAG's own that a stage reads: a user's subjects or split CSV, and the
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
