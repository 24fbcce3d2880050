"""The recipe options of the peers' recipes, each against a hand computation: the plateau
scheduler, Adam's betas and weight decay on every parameter, per-vlog z-scoring and the decision
threshold tuned on validation; and one training step of CAF-Mamba and MDD-Net with their own recipes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

import asym.train.job as train_mod
from asym.config import load_params
from asym.data.splits import load_partitions
from asym.errors import ConfigError
from asym.evaluate import evaluate_run
from asym.io import read_json
from asym.layout import Layout
from asym.models import factory
from asym.train.feed import TrainFeed, outputs
from asym.train.loop import loss_of
from asym.train.normalize import PerSampleNormalizer, fit_normalizer, zscore_frames
from asym.train.optimization import build_optimizer, build_scheduler, step_scheduler
from asym.train.thresholds import best_f1_threshold, f1_per_threshold, threshold_grid
from tests.project import prepared


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    prepared(root, ["caf-mamba", "mdd-net", "mean-mlp"], epochs=4)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["recipes"]["demo"]["asym"].update(threshold="valid_f1", threshold_grid={"low": 0.05, "high": 0.95, "step": 0.05})
    raw["recipes"]["demo"]["caf-mamba"]["plateau"] = {"factor": {"dvlog": 0.5, "lmvd": 0.6}, "patience": 0}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return load_params(root / "params.yaml")


def plateau_by_hand(losses: list[float], lr: float, factor: float, patience: int) -> list[float]:
    """The learning rate of each epoch under ReduceLROnPlateau's documented rule (mode min,
    relative threshold 1e-4, no cooldown): cut by `factor` once more than `patience` epochs in
    a row fail to improve on the best loss."""
    best, bad, lrs = math.inf, 0, []
    for loss in losses:
        lrs.append(lr)
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
    return lrs


def test_the_plateau_scheduler_cuts_the_rate_after_patience_epochs_without_improvement(project):
    recipe = project.recipe("caf-mamba").model_copy(update={"plateau": project.recipe("caf-mamba").plateau.model_copy(
        update={"patience": 1})})
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, recipe, "lmvd")                   # LMVD's factor 0.6
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86]
    seen = []
    for loss in losses:
        seen.append(opt.param_groups[0]["lr"])
        assert step_scheduler(sched, lambda loss=loss: loss) == loss
    assert seen == pytest.approx([1, 1, 1, 1, 0.6, 0.6, 0.6, 0.6])
    assert seen == pytest.approx(plateau_by_hand(losses, 1.0, 0.6, 1))
    cosine = build_scheduler(opt, project.recipe("asym"), "dvlog")
    opt.step()
    assert step_scheduler(cosine, lambda: pytest.fail("a cosine schedule reads no validation loss")) is None


def test_caf_mamba_trains_with_its_recipe_and_steps_on_the_validation_loss(project):
    [summary] = train_mod.train_job(project, "dvlog", "caf-mamba", [0])
    assert summary["recipe"]["scheduler"] == "plateau" and summary["recipe"]["optimizer"] == "adam"
    out = Path(Layout.of(project).run_dir("dvlog", "caf-mamba", 0))
    hist = pd.read_csv(out / "history.csv")
    assert np.isfinite(hist["valid_loss"]).all() and np.isfinite(hist["train_loss"]).all()
    lr = project.recipe("caf-mamba").lr_for("dvlog")
    assert hist["lr"].tolist() == pytest.approx(plateau_by_hand(hist["valid_loss"].tolist(), lr, 0.5, 0))
    # the loss it stepped on is the mean BCE of the validation vlogs: at the chosen epoch, the
    # checkpoint's own loss on the validation fold (and not on the test fold)
    _, parts = load_partitions(Path(Layout.of(project).parquet("dvlog")), Path(Layout.of(project).split_csv("dvlog")))
    state, norm, epoch = train_mod.load_checkpoint(out / "checkpoint.pt")
    model = factory.from_params("caf-mamba", project, "dvlog", widths=(25, 136))
    model.load_state_dict(state)
    logits = {f: outputs(model, parts[0][f], norm, 8, torch.device("cpu"))[1] for f in ("valid", "test")}
    z = {f: v.astype(np.float64) for f, v in logits.items()}
    by_hand = {f: float(np.mean(np.logaddexp(0, z[f]) - parts[0][f].label * z[f])) for f in z}   # BCE with logits
    logged = float(hist.loc[hist["epoch"] == epoch, "valid_loss"].iloc[0])
    assert logged == pytest.approx(by_hand["valid"], rel=1e-5) and logged != pytest.approx(by_hand["test"], rel=1e-3)
    got = loss_of(logits["valid"], parts[0]["valid"], torch.nn.BCEWithLogitsLoss(), torch.device("cpu"))
    assert got == pytest.approx(by_hand["valid"], rel=1e-5)


def test_mdd_net_trains_with_its_recipe(project):
    [summary] = train_mod.train_job(project, "dvlog", "mdd-net", [0])
    assert summary["recipe"]["loss"] == "combined" and summary["recipe"]["normalize"] == "per_sample"
    out = Path(Layout.of(project).run_dir("dvlog", "mdd-net", 0))
    assert np.isfinite(pd.read_csv(out / "history.csv")["train_loss"]).all()
    _, norm, _ = train_mod.load_checkpoint(out / "checkpoint.pt")
    assert isinstance(norm, PerSampleNormalizer) and norm.std_floor == 1e-8
    preds = pd.read_parquet(out / "predictions.parquet")
    assert np.isfinite(preds["prob"]).all() and summary["threshold"] == [0.5]
    model = factory.from_params("mdd-net", project, "dvlog", widths=(25, 136))
    opt = build_optimizer(model, project.recipe("mdd-net"), "dvlog")
    [group] = opt.param_groups                                     # every parameter decayed, as Adam(net.parameters())
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW) and group["betas"] == (0.9, 0.9999) and group["weight_decay"] == 0.1
    assert len(group["params"]) == len(list(model.parameters())) and group["lr"] == 0.002


def test_per_sample_z_scoring_uses_each_vlogs_own_frames():
    rng = np.random.default_rng(0)
    a = rng.normal(3, 2, (7, 4))
    a[:, 2] = 5.0                                                  # a constant feature: divided by the floor
    z = zscore_frames(a, 1e-8)
    by_hand = np.empty_like(a)
    for j in range(a.shape[1]):
        col = a[:, j]
        mean = sum(col) / len(col)
        std = math.sqrt(sum((x - mean) ** 2 for x in col) / len(col))
        by_hand[:, j] = (col - mean) / max(std, 1e-8)
    np.testing.assert_allclose(z, by_hand, rtol=1e-6, atol=1e-6)
    assert z.dtype == np.float32 and np.all(z[:, 2] == 0)
    za, zv = PerSampleNormalizer(1e-8)(a, a[:3] * 10)
    np.testing.assert_allclose(zv, zscore_frames(a[:3], 1e-8), rtol=1e-5, atol=1e-6)   # scale-free, per vlog


def test_the_threshold_maximises_validation_f1_on_its_grid():
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    prob = np.array([0.9, 0.35, 0.3, 0.6, 0.55, 0.1, 0.45, 0.2])
    grid = threshold_grid(type("G", (), {"low": 0.05, "high": 0.95, "step": 0.05}))
    assert len(grid) == 19 and grid[0] == 0.05 and grid[-1] == 0.95
    brute = [f1_score(y, (prob >= t).astype(int), zero_division=0) for t in grid]
    np.testing.assert_allclose(f1_per_threshold(y, prob, grid), brute)
    best = best_f1_threshold(y, prob, grid)
    assert brute[list(grid).index(best)] == max(brute)
    assert best == 0.35          # F1 8/9 at 0.35 (and up to it from 0.31): ties go to the nearest 0.5
    # ties: equal F1 at 0.3 and 0.7 (one positive, alone above both) -> the one nearer 0.5, then the lower
    assert best_f1_threshold(np.array([1, 0]), np.array([0.9, 0.2]), np.array([0.3, 0.7])) == 0.3


def test_a_tuned_threshold_is_stored_and_labels_every_saved_prediction(project):
    [summary] = train_mod.train_job(project, "dvlog", "mean-mlp", [0])
    out = Path(Layout.of(project).run_dir("dvlog", "mean-mlp", 0))
    preds = pd.read_parquet(out / "predictions.parquet")
    valid = preds[preds["fold"] == "valid"]
    grid = threshold_grid(project.recipe("asym").threshold_grid)
    [t] = summary["threshold"]
    assert t == best_f1_threshold(valid["label"].to_numpy(), valid["prob"].to_numpy(), grid)
    assert read_json(out / "train.json")["threshold"] == [t]
    assert (preds["pred"] == (preds["prob"] >= t)).all()
    metrics = evaluate_run(out)
    test = preds[preds["fold"] == "test"]
    assert metrics["test"]["f1"] == pytest.approx(f1_score(test["label"], test["prob"] >= t, zero_division=0))
    tn, fp, fn, tp = confusion_matrix(test["label"], test["prob"] >= t, labels=[0, 1]).ravel()
    assert metrics["test"]["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert metrics["test"]["auroc"] == pytest.approx(metrics["partitions"]["0"]["test"]["auroc"])


def test_recipes_refuse_options_without_their_settings(project, tmp_path):
    raw = yaml.safe_load(Path(project.path).read_text())
    for change, message in ((("scheduler", "plateau", "plateau", None), "plateau"),
                            (("loss", "combined", "combined_loss", None), "combined_loss"),
                            (("normalize", "per_sample", "std_floor", None), "std_floor"),
                            (("threshold", 1.5, "threshold_grid", None), "must be in")):
        bad = yaml.safe_load(yaml.safe_dump(raw))
        key, value, other, none = change
        bad["recipes"]["demo"]["asym"].update({key: value, other: none})
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=message):
            load_params(tmp_path / "p.yaml")


# --- the tuned threshold in the report --------------------------------------------------------------
TUNED = 0.35


@pytest.fixture
def tuned_runs(tmp_path):
    """Hand-made runs (tests.report.test_report) in which asym's labels come from a threshold tuned on
    validation (0.35), the other models' from 0.5."""
    from tests.report.test_report import _write_runs

    p = _write_runs(tmp_path)
    lay = Layout.of(p)
    for ds in p.datasets:
        for seed in p.seeds:
            run = Path(lay.run_dir(ds, "asym", seed))
            pred = pd.read_parquet(run / "predictions.parquet")
            pred.assign(pred=(pred["prob"] >= TUNED).astype(int)).to_parquet(run / "predictions.parquet")
            summary = read_json(run / "train.json")
            (run / "train.json").write_text(json.dumps({**summary, "threshold": [TUNED],
                                                        "recipe": {"threshold": "valid_f1"}}))
    return p


