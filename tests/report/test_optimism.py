"""The optimism study: `kfold_select_on_test` is `kfold` with the checkpoint chosen on the test
fold, nothing else (a plateau scheduler and a tuned threshold still read the validation part);
the `protocol_optimism` table sets the two side by side, paired, one estimand for points and
CIs, the selection made again inside the bootstrap, every point inside its own interval; both
DAGs hold the study's jobs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

import asym.train.job as train_mod
from asym.cli import main
from asym.config import load_params
from asym.dag import stages
from asym.data.protocols import OPTIMISTIC_FLAG
from asym.data.splits import load_partitions, read_split
from asym.errors import DataError
from asym.evaluate import evaluate_predictions
from asym.grid import Run
from asym.io import read_json
from asym.layout import Layout, RunFiles
from asym.metrics import label_metrics, selection_score
from asym.models import factory
from asym.report import optimism
from asym.report.stats import (
    labelled_resamples,
    percentile_ci,
    resample_weights,
    shifted_percentile_ci,
)
from asym.train.feed import outputs
from asym.train.loop import EPOCH_RECORD, loss_of
from asym.train.losses import build_loss
from asym.train.observe import TrainObserver
from asym.train.thresholds import best_f1_threshold, threshold_grid
from tests.project import make_project, prepared

HONEST, OPTIMISTIC = "kfold", "kfold_select_on_test"
OPTIMISM = {"optimism": {"models": {"demo": ["mean-mlp"], "paper": []}, "seeds": {"demo": [0, 1], "paper": [0]}},
         "split": {"kfold": {"k": 3, "valid_fraction": 0.2}}}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """mean-mlp under both protocols with a plateau scheduler (patience 0: it steps on every epoch's
    validation loss) and the threshold tuned on validation: what would differ between the two
    protocols if selecting on test let the test fold reach anything but the choice of epoch."""
    root = tmp_path_factory.mktemp("study")
    prepared(root, ["mean-mlp"], epochs=6, **OPTIMISM)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["recipes"]["demo"]["asym"].update(
        scheduler="plateau", plateau={"factor": {"dvlog": 0.5, "lmvd": 0.5}, "patience": 0},
        threshold="valid_f1", threshold_grid={"low": 0.05, "high": 0.95, "step": 0.05})
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    for protocol in (HONEST, OPTIMISTIC):
        assert main(["--params", str(root / "params.yaml"), "split", "--dataset", "dvlog", "--protocol", protocol]) == 0
        train_mod.train_job(p.for_optimism(protocol), "dvlog", "mean-mlp", p.optimism_seeds)
    return p


def _run(p, protocol: str, seed: int) -> RunFiles:
    return Layout.of(p.for_optimism(protocol)).run(Run("dvlog", "mean-mlp", seed))


def _files(p, protocol: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    run = _run(p, protocol, seed)
    return (pd.read_csv(run.file("history")), pd.read_parquet(run.file("predictions")),
            read_json(run.file("summary")))


def _partitions(p, protocol: str):
    lay = Layout.of(p.for_optimism(protocol))
    return load_partitions(Path(lay.parquet("dvlog")), Path(lay.split_csv("dvlog")))[1]


def test_the_study_lives_in_its_own_folders_with_the_same_folds(study):
    p = study
    lay = {pr: Layout.of(p.for_optimism(pr)) for pr in (HONEST, OPTIMISTIC)}
    assert lay[HONEST].for_optimism("x") != lay[HONEST] and lay[HONEST] == Layout.of(p).for_optimism(HONEST)
    assert lay[OPTIMISTIC].runs.endswith("runs/optimism/kfold_select_on_test")
    assert lay[OPTIMISTIC].in_optimism and not Layout.of(p).in_optimism
    assert "epochs" in lay[OPTIMISTIC].train_outputs("dvlog", "mean-mlp", [0])
    assert "epochs" not in Layout.of(p).train_outputs("dvlog", "mean-mlp", [0])   # main runs: no epochs file
    splits = {pr: read_split(Path(lay[pr].split_csv("dvlog"))) for pr in lay}
    assert splits[HONEST].equals(splits[OPTIMISTIC]) and splits[HONEST]["partition"].nunique() == 3
    assert not Layout.of(p).run(Run("dvlog", "mean-mlp", 0)).folder.exists()             # main runs untouched
    train_keys = stages.get("train_optimism").reads(p, {"protocol": OPTIMISTIC, "dataset": "dvlog", "model": "mean-mlp"})
    assert "optimism.seeds.demo" in train_keys and "run.seeds.demo" not in train_keys


def test_the_report_refuses_protocols_split_differently(study):
    """The two split files are compared, not assumed equal."""
    path = Path(Layout.of(study.for_optimism(OPTIMISTIC)).split_csv("dvlog"))
    kept = path.read_text()
    try:
        split = pd.read_csv(path, dtype=str)
        first = split["partition"] == "0"
        a = split.loc[first & (split["fold"] == "valid"), "subject_id"].iloc[0]
        b = split.loc[first & (split["fold"] == "train"), "subject_id"].iloc[0]
        of_a, of_b = first & (split["subject_id"] == a), first & (split["subject_id"] == b)
        split.loc[of_a, "fold"], split.loc[of_b, "fold"] = "train", "valid"   # still leak-free: another valid part
        split.to_csv(path, index=False)
        with pytest.raises(DataError, match="not the same folds"):
            optimism.compare(study)
    finally:
        path.write_text(kept)


def test_selecting_on_test_changes_the_chosen_epoch_only(study):
    """Same trajectory (losses, learning rates, the plateau scheduler's validation losses) and
    the same validation part for the scheduler and the threshold; only the epoch differs."""
    p = study
    parts = _partitions(p, OPTIMISTIC)
    recipe = p.recipe("asym")
    cut = False
    for seed in p.optimism_seeds:
        (h_hist, _, h_sum), (o_hist, o_pred, o_sum) = _files(p, HONEST, seed), _files(p, OPTIMISTIC, seed)
        assert o_sum["protocol"] == OPTIMISTIC and o_sum["selection_fold"] == "test" and h_sum["selection_fold"] == "valid"
        for col in ("train_loss", "lr", "valid_loss"):
            np.testing.assert_array_equal(h_hist[col], o_hist[col], err_msg=col)     # one trajectory
        cut |= bool((o_hist.groupby("partition")["lr"].nunique() > 1).any())
        assert "test_selection" in o_hist and "valid_selection" not in o_hist      # named after the fold that chose
        for q, folds in enumerate(parts):
            rows = o_pred[o_pred["partition"] == q]
            valid, test = rows[rows["fold"] == "valid"], rows[rows["fold"] == "test"]
            assert sorted(valid["sample_id"]) == sorted(folds["valid"].sample_id)   # the real validation part
            assert not set(valid["sample_id"]) & set(test["sample_id"])
            scored = evaluate_predictions(_run(p, OPTIMISTIC, seed).file("predictions"))["partitions"][str(q)]
            assert scored["valid"]["n"] == len(folds["valid"]) and scored["test"]["n"] == len(folds["test"])
            hist = o_hist[o_hist["partition"] == q]
            best = int(hist.loc[hist["test_selection"].idxmax(), "epoch"])           # first best on the test fold
            assert o_sum["best_epoch"][q] == best
            assert selection_score(label_metrics(test["label"], test["prob"] >= 0.5), "mean4") == pytest.approx(
                hist["test_selection"].max())
            # the threshold: tuned on the validation part at the chosen checkpoint, never on test
            grid = threshold_grid(recipe.threshold_grid)
            assert o_sum["threshold"][q] == best_f1_threshold(valid["label"].to_numpy(), valid["prob"].to_numpy(), grid)
            # the scheduler's loss at the chosen epoch: the validation part's, not the test fold's
            state, norm, epoch = train_mod.load_checkpoint(_run(p, OPTIMISTIC, seed).file("checkpoint"), q)
            model = factory.from_params("mean-mlp", p, "dvlog", widths=(25, 136))
            model.load_state_dict(state)
            loss_fn = build_loss(recipe, folds["train"].label, CPU, model)
            on = {f: loss_of(outputs(model, folds[f], norm, p.train.eval_batch_size, CPU)[1], folds[f], loss_fn, CPU)
                  for f in ("valid", "test")}
            logged = hist.loc[hist["epoch"] == epoch, "valid_loss"].iloc[0]
            assert logged == pytest.approx(on["valid"], rel=1e-5) and logged != pytest.approx(on["test"], rel=1e-3)
    assert cut, "the plateau scheduler never cut the rate: the trajectories could not have differed"


def test_every_epoch_is_kept_as_training_saw_it(study):
    """epochs.parquet: each epoch's test-fold probabilities give back the history's selection
    scores, and at the chosen epoch the saved predictions and the threshold."""
    p = study
    for seed in p.optimism_seeds:
        hist, pred, summary = _files(p, OPTIMISTIC, seed)
        epochs = pd.read_parquet(_run(p, OPTIMISTIC, seed).file("epochs"))
        assert set(epochs["fold"]) == {"test"} and epochs.groupby("partition")["epoch"].nunique().eq(6).all()
        for (q, e), g in epochs.groupby(["partition", "epoch"]):
            row = hist[(hist["partition"] == q) & (hist["epoch"] == e)].iloc[0]
            assert selection_score(label_metrics(g["label"], g["prob"] >= 0.5), "mean4") == pytest.approx(
                row["test_selection"], abs=1e-12)
            if e == summary["best_epoch"][q]:
                saved = pred[(pred["partition"] == q) & (pred["fold"] == "test")].set_index("sample_id")
                np.testing.assert_array_equal(g.set_index("sample_id")["prob"], saved.loc[g["sample_id"], "prob"])
                assert g["threshold"].iloc[0] == summary["threshold"][q]
        honest = pd.read_parquet(_run(p, HONEST, seed).file("epochs"))
        assert set(honest["fold"]) == {"valid"}                       # the honest arm's: the fold that chose


class Killed(Exception):
    pass


def test_a_killed_study_seed_resumes_with_every_epochs_record(study, tmp_path):
    """The epoch records live in the history resume.pt keeps: a seed killed inside its epochs
    writes the same epochs.parquet as the uninterrupted run, and no observer sees a record."""
    root = Path(study.path).parent
    shutil.copytree(root, tmp_path / "p")
    p = load_params(tmp_path / "p" / "params.yaml")
    shutil.rmtree(Layout.of(p.for_optimism(OPTIMISTIC)).runs)          # its splits kept, its runs to train again
    seen: list[dict] = []

    class Killer(TrainObserver):
        def on_epoch(self, seed: int, partition: int, row: dict) -> None:
            seen.append(row)
            if (seed, partition, row["epoch"]) == (1, 1, 3) and not any(isinstance(r, Killed) for r in seen):
                seen.append(Killed())
                raise seen[-1]

    with pytest.raises(Killed):
        train_mod.train_job(p.for_optimism(OPTIMISTIC), "dvlog", "mean-mlp", p.optimism_seeds, observers=[Killer()])
    assert _run(p, OPTIMISTIC, 1).resume.exists() and not _run(p, OPTIMISTIC, 1).file("summary").exists()
    train_mod.train_job(p.for_optimism(OPTIMISTIC), "dvlog", "mean-mlp", p.optimism_seeds, observers=[Killer()])
    rows = [r for r in seen if isinstance(r, dict)]
    assert rows and all(EPOCH_RECORD not in row and "test_selection" in row for row in rows)
    for seed in p.optimism_seeds:
        for key in ("epochs", "predictions"):
            pd.testing.assert_frame_equal(pd.read_parquet(_run(p, OPTIMISTIC, seed).file(key)),
                                          pd.read_parquet(_run(study, OPTIMISTIC, seed).file(key)))
        pd.testing.assert_frame_equal(pd.read_csv(_run(p, OPTIMISTIC, seed).file("history")).drop(columns="epoch_time_s"),
                                      pd.read_csv(_run(study, OPTIMISTIC, seed).file("history")).drop(columns="epoch_time_s"))


def _pooled(p, protocol: str, weights: np.ndarray | None = None) -> dict[str, float]:
    """The estimand by hand: each seed's saved test labels pooled over its folds, scikit-learn's
    metric (weighted by a resample's counts), mean over seeds."""
    out = {"accuracy": [], "f1": []}
    for seed in p.optimism_seeds:
        t = _files(p, protocol, seed)[1].query("fold == 'test'").sort_values("sample_id")
        w = None if weights is None else weights
        out["accuracy"].append(accuracy_score(t["label"], t["pred"], sample_weight=w))
        out["f1"].append(f1_score(t["label"], t["pred"], sample_weight=w, zero_division=0))
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_points_and_cis_share_one_estimand_and_the_test_is_the_reports(study, tmp_path):
    p = study
    table = optimism.compare(p)
    [row] = table.to_dict("records")
    points = {pr: _pooled(p, pr) for pr in (HONEST, OPTIMISTIC)}
    for pr in (HONEST, OPTIMISTIC):
        for k in ("accuracy", "f1"):
            assert row[f"{k}_{pr}"] == pytest.approx(points[pr][k])
            assert row[f"{k}_{pr}_ci_low"] <= row[f"{k}_{pr}_ci_high"]
    for k in ("accuracy", "f1"):
        assert row[f"delta_{k}"] == pytest.approx(points[OPTIMISTIC][k] - points[HONEST][k])
    # the p is the report's permutation test of that very ΔF1
    from asym.report.stats import swap_deltas, swap_draws

    arms = optimism.load_arms(p, "dvlog")
    S = swap_draws(arms[HONEST].units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, optimism.CI_STREAM, 0, 1]))
    observed, _ = swap_deltas(arms[HONEST].y, arms[HONEST].preds["mean-mlp"], arms[OPTIMISTIC].preds["mean-mlp"], S)
    assert observed == pytest.approx(row["delta_f1"]) and 0 < row["delta_f1_p"] <= 1
    assert row["threshold_rule"] == "valid_f1" and 0 < row[f"threshold_{OPTIMISTIC}"] < 1
    paths = {f"protocol_optimism_{f}": tmp_path / f"protocol_optimism.{f}" for f in ("md", "csv", "tex")}
    optimism.write_table(table, p, paths)
    md = paths["protocol_optimism_md"].read_text()
    assert OPTIMISTIC_FLAG in md and "`kfold_select_on_test` (optimistic)" in md and "| mean-mlp" in md
    assert "chosen again" in md and "conditional on the selections made" in md
    assert f"valid_f1 ({row['threshold_kfold']:.2f} / {row[f'threshold_{OPTIMISTIC}']:.2f})" in md
    assert "tuned on the validation part" in md
    tex = paths["protocol_optimism_tex"].read_text()
    assert r"\caption{" in tex and (r"\begin{longtable}" in tex or r"\begin{table}" in tex)
    assert pd.read_csv(paths["protocol_optimism_csv"])["delta_f1"].iloc[0] == pytest.approx(row["delta_f1"])
    assert "shifted percentile interval" in md and "median" in md


