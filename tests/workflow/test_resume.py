"""A real run killed with SIGKILL mid-training resumes with the documented command (`make run`)
and ends as if never interrupted: same tables, one FINISHED MLflow run per job, none RUNNING,
no temporary file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.project import ROOT
from tests.workflow.conftest import BIN, ENV

pytestmark = [pytest.mark.resume, pytest.mark.slow, pytest.mark.xdist_group("workflow")]
TIMING = ("epoch_time_s",)


def _make_run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "run", f"VENV={BIN.parent}", "CORES=2"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=900)


def test_kill_9_mid_training_then_make_run_resumes_cleanly(data_stages, snakemake_project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    shutil.copy(ROOT / "Makefile", root / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    os.utime(root / "pyproject.toml", (0, 0))           # older than the venv's install stamp: nothing to install
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
    assert sorted(names) == sorted([*jobs, "report"])
    assert all(r.info.status == "FINISHED" for r in runs)
    # no temporary file anywhere in the outputs
    assert not [p for d in ("runs", "reports", "data") for p in (root / d).rglob("*.tmp")]