def test_the_report_labels_with_the_tuned_threshold_and_says_so(tuned_runs, tmp_path):
    from asym.report import tables
    from asym.report.aggregate import aggregate, fairness
    from asym.report.runs import load_dataset_runs
    from asym.report.stats import centred_ci, resample_weights

    p = tuned_runs
    summary, all_runs = aggregate(p)
    runs = {r.name: r for r in all_runs}
    row = summary.set_index(["dataset", "model"]).loc[("dvlog", "asym")]
    assert row["threshold_rule"] == "valid_f1" and row["threshold"] == pytest.approx(TUNED)
    r = load_dataset_runs(p, "dvlog")
    saved = [pd.read_parquet(Path(Layout.of(p).run_dir("dvlog", "asym", s)) / "predictions.parquet")
             .sort_values("sample_id")["pred"].to_numpy() for s in p.seeds]
    np.testing.assert_array_equal(r.preds["asym"], np.stack(saved))           # what confusion and fairness read
    assert not np.array_equal(r.preds["asym"], r.probs["asym"] >= 0.5)
    # the label metrics' CIs from the saved labels: scikit-learn with each resample's counts as weights
    W = resample_weights(r.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, 0]))
    f1 = [np.mean([f1_score(r.y, pred, sample_weight=w, zero_division=0) for pred in saved]) for w in W]
    assert (row["f1_ci_low"], row["f1_ci_high"]) == pytest.approx(centred_ci(np.array(f1), row["f1"]))
    # subgroups from the saved labels too
    fair = fairness(p, all_runs).set_index(["dataset", "model", "attribute", "group"])
    terciles = np.searchsorted(np.quantile(r.n_frames, [1 / 3, 2 / 3]), r.n_frames, side="right")
    medium = terciles == 1                 # the tercile that holds both classes enough to be tested
    by_hand = np.mean([accuracy_score(r.y[medium], pred[medium]) for pred in saved])
    assert fair.loc[("dvlog", "asym", "length", "medium"), "accuracy"] == pytest.approx(by_hand)
    # the tables say which threshold labelled which model
    ctx = tables.Context.of(p, summary, all_runs)
    line = ctx.threshold_line()
    assert "`valid_f1`" in line and f"asym on dvlog {TUNED:.2f}" in line and f"asym on lmvd {TUNED:.2f}" in line
    assert "0.5 for asym-no-mem, mean-mlp" in line and runs["dvlog"].preds["mean-mlp"].shape == (3, 40)
    paths = {f"results_{f}": tmp_path / f"results.{f}" for f in ("md", "csv", "tex")}
    tables.write_table("results", ctx, paths)
    assert line in paths["results_md"].read_text()


