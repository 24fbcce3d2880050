"""MLflow logging that parallel jobs can share.

SQLite allows one writer at a time and MLflow surfaces "database is locked" as a failure, so
every write goes through an inter-process file lock beside the store: concurrent training
jobs queue for a moment instead of failing or losing a run. Per-epoch metrics are sent as one
batch with their epoch as step.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def tracking_uri(params: Any) -> str:
    uri = str(params.raw["mlflow"]["tracking_uri"])
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((params.root / uri[len("sqlite:///"):]).resolve())
    return uri


def _lock_path(params: Any) -> Path:
    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):] + ".lock")
    return params.path_of("runs") / ".mlflow.lock"


@contextlib.contextmanager
def _client(params: Any) -> Iterator[tuple[Any, str]]:
    from mlflow.tracking import MlflowClient

    lock = _lock_path(params)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=float(params.raw["mlflow"]["lock_timeout_s"])):
        client = MlflowClient(tracking_uri=tracking_uri(params))
        name = params.raw["mlflow"]["experiment"]
        exp = client.get_experiment_by_name(name)
        if exp is None:
            root = params.root / params.raw["mlflow"]["artifact_root"]
            root.mkdir(parents=True, exist_ok=True)
            exp_id = client.create_experiment(name, artifact_location=root.resolve().as_uri())
        else:
            exp_id = exp.experiment_id
        yield client, exp_id


def _flat(prefix: str, d: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flat(key, v))
        else:
            out[key] = str(v)[:6000]
    return out


def log_run(params: Any, run_name: str, tags: Mapping[str, str], run_params: Mapping[str, Any],
            history: list[dict[str, float]] | None = None, metrics: Mapping[str, float] | None = None,
            artifacts: list[Path] = ()) -> str:
    """Create one finished run with params, per-epoch metrics (step = epoch) and artifacts."""
    from mlflow.entities import Metric, Param

    with _client(params) as (client, exp_id):
        run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
        rid = run.info.run_id
        now = int(time.time() * 1000)
        ps = [Param(k, v) for k, v in _flat("", run_params).items()]
        ms = [Metric(k, float(v), now, int(row["epoch"])) for row in history or [] for k, v in row.items() if k != "epoch"]
        ms += [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        for i in range(0, len(ps), 100):
            client.log_batch(rid, params=ps[i: i + 100])
        for i in range(0, len(ms), 1000):
            client.log_batch(rid, metrics=ms[i: i + 1000])
        for path in artifacts:
            client.log_artifact(rid, str(path))
        client.set_terminated(rid)
        return rid


def add_to_runs(params: Any, updates: list[tuple[str, Mapping[str, float], list[Path]]]) -> None:
    """Attach evaluation metrics and artifacts to existing training runs, in one locked session."""
    from mlflow.entities import Metric

    with _client(params) as (client, _):
        now = int(time.time() * 1000)
        for run_id, metrics, artifacts in updates:
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
            for path in artifacts:
                client.log_artifact(run_id, str(path))