CELL = re.compile(r"([+-]?\d+\.\d+) \[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def test_every_reported_point_lies_inside_its_own_interval(study, tmp_path):
    """In the table's numbers and in the printed cells: each arm's value and each Δ; the interval
    is the percentile interval of the same resamples, moved so that their median is the point."""
    p = study
    table = optimism.compare(p)
    cols = optimism.points_of(table)
    assert set(cols) == {f"{k}_{pr}" for k in ("accuracy", "f1") for pr in (HONEST, OPTIMISTIC)} | {
        "delta_accuracy", "delta_f1"}
    for _, row in table.iterrows():
        for c in cols:
            assert np.isfinite(row[f"{c}_ci_low"]) and np.isfinite(row[f"{c}_ci_high"]), c
            assert row[f"{c}_ci_low"] <= row[c] <= row[f"{c}_ci_high"], c
    assert optimism.incoherent(table) == []
    # the intervals' widths are the resamples' percentile widths (none is cut by the metric's range here)
    arms = optimism.load_arms(p, "dvlog")
    W = resample_weights(arms[HONEST].units, p.report.bootstrap,
                         np.random.default_rng([p.report.ci_seed, optimism.CI_STREAM, 0]))
    honest = arms[HONEST]
    res = {HONEST: labelled_resamples(honest.y, honest.probs["mean-mlp"], honest.preds["mean-mlp"], W),
           OPTIMISTIC: optimism.optimistic_resamples(p, "dvlog", "mean-mlp", arms[OPTIMISTIC], W)}
    [row] = table.to_dict("records")
    for k in ("accuracy", "f1"):
        for c, s in ((f"{k}_{HONEST}", res[HONEST][k]), (f"{k}_{OPTIMISTIC}", res[OPTIMISTIC][k]),
                     (f"delta_{k}", res[OPTIMISTIC][k] - res[HONEST][k])):
            lo, hi = percentile_ci(s)
            assert row[f"{c}_ci_high"] - row[f"{c}_ci_low"] == pytest.approx(hi - lo, abs=1e-12), c
            assert row[f"{c}_ci_low"] - row[c] == pytest.approx(lo - np.median(s), abs=1e-12), c
    paths = {f"protocol_optimism_{f}": tmp_path / f"protocol_optimism.{f}" for f in ("md", "csv", "tex")}
    optimism.write_table(table, p, paths)
    cells = CELL.findall(paths["protocol_optimism_md"].read_text())
    assert len(cells) == len(table) * len(cols)
    for point, lo, hi in cells:
        assert float(lo) <= float(point) <= float(hi), (point, lo, hi)


def test_a_table_with_a_point_outside_its_interval_is_refused(study, tmp_path):
    table = optimism.compare(study)
    bad = table.assign(delta_accuracy=table["delta_accuracy_ci_high"] + 0.01)
    assert [w.split(":")[0] for w in optimism.incoherent(bad)] == ["dvlog/mean-mlp delta_accuracy"]
    paths = {f"protocol_optimism_{f}": tmp_path / f"protocol_optimism.{f}" for f in ("md", "csv", "tex")}
    with pytest.raises(ValueError, match="outside their own intervals"):
        optimism.write_table(bad, study, paths)
    assert not paths["protocol_optimism_md"].exists()
    missing = table.assign(f1_kfold_ci_low=np.nan, f1_kfold_ci_high=np.nan)
    assert optimism.incoherent(missing) == []                  # no interval: "[–]", nothing to hold


def test_the_shifted_interval_is_the_percentile_one_moved_onto_its_point():
    rng = np.random.default_rng(0)
    s = rng.normal(0.07, 0.02, 1000)                          # resamples lifted above the point, as re-selection does
    lo, hi = percentile_ci(s)
    assert not lo <= 0.0225 <= hi                             # the percentile interval leaves the point out
    got = shifted_percentile_ci(s, 0.0225)
    assert got[0] < 0.0225 < got[1]
    assert got == pytest.approx((0.0225 + lo - np.median(s), 0.0225 + hi - np.median(s)))
    sym = np.r_[s, 2 * np.median(s) - s]                      # centred on their median: the percentile interval
    assert shifted_percentile_ci(sym, float(np.median(sym))) == pytest.approx(percentile_ci(sym))
    assert shifted_percentile_ci(s, 0.0225, level=0.5)[1] - shifted_percentile_ci(
        s, 0.0225, level=0.5)[0] < got[1] - got[0]


def test_the_shifted_interval_holds_its_point_for_any_resamples():
    """Discrete, skewed, degenerate resamples and points anywhere, at a range's edge too."""
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(1, 60))
        s = rng.choice(rng.integers(0, 20, size=int(rng.integers(1, 4))) / 19, size=n) ** rng.uniform(0.2, 5)
        point = float(rng.choice([rng.uniform(-0.5, 1.5), 0.0, 1.0, float(s[0])]))
        lo, hi = shifted_percentile_ci(s, point)
        assert lo <= point <= hi
        lo, hi = shifted_percentile_ci(s, min(max(point, 0.0), 1.0), bounds=optimism.SCORE_RANGE)
        assert 0.0 <= lo <= min(max(point, 0.0), 1.0) <= hi <= 1.0
    assert shifted_percentile_ci(np.full(50, 0.4), 0.4) == (0.4, 0.4)
    assert shifted_percentile_ci(np.full(50, 0.4), 0.1) == (0.1, 0.1)      # no spread: the point alone
    lo, hi = shifted_percentile_ci(np.array([0.9, 0.95, 1.0, 1.0]), 1.0, bounds=optimism.SCORE_RANGE)
    assert hi == 1.0 and lo < 1.0                                                  # cut at 100%
    assert all(np.isnan(shifted_percentile_ci(np.array([np.nan, np.inf]), 0.5)))
    assert all(np.isnan(shifted_percentile_ci(np.array([0.1, 0.2]), np.nan)))


