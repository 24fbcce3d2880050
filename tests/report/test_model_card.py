"""Model cards: one per (dataset, model), declared to both DAGs, carrying the report's own numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from asym.data.splits import read_split, split_description
from asym.evaluate import evaluate_run
from asym.grid import Run
from asym.io import write_json
from asym.layout import Layout
from asym.models import registry
from asym.report.aggregate import aggregate, fairness
from asym.report.model_card import render as render_card
from asym.report.model_card import write_model_cards
from asym.train.job import train_job
from tests.project import prepared


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    p = prepared(tmp_path_factory.mktemp("card"), ["mean-mlp"], epochs=2)
    lay = Layout.of(p)
    write_json(lay.split_json("dvlog"), split_description(read_split(lay.split_csv("dvlog"), subjects_disjoint=False),
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
    f1 = f"| f1 | F1, depressed class | {100 * row['f1']:.2f} ± {100 * row['f1_std']:.2f} | " \
         f"[{100 * row['f1_ci_low']:.2f}, {100 * row['f1_ci_high']:.2f}] |"
    majority = summary.set_index(["dataset", "model"]).loc[("dvlog", "majority"), "f1"]
    assert f1 in text and text.split(f1)[1].splitlines()[0].startswith(f" {100 * majority:.2f} |")
    for r in fair[(fair["model"] == "mean-mlp")].to_dict("records"):
        assert f"| {r['attribute']} | {r['group']} |" in text
    assert "gender" in set(fair["attribute"])                      # D-Vlog records gender
    assert "Protocol `official`" in text and "could not be verified" in text
    assert "synthetic demo data" in text and "four annotators who reviewed" in text and "self-reported" not in text
    assert "YouTube (January 2020 to January 2021) are not a clinical population" in text
    assert text.count("not a diagnostic tool") == 2 and "Research on automatic depression recognition" in text
    assert "iBUG 300-W" in text and "120 vlogs" not in text and "60 vlogs" in text
    assert ("**Warning: failed seed(s)" in text) == bool(row.get("failed_seeds", ""))
    assert "(training-fold statistics)" in text and "chosen on the validation fold" in text   # mean-mlp: asym's recipe


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

    p, summary, fair, cards = reported
    lay = Layout.of(p)
    dvlog_card = cards["dvlog/mean-mlp"].read_text()
    assert "their features made by `asym extract`" in dvlog_card and "Decision thresholds used: 0.5 (" in dvlog_card
    path = Path(lay.card_json("dvlog"))
    original = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(original), "source": "/data/dvlog-dataset", "synthetic": False}))
        text = render_card(p, summary, fair, "dvlog", "mean-mlp")
    finally:
        path.write_text(original)
    assert "Scale `demo`" in text and "synthetic demo data" not in text and "`/data/dvlog-dataset`" in text
    write_json(lay.card_json("lmvd"), {**json.loads(original), "dataset": "lmvd", "format": "lmvd", "source": "demo",
                                       "synthetic": True, "audio_dim": 128})
    text = render_card(p, summary, fair, "lmvd", "mean-mlp")
    assert "LMVD (He et al., 2024)" in text and "synthetic demo data" in text
    assert "made as LMVD's were" in text and "their features made by `asym extract`" not in text
    assert "iBUG 300-W" not in text and "128-d VGGish embeddings (about one row per second)" in text
    assert "Sina Weibo, Bilibili, TikTok and YouTube" in text and "per frame" not in text


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


# --- every recipe, protocol, normalisation and model: the card states the true thing only --------------------
def _repo_params():
    from asym.config import load_params
    from tests.project import ROOT

    return load_params(ROOT / "params.yaml")


def _recipes() -> list[tuple[str, str]]:
    p = _repo_params()
    return [(scale, name) for scale in ("demo", "paper") for name in p.at_scale(scale).data.recipes.at(scale)]


def _protocols() -> list[str]:
    from asym.data import protocols

    return list(protocols.names())


@pytest.mark.parametrize("scale,name", _recipes())
@pytest.mark.parametrize("protocol", _protocols())
@pytest.mark.parametrize("dataset", ["dvlog", "lmvd"])
def test_the_recipe_is_listed_as_run_and_the_selection_fold_named_truly(scale, name, protocol, dataset):
    from asym.report.model_card import recipe_lines

    recipe = _repo_params().at_scale(scale).recipe(name)
    text = "\n".join(recipe_lines(recipe, name, dataset, protocol, []))
    assert f"Recipe `{name}`" in text and f"learning rate {recipe.lr[dataset]:g} on {dataset}" in text
    assert f"{recipe.epochs} epochs, batch {recipe.batch_size}" in text
    assert ("weight decay none" in text) == (recipe.weight_decay == 0)
    assert ("every parameter" in text) == (recipe.weight_decay > 0 and recipe.weight_decay_on == "all")
    assert ("MDD-Net's combined loss" in text) == (recipe.loss == "combined")
    assert ("ReduceLROnPlateau" in text) == (recipe.scheduler == "plateau")
    crops = {"none": "crops: none (whole vlogs)", "random_window": "one random window of",
             "offline": f"up to {recipe.crop.n_crops} random crops of at least"}
    assert crops[recipe.crop.kind] in text
    if recipe.crop.kind != "none":
        assert f"{recipe.crop.min_frames_for(dataset)}" in text
    assert {"mean4": "best mean of accuracy, precision, recall and F1", "accuracy": "best accuracy"}[
        recipe.selection_metric] in text
    assert "decision threshold: fixed at 0.5" in text
    on_test = protocol == "kfold_select_on_test"
    assert ("chosen on the validation fold" in text) is not on_test
    assert ("chosen on the **test** fold" in text and "optimistic" in text) is on_test


@pytest.mark.parametrize("normalize", ["zscore", "none", "per_sample"])
def test_training_fold_statistics_only_where_the_normalisation_uses_them(normalize):
    from asym.report.model_card import recipe_lines

    base = _repo_params().recipe("asym")
    recipe = base.model_copy(update={"normalize": normalize, "std_floor": 1e-8})
    text = "\n".join(recipe_lines(recipe, "asym", "dvlog", "official", []))
    assert ("training-fold statistics" in text) == (normalize == "zscore")
    assert ("the raw features" in text) == (normalize == "none")
    assert ("each vlog z-scored over its own frames" in text) == (normalize == "per_sample")


def test_a_tuned_threshold_is_described_with_its_grid_and_the_values_the_seeds_used():
    from asym.config import ThresholdGrid
    from asym.report.model_card import _thresholds, recipe_lines

    recipe = _repo_params().recipe("asym").model_copy(
        update={"threshold": "valid_f1", "threshold_grid": ThresholdGrid(low=0.2, high=0.8, step=0.05)})
    text = "\n".join(recipe_lines(recipe, "asym", "dvlog", "official", []))
    assert "tuned per seed on the validation fold" in text and "0.2 to 0.8 (step 0.05)" in text
    assert "fixed at" not in text
    used = _thresholds([{"threshold": [0.35]}, {"threshold": [0.4]}], recipe)
    assert used.startswith("0.35, 0.4 (tuned per seed")


def test_the_runs_recorded_selection_fold_wins_over_the_protocols_default():
    from asym.report.model_card import selection_fold

    assert selection_fold("kfold", [{"selection_fold": "test"}]) == "test"
    assert selection_fold("kfold_select_on_test", []) == "test"
    assert selection_fold("kfold_select_on_test", [{"selection_fold": "valid"}]) == "valid"
    assert selection_fold("official", []) == "valid"


@pytest.mark.parametrize("model", registry.names())
@pytest.mark.parametrize("protocol", ["official", "kfold_select_on_test"])
def test_every_models_card_states_its_provenance_selection_and_size_truly(reported, model, protocol):
    """Models without runs here: the card takes the protocol from the summary row, the recipe from params."""
    from asym.report.model_card import ASYM_PROVENANCE, INTERACTION, NO_STATE_MATRICES, PUBLIC_CODE

    p, summary, fair, _ = reported
    rows = pd.DataFrame([{"dataset": "dvlog", "model": model, "protocol": protocol}])
    text = render_card(p, pd.concat([summary[summary["model"] != model], rows]), fair, "dvlog", model)
    entry = registry.get(model)
    head = text.split("## Model", 1)[0]
    assert (ASYM_PROVENANCE in head) == (entry.family == "asym")
    assert ("rebuild from the abstract" in text) == (entry.family == "asym")
    # mean-mlp's run here recorded the fold that chose its checkpoint (valid): the record wins over the row
    on_test = protocol == "kfold_select_on_test" and model != "mean-mlp"
    assert ("**Optimistic numbers.**" in head) is on_test
    assert ("chosen on the validation fold" in text) is not on_test
    if model != "mean-mlp":                       # no run: the demo scale's claim is never the public build's
        assert PUBLIC_CODE not in text and "Parameters: – (no finished run)" in text
    assert (INTERACTION in text) == (model == "asym-no-mamba-interaction")
    assert (NO_STATE_MATRICES in text) == (model == "asym-transformer")
    assert text.count("not a diagnostic tool") == 2


def test_a_demo_size_model_is_called_shrunk_with_both_counts(reported):
    from asym.report.model_card import trainable_parameters

    p, summary, fair, cards = reported
    text = cards["dvlog/mean-mlp"].read_text()
    demo, paper = (trainable_parameters(p, "mean-mlp", "dvlog", s) for s in ("demo", "paper"))
    assert demo < paper
    assert f"Parameters: {demo:,} (trainable): **shrunk** at `demo` scale from the {paper:,} of `paper` scale" in text


@pytest.mark.parametrize("model", ["depmamba", "caf-mamba", "mdd-net"])
def test_as_its_public_code_builds_it_only_at_the_public_codes_size(reported, model):
    from asym.report.model_card import PUBLIC_CODE, description, size_lines, trainable_parameters

    p, *_ = reported
    entry = registry.get(model)
    assert PUBLIC_CODE in entry.description
    paper = trainable_parameters(p, model, "dvlog", "paper")
    demo = trainable_parameters(p, model, "dvlog", "demo")
    shrunk = "\n".join([description(entry, False), *size_lines("demo", entry, demo, paper)])
    assert PUBLIC_CODE not in shrunk and f"{demo:,}" in shrunk and f"{paper:,}" in shrunk and "shrunk" in shrunk
    full = "\n".join([description(entry, True), *size_lines("paper", entry, paper, paper)])
    assert PUBLIC_CODE in full and "at its public code's widths" in full and "shrunk" not in full


@pytest.mark.parametrize("cells,flagged", [
    ({}, False),                                                      # a summary from before the columns
    ({"failed_seeds": "", "failure": ""}, False),
    ({"failed_seeds": float("nan"), "failure": float("nan")}, False),  # empty cells read back from CSV
    ({"failed_seeds": "0, 2", "failure": "best epoch 1, every test vlog called depressed"}, True),
    ({"failed_seeds": 0, "failure": "best epoch 1"}, True),            # seed 0 read back as a number
])
def test_a_failed_seed_is_flagged_in_a_warning_block(reported, cells, flagged):
    p, summary, fair, _ = reported
    row = summary[(summary["dataset"] == "dvlog") & (summary["model"] == "mean-mlp")].iloc[0].to_dict()
    row = {k: v for k, v in row.items() if k not in ("failed_seeds", "failure")}
    rows = pd.DataFrame([{**row, **cells}])
    text = render_card(p, pd.concat([summary[summary["model"] != "mean-mlp"], rows]), fair, "dvlog", "mean-mlp")
    head = text.split("## Model", 1)[0]
    assert ("**Warning: failed seed(s)" in head) is flagged
    if flagged:
        assert f"failed seed(s) {cells['failed_seeds']}.** Best epoch 1" in head


def test_without_the_interaction_asym_starts_as_the_same_function():
    """What the card says of asym-no-mamba-interaction: tying A is all it removes, and A starts equal, so at
    initialisation both models give the same output for the same seed."""
    import torch

    from asym.models import factory

    p = _repo_params()
    outputs = {}
    for model in ("asym", "asym-no-mamba-interaction"):
        torch.manual_seed(0)
        net = factory.from_params(model, p, "dvlog").eval()
        torch.manual_seed(1)
        audio, visual = torch.randn(2, 20, 25), torch.randn(2, 20, 136)
        with torch.no_grad():
            outputs[model] = net(audio, visual, torch.tensor([20, 14]))
    shared = sum(q.numel() for q in factory.from_params("asym", p, "dvlog").parameters())
    apart = sum(q.numel() for q in factory.from_params("asym-no-mamba-interaction", p, "dvlog").parameters())
    assert apart > shared                                    # the A matrices, held once by the full model
    torch.testing.assert_close(outputs["asym"], outputs["asym-no-mamba-interaction"], rtol=0, atol=1e-6)


def test_the_card_shows_each_floor_only_where_it_is_one_and_subgroups_with_counts_and_cis():
    from asym.report.model_card import fairness_table, metrics_table
    from asym.report.runs import GAP

    nan = float("nan")
    summary = pd.DataFrame([
        {"dataset": "lmvd", "model": "asym", "accuracy": 0.6, "f1": 0.62, "f1_ci_low": 0.5, "f1_ci_high": 0.7},
        {"dataset": "lmvd", "model": "majority", "accuracy": 0.5, "f1": nan},         # its majority is normal
        {"dataset": "lmvd", "model": "always-depressed", "accuracy": nan, "f1": 2 / 3},
        {"dataset": "lmvd", "model": "chance", "accuracy": 0.5, "f1": 0.49}])
    lines = metrics_table(summary, "lmvd", "asym")
    assert lines[0].endswith("| majority floor | always-depressed floor | chance floor |")
    f1 = next(line for line in lines if line.startswith("| f1 |")).split("|")
    assert [c.strip() for c in f1[-4:-1]] == ["–", "66.67", "49.00"]
    accuracy = next(line for line in lines if line.startswith("| accuracy |")).split("|")
    assert [c.strip() for c in accuracy[-4:-1]] == ["50.00", "–", "50.00"]
    fair = pd.DataFrame([
        {"dataset": "lmvd", "model": "asym", "attribute": "length", "group": "short", "n": 12, "n_depressed": 6,
         "n_normal": 6, "tested": True, "accuracy": 0.75, "accuracy_ci_low": 0.5, "accuracy_ci_high": 0.9,
         "f1": 0.8, "f1_ci_low": 0.55, "f1_ci_high": 0.95},
        {"dataset": "lmvd", "model": "asym", "attribute": "length", "group": "long", "n": 8, "n_depressed": 1,
         "n_normal": 7, "tested": False, "accuracy": nan, "f1": nan},
        {"dataset": "lmvd", "model": "asym", "attribute": "length", "group": "medium", "n": 12, "n_depressed": 6,
         "n_normal": 6, "tested": True, "accuracy": 0.5, "accuracy_ci_low": 0.3, "accuracy_ci_high": 0.7,
         "f1": 0.5, "f1_ci_low": 0.2, "f1_ci_high": 0.7},
        {"dataset": "lmvd", "model": "asym", "attribute": "length", "group": GAP, "n": nan, "tested": True,
         "accuracy": 0.25, "accuracy_ci_low": -0.1, "accuracy_ci_high": 0.5, "accuracy_between": "short - medium",
         "f1": 0.3, "f1_ci_low": -0.1, "f1_ci_high": 0.6, "f1_between": "short - medium"}])
    rows = {line.split("|")[2].strip(): line for line in fairness_table(fair, "lmvd", "asym")[2:]}
    assert "| 12 (6 / 6) | 75.00 [50.00, 90.00] | 80.00 [55.00, 95.00] |" in rows["short"]
    assert "| 8 (1 / 7) | too small to test | too small to test |" in rows["long"]
    assert "25.00 [-10.00, 50.00] (short - medium)" in rows[GAP] and "30.00 [-10.00, 60.00] (short - medium)" in rows[GAP]


def test_a_dataset_the_recipe_does_not_name_shows_the_default_it_trained_with(params):
    """Your data's card states the learning rate training took from the recipe's `default:` entry."""
    from asym.report.model_card import recipe_lines

    recipe = params.recipe("asym").model_copy(update={"lr": {"dvlog": 0.002, "default": 0.003}})
    text = "\n".join(recipe_lines(recipe, "asym", "mine", "official", []))
    assert "learning rate 0.003 on mine" in text, text
    assert "learning rate 0.002 on dvlog" in "\n".join(recipe_lines(recipe, "asym", "dvlog", "official", []))
    alone = recipe.model_copy(update={"lr": {"dvlog": 0.002}})
    assert "learning rate – on mine" in "\n".join(recipe_lines(alone, "asym", "mine", "official", []))
