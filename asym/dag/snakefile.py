"""The stage table as Snakemake rules: what workflow/rules/stages.smk reads, one rule per stage.

Every value a rule needs is computed here, so the .smk files hold directives only. Inputs are
input functions of the job's wildcards (a stage's code and data dependencies differ from one model
or dataset to another); outputs are the layout's patterns (`{dataset}`). A rule passes its
command's arguments through `params:` (`args`, which end with the digest of the code it runs: see
asym.dag.code), and its slice of params.yaml as `settings`, so that Snakemake reruns a job when,
and only when, its own slice, command or code changes (`params` is one of Snakemake's default
rerun triggers).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake.io import directory, report
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from asym.config import DEFAULT_PARAMS, PARAMS_VARIABLE, load_params
from asym.dag.stages import STAGES, Stage
from asym.data.protocols import STUDY_PROTOCOLS
from asym.layout import PACKAGE, PLOTS, Layout, model_card_key, page_key, report_tables
from asym.models import registry

REPOSITORY = PACKAGE.parent
CAPTIONS = REPOSITORY / "workflow" / "report"       # `snakemake --report`'s caption of each table and figure
CONDA_ENV = "../../environment.yml"     # relative to workflow/rules/; written from the lock by workflow/scripts/conda_env.py


def _here(path: str | os.PathLike) -> str:
    """A path inside the working directory as a relative one (Snakemake keys its records of a job's
    inputs by path, so a project folder can be moved whole), any other as it is."""
    rel = os.path.relpath(path)
    return os.fspath(path) if rel.startswith("..") else rel


def _alternatives(values: list[Any]) -> str:
    return "|".join(re.escape(str(v)) for v in values)


# --- `snakemake --report` ------------------------------------------------------------------------
TABLES, FIGURES, MODEL_CARDS, DATA = "Tables", "Figures", "Model cards", "Data"
# A table's or figure's subcategory: the question it answers, the same words under both.
TABLE_TOPICS = {"results": "Metrics", "comparison": "Comparisons", "ablation": "Comparisons",
                "fairness": "Subgroups", "protocol_optimism": "Protocols"}
PLOT_TOPICS = {"metrics_plot": "Metrics", "confusion_plot": "Metrics", "reliability_plot": "Calibration",
               "published_plot": "Comparisons"}
# Each table's files for a paper or a README, under "Data" by format; the aggregates beside them.
DOWNLOADS = {"md": "Markdown", "csv": "CSV", "tex": "LaTeX"}
AGGREGATES_SHOWN = {"summary_csv": "summary", "runs_csv": "runs"}
MODEL_CARD_CAPTION = "model_card"


@dataclass(frozen=True)
class Shown:
    """Where an output sits in `snakemake --report`: its caption (workflow/report/<caption>.rst),
    category, subcategory, and the labels its row shows in place of the file name."""

    caption: str
    category: str
    subcategory: str
    labels: dict[str, str] | None = None

    def mark(self, path: str) -> Any:
        return report(path, caption=str(CAPTIONS / f"{self.caption}.rst"), category=self.category,
                      subcategory=self.subcategory, labels=self.labels)


def report_entries(models: list[str], datasets: list[str], study: bool) -> dict[str, Shown]:
    """The report step's outputs that `snakemake --report` shows, by output name: each table as
    its HTML page (Markdown is only offered for download there), every figure, the model cards by
    dataset, and each table's Markdown, CSV and LaTeX with the aggregates as data files."""
    shown = {}
    for table in report_tables(models, study):
        shown[f"{table}_html"] = Shown(table, TABLES, TABLE_TOPICS[table])
        shown.update({f"{table}_{fmt}": Shown(table, DATA, label) for fmt, label in DOWNLOADS.items()})
    shown.update({key: Shown(key.removesuffix("_plot"), FIGURES, PLOT_TOPICS[key]) for key in PLOTS})
    shown.update({key: Shown(caption, DATA, "Aggregates") for key, caption in AGGREGATES_SHOWN.items()})
    shown.update({page_key(model_card_key(d, m)): Shown(MODEL_CARD_CAPTION, MODEL_CARDS, d, {"model": m})
                  for d in datasets for m in models})
    return shown