def test_a_single_rule_is_stated_once():
    from asym.report import tables

    summary = pd.DataFrame({"dataset": ["dvlog", "dvlog"], "model": ["asym", "mean-mlp"], "kind": ["asym", "baseline"],
                            "threshold_rule": ["0.5", "0.5"], "threshold": [0.5, 0.5]})
    ctx = tables.Context("demo", summary, ["dvlog"], {"dvlog": "official"}, {"dvlog": "true"}, 0.05, [0], 0.8)
    assert ctx.threshold_line().endswith("0.5 for every model.")


# --- per-vlog z-scoring in training and in `asym predict` ----------------------------------------------
@pytest.fixture(scope="module")
def per_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("per-sample")
    prepared(root, ["mean-mlp"], epochs=2)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["recipes"]["demo"]["asym"].update(normalize="per_sample", std_floor=1e-8)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    return p


def _affine(table, seed: int = 3):
    """Every vlog's features scaled and shifted feature by feature, by its own factors."""
    from asym.data.sample import Sample

    rng = np.random.default_rng(seed)
    out = []
    for i, sid in enumerate(table.sample_id):
        a, v = table.audio[i], table.visual[i]
        sa, sv = rng.uniform(0.5, 3, a.shape[1]), rng.uniform(0.5, 3, v.shape[1])
        out.append(Sample(sid, int(table.label[i]), (a * sa + rng.normal(0, 5, a.shape[1])).astype(np.float32),
                          (v * sv + rng.normal(0, 50, v.shape[1])).astype(np.float32), table.fold[i],
                          table.subject_id[i]))
    return out


