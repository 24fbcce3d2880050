"""The optimism study: `kfold_select_on_test` is `kfold` with the checkpoint chosen on the test
fold, nothing else; the `protocol_optimism` table sets the two side by side, paired; both DAGs
hold the study's jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import asym.train as train_mod
from asym import optimism
from asym.cli import main
from asym.data.splits import OPTIMISTIC_FLAG, read_split
from asym.layout import Layout, stage_params
from asym.metrics import label_metrics, selection_score
from asym.stats import resample_weights, weighted_metrics
from tests.project import make_project, prepared

HONEST, OPTIMISTIC = "kfold", "kfold_select_on_test"
STUDY = {"optimism": {"models": {"demo": ["mean-mlp"], "paper": []}, "seeds": {"demo": [0, 1], "paper": [0]}},
         "split": {"kfold": {"k": 3, "valid_fraction": 0.2}}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    p = prepared(root, ["mean-mlp"], epochs=4, **STUDY)
    for protocol in (HONEST, OPTIMISTIC):
        assert main(["--params", str(root / "params.yaml"), "split", "--dataset", "dvlog", "--protocol", protocol]) == 0
        train_mod.train_job(p.for_protocol(protocol), "dvlog", "mean-mlp", p.study_seeds)
    return p


def _runs(p, protocol: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    run = Path(Layout.of(p.for_protocol(protocol)).run_dir("dvlog", "mean-mlp", seed))
    return pd.read_csv(run / "history.csv"), pd.read_parquet(run / "predictions.parquet")


def test_the_study_lives_in_its_own_folders_with_the_same_folds(study):
    p = study
    lay = {pr: Layout.of(p.for_protocol(pr)) for pr in (HONEST, OPTIMISTIC)}
    assert lay[HONEST].for_protocol("x") != lay[HONEST] and lay[HONEST] == Layout.of(p).for_protocol(HONEST)
    assert lay[OPTIMISTIC].runs.endswith("runs/protocols/kfold_select_on_test")
    splits = {pr: read_split(Path(lay[pr].split_csv("dvlog"))) for pr in lay}
    assert splits[HONEST].equals(splits[OPTIMISTIC]) and splits[HONEST]["partition"].nunique() == 3
    assert not Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0)).exists()               # main runs untouched
    train_keys = stage_params(p, "train", "dvlog", "mean-mlp", protocol=OPTIMISTIC)
    assert "optimism.seeds.demo" in train_keys and "run.seeds.demo" not in train_keys


def test_selecting_on_test_follows_the_same_training_and_picks_the_test_folds_best_epoch(study):
    p = study
    for seed in p.study_seeds:
        h_hist, (o_hist, o_pred) = _runs(p, HONEST, seed)[0], _runs(p, OPTIMISTIC, seed)
        np.testing.assert_array_equal(h_hist["train_loss"], o_hist["train_loss"])      # one trajectory
        for part, rows in o_pred.groupby("partition"):
            assert sorted(rows.loc[rows["fold"] == "valid", "sample_id"]) == sorted(rows.loc[rows["fold"] == "test",
                                                                                              "sample_id"])
            test = rows[rows["fold"] == "test"]
            hist = o_hist[o_hist["partition"] == part]
            best = int(hist.loc[hist["valid_selection"].idxmax(), "epoch"])             # first best on the test fold
            h_best = int(train_mod.read_summary(Path(Layout.of(p.for_protocol(HONEST)).run_dir(
                "dvlog", "mean-mlp", seed)))["best_epoch"][part])
            o_summary = train_mod.read_summary(Path(Layout.of(p.for_protocol(OPTIMISTIC)).run_dir("dvlog", "mean-mlp",
                                                                                                   seed)))
            assert o_summary["best_epoch"][part] == best and o_summary["protocol"] == OPTIMISTIC
            score = selection_score(label_metrics(test["label"], test["pred"]), "mean4")
            assert score == pytest.approx(hist["valid_selection"].max())                 # the reported score is the max
            assert hist.loc[hist["epoch"] == h_best, "valid_selection"].iloc[0] <= score   # honest epoch, on test


def test_the_optimism_table_sets_both_protocols_side_by_side_paired(study, tmp_path):
    p = study
    table = optimism.compare(p)
    [row] = table.to_dict("records")
    for pr in (HONEST, OPTIMISTIC):
        per_unit = []
        for seed in p.study_seeds:
            test = _runs(p, pr, seed)[1].query("fold == 'test'")
            per_unit += [label_metrics(g["label"], g["pred"])["f1"] for _, g in test.groupby("partition")]
        assert row[f"f1_{pr}"] == pytest.approx(np.mean(per_unit)) and row[f"n_units_{pr}"] == 6
        assert row[f"f1_{pr}_std"] == pytest.approx(np.std(per_unit, ddof=1))
    assert row["delta_f1"] == pytest.approx(row[f"f1_{OPTIMISTIC}"] - row[f"f1_{HONEST}"])
    assert row["delta_accuracy"] == pytest.approx(row[f"accuracy_{OPTIMISTIC}"] - row[f"accuracy_{HONEST}"])
    # the CI is of the paired difference on the report's resamples of the pooled test vlogs
    ids = sorted(_runs(p, HONEST, 0)[1].query("fold == 'test'")["sample_id"])
    W = resample_weights(np.array(ids), p.report.bootstrap, np.random.default_rng([p.report.ci_seed, 100, 0]))

    def pooled(pr: str) -> np.ndarray:
        out = []
        for seed in p.study_seeds:
            t = _runs(p, pr, seed)[1].query("fold == 'test'").sort_values("sample_id")
            out.append(weighted_metrics(t["label"].to_numpy(), t["pred"].to_numpy(float), W)["f1"])
        return np.mean(out, axis=0)
    delta = pooled(OPTIMISTIC) - pooled(HONEST)
    assert (row["delta_f1_ci_low"], row["delta_f1_ci_high"]) == pytest.approx(tuple(np.percentile(delta, [2.5, 97.5])))
    assert 0 < row["delta_f1_p"] <= 1
    paths = {f"protocol_optimism_{f}": tmp_path / f"protocol_optimism.{f}" for f in ("md", "csv", "tex")}
    optimism.write_table(table, p, paths)
    md = paths["protocol_optimism_md"].read_text()
    assert OPTIMISTIC_FLAG in md and "`kfold_select_on_test` (optimistic)" in md and "| mean-mlp" in md
    assert r"\begin{tabular}" in paths["protocol_optimism_tex"].read_text()
    assert pd.read_csv(paths["protocol_optimism_csv"])["delta_f1"].iloc[0] == pytest.approx(row["delta_f1"])


def test_both_dags_hold_the_study(tmp_path):
    root = make_project(tmp_path / "p", ["mean-mlp", "bilstm"], [0], epochs=1, **STUDY)
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1", "all"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tests.workflow.conftest import job_counts

    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_protocol"] == 2 * 2 and counts["split_protocol"] == 2 * 2 and counts["train"] == 2 * 2
    assert "runs/protocols/kfold_select_on_test/lmvd/mean-mlp/seed0/train.json" in proc.stdout
    assert "reports/protocol_optimism.md" in proc.stdout
    import yaml

    from asym.config import load_params
    from asym.dvc_yaml import render

    stages = yaml.safe_load(render(load_params(root / "params.yaml")))["stages"]
    assert {"train-kfold-dvlog-mean-mlp", "train-kfold_select_on_test-lmvd-mean-mlp", "split-kfold-lmvd"} <= set(stages)
    assert "runs/protocols/kfold/dvlog/mean-mlp/seed0/predictions.parquet" in stages["report"]["deps"]
    assert "reports/protocol_optimism.md" in stages["report"]["outs"]
    assert stages["train-kfold-dvlog-mean-mlp"]["cmd"].endswith(
        f"--protocol kfold --entry-digest {__import__('asym.models.registry', fromlist=['get']).get('mean-mlp').digest()}")
