"""Where every artefact lives: the one description of the artefact layout, and a Run's files (the
run grid itself, and which folders the optimism study keeps apart, are asym.grid's).

The stage table (asym.dag.stages), and through it both DAGs, and the steps themselves ask this
module for paths, so a file name is spelt once. Path builders take plain strings, so the same call
yields a concrete path (`run_file("dvlog", "asym", 0, ...)`) or a Snakemake pattern (`"{dataset}"`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from asym.grid import Run, optimism_folders, seed_folder
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
OPTIMISM_TRAIN_FILES = {"epochs": "epochs.parquet"}
EVAL_FILES = {"metrics": "metrics.json", "confusion": "confusion.png"}

# reports/: tables (each as Markdown, CSV and LaTeX, and the Markdown as an HTML page), aggregates
# and plots.
TABLE_FORMATS = ("md", "csv", "tex", "html")
# The page of a Markdown table or model card, beside it (asym.report.html): Snakemake's report
# shows HTML inline, and offers Markdown only for download.
PAGE_SUFFIX = ".html"
PLOTS = {"metrics_plot": "metrics.png", "confusion_plot": "confusion_matrices.png",
         "reliability_plot": "reliability.png", "published_plot": "published.png"}
AGGREGATES = {"summary_csv": "summary.csv", "summary_json": "summary.json", "runs_csv": "runs.csv"}
TRACKING_RECORD = "mlflow_runs.json"
MODEL_CARDS = "model_cards"          # reports/model_cards/<dataset>-<model>.md (asym.report.model_card), and its page
# The studies beyond the score table: robustness.* and robustness_<dataset>.png (asym.robustness);
# cost.* and cost.png (asym.report.cost); explain/<dataset>-<model>-seed<k>.* (asym.explain.run).
ROBUSTNESS_TABLE = "robustness"
COST_TABLE, COST_PLOT = "cost", "cost.png"
EXPLAIN_FOLDER = "explain"


def report_tables(models: list[str], optimism: bool = False, cross_gender: bool = False) -> list[str]:
    """The tables a report over `models` writes: the ablation table only when ASYM and at least
    one of its variants are trained, the comparison only when ASYM or a baseline is,
    `protocol_optimism` only when the optimism study is on (`optimism`), and `cross_gender` only
    when the cross-gender study is (`cross_gender`)."""
    kinds = {registry.get(m).kind for m in models}
    tables = ["results"]
    if kinds & {registry.ASYM_KIND, registry.BASELINE_KIND}:
        tables.append("comparison")
    if {registry.ASYM_KIND, registry.ABLATION_KIND} <= kinds:
        tables.append("ablation")
    tables.append("fairness")
    if optimism:
        tables.append("protocol_optimism")
    if cross_gender:
        tables.append("cross_gender")
    return tables


def robustness_plot(dataset: str) -> str:
    """The robustness figure of `dataset`, by its name in the reports folder (the table links it)."""
    return f"{ROBUSTNESS_TABLE}_{dataset}.png"


def explain_outputs(reports: str, dataset: str, model: str, seed: int | str) -> dict[str, str]:
    """Every output of `asym explain` for one run, by name (what a workflow step declares): its
    files, and the folder of its timelines (asym.explain.run.timeline_file), as many as
    `explain.timelines` or as the run has test vlogs, whichever is fewer; so the declared outputs
    are exact either way."""
    base = f"{reports}/{EXPLAIN_FOLDER}/{dataset}-{model}-seed{seed}"
    return {"md": f"{base}.md", "csv": f"{base}.csv", "vlogs_csv": f"{base}-vlogs.csv", "json": f"{base}.json",
            "groups_png": f"{base}-groups.png", "timelines": f"{base}-timelines"}


def model_card_key(dataset: str, model: str) -> str:
    """The report output name of `model`'s card on `dataset` (`model_card_dvlog_mean_mlp`)."""
    return f"model_card_{dataset}_{model}".replace("-", "_")


def page_key(key: str) -> str:
    """The output name of the HTML page of the Markdown output `key` (`results_md` -> `results_html`)."""
    return f"{key.removesuffix('_md')}_html"


def page_of(markdown: str) -> str:
    """The HTML page written beside a Markdown file."""
    return str(PurePosixPath(markdown).with_suffix(PAGE_SUFFIX))


KEYS = ("raw", "processed", "splits", "runs", "reports", "logs")
RUN_FILES = {**TRAIN_FILES, **OPTIMISM_TRAIN_FILES, **EVAL_FILES}


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


