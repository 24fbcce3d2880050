"""What the rules of workflow/rules/ read of the stage table and one params file.

Each rule is written out by name in workflow/rules/<step>.smk and names its stage of the table
(asym.dag.stages) in every directive that depends on params.yaml: `S.inputs("train")`,
`S.outputs("train", "{dataset}", "{model}")`. A rule writes its own wildcards where its outputs
and log are, and they are checked against its row here, when the DAG is built. Inputs are input
functions of the job's wildcards (a stage's code and data dependencies differ from one model or
dataset to another); outputs are the layout's patterns (`{dataset}`). A training rule's wildcards
end with `S.seed("train")`: `"{seed}"` under `train.job: per_seed` (a job per seed), nothing
otherwise; its name, threads and resources are the same either way. A rule passes its command's
arguments through `params:` (`args`, which end with the digest of the code it runs: see
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
from asym.dag import stages
from asym.dag.stages import SEED, Stage
from asym.data.protocols import GENDER_PROTOCOLS, OPTIMISM_PROTOCOLS
from asym.grid import seed_folder
from asym.layout import PACKAGE, PLOTS, Layout, model_card_key, page_key, report_tables
from asym.models import registry
from asym.train import gpu_memory

REPOSITORY = PACKAGE.parent
CAPTIONS = REPOSITORY / "workflow" / "report"       # `snakemake --report`'s caption of each table and figure


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
                "fairness": "Subgroups", "protocol_optimism": "Protocols", "cross_gender": "Subgroups"}
PLOT_TOPICS = {"metrics_plot": "Metrics", "confusion_plot": "Metrics", "reliability_plot": "Calibration",
               "published_plot": "Comparisons"}
# Each table's files for a paper or a README, under "Data" by format; the aggregates beside them.
DOWNLOADS = {"md": "Markdown", "csv": "CSV", "tex": "LaTeX"}
AGGREGATES_SHOWN = {"summary_csv": "summary", "runs_csv": "runs"}
MODEL_CARD_CAPTION = "model_card"
# The studies run beside the report (asym robustness, cost, cost-plot, explain): each table as the
# report's are, its figures under their topic. An explanation's bar chart is shown per dataset,
# labelled by its run (the rule's wildcards).
STUDY_TABLES = {"robustness": "Robustness", "cost": "Cost"}
EXPLANATIONS = "Explanations"


def study_entries(datasets: list[str]) -> dict[str, Shown]:
    """The outputs of the robustness, cost and explain steps that `snakemake --report` shows, by
    output name (no report output has one of these names)."""
    shown = {}
    for table, topic in STUDY_TABLES.items():
        shown[f"{table}_html"] = Shown(table, TABLES, topic)
        shown.update({f"{table}_{fmt}": Shown(table, DATA, label) for fmt, label in DOWNLOADS.items()})
    shown.update({f"robustness_{d}_png": Shown("robustness_plot", FIGURES, "Robustness", {"dataset": d})
                  for d in datasets})
    shown["cost_png"] = Shown("cost_plot", FIGURES, "Cost")
    shown["groups_png"] = Shown("explain", FIGURES, EXPLANATIONS,
                                {"dataset": "{dataset}", "model": "{model}", "seed": "{seed}"})
    return shown


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


def report_entries(models: list[str], datasets: list[str], optimism: bool, cross_gender: bool = False) -> dict[str, Shown]:
    """The report step's outputs that `snakemake --report` shows, by output name: each table as
    its HTML page (Markdown is only offered for download there), every figure, the model cards by
    dataset, and each table's Markdown, CSV and LaTeX with the aggregates as data files."""
    shown = {}
    for table in report_tables(models, optimism, cross_gender):
        shown[f"{table}_html"] = Shown(table, TABLES, TABLE_TOPICS[table])
        shown.update({f"{table}_{fmt}": Shown(table, DATA, label) for fmt, label in DOWNLOADS.items()})
    shown.update({key: Shown(key.removesuffix("_plot"), FIGURES, PLOT_TOPICS[key]) for key in PLOTS})
    shown.update({key: Shown(caption, DATA, "Aggregates") for key, caption in AGGREGATES_SHOWN.items()})
    shown.update({page_key(model_card_key(d, m)): Shown(MODEL_CARD_CAPTION, MODEL_CARDS, d, {"model": m})
                  for d in datasets for m in models})
    return shown