def _chosen_by_hand(p, seed: int, w: np.ndarray, ids: list[str]) -> pd.DataFrame:
    """One resample of one seed by brute force: per partition, each epoch scored by scikit-learn
    with the resample's counts as sample weights, the first best kept, labelled at its threshold."""
    epochs = pd.read_parquet(_run(p, OPTIMISTIC, seed).file("epochs"))
    weight = dict(zip(ids, w, strict=True))
    chosen = []
    for _, part in epochs.groupby("partition"):
        best, best_score = None, -np.inf
        for _, g in part.groupby("epoch", sort=True):
            sw = g["sample_id"].map(weight).to_numpy()
            y, pred = g["label"].to_numpy(), (g["prob"] >= 0.5).to_numpy()
            if sw.sum() == 0:
                score = 0.0
            else:
                score = np.mean([accuracy_score(y, pred, sample_weight=sw),
                                 precision_score(y, pred, sample_weight=sw, zero_division=0),
                                 recall_score(y, pred, sample_weight=sw, zero_division=0),
                                 f1_score(y, pred, sample_weight=sw, zero_division=0)])
            if score > best_score + 1e-12:
                best, best_score = g, score
        chosen.append(best.assign(pred=(best["prob"] >= best["threshold"].iloc[0]).astype(int)))
    return pd.concat(chosen).set_index("sample_id").loc[ids]