@dataclass(frozen=True)
class Layout:
    raw: str
    processed: str
    splits: str
    runs: str
    reports: str
    logs: str
    in_optimism: bool = False           # the optimism study's folders (`for_optimism`)

    @classmethod
    def of(cls, params: Params, absolute: bool = True) -> Layout:
        """Absolute paths for the steps; as written in params.yaml for dvc.yaml (which sits
        beside it)."""
        in_optimism = params.in_optimism
        if absolute:
            return cls(**{k: str(params.path_of(k)) for k in KEYS}, in_optimism=in_optimism)
        return cls(**{k: Path(getattr(params.paths, k)).as_posix() for k in KEYS}, in_optimism=in_optimism)

    @classmethod
    def from_cwd(cls, params: Params) -> Layout:
        """Paths relative to the working directory, for Snakemake: its records of a job's params
        and code are keyed by path, so a project folder can be moved or copied whole."""
        return cls(**{k: os.path.relpath(params.path_of(k)) for k in KEYS}, in_optimism=params.in_optimism)

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
        return f"{self.runs}/{dataset}/{model}/{seed_folder(seed)}"

    def run_file(self, dataset: str, model: str, seed: int | str, key: str) -> str:
        name = RUN_FILES[key]
        return f"{self.run_dir(dataset, model, seed)}/{name}"

    def train_files(self) -> dict[str, str]:
        """What a training job writes into each seed's folder (train.json, written last, marks it complete)."""
        return {**TRAIN_FILES, **(OPTIMISM_TRAIN_FILES if self.in_optimism else {})}

    def run(self, run: Run) -> RunFiles:
        """`run`'s folder and files in this layout."""
        return RunFiles(run, self)

    def train_outputs(self, dataset: str, model: str, seeds: Sequence[int | str]) -> dict[str, list[str]]:
        """Every file of `seeds`' folders (a seed may be Snakemake's `{seed}` pattern)."""
        return {key: [self.run_file(dataset, model, s, key) for s in seeds] for key in self.train_files()}

    # --- reports ---------------------------------------------------------------------
    def report_file(self, name: str) -> str:
        return f"{self.reports}/{name}"

    def for_optimism(self, protocol: str) -> Layout:
        """The optimism study's layout under `protocol` (its own folders: asym.grid.optimism_folders)."""
        return replace(self, **optimism_folders({k: getattr(self, k) for k in KEYS}, protocol), in_optimism=True)

    def report_outputs(self, models: list[str], datasets: list[str], optimism: bool = False,
                       cross_gender: bool = False) -> dict[str, str]:
        """Every file `asym report` writes over `models` on `datasets`, by name (`optimism`,
        `cross_gender`: that study is on)."""
        out = {f"{t}_{fmt}": self.report_file(f"{t}.{fmt}") for t in report_tables(models, optimism, cross_gender)
               for fmt in TABLE_FORMATS}
        out.update({k: self.report_file(v) for k, v in {**AGGREGATES, **PLOTS}.items()})
        out.update(self.model_cards(models, datasets))
        return out

    def model_card(self, dataset: str, model: str) -> str:
        return self.report_file(f"{MODEL_CARDS}/{dataset}-{model}.md")

    def model_cards(self, models: list[str], datasets: list[str]) -> dict[str, str]:
        """One model card per (dataset, model) and its HTML page, keyed by names Snakemake accepts
        as an output's."""
        out = {}
        for d in datasets:
            for m in models:
                key, card = model_card_key(d, m), self.model_card(d, m)
                out.update({key: card, page_key(key): page_of(card)})
        return out

    def tracking_record(self) -> str:
        return self.report_file(TRACKING_RECORD)

    def robustness_outputs(self, datasets: Sequence[str]) -> dict[str, str]:
        """The robustness table in each format, and one figure per dataset, by output name."""
        out = {f"{ROBUSTNESS_TABLE}_{fmt}": self.report_file(f"{ROBUSTNESS_TABLE}.{fmt}") for fmt in TABLE_FORMATS}
        out.update({f"{ROBUSTNESS_TABLE}_{d}_png": self.report_file(robustness_plot(d)) for d in datasets})
        return out

    def cost_outputs(self) -> dict[str, str]:
        """The cost table in each format, by output name (`cost_md`, ...)."""
        return {f"{COST_TABLE}_{fmt}": self.report_file(f"{COST_TABLE}.{fmt}") for fmt in TABLE_FORMATS}

    def cost_plot(self) -> str:
        return self.report_file(COST_PLOT)

    def cost_plot_inputs(self) -> dict[str, str]:
        """What the cost figure reads: the cost table's CSV and the main report's summary."""
        return {"cost_csv": self.cost_outputs()[f"{COST_TABLE}_csv"], "summary_csv": self.report_file(AGGREGATES["summary_csv"])}

    def explain_outputs(self, dataset: str, model: str, seed: int | str) -> dict[str, str]:
        return explain_outputs(self.reports, dataset, model, seed)

    def log(self, *parts: str) -> str:
        return "/".join([self.logs, *parts]) + ".log"