def test_per_vlog_z_scoring_makes_training_and_predict_blind_to_each_vlogs_scale(per_sample, tmp_path):
    from asym import cli
    from asym.data.parquet import read_samples, write_samples
    from asym.inference.predict import read_predictions

    p = per_sample
    lay = Layout.of(p)
    table, parts = load_partitions(Path(lay.parquet("dvlog")), Path(lay.split_csv("dvlog")))
    moved = tmp_path / "moved.parquet"
    write_samples(_affine(table), moved, table.meta)
    moved_table = read_samples(moved)
    recipe = p.recipe("asym")
    # the trainer: what it feeds the model is the same for both tables
    train = parts[0]["train"]
    idx = [table.sample_id.index(s) for s in train.sample_id]
    norm = fit_normalizer(recipe, train)
    assert isinstance(norm, PerSampleNormalizer)
    feeds = [TrainFeed(t, norm, recipe, "dvlog", np.random.default_rng(0)) for t in (train, moved_table.select(idx))]
    for got, want in zip(*(f.batches() for f in reversed(feeds)), strict=True):
        for (ga, gv, gy), (wa, wv, wy) in zip(got, want, strict=True):
            assert gy == wy
            np.testing.assert_allclose(ga, wa, atol=2e-4)
            np.testing.assert_allclose(gv, wv, atol=2e-4)
    zscore = fit_normalizer(recipe.model_copy(update={"normalize": "zscore"}), train)
    first = idx[0]
    assert not np.allclose(zscore(table.audio[first], table.visual[first])[0],
                           zscore(moved_table.audio[first], moved_table.visual[first])[0], atol=1e-2)   # it is not
    # `asym predict` on the moved features gives back the run's own probabilities
    run = Path(lay.run_dir("dvlog", "mean-mlp", 0))
    saved = pd.read_parquet(run / "predictions.parquet").query("fold == 'test'").set_index("sample_id")
    out = tmp_path / "moved.csv"
    assert cli.main(["--params", str(p.path), "predict", "--model", str(run), "--input", str(moved),
                     "--output", str(out)]) == 0
    got = read_predictions(out).set_index("id").loc[saved.index]
    np.testing.assert_allclose(got["probability"], saved["prob"], atol=1e-5)
