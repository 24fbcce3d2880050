"""A real run killed with SIGKILL mid-training resumes with the documented command (`make run`)
and ends as if never interrupted: same tables, one FINISHED MLflow run per job, none RUNNING,
no temporary file. A training job killed inside its second seed goes on there, from the seed's
resume.pt, when Snakemake or DVC reruns it: the first seed, whose files they delete, is written
again without training, and both end bit-identical to the uninterrupted run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.project import ROOT, make_project
from tests.workflow.conftest import BIN, ENV, TINY, copy_data_stages, job_counts, run, snakemake

pytestmark = [pytest.mark.resume, pytest.mark.slow, pytest.mark.xdist_group("resume")]
TIMING = ("epoch_time_s",)


def _make_run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "run", f"VENV={BIN.parent}", "CORES=2"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=900)


def test_kill_9_mid_training_then_make_run_resumes_cleanly(data_stages, snakemake_project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    shutil.copy(ROOT / "Makefile", root / "Makefile")
    for name in ("pyproject.toml", "requirements.lock", "requirements-cuda.lock"):
        shutil.copy(ROOT / name, root / name)
        os.utime(root / name, (0, 0))                   # older than the venv's install stamp: nothing to install
    (root / "workflow" / "scripts").mkdir(exist_ok=True)
    shutil.copy(ROOT / "workflow" / "scripts" / "stale_lock.py", root / "workflow" / "scripts" / "stale_lock.py")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["mlflow"]["live"] = True                        # the killed jobs leave unfinished MLflow runs behind
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "snakemake"), "--cores", "2", "all"], cwd=root, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first_done = root / "runs"
    deadline = time.time() + 300
    while not list(first_done.rglob("train.json")):     # one seed finished, others in flight
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_after = time.perf_counter() - t0
    assert any((root / ".snakemake" / "locks").iterdir()), "the kill should leave Snakemake's lock behind"

    t1 = time.perf_counter()
    rerun = _make_run(root)
    resumed_in = time.perf_counter() - t1
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "unlocking" in rerun.stdout and "MLflow UI:" in rerun.stdout
    print(f"killed after {killed_after:.1f} s; make run resumed and finished in {resumed_in:.1f} s")

    # the same tables as the uninterrupted run, timing columns aside
    for name in ("summary.csv", "runs.csv"):
        got = pd.read_csv(root / "reports" / name).drop(columns=list(TIMING), errors="ignore")
        want = pd.read_csv(snakemake_project / "reports" / name).drop(columns=list(TIMING), errors="ignore")
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)
    for name in ("ablation.csv", "comparison.csv", "fairness.csv"):
        if (want_file := snakemake_project / "reports" / name).exists():
            pd.testing.assert_frame_equal(pd.read_csv(root / "reports" / name).drop(columns=list(TIMING), errors="ignore"),
                                          pd.read_csv(want_file).drop(columns=list(TIMING), errors="ignore"))
    # one FINISHED run per job, nothing RUNNING
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("asym")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    names = [r.info.run_name for r in runs]
    params = yaml.safe_load((root / "params.yaml").read_text())
    jobs = [f"{d}/{m}/seed{s}" for d in params["run"]["datasets"] for m in params["run"]["models"]
            for s in params["run"]["seeds"]["demo"]]
    assert sorted(names) == sorted([*jobs, "report", "robustness", "cost"])     # and the studies of the report
    assert all(r.info.status == "FINISHED" for r in runs)
    # no temporary file anywhere in the outputs
    assert not [p for d in ("runs", "reports", "data") for p in (root / d).rglob("*.tmp")]


# --- a job killed inside a seed ------------------------------------------------------------------
JOB = ("dvlog", "bilstm")
RESUME = "runs/dvlog/bilstm/seed1/resume.pt"            # the job's second seed
KILL_FROM_EPOCH = 2


def _saved_epoch(path: Path) -> int:
    try:
        current = torch.load(path, weights_only=True)["current"]
    except FileNotFoundError:
        return 0
    return TINY["epochs"] if current is None else int(current["epoch"])    # None: the seed is complete


def _kill_inside_the_seed(cmd: list[str], root: Path) -> int:
    """Run `cmd`; SIGKILL its whole process group once seed 1 has saved an epoch >= 2 (read as a
    rerun reads it); return the epoch its resume.pt then holds."""
    proc = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while _saved_epoch(root / RESUME) < KILL_FROM_EPOCH:
            assert proc.poll() is None and time.time() < deadline, "the job ended before it could be killed"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    epoch = _saved_epoch(root / RESUME)
    assert not (root / RESUME).with_name("train.json").exists() and epoch < TINY["epochs"], "killed too late"
    return epoch


def _said(text: str, epoch: int) -> None:
    """The rerun's log: seed 0 rebuilt from its resume.pt, seed 1 resumed inside its epochs."""
    label = f"{JOB[0]}/{JOB[1]}"
    assert f"{label}/seed0: complete before the kill: its files are written again from " in text, text[-2000:]
    assert f"{label}/seed1: resumed after epoch {epoch}/{TINY['epochs']} from " in text, text[-2000:]