class Rules:
    """The rules of one params file."""

    def __init__(self, params_file: str, conda: bool = False) -> None:
        self.params_file = params_file
        self.P = load_params(params_file)
        self.L = Layout.from_cwd(self.P)
        self.conda = conda
        self.stages: tuple[Stage, ...] = STAGES
        # Whether training jobs will hold a GPU (without importing torch into the DAG's start-up).
        device = self.P.train.device
        self.uses_gpu = device == "cuda" or (device == "auto" and shutil.which("nvidia-smi") is not None)

    # --- the whole DAG -------------------------------------------------------------------------
    def constraints(self) -> dict[str, str]:
        return {"dataset": _alternatives(self.P.datasets), "model": _alternatives(registry.names())}

    @property
    def shell_prefix(self) -> str:
        """What every rule's shell starts with: the params file, and the Python that runs asym (this
        venv's, or under `--software-deployment-method conda` the environment's, running asym from
        this checkout: Snakemake clears PYTHONPATH there). Neither is a rule's param, so another
        venv, or another name for the same params file, reruns nothing."""
        where = (f"PYTHONPATH={shlex.quote(str(REPOSITORY))}" if self.conda
                 else f"PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH")
        return f"set -euo pipefail; export {PARAMS_VARIABLE}={shlex.quote(self.params_file)} {where}; "

    @property
    def snakemake_prefix(self) -> str:
        """`shell_prefix` as `shell.prefix` takes it: Snakemake formats it like a command."""
        return self.shell_prefix.replace("{", "{{").replace("}", "}}")

    # --- one rule ------------------------------------------------------------------------------
    @staticmethod
    def _patterns(stage: Stage) -> dict[str, str]:
        return {k: "{" + k + "}" for k in stage.wildcards}

    def inputs(self, stage: Stage) -> Callable[[Any], dict[str, list[str]]]:
        """The job's inputs by name, with the data it reads besides the DAG's. Its code is no input
        file: its digest is in the command (`args`), see asym.dag.code."""
        def get(wildcards: Any) -> dict[str, list[str]]:
            w = dict(wildcards.items())
            return {**stage.inputs(self.P, self.L, w), "data_deps": [_here(f) for f in stage.data(self.P, w, True)]}
        return get

    def outputs(self, stage: Stage) -> dict[str, Any]:
        out: dict[str, Any] = {}
        shown = report_entries(self.P.models, self.P.datasets, bool(self.P.study_models)) if stage.captioned else {}
        for name, files in stage.outputs(self.P, self.L, self._patterns(stage)).items():
            if name in stage.directories:
                out[name] = [directory(f) for f in files]
            elif name in shown:
                out[name] = [shown[name].mark(f) for f in files]
            else:
                out[name] = files
        return out

    def params(self, stage: Stage) -> dict[str, Any]:
        def args(wildcards: Any) -> str:
            return shlex.join(stage.command(self.P, dict(wildcards.items())))

        def settings(wildcards: Any) -> str:
            keys = stage.reads(self.P, dict(wildcards.items()))
            return json.dumps({k: self.P.slice(k) for k in keys}, sort_keys=True)

        return {"args": args, "settings": settings}

    def log(self, stage: Stage) -> str:
        return stage.log(self.L, self._patterns(stage))

    def threads(self, stage: Stage) -> int:
        return self.P.train.threads if stage.trains else 1

    def resources(self, stage: Stage) -> dict[str, int]:
        """One slot of the GPU per training job: the gpu profile shares a GPU among several jobs."""
        return {"gpu_slots": 1 if stage.trains and self.uses_gpu else 0}

    def wildcard_constraints(self, stage: Stage) -> dict[str, str]:
        return {"protocol": _alternatives(list(STUDY_PROTOCOLS))} if "protocol" in stage.wildcards else {}

    def message(self, stage: Stage) -> str:
        return stage.message_for(self.P).format(**{k: "{wildcards." + k + "}" for k in stage.wildcards})


def params_file(config: dict[str, Any]) -> str:
    """`--config params=<file>`, else params.yaml (relative paths are the working directory's)."""
    return os.fspath(config.get("params", DEFAULT_PARAMS))


def conda_enabled(workflow: Any) -> bool:
    """Whether Snakemake runs the rules in their conda environment."""
    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