def test_the_optimistic_ci_makes_the_selection_again_in_every_resample(study):
    p = study
    runs = optimism.load_arms(p, "dvlog")[OPTIMISTIC]
    ids = list(runs.ids)
    W = resample_weights(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, optimism.CI_STREAM, 0]))
    got = optimism.optimistic_resamples(p, "dvlog", "mean-mlp", runs, W)
    moved = False
    for b in range(12):
        f1 = []
        for seed in p.optimism_seeds:
            chosen = _chosen_by_hand(p, seed, W[b], ids)
            f1.append(f1_score(chosen["label"], chosen["pred"], sample_weight=W[b], zero_division=0))
        assert got["f1"][b] == pytest.approx(np.mean(f1), abs=1e-12)
    for seed in p.optimism_seeds:
        summary = read_json(_run(p, OPTIMISTIC, seed).file("summary"))
        parts = optimism.read_epochs(_run(p, OPTIMISTIC, seed), runs.ids)
        unit = optimism.chosen_epochs(runs.y, parts, np.ones((1, len(ids))), "mean4")[0]
        assert [int(q[1][e]) for q, e in zip(parts, unit, strict=True)] == summary["best_epoch"]   # the training's choice
        again = optimism.chosen_epochs(runs.y, parts, W, "mean4")
        moved |= bool((again != unit).any())
    assert moved, "no resample chose another epoch: the CI would not show the selection's noise"
    m = {"accuracy": W[:3, :4], "precision": W[:3, 4:8], "recall": W[:3, 8:12], "f1": W[:3, 12:16]}
    for metric in ("mean4", "f1"):                    # the vectorised rule is the training's rule
        vec = optimism.selection_scores(m, metric)
        for i, j in np.ndindex(vec.shape):
            assert vec[i, j] == pytest.approx(selection_score({k: v[i, j] for k, v in m.items()}, metric))


