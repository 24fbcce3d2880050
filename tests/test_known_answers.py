"""Known answers: the demos' datasets (workflow/demos/) through the real steps of the pipeline.

Under `synchrony` the label lives only in the coupling of the modalities, so a model of one
modality, or of the temporal mean of both, is at chance by construction, and ASYM is not; under
`null` the labels are independent of the features, so every model is at chance. Each slow test
trains, on seed 0 of the demo's own settings, the models whose answer is known, with the
`asym` command's steps (fetch, convert, split, train, evaluate, report) in a project of its own.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from asym.config import load_params
from asym.errors import ConfigError
from tests.conftest import ROOT

DEMOS = ROOT / "workflow" / "demos"
ONE_MODALITY = ["asym-audio-only", "asym-visual-only"]
AT_CHANCE = [*ONE_MODALITY, "mean-mlp"]          # mean-mlp: the temporal mean of each modality, then an MLP
MODELS = ["asym", *AT_CHANCE]
PATHS = {"raw": "data/raw", "processed": "data/processed", "splits": "data/splits", "runs": "runs",
         "reports": "reports", "logs": "logs"}
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def demo_project(root: Path, demo: str, models: list[str], dataset: str = "dvlog") -> Path:
    """The demo's settings (params.yaml amended by workflow/demos/<demo>.yaml) for `models` on
    seed 0 of one dataset, as a self-contained params file in `root`."""
    raw = copy.deepcopy(load_params(DEMOS / f"{demo}.yaml").raw)
    del raw["extends"]
    raw["paths"] = dict(PATHS)
    raw["datasets"]["lmvd"]["subjects"] = "data/raw/lmvd/subjects.csv"
    raw["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"
    raw["run"].update(models=models, datasets=[dataset])
    raw["run"]["seeds"]["demo"] = [0]
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root / "params.yaml"


def run_steps(params_file: Path, models: list[str], dataset: str = "dvlog") -> Path:
    """fetch -> convert -> split -> train (each model) -> evaluate -> report, as the DAG runs them."""
    asym = [sys.executable, "-m", "asym", "--params", str(params_file)]
    steps = [[step, "--dataset", dataset] for step in ("fetch", "convert", "split")]
    steps += [["train", "--dataset", dataset, "--model", m] for m in models] + [["evaluate"], ["report"]]
    for step in steps:
        proc = subprocess.run(asym + step, cwd=params_file.parent, env=ENV, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"asym {' '.join(step)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return params_file.parent / "reports"


def ablation_rows(md: str, dataset: str) -> dict[str, list[str]]:
    """The cells of each model's row in one dataset's ablation table (Markdown)."""
    section = md.split(f"## {dataset}")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2 and not set(cells[0]) <= set("-: "):
            rows[cells[0].replace("**", "").replace("◀", "").replace("†", "").strip()] = cells
    return rows


def holds_half(row: pd.Series) -> bool:
    return row["balanced_accuracy_ci_low"] <= 0.5 <= row["balanced_accuracy_ci_high"]


@pytest.mark.slow
@pytest.mark.xdist_group("synchrony")
def test_synchrony_only_the_model_of_both_modalities_finds_the_coupling(synchrony_demo):
    reports = synchrony_demo.parent / "reports"
    summary = pd.read_csv(reports / "summary.csv").query("dataset == 'dvlog'").set_index("model")
    assert summary.loc["asym", "balanced_accuracy"] >= 0.70, summary["balanced_accuracy"]
    for model in AT_CHANCE:
        assert holds_half(summary.loc[model]), (model, summary.loc[model, ["balanced_accuracy_ci_low",
                                                                           "balanced_accuracy_ci_high"]])
    rows = ablation_rows((reports / "ablation.md").read_text(), "dvlog")
    header = rows.pop("model")
    hurts = header.index("removal hurts?")
    for model in ONE_MODALITY:
        assert rows[model][hurts] == "yes (significant)", rows[model]
        assert summary.loc[model, "p_vs_asym"] < 0.05 and summary.loc[model, "delta_f1_vs_asym"] < 0
    assert set(rows) == {"asym", *ONE_MODALITY, "majority (floor)", "always-depressed (floor)", "chance (floor)"}


@pytest.mark.slow
def test_null_no_model_beats_chance_and_f1_follows_the_share_called_depressed(tmp_path):
    """No skill anywhere: every balanced accuracy's and AUROC's CI holds 0.5. F1 is not a measure
    of skill: a model guessing "depressed" for a share q of the vlogs scores 2 pi q / (pi + q) in
    expectation (pi: the depressed share), so models at chance differ in F1 as their q differ, and
    the paired test rightly says so; each model's F1 CI holds its own q's value."""
    params_file = demo_project(tmp_path, "null", MODELS)
    reports = run_steps(params_file, MODELS)
    summary = pd.read_csv(reports / "summary.csv").query("dataset == 'dvlog' and kind != 'floor'").set_index("model")
    assert list(summary.index) == MODELS
    runs = tmp_path / "runs" / "dvlog"
    for model in MODELS:
        row = summary.loc[model]
        assert holds_half(row), (model, row[["balanced_accuracy_ci_low", "balanced_accuracy_ci_high"]])
        assert row["auroc_ci_low"] <= 0.5 <= row["auroc_ci_high"], (model, row[["auroc_ci_low", "auroc_ci_high"]])
        test = pd.read_parquet(runs / model / "seed0" / "predictions.parquet").query("fold == 'test'")
        pi, q = test["label"].mean(), test["pred"].mean()
        assert row["f1_ci_low"] <= 2 * pi * q / (pi + q) <= row["f1_ci_high"], (model, q, row["f1"])


# --- the demo files themselves -------------------------------------------------------------------------
@pytest.mark.parametrize("demo", ["synchrony", "null"])
def test_each_demo_amends_params_yaml_and_keeps_to_its_own_folders(demo):
    base, p = load_params(ROOT / "params.yaml"), load_params(DEMOS / f"{demo}.yaml")
    assert p.root == ROOT and p.path == DEMOS / f"{demo}.yaml"
    for key in PATHS:
        own = p.path_of(key).relative_to(ROOT).as_posix()
        assert demo in own.split("/") and own != base.path_of(key).relative_to(ROOT).as_posix(), key
    assert p.resolve(p.dataset("lmvd").subjects).is_relative_to(p.path_of("raw"))
    assert p.mlflow.experiment == f"asym-demo-{demo}" != base.mlflow.experiment   # runs of their own in MLflow
    for ds in ("dvlog", "lmvd"):
        assert getattr(p.synth, ds).mechanism == demo
        assert getattr(p.synth, ds).synchrony == getattr(base.synth, ds).synchrony
    # everything it does not name is params.yaml's
    for key in ("scale", "split", "train", "recipes", "model", "report", "readers"):
        assert p.raw[key] == base.raw[key], key
    assert {"asym", *AT_CHANCE} <= set(p.models)
    assert load_params(DEMOS / "synchrony.yaml").models == load_params(DEMOS / "null.yaml").models


def test_extends_merges_key_by_key_and_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "demo.yaml").write_text(yaml.safe_dump({
        "extends": str(ROOT / "params.yaml"), "paths": {"runs": "elsewhere/runs"},
        "run": {"models": ["mean-mlp"]}, "report": {"alpha": 0.01}}))
    p = load_params(tmp_path / "sub" / "demo.yaml")
    base = load_params(ROOT / "params.yaml")
    assert p.path_of("runs") == ROOT / "elsewhere" / "runs" and p.path_of("raw") == base.path_of("raw")
    assert p.models == ["mean-mlp"] and p.seeds == base.seeds                    # lists replaced, maps merged
    assert p.report.alpha == 0.01 and p.report.bootstrap == base.report.bootstrap
    cases = {
        "missing": ({"extends": "nowhere.yaml"}, "extends: .*nowhere.yaml: params file not found"),
        "not a path": ({"extends": 3}, "extends: expected the path of a params file"),
        "two levels": ({"extends": "sub/demo.yaml"}, "which extends another file: one level only"),
        "a typo": ({"extends": str(ROOT / "params.yaml"), "synth": {"dvlog": {"mechanizm": "null"}}},
                   r"synth\.dvlog\.mechanizm: unknown key"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(content))
        with pytest.raises(ConfigError, match=message):
            load_params(tmp_path / f"{name}.yaml")
