"""Model cards: one per (dataset, model), declared to both DAGs, carrying the report's own numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asym.data.splits import read_split, split_summary
from asym.evaluate import evaluate_run
from asym.io import write_json
from asym.layout import Layout
from asym.model_card import write_model_cards
from asym.report import aggregate, fairness
from asym.train import train_job
from tests.project import prepared


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    p = prepared(tmp_path_factory.mktemp("card"), ["mean-mlp"], epochs=2)
    lay = Layout.of(p)
    write_json(lay.split_json("dvlog"), split_summary(read_split(lay.split_csv("dvlog"), subjects_disjoint=False),
                                                      False, "official"))
    train_job(p, "dvlog", "mean-mlp", [0])
    evaluate_run(Path(lay.run_dir("dvlog", "mean-mlp", 0)))
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
    from asym.dvc_yaml import render

    p, *_ = reported
    outputs = Layout.of(p).report_outputs(p.models)
    assert outputs["model_card_dvlog_mean_mlp"].endswith("reports/model_cards/dvlog-mean-mlp.md")
    report_stage = yaml.safe_load(render(p))["stages"]["report"]
    assert "reports/model_cards/dvlog-mean-mlp.md" in report_stage["outs"]
