"""The whole DAG with the real tools: Snakemake, its HTML report, and the MLflow UI server."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from asym.dag.dvc_yaml import render
from asym.metrics import always_depressed_floor, majority_floor
from tests.project import REAL_EDIT, edit, edit_comments, own_package
from tests.workflow.conftest import BIN, ENV, job_counts, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("snakemake")]


@pytest.fixture(scope="module")
def project(snakemake_project) -> Path:
    return snakemake_project


def test_tables_plots_and_the_planted_signal_is_learned(project):
    root = project
    for name in ("results.md", "results.csv", "results.tex", "comparison.md", "fairness.md", "summary.json",
                 "metrics.png", "confusion_matrices.png", "reliability.png", "mlflow_runs.json"):
        assert (root / "reports" / name).stat().st_size > 0, name
    summary = pd.read_csv(root / "reports" / "summary.csv")
    assert set(summary["dataset"]) == {"dvlog", "lmvd", "macro-avg"}
    for ds in ("dvlog", "lmvd"):
        split = pd.read_csv(root / "data" / "splits" / f"{ds}.csv", dtype={"sample_id": str})
        # the floor from the split's own labels, independently of the report's floor rows
        y_test = split.loc[split["fold"] == "test", "label"].to_numpy()
        floor = majority_floor(split.loc[split["fold"] == "train", "label"].to_numpy(), y_test)
        f1_floor = always_depressed_floor(y_test)["f1"]           # the depressed-class F1's floor
        part = summary[(summary["dataset"] == ds) & (summary["kind"] != "floor")]
        best = part.sort_values("f1").iloc[-1]
        assert best["f1"] > f1_floor + 0.05, f"{ds}: F1 {best['f1']:.3f} vs always depressed {f1_floor:.3f}"
        assert best["accuracy"] > floor["accuracy"] + 0.1, f"{ds}: acc {best['accuracy']:.3f} vs {floor['accuracy']:.3f}"
        reported = summary[(summary["dataset"] == ds) & (summary["model"] == "majority")].iloc[0]
        assert reported["accuracy"] == pytest.approx(floor["accuracy"])
        trained = summary[(summary["dataset"] == ds) & (summary["kind"] != "floor")]
        assert (trained["f1_ci_low"] <= trained["f1"] + 0.05).all() and trained["p_vs_asym"].isna().all()
    assert json.loads((root / "data" / "splits" / "lmvd.json").read_text())["subject_independent"] == "true"
    assert "could not be verified" in (root / "reports" / "results.md").read_text()   # D-Vlog has no subject ids


def test_every_file_written_is_declared_by_both_dags(project):
    root = project
    written = {p.relative_to(root).as_posix() for d in ("data", "runs", "reports") for p in (root / d).rglob("*")
               if p.is_file() and p.name != ".gitignore"}
    summary = snakemake(root, "all", "--summary").splitlines()
    declared_snake = {os.path.relpath(root / line.split("\t")[0], root) for line in summary[1:] if "\t" in line}
    from asym.config import load_params

    stages = yaml.safe_load(render(load_params(root / "params.yaml")))["stages"]
    declared_dvc = set()
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for item in stage.get(key, []):
                declared_dvc.add(next(iter(item)) if isinstance(item, dict) else item)
    for declared in (declared_snake, declared_dvc):
        dirs = {d for d in declared if (root / d).is_dir()}
        covered = {f for f in written if f in declared or any(f.startswith(d + "/") for d in dirs)}
        assert covered == written, f"written but not declared: {sorted(written - covered)[:10]}"
        files = {d for d in declared if d not in dirs}
        assert files <= written, f"declared but not written: {sorted(files - written)[:10]}"


def test_snakemake_html_report_has_the_tables_and_figures(project):
    root = project
    snakemake(root, "--report", "reports/report.html")
    html = (root / "reports" / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "results.md" in html and "reliability.png" in html
    assert "depressed class" in html                          # a caption


def test_editing_one_models_block_reruns_only_that_models_jobs(project, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(project, root, symlinks=True)
    assert "Nothing to be done" in snakemake(root, "all", "-n")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["model"]["demo"]["bilstm"]["hidden"] = 24
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    jobs = job_counts(snakemake(root, "all", "-n", "--rerun-triggers", "params"))
    # the cost table reads every model's block; the robustness table and the cost figure, the runs and the report
    assert jobs == {"train": 2, "evaluate": 1, "report": 1, "robustness": 1, "cost": 1, "cost_plot": 1, "track": 1,
                    "all": 1}, jobs
    out = snakemake(root, "all", "-n")
    trained = set(re.findall(r"Training (\S+) on (\w+)", out))
    assert trained == {("bilstm", "dvlog"), ("bilstm", "lmvd")}, trained


def test_a_comment_reruns_nothing_and_a_models_code_reruns_only_its_jobs(project, tmp_path):
    """asym.dag.code: the DAG and its jobs import the project's own copy of the package, edited.
    Every default rerun trigger but `input`: the copy moves the report's published-results file
    (asym/reference, an input named by its path), which no edit does."""
    root = tmp_path / "copy"
    shutil.copytree(project, root, symlinks=True)
    own_package(root)
    env = {**ENV, "PYTHONPATH": str(root)}
    dry = ("all", "-n", "--rerun-triggers", "mtime", "params", "software-env", "code")
    edit_comments(root)                          # asym/config.py and bilstm's file
    assert "Nothing to be done" in snakemake(root, *dry, env=env)
    edit(root, *REAL_EDIT)                       # bilstm's forward
    out = snakemake(root, *dry, env=env)
    assert job_counts(out) == {"train": 2, "evaluate": 1, "report": 1, "robustness": 1, "cost": 1, "cost_plot": 1,
                               "track": 1, "all": 1}, out[-3000:]
    assert set(re.findall(r"Training (\S+) on (\w+)", out)) == {("bilstm", "dvlog"), ("bilstm", "lmvd")}


def test_rerun_resumes_and_redoes_only_what_is_missing(project, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(project, root, symlinks=True)
    dry = snakemake(root, "all", "-n")
    assert "Nothing to be done" in dry and "profile profiles/default" in dry
    (root / "runs" / "lmvd" / "bilstm" / "seed1" / "metrics.json").unlink()
    (root / "reports" / "summary.json").unlink()
    assert job_counts(snakemake(root, "all", "-n")) == {"evaluate": 1, "report": 1, "cost_plot": 1, "track": 1, "all": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_mlflow_ui_serves_every_run_once_with_its_metrics(project):
    root = project
    port = _free_port()
    server = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--host", "127.0.0.1", "--port", str(port)], cwd=root, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.time() + 90
        while True:
            try:
                exp = _api(base, "/experiments/get-by-name?experiment_name=asym")["experiment"]
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        runs = _api(base, "/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000})["runs"]
        names = sorted(r["info"]["run_name"] for r in runs)
        expected = sorted([f"{d}/{m}/seed{s}" for d in ("dvlog", "lmvd") for m in ("mean-mlp", "bilstm") for s in (0, 1)]
                          + ["report", "robustness", "cost"])      # no run of explain.models: no explanation
        assert names == expected                                   # each exactly once
        assert all(r["info"]["status"] == "FINISHED" for r in runs)
        train_run = next(r for r in runs if r["info"]["run_name"] == "dvlog/bilstm/seed0")
        metrics = {m["key"]: m["value"] for m in train_run["data"]["metrics"]}
        assert {"test_f1", "test_accuracy", "test_auroc", "valid_f1", "train_loss"} <= set(metrics)
        history = _api(base, f"/metrics/get-history?run_id={train_run['info']['run_id']}&metric_key=valid_f1")["metrics"]
        assert sorted(m["step"] for m in history) == list(range(1, 9))
        local = json.loads((root / "runs" / "dvlog" / "bilstm" / "seed0" / "metrics.json").read_text())
        assert metrics["test_f1"] == pytest.approx(local["test"]["f1"])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
