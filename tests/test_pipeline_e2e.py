"""The whole DAG with the real tools: Snakemake, DVC and the MLflow UI server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from asym.evaluate import majority_baseline
from tests.project import make_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true",
       "GIT_AUTHOR_NAME": "asym-test", "GIT_AUTHOR_EMAIL": "test@localhost",
       "GIT_COMMITTER_NAME": "asym-test", "GIT_COMMITTER_EMAIL": "test@localhost"}


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def snakemake_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("snake"), ["mean-mlp", "bilstm"], [0, 1], epochs=8)
    run([str(BIN / "snakemake"), "--cores", "2", "all"], root)
    return root


def test_snakemake_produces_tables_plots_and_learns_the_signal(snakemake_project):
    root = snakemake_project
    for name in ("results.md", "results.csv", "results.tex", "comparison.md", "summary.json", "metrics.png",
                 "confusion_matrices.png"):
        assert (root / "reports" / name).stat().st_size > 0, name
    summary = pd.read_csv(root / "reports" / "summary.csv")
    assert set(summary["dataset"]) == {"dvlog", "lmvd", "macro-avg"}
    assert "\\begin{tabular}" in (root / "reports" / "results.tex").read_text()
    for ds in ("dvlog", "lmvd"):
        split = pd.read_csv(root / "data" / "splits" / f"{ds}.csv", dtype={"sample_id": str})
        train, test = split[split["fold"] == "train"], split[split["fold"] == "test"]
        floor = majority_baseline(train["label"].to_numpy(), test["label"].to_numpy())
        best = summary[summary["dataset"] == ds].sort_values("f1").iloc[-1]
        assert best["f1"] > floor["f1"] + 0.05, f"{ds}: F1 {best['f1']:.3f} vs majority {floor['f1']:.3f}"
        assert best["accuracy"] > floor["accuracy"] + 0.1, f"{ds}: acc {best['accuracy']:.3f} vs {floor['accuracy']:.3f}"
    lmvd_split = json.loads((root / "data" / "splits" / "lmvd.json").read_text())
    assert lmvd_split["subject_independent_verified"]
    assert "could not be verified" in (root / "reports" / "results.md").read_text()   # D-Vlog has no subject ids


def test_rerun_resumes_and_redoes_only_what_is_missing(snakemake_project):
    root = snakemake_project
    dry = run([str(BIN / "snakemake"), "--cores", "2", "all", "-n"], root)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert "profile profiles/default" in dry.stdout + dry.stderr     # rerun-incomplete etc. apply
    # An interrupted run: one evaluation and the report never finished (outputs are atomic, so a
    # killed job leaves no file behind, only a missing one).
    (root / "runs" / "lmvd" / "bilstm" / "seed1" / "metrics.json").unlink()
    (root / "reports" / "summary.json").unlink()
    dry = run([str(BIN / "snakemake"), "--cores", "2", "all", "-n"], root)
    jobs = _job_counts(dry.stdout + dry.stderr)
    assert jobs == {"evaluate": 1, "report": 1, "all": 1}, jobs


def _job_counts(text: str) -> dict[str, int]:
    """Parse Snakemake's "Job stats" table of a dry run."""
    lines = text.split("Job stats:")[-1].splitlines()
    counts = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_mlflow_ui_serves_every_run_with_its_metrics(snakemake_project):
    root = snakemake_project
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
        names = [r["info"]["run_name"] for r in runs]
        expected = {f"{d}/{m}/seed{s}" for d in ("dvlog", "lmvd") for m in ("mean-mlp", "bilstm") for s in (0, 1)}
        assert expected <= set(names) and "report" in names
        train_run = next(r for r in runs if r["info"]["run_name"] == "dvlog/bilstm/seed0")
        metrics = {m["key"]: m["value"] for m in train_run["data"]["metrics"]}
        assert {"test_f1", "test_accuracy", "valid_f1", "train_loss"} <= set(metrics)
        history = _api(base, f"/metrics/get-history?run_id={train_run['info']['run_id']}&metric_key=valid_f1")["metrics"]
        assert sorted(m["step"] for m in history) == list(range(1, 9))
        local = json.loads((root / "runs" / "dvlog" / "bilstm" / "seed0" / "metrics.json").read_text())
        assert metrics["test_f1"] == pytest.approx(local["test"]["f1"])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_dvc_repro_regenerates_the_tables(tmp_path):
    root = make_project(tmp_path / "dvc", ["mean-mlp"], [0], epochs=3,
                        synth={"dvlog": {"n_samples": 60}, "lmvd": {"n_samples": 40, "n_subjects": 30}})
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    run([sys.executable, "-m", "asym", "dvc-yaml"], root)
    out = run([str(BIN / "dvc"), "repro"], root).stdout
    assert "Running stage 'train@dvlog-mean-mlp-0'" in out or "train@" in out
    assert (root / "reports" / "comparison.md").is_file() and (root / "dvc.lock").is_file()
    metrics = run([str(BIN / "dvc"), "metrics", "show", "--json"], root).stdout
    assert "dvlog/mean-mlp/f1" in metrics
    status = run([str(BIN / "dvc"), "status"], root).stdout
    assert "up to date" in status.lower() or status.strip() == ""
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["demo"]["lr"] = 0.01
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    diff = run([str(BIN / "dvc"), "params", "diff"], root).stdout
    assert "train.demo.lr" in diff
    status = run([str(BIN / "dvc"), "status"], root).stdout
    assert "train@" in status and "fetch@" not in status
