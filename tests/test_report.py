"""The report's maths against known answers, on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asym.config import load_params
from asym.layout import Layout
from asym.metrics import METRICS, all_metrics
from asym.report import MACRO, aggregate, make_report
from tests.project import small_params

MODELS = ["asym", "asym-no-mem", "mean-mlp"]
# Hand-made per-run test F1 (dataset -> model -> per seed).
F1 = {"dvlog": {"asym": [0.60, 0.70, 0.80], "asym-no-mem": [0.50, 0.55, 0.60], "mean-mlp": [0.40, 0.40, 0.70]},
      "lmvd": {"asym": [0.50, 0.50, 0.80], "asym-no-mem": [0.45, 0.65, 0.55], "mean-mlp": [0.30, 0.20, 0.10]}}


def _write_runs(root: Path, f1: dict, n_test: int = 40, partitions: int = 1, subjects_supplied: bool = False) -> object:
    raw = small_params(MODELS, [0, 1, 2], epochs=1, bootstrap=300)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    lay = Layout.of(p)
    rng = np.random.default_rng(0)
    for ds in p.datasets:
        ids = [f"{ds}{i:03d}" for i in range(n_test)]
        y = np.r_[np.ones(n_test // 2, int), np.zeros(n_test - n_test // 2, int)]
        subjects = [f"p{i // 2}" for i in range(n_test)] if subjects_supplied else ids
        train = [f"{ds}-train{i:03d}" for i in range(2 * n_test)]
        split = pd.DataFrame({"sample_id": ids + train, "subject_id": subjects + train,
                              "label": np.r_[y, np.ones(n_test, int), np.zeros(n_test, int)],
                              "partition": 0, "fold": ["test"] * n_test + ["train"] * (2 * n_test - 1) + ["valid"]})
        Path(lay.split_csv(ds)).parent.mkdir(parents=True, exist_ok=True)
        split.to_csv(lay.split_csv(ds), index=False)
        Path(lay.split_json(ds)).write_text(json.dumps({
            "protocol": "official", "subject_independent": "true" if subjects_supplied else "unknown",
            "subject_independent_verified": subjects_supplied, "n_subjects": len(set(subjects))}))
        for model in MODELS:
            for s, value in enumerate(f1[ds][model]):
                run = Path(lay.run_dir(ds, model, s))
                run.mkdir(parents=True)
                prob = np.clip(y * 0.6 + rng.normal(0.2, 0.25, n_test), 0, 1)
                pd.DataFrame({"sample_id": ids, "subject_id": subjects, "partition": 0, "fold": "test", "label": y,
                              "prob": prob, "pred": (prob >= 0.5).astype(int), "gender": None,
                              "n_frames": np.arange(n_test) + 10}).to_parquet(run / "predictions.parquet")
                point = all_metrics(y, prob)
                parts = {str(q): {"test": {**point, "f1": value + 0.01 * q}} for q in range(partitions)}
                (run / "metrics.json").write_text(json.dumps({"partitions": parts, "test": point, "valid": point}))
                (run / "train.json").write_text(json.dumps({"n_params": 1000, "epoch_time_s": 0.1, "recipe_name": "asym"}))
    return p


def test_mean_std_and_the_seed_wise_macro_average(tmp_path):
    p = _write_runs(tmp_path, F1)
    summary, _ = aggregate(p)
    row = summary.set_index(["dataset", "model"])
    for ds in ("dvlog", "lmvd"):
        for model in MODELS:
            values = np.array(F1[ds][model])
            assert row.loc[(ds, model), "f1"] == pytest.approx(values.mean())
            assert row.loc[(ds, model), "f1_std"] == pytest.approx(values.std(ddof=1))
            assert row.loc[(ds, model), "n_seeds"] == 3
    for model in MODELS:
        per_seed = (np.array(F1["dvlog"][model]) + np.array(F1["lmvd"][model])) / 2
        assert row.loc[(MACRO, model), "f1"] == pytest.approx(per_seed.mean())
        # over seeds, never over the two dataset means
        assert row.loc[(MACRO, model), "f1_std"] == pytest.approx(per_seed.std(ddof=1))
        assert row.loc[(MACRO, model), "n_seeds"] == 3
    assert row.loc[(MACRO, "mean-mlp"), "f1_std"] != pytest.approx(
        np.std([np.mean(F1["dvlog"]["mean-mlp"]), np.mean(F1["lmvd"]["mean-mlp"])], ddof=1))


def test_folds_and_seeds_both_count_under_kfold(tmp_path):
    p = _write_runs(tmp_path, F1, partitions=2)
    summary, _ = aggregate(p)
    r = summary.set_index(["dataset", "model"]).loc[("dvlog", "asym")]
    units = [v + 0.01 * q for v in F1["dvlog"]["asym"] for q in range(2)]
    assert r["f1"] == pytest.approx(np.mean(units)) and r["f1_std"] == pytest.approx(np.std(units, ddof=1))
    assert r["n_seeds"] == 3 and r["n_units"] == 6


def test_cis_contain_the_pooled_estimate_and_deltas_are_paired(tmp_path):
    p = _write_runs(tmp_path, F1)
    summary, all_runs = aggregate(p)
    trained = summary[summary["kind"] != "floor"]
    for k in METRICS:
        assert (trained[f"{k}_ci_low"] <= trained[f"{k}_ci_high"]).all(), k
    runs = {r.name: r for r in all_runs}
    for r in trained[trained["dataset"] != MACRO].itertuples():
        pooled = np.mean([all_metrics(runs[r.dataset].y, q)["auroc"] for q in runs[r.dataset].probs[r.model]])
        assert r.auroc_ci_low <= pooled <= r.auroc_ci_high
    p_values = summary["p_vs_asym"].dropna()
    assert len(p_values) == 6 and p_values.between(0, 1).all()        # 2 models x (2 datasets + macro)
    assert summary.loc[summary["model"] == "asym", "p_vs_asym"].isna().all()
    d = summary.set_index(["dataset", "model"]).loc[("dvlog", "mean-mlp")]
    assert d["delta_f1_vs_asym"] == pytest.approx(np.mean(F1["dvlog"]["mean-mlp"]) - np.mean(F1["dvlog"]["asym"]))


def test_floors_are_computed_from_the_real_labels(tmp_path):
    p = _write_runs(tmp_path, F1)
    summary, _ = aggregate(p)
    floors = summary[summary["kind"] == "floor"].set_index(["dataset", "model"])
    assert set(floors.index.get_level_values("model")) == {"majority", "chance"}
    assert floors.loc[("dvlog", "majority"), "accuracy"] == pytest.approx(0.5)
    assert floors.loc[("dvlog", "chance"), "accuracy"] == pytest.approx(0.5, abs=0.1)


def test_the_report_writes_every_declared_file_and_names_its_conventions(tmp_path):
    p = _write_runs(tmp_path, F1)
    files = make_report(p)
    assert set(files) == set(Layout.of(p).report_outputs(p.models))
    for path in files.values():
        assert path.stat().st_size > 0, path
    assert not list(Path(Layout.of(p).reports).glob(".*.tmp"))
    md = files["comparison_md"].read_text()
    assert "depressed class" in md and "weighted" in md and "protocol `official`" in md
    assert "published" not in md.split("## dvlog")[1]                  # demo: no published column
    assert "could not be verified" in md
    assert "majority (floor)" in md and "chance (floor)" in md
    tex = files["ablation_tex"].read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "**" not in tex
    summary = pd.read_csv(files["summary_csv"])
    for k in METRICS:
        assert {k, f"{k}_std", f"{k}_ci_low", f"{k}_ci_high"} <= set(summary.columns)
    assert {"protocol", "n_seeds", "delta_f1_vs_asym", "p_vs_asym", "subject_independent"} <= set(summary.columns)


def test_published_numbers_stand_only_beside_the_same_protocol_at_paper_scale(tmp_path):
    from asym.tables import _published

    pub = _published("lmvd", {"dvlog": "official", "lmvd": "depmamba"})
    assert set(pub["method"]) == {"ASYM"}                 # CAF-Mamba's LMVD split is its own
    assert _published("lmvd", {"dvlog": "official", "lmvd": "stratified_group"}).empty
    macro = _published(MACRO, {"dvlog": "official", "lmvd": "depmamba"})
    asym = macro[macro["key"] == "asym"].iloc[0]
    assert asym["f1"] == pytest.approx((77.13 + 74.90) / 2) and asym["accuracy"] == pytest.approx((70.91 + 74.68) / 2)
