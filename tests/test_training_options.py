"""The recipe options of the peers' recipes, each against a hand computation: the plateau
scheduler, Adam's betas and weight decay on every parameter, per-vlog z-scoring and the decision
threshold tuned on validation; and one training step of CAF-Mamba and MDD-Net with their own recipes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import f1_score

import asym.train as train_mod
from asym.config import load_params
from asym.data.splits import load_partitions
from asym.errors import ConfigError
from asym.evaluate import evaluate_run
from asym.io import read_json
from asym.layout import Layout
from asym.models import factory
from asym.normalize import PerSampleNormalizer, zscore_frames
from asym.optimization import build_optimizer, build_scheduler, step_scheduler
from asym.thresholds import best_f1_threshold, f1_per_threshold, threshold_grid
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
    # the loss it stepped on is the mean BCE of the validation vlogs, here after the last epoch
    _, parts = load_partitions(Path(Layout.of(project).parquet("dvlog")), Path(Layout.of(project).split_csv("dvlog")))
    torch.manual_seed(0)
    model = factory.from_params("caf-mamba", project, "dvlog", widths=(25, 136))
    norm = train_mod.fit_normalizer(project.recipe("caf-mamba"), parts[0]["train"])
    z = train_mod.predict(model, parts[0]["valid"], norm, 8, torch.device("cpu"), logits=True).astype(np.float64)
    y = parts[0]["valid"].label
    by_hand = float(np.mean(np.logaddexp(0, z) - y * z))           # BCE with logits, per vlog
    got = train_mod.validation_loss(model, parts[0]["valid"], norm, 8, torch.device("cpu"), torch.nn.BCEWithLogitsLoss())
    assert got == pytest.approx(by_hand, rel=1e-5)


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
    assert type(opt) is torch.optim.Adam and group["betas"] == (0.9, 0.9999) and group["weight_decay"] == 0.1
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
