"""MLflow: the robustness and cost tables and each explanation logged as runs of their own, once
each while their files stay the same, replaced when they change."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from asym.tracking import track as tracking
from tests.project import prepared


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    return prepared(tmp_path_factory.mktemp("studies"), ["mean-mlp"], epochs=1, n_samples=20)


def _runs(p, key: str) -> list:
    c = MlflowClient(tracking_uri=tracking.tracking_uri(p))
    exp = c.get_experiment_by_name(p.mlflow.experiment).experiment_id
    return c.search_runs([exp], filter_string=f"tags.`asym.job_key` = '{key}'")


def _explanation(folder: Path, share: float) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timelines").mkdir(exist_ok=True)
    (folder / "timelines" / "timeline-1.png").write_bytes(b"png")
    headline = {"n_vlogs": 4, "spearman_vs_randomised": 0.25, "attribution_share": {"audio.loudness": share}}
    (folder / "run.json").write_text(json.dumps(headline))
    (folder / "run.md").write_text("# explained")
    return {"json": folder / "run.json", "md": folder / "run.md"}


def test_an_explanation_is_one_run_with_its_files_its_timelines_and_its_numbers(params, tmp_path):
    files = _explanation(tmp_path / "explain", 0.75)
    key = "explain/dvlog/mean-mlp/seed0"

    def track() -> str:
        metrics = tracking.explain_metrics(json.loads(files["json"].read_text()))
        with tracking.client(params) as (c, exp):
            return tracking.track_files(c, exp, params, key, files, None, metrics, {"asym.train_run": "abc"},
                                        [tmp_path / "explain" / "timelines"])

    first = track()
    assert track() == first                              # the same files: the same run, nothing logged twice
    [run] = _runs(params, key)
    assert run.info.status == "FINISHED" and run.data.tags["asym.stage"] == "explain"
    assert run.data.tags["asym.train_run"] == "abc"
    assert run.data.metrics == {"n_vlogs": 4.0, "spearman_vs_randomised": 0.25, "attribution_share.audio.loudness": 0.75}
    c = MlflowClient(tracking_uri=tracking.tracking_uri(params))
    assert {a.path for a in c.list_artifacts(first)} == {"run.json", "run.md", "timelines"}
    assert [a.path for a in c.list_artifacts(first, "timelines")] == ["timelines/timeline-1.png"]
    files = _explanation(tmp_path / "explain", 0.5)      # explained again, another answer
    second = track()
    [run] = _runs(params, key)
    assert second != first and run.info.run_id == second
    assert run.data.metrics["attribution_share.audio.loudness"] == 0.5


def test_the_robustness_runs_metrics_are_its_summary_rows(tmp_path):
    rows = pd.DataFrame([
        {"table": "curve", "dataset": "dvlog", "model": "asym", "kind": "noise_audio", "relative_robustness": None},
        {"table": "summary", "dataset": "dvlog", "model": "asym", "kind": "noise_audio", "relative_robustness": 0.6,
         "retained": 0.9, "effective_robustness": float("nan")},
    ])
    rows.to_csv(tmp_path / "robustness.csv", index=False)
    metrics = tracking.robustness_metrics(tmp_path / "robustness.csv")
    assert metrics["dvlog.asym.noise_audio.relative_robustness"] == 0.6
    assert metrics["dvlog.asym.noise_audio.retained"] == 0.9
    assert set(metrics) == {f"dvlog.asym.noise_audio.{k}" for k in ("relative_robustness", "retained",
                                                                    "effective_robustness")}