def test_a_select_on_test_run_without_its_epochs_is_refused(study, tmp_path):
    run = _run(study, OPTIMISTIC, 0)
    copy = replace(run.layout, runs=str(tmp_path)).run(run.run)
    shutil.copytree(run.folder, copy.folder)
    epochs = pd.read_parquet(copy.file("epochs"))
    epochs.assign(fold="valid").to_parquet(copy.file("epochs"))
    ids = optimism.load_arms(study, "dvlog")[OPTIMISTIC].ids
    with pytest.raises(DataError, match="must be of the test fold"):
        optimism.read_epochs(copy, ids)
    epochs[epochs["partition"] != 1].to_parquet(copy.file("epochs"))
    with pytest.raises(DataError, match="each once"):
        optimism.read_epochs(copy, ids)


def test_both_dags_hold_the_study(tmp_path):
    root = make_project(tmp_path / "p", ["mean-mlp", "bilstm"], [0], epochs=1, **OPTIMISM)
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1", "all"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tests.workflow.conftest import job_counts

    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_optimism"] == 2 * 2 and counts["split_optimism"] == 2 * 2 and counts["train"] == 2 * 2
    assert "runs/optimism/kfold_select_on_test/lmvd/mean-mlp/seed0/train.json" in proc.stdout
    assert "runs/optimism/kfold_select_on_test/lmvd/mean-mlp/seed0/epochs.parquet" in proc.stdout
    assert "reports/protocol_optimism.md" in proc.stdout
    from asym.dag.dvc_yaml import render

    stages = yaml.safe_load(render(load_params(root / "params.yaml")))["stages"]
    assert {"train-kfold-dvlog-mean-mlp", "train-kfold_select_on_test-lmvd-mean-mlp", "split-kfold-lmvd"} <= set(stages)
    assert "runs/optimism/kfold/dvlog/mean-mlp/seed0/predictions.parquet" in stages["report"]["deps"]
    assert "runs/optimism/kfold_select_on_test/dvlog/mean-mlp/seed0/epochs.parquet" in stages["report"]["deps"]
    assert "runs/optimism/kfold/dvlog/mean-mlp/seed0/epochs.parquet" in stages["train-kfold-dvlog-mean-mlp"]["outs"]
    assert not any(f.endswith("epochs.parquet") for f in stages["train-dvlog-mean-mlp"]["outs"])
    assert "reports/protocol_optimism.md" in stages["report"]["outs"]
    assert (f"--protocol kfold --entry-digest {__import__('asym.models.registry', fromlist=['get']).get('mean-mlp').digest()}"
            " --code-digest ") in stages["train-kfold-dvlog-mean-mlp"]["cmd"]