class Rules:
    """The rules of one params file (`S` in workflow/rules/)."""

    protocols = _alternatives(list(OPTIMISM_PROTOCOLS))    # the optimism study's rules' `protocol`
    gender_protocols = _alternatives(list(GENDER_PROTOCOLS))    # the cross-gender study's rules' `protocol`

    def __init__(self, params_file: str, conda: bool = False) -> None:
        self.params_file = params_file
        self.P = load_params(params_file)
        self.L = Layout.from_cwd(self.P)
        self.conda = conda
        # Whether training jobs will hold a GPU (without importing torch into the DAG's start-up).
        device = self.P.train.device
        self.uses_gpu = device == "cuda" or (device == "auto" and shutil.which("nvidia-smi") is not None)

    # --- the whole DAG -------------------------------------------------------------------------
    def constraints(self) -> dict[str, str]:
        return {"dataset": _alternatives(self.P.datasets), "model": _alternatives(registry.names()), SEED: r"\d+"}

    @property
    def gpu_slots(self) -> int:
        """A training job's share of the GPU: one slot where training runs on a GPU (the gpu profile
        shares a GPU among several jobs), none otherwise."""
        return 1 if self.uses_gpu else 0

    @property
    def gpu_mem_mb(self) -> Callable[[Any], int]:
        """A training job's GPU memory in MB, a function of its `dataset` and `model` wildcards
        (asym.train.gpu_memory: the GPU check's measured peak, else the documented estimate); 0
        where training holds no GPU. The gpu profile declares the card's memory, so the jobs that
        share a GPU fit it (SLURM has no request for a GPU's memory: its profile asks for a whole GPU)."""
        return gpu_memory.resource(self.P, self.uses_gpu)

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

    # --- one rule, by its name -------------------------------------------------------------------
    def stage(self, rule: str, wildcards: tuple[str, ...] | None = None) -> Stage:
        """The rule's row of the stage table; `wildcards`, as the rule writes them, must be its jobs'
        (the row's, and `{seed}` for a job per seed)."""
        if rule not in stages.BY_NAME:
            raise ValueError(f"rule {rule}: the stage table has no such stage ({', '.join(stages.BY_NAME)})")
        stage = stages.get(rule)
        expected = stage.job_wildcards(self.P)
        if wildcards is not None and list(wildcards) != ["{" + k + "}" for k in expected]:
            said = ", ".join(f'"{{{k}}}"' for k in expected) or "none"
            raise ValueError(f"rule {rule}: its stage's wildcards are {said}, not {', '.join(wildcards) or 'none'}")
        return stage

    def seed(self, rule: str) -> tuple[str, ...]:
        """The training rule's last wildcard: `("{seed}",)` for a job per seed (`train.job: per_seed`), else none."""
        return ("{" + SEED + "}",) if self.stage(rule).per_seed(self.P) else ()

    def message(self, rule: str, text: str) -> str:
        """A training job's message: `text` and its seeds (`{wildcards.seed}` for a job per seed)."""
        stage = self.stage(rule)
        if stage.per_seed(self.P):
            return f"{text}, seed {{wildcards.{SEED}}}"
        assert stage.seeds is not None
        return f"{text}, seeds {stage.seeds(self.P)}"

    def inputs(self, rule: str) -> Callable[[Any], dict[str, list[str]]]:
        """The job's inputs by name, with the data it reads besides the DAG's. Its code is no input
        file: its digest is in the command (`args`), see asym.dag.code."""
        stage = self.stage(rule)

        def get(wildcards: Any) -> dict[str, list[str]]:
            w = dict(wildcards.items())
            return {**stage.inputs(self.P, self.L, w), "data_deps": [_here(f) for f in stage.data(self.P, w, True)]}
        return get

    def outputs(self, rule: str, *wildcards: str) -> dict[str, Any]:
        """The job's outputs by name, as patterns of its wildcards: folders marked as such, and the
        report's tables and figures with their place in `snakemake --report`."""
        stage = self.stage(rule, wildcards)
        out: dict[str, Any] = {}
        shown = {**report_entries(self.P.models, self.P.datasets, bool(self.P.optimism_models),
                                  bool(self.P.cross_gender_datasets)),
                 **study_entries(self.P.datasets)} if stage.captioned else {}
        for name, files in stage.outputs(self.P, self.L, {k: "{" + k + "}" for k in stage.job_wildcards(self.P)}).items():
            if name in stage.directories:
                out[name] = [directory(f) for f in files]
            elif name in shown:
                out[name] = [shown[name].mark(f) for f in files]
            else:
                out[name] = files
        return out

    def all_outputs(self, rule: str) -> list[str]:
        """Every job's outputs of the rule, as files (what `rule all` asks for of a stage no later
        rule reads all of)."""
        stage = self.stage(rule)
        return [f for w in stage.instances(self.P) for files in stage.outputs(self.P, self.L, w).values() for f in files]

    def log(self, rule: str, *wildcards: str) -> str:
        """logs/<step>/<its wildcards' values>.log (a per-seed job's last part its seed's folder: `seed0.log`)."""
        parts = [seed_folder(w) if w == "{" + SEED + "}" else w for w in wildcards]
        return self.L.log(self.stage(rule, wildcards).step, *parts)

    def command(self, rule: str) -> Callable[[Any], str]:
        """The arguments of the job's `asym` command, its code's digest last."""
        stage = self.stage(rule)

        def args(wildcards: Any) -> str:
            return shlex.join(stage.command(self.P, dict(wildcards.items())))
        return args

    def settings(self, rule: str) -> Callable[[Any], str]:
        """The job's slice of params.yaml: the values of the keys its step reads."""
        stage = self.stage(rule)

        def settings(wildcards: Any) -> str:
            keys = stage.reads(self.P, dict(wildcards.items()))
            return json.dumps({k: self.P.slice(k) for k in keys}, sort_keys=True)
        return settings


def params_file(config: dict[str, Any]) -> str:
    """`--config params=<file>`, else params.yaml (relative paths are the working directory's)."""
    return os.fspath(config.get("params", DEFAULT_PARAMS))


def conda_enabled(workflow: Any) -> bool:
    """Whether Snakemake runs the rules in their conda environment."""
    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
