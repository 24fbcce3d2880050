"""Model cards: one per (dataset, model), declared to both DAGs, carrying the report's own numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asym.data.splits import read_split, split_summary
from asym.evaluate import evaluate_run
from asym.io import write_json
from asym.layout import Layout, Run
from asym.report.aggregate import aggregate, fairness
from asym.report.model_card import write_model_cards
from asym.train.job import train_job
from tests.project import prepared


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    p = prepared(tmp_path_factory.mktemp("card"), ["mean-mlp"], epochs=2)
    lay = Layout.of(p)
    write_json(lay.split_json("dvlog"), split_summary(read_split(lay.split_csv("dvlog"), subjects_disjoint=False),
                                                      False, "official"))
    train_job(p, "dvlog", "mean-mlp", [0])
    evaluate_run(lay.run(Run("dvlog", "mean-mlp", 0)).folder)
    summary, all_runs = aggregate(p)
    fair = fairness(p, all_runs)
    return p, summary, fair, write_model_cards(p, summary, fair)


def test_a_card_carries_the_reports_metrics_floors_and_subgroups(reported):
    p, summary, fair, cards = reported
    path = cards["dvlog/mean-mlp"]
    assert path == Path(Layout.of(p).reports) / "model_cards" / "dvlog-mean-mlp.md"
    text = path.read_text()
    row = summary.set_index(["dataset", "model"]).loc[("dvlog", "mean-mlp")]
    f1 = f"| f1 | depressed class | {100 * row['f1']:.2f} ± {100 * row['f1_std']:.2f} | " \
         f"[{100 * row['f1_ci_low']:.2f}, {100 * row['f1_ci_high']:.2f}] |"
    majority = summary.set_index(["dataset", "model"]).loc[("dvlog", "majority"), "f1"]
    assert f1 in text and text.split(f1)[1].splitlines()[0].startswith(f" {100 * majority:.2f} |")
    for r in fair[(fair["model"] == "mean-mlp")].to_dict("records"):
        assert f"| {r['attribute']} | {r['group']} |" in text
    assert "gender" in set(fair["attribute"])                      # D-Vlog records gender
    assert "Protocol `official`" in text and "could not be verified" in text
    assert "synthetic demo data" in text and "self-reported" in text and "not a clinical population" in text
    assert text.count("not a diagnostic tool") == 2 and "Research on automatic depression recognition" in text
    assert "iBUG 300-W" in text and "120 vlogs" not in text and "60 vlogs" in text


def test_cards_are_declared_report_outputs_of_both_dags(reported):
    from asym.dag.dvc_yaml import render

    p, *_ = reported
    outputs = Layout.of(p).report_outputs(p.models, p.datasets)
    assert outputs["model_card_dvlog_mean_mlp"].endswith("reports/model_cards/dvlog-mean-mlp.md")
    report_stage = yaml.safe_load(render(p))["stages"]["report"]
    assert "reports/model_cards/dvlog-mean-mlp.md" in report_stage["outs"]


def test_synthetic_only_for_the_demo_generators_data_and_lmvd_cards_point_away_from_extract(reported):
    """Scale `demo` on a real release is not synthetic data; an LMVD model's new vlogs need LMVD's
    features, which `asym extract` does not make (it writes D-Vlog's)."""
    import json

    from asym.report.model_card import render

    p, summary, fair, cards = reported
    lay = Layout.of(p)
    dvlog_card = cards["dvlog/mean-mlp"].read_text()
    assert "their features made by `asym extract`" in dvlog_card and "Decision threshold: 0.5 " in dvlog_card
    path = Path(lay.card_json("dvlog"))
    original = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(original), "source": "/data/dvlog-dataset", "synthetic": False}))
        text = render(p, summary, fair, "dvlog", "mean-mlp")
    finally:
        path.write_text(original)
    assert "Scale `demo`" in text and "synthetic demo data" not in text and "`/data/dvlog-dataset`" in text
    write_json(lay.card_json("lmvd"), {**json.loads(original), "dataset": "lmvd", "format": "lmvd", "source": "demo",
                                       "synthetic": True, "audio_dim": 128})
    text = render(p, summary, fair, "lmvd", "mean-mlp")
    assert "LMVD (He et al., 2024)" in text and "synthetic demo data" in text
    assert "made as LMVD's were" in text and "their features made by `asym extract`" not in text
    assert "iBUG 300-W" not in text and "128 VGGish embeddings" in text


def test_both_dags_declare_what_report_and_track_read(tmp_path):
    """`report` reads each dataset's card (for the model cards); `track` each run's checkpoint (its
    MLflow Model) and each dataset's Parquet (its input, by digest)."""
    import os
    import subprocess
    import sys

    from asym.config import load_params
    from asym.dag.dvc_yaml import render
    from tests.project import make_project

    root = make_project(tmp_path / "p", ["mean-mlp"], [0], epochs=1)
    p = load_params(root / "params.yaml")
    lay = Layout.of(p, absolute=False)
    reads = {"report": [lay.card_json(d) for d in p.datasets],
             "track": [lay.parquet(d) for d in p.datasets] + [lay.run_file(d, "mean-mlp", 0, "checkpoint")
                                                                 for d in p.datasets]}
    stages = yaml.safe_load(render(p))["stages"]
    for stage, files in reads.items():
        assert set(files) <= set(stages[stage]["deps"]), stage
    bin_dir = Path(sys.executable).parent
    dry = subprocess.run([str(bin_dir / "snakemake"), "-n", "--cores", "1", "track"], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                         timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = {"report": "Aggregating every run", "track": "Logging every finished run"}
    for stage, files in reads.items():
        job = dry.stdout.split(jobs[stage], 1)[1].split("Shell command", 1)[0]
        inputs = set(job.split("Input files updated by another job: ", 1)[1].splitlines()[0].split(", "))
        assert set(files) <= inputs, stage
