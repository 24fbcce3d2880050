"""Concurrent writers share one SQLite MLflow store without losing a run or failing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.project import make_project

WRITER = textwrap.dedent("""
    import sys
    from asym.config import load_params
    from asym import tracking
    p = load_params(sys.argv[1])
    for i in range(4):
        tracking.log_run(p, run_name=f"w{sys.argv[2]}-{i}", tags={"writer": sys.argv[2]},
                         run_params={"i": i}, history=[{"epoch": e, "loss": 1.0 / e} for e in range(1, 6)])
""")


def test_parallel_jobs_never_lose_a_run(tmp_path):
    root = make_project(tmp_path / "p", ["mean-mlp"], [0], epochs=1)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root / "params.yaml"), str(k)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("asym")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.info.run_name for r in runs) == sorted(f"w{k}-{i}" for k in range(4) for i in range(4))
    assert all(r.info.status == "FINISHED" for r in runs)
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4, 5]