def _same_as_uninterrupted(root: Path, reference: Path) -> None:
    dataset, model = JOB
    for seed in TINY["seeds"]:
        got, want = (r / "runs" / dataset / model / f"seed{seed}" for r in (root, reference))
        pd.testing.assert_frame_equal(pd.read_parquet(got / "predictions.parquet"),
                                      pd.read_parquet(want / "predictions.parquet"), check_exact=True)
        pd.testing.assert_frame_equal(pd.read_csv(got / "history.csv").drop(columns=list(TIMING)),
                                      pd.read_csv(want / "history.csv").drop(columns=list(TIMING)), check_exact=True)
        a, b = (torch.load(d / "checkpoint.pt", weights_only=True)["partitions"][0]["state_dict"] for d in (got, want))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert not (got / "resume.pt").exists() and not list(got.glob(".*.tmp"))


def test_snakemake_reruns_a_job_killed_inside_a_seed_from_its_last_epoch(data_stages, snakemake_project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    target = f"runs/{JOB[0]}/{JOB[1]}/seed0/train.json"          # the job of both seeds
    epoch = _kill_inside_the_seed([str(BIN / "snakemake"), "--cores", "1", target], root)
    snakemake(root, "--unlock")
    snakemake(root, target)                                        # rerun-incomplete: the default profile
    _said((root / "logs" / "train" / f"{JOB[0]}" / f"{JOB[1]}.log").read_text(), epoch)
    _same_as_uninterrupted(root, snakemake_project)


def test_dvc_repro_of_a_stage_killed_inside_a_seed_goes_on_from_its_last_epoch(data_stages, snakemake_project,
                                                                               tmp_path):
    root = make_project(tmp_path / "p", **TINY, dvc=True)
    copy_data_stages(data_stages, root)
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")
    run([sys.executable, "-m", "asym", "dvc-yaml"], root)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        run(cmd, root)
    repro = [str(BIN / "dvc"), "repro", "-s", f"train-{JOB[0]}-{JOB[1]}"]
    epoch = _kill_inside_the_seed(repro, root)
    _said(run(repro, root).stdout, epoch)                          # DVC removes the stage's outs first
    _same_as_uninterrupted(root, snakemake_project)


def test_per_seed_jobs_resume_a_killed_seed_and_end_with_the_per_model_runs_tables(data_stages, snakemake_project,
                                                                                    tmp_path):
    """Under `train.job: per_seed` Snakemake trains each seed in a job of its own: one killed inside
    its epochs goes on from its resume.pt, and the whole run ends with the per-model run's files and
    tables, and one FINISHED MLflow run per seed (each logged live by its own job)."""
    root = tmp_path / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["job"]["demo"] = "per_seed"
    raw["mlflow"]["live"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    epoch = _kill_inside_the_seed([str(BIN / "snakemake"), "--cores", "1", RESUME.replace("resume.pt", "train.json")],
                                  root)
    assert not (root / RESUME.replace("seed1", "seed0")).with_name("train.json").exists()   # its own job alone ran
    snakemake(root, "--unlock")
    out = snakemake(root, "all")
    runs = [(d, m, s) for d in raw["run"]["datasets"] for m in TINY["models"] for s in TINY["seeds"]]
    counts = job_counts(out)
    assert counts["train"] == len(runs) and "fetch" not in counts and "split" not in counts, counts
    label = f"{JOB[0]}/{JOB[1]}/seed1"
    log = (root / "logs" / "train" / JOB[0] / JOB[1] / "seed1.log").read_text()
    assert f"{label}: resumed after epoch {epoch}/{TINY['epochs']} from " in log, log[-2000:]
    _same_as_uninterrupted(root, snakemake_project)
    for name in ("summary.csv", "runs.csv", "comparison.csv", "fairness.csv"):
        if name not in ("summary.csv", "runs.csv") and not (snakemake_project / "reports" / name).exists():
            continue
        got, want = (pd.read_csv(r / "reports" / name).drop(columns=list(TIMING), errors="ignore")
                     for r in (root, snakemake_project))
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    logged = client.search_runs([client.get_experiment_by_name("asym").experiment_id], max_results=1000)
    assert sorted(r.info.run_name for r in logged) == sorted([*(f"{d}/{m}/seed{s}" for d, m, s in runs), "report", "robustness",
                                                                  "cost"])
    assert all(r.info.status == "FINISHED" for r in logged)
