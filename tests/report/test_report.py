"""The report's maths against known answers, on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asym.config import load_params
from asym.layout import Layout, Run
from asym.metrics import METRICS, all_metrics
from asym.report.aggregate import MACRO, aggregate, make_report
from tests.project import small_params

MODELS = ["asym", "asym-no-mem", "mean-mlp"]
# Hand-made per-run test F1 (dataset -> model -> per seed).
F1 = {"dvlog": {"asym": [0.60, 0.70, 0.80], "asym-no-mem": [0.50, 0.55, 0.60], "mean-mlp": [0.40, 0.40, 0.70]},
      "lmvd": {"asym": [0.50, 0.50, 0.80], "asym-no-mem": [0.45, 0.65, 0.55], "mean-mlp": [0.30, 0.20, 0.10]}}


def _write_runs(root: Path, f1: dict, n_test: int = 40, partitions: int = 1, subjects_supplied: bool = False,
                n_seeds: int = 3, datasets: list[str] | None = None) -> object:
    raw = small_params(MODELS, list(range(n_seeds)), epochs=1, bootstrap=300)
    if datasets:
        raw["run"]["datasets"] = datasets
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
                run = lay.run(Run(ds, model, s))
                run.folder.mkdir(parents=True)
                prob = np.clip(y * 0.6 + rng.normal(0.2, 0.25, n_test), 0, 1)
                pd.DataFrame({"sample_id": ids, "subject_id": subjects, "partition": 0, "fold": "test", "label": y,
                              "prob": prob, "pred": (prob >= 0.5).astype(int), "gender": None,
                              "n_frames": np.arange(n_test) + 10}).to_parquet(run.file("predictions"))
                point = all_metrics(y, prob)
                parts = {str(q): {"test": {**point, "f1": value + 0.01 * q}} for q in range(partitions)}
                run.file("metrics").write_text(json.dumps({"partitions": parts, "test": point, "valid": point}))
                run.file("summary").write_text(json.dumps({"n_params": 1000, "epoch_time_s": 0.1, "recipe_name": "asym",
                                                           "threshold": [0.5] * partitions}))
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
    assert set(files) == set(Layout.of(p).report_outputs(p.models, p.datasets))
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
    from asym.report.tables import _published

    pub = _published("lmvd", {"dvlog": "official", "lmvd": "depmamba"})
    # only models built here, only DepMamba's split: not the 4-stream CAF-Mamba, BAR Loss or MMFformer
    assert set(pub["key"]) == {"asym", "caf-mamba", "depmamba", "tamfn", "depression-detector"}
    assert (pub["protocol"] == "depmamba").all() and (pub["dataset"] == "lmvd").all()
    assert _published("lmvd", {"dvlog": "official", "lmvd": "stratified_group"}).empty
    assert _published("dvlog", {"dvlog": "kfold_select_on_test"}).empty      # MDD-Net's 10 folds are not ours
    macro = _published(MACRO, {"dvlog": "official", "lmvd": "depmamba"}).set_index(["key", "metric_convention"])
    asym = macro.loc[("asym", "depressed-class")]        # its LMVD F1's convention is unnamed: no mean F1
    assert np.isnan(asym["f1"]) and asym["accuracy"] == pytest.approx((70.91 + 74.68) / 2)
    caf = macro.loc[("caf-mamba", "depressed-class")]
    assert caf["f1"] == pytest.approx((77.04 + 74.87) / 2) and np.isnan(caf["accuracy"])   # no D-Vlog accuracy


def test_the_resampling_unit_is_the_subject_when_subjects_are_known(tmp_path):
    from asym.report.aggregate import load_dataset_runs

    (tmp_path / "known").mkdir()
    (tmp_path / "unknown").mkdir()
    known = _write_runs(tmp_path / "known", F1, subjects_supplied=True)
    runs = load_dataset_runs(known, "dvlog")
    assert runs.subject_independent == "true" and runs.protocol == "official"
    assert runs.units.tolist() == [f"p{i // 2}" for i in range(40)] and runs.ids[0] == "dvlog000"
    assert runs.probs["asym"].shape == (3, 40) and runs.y.tolist() == [1] * 20 + [0] * 20
    assert runs.units_metrics["partition"].tolist() == [0] * 9
    summary, _ = aggregate(known)
    assert set(summary.loc[(summary["kind"] != "floor") & (summary["dataset"] != MACRO), "bootstrap_unit"]) == {"subject"}
    unknown = _write_runs(tmp_path / "unknown", F1)
    runs = load_dataset_runs(unknown, "dvlog")
    assert runs.subject_independent == "unknown" and runs.units.tolist() == runs.ids.tolist()
    summary, _ = aggregate(unknown)
    assert set(summary.loc[(summary["kind"] != "floor") & (summary["dataset"] != MACRO), "bootstrap_unit"]) == {"vlog"}


def test_runs_on_other_test_vlogs_or_no_runs_are_refused(tmp_path):
    from asym.errors import DataError
    from asym.report.aggregate import load_dataset_runs

    p = _write_runs(tmp_path, F1)
    lay = Layout.of(p)
    pred_path = lay.run(Run("lmvd", "mean-mlp", 2)).file("predictions")
    pred = pd.read_parquet(pred_path)
    pred.assign(sample_id=pred["sample_id"].str.replace("lmvd039", "lmvd999")).to_parquet(pred_path)
    with pytest.raises(DataError, match="its test vlogs differ from those of the other runs of lmvd") as err:
        load_dataset_runs(p, "lmvd")
    assert err.value.path == lay.run_dir("lmvd", "mean-mlp", 2)

    class NoRuns:
        def __getattr__(self, name):
            return getattr(p, name)

        def runs(self, dataset=None, model=None):
            return []
    empty = NoRuns()
    with pytest.raises(DataError, match="no runs of dvlog to report") as err:
        load_dataset_runs(empty, "dvlog")
    assert err.value.path == str(lay.runs)


def test_floors_accept_a_published_split_that_leaks_subjects(tmp_path):
    p = _write_runs(tmp_path, F1, subjects_supplied=True)
    path = Layout.of(p).split_csv("dvlog")
    split = pd.read_csv(path, dtype=str)
    split.loc[split["fold"] == "train", "subject_id"] = "p0"        # p0 also has test vlogs
    split.to_csv(path, index=False)
    summary, _ = aggregate(p)
    assert summary.set_index(["dataset", "model"]).loc[("dvlog", "majority"), "accuracy"] == pytest.approx(0.5)


def _fairness_runs(n_frames, gender, probs):
    from asym.config import DEFAULT_THRESHOLD
    from asym.report.aggregate import DatasetRuns

    n = len(n_frames)
    y = np.array([1, 0] * n)[:n]
    probs = np.array(probs, float)
    return DatasetRuns("d", "official", "true", np.array([f"v{i}" for i in range(n)]), y, np.arange(n).astype(str),
                       np.array(gender, dtype=object), np.array(n_frames), {"m": probs},
                       {"m": (probs >= DEFAULT_THRESHOLD).astype(int)})      # labelled at the default threshold


def test_fairness_groups_by_gender_and_length_tercile():
    from types import SimpleNamespace

    from asym.metrics import label_metrics
    from asym.report.aggregate import fairness

    # lengths 1..7: the tercile edges fall on 3 and 5, which belong to the upper group
    probs = [[0.9, 0.5, 0.2, 0.1, 0.8, 0.7, 0.6], [0.6, 0.1, 0.9, 0.4, 0.2, 0.3, 0.5]]
    runs = _fairness_runs(list(range(1, 8)), ["f", "m", "f", None, "m", "f", "m"], probs)
    out = fairness(SimpleNamespace(models=["m"]), [runs]).set_index(["attribute", "group"])
    groups = {("gender", "f"): [0, 2, 5], ("gender", "m"): [1, 4, 6],
              ("length", "short"): [0, 1], ("length", "medium"): [2, 3], ("length", "long"): [4, 5, 6]}
    for key, idx in groups.items():
        per_seed = [label_metrics(runs.y[idx], (np.array(p)[idx] >= 0.5).astype(int)) for p in probs]
        assert out.loc[key, "n"] == len(idx), key
        for k in ("accuracy", "f1"):
            assert out.loc[key, k] == pytest.approx(np.mean([m[k] for m in per_seed])), (key, k)
    for attr, names in (("gender", ["f", "m"]), ("length", ["short", "medium", "long"])):
        vals = out.loc[[(attr, g) for g in names], "accuracy"]
        assert out.loc[(attr, "gap (max - min)"), "accuracy"] == pytest.approx(vals.max() - vals.min())
    assert len(out) == 2 + 1 + 3 + 1


def test_fairness_skips_empty_groups_and_unknown_gender():
    from types import SimpleNamespace

    from asym.report.aggregate import fairness

    runs = _fairness_runs([5] * 4, [None] * 4, [[0.9, 0.1, 0.9, 0.1]])        # one length: every vlog "long"
    out = fairness(SimpleNamespace(models=["m"]), [runs])
    assert out["group"].tolist() == ["long", "gap (max - min)"] and out["n"].iloc[0] == 4
    assert out["accuracy"].iloc[0] == 1.0 and out["accuracy"].iloc[1] == 0.0


def test_summary_rows_describe_their_runs(tmp_path):
    p = _write_runs(tmp_path, F1, subjects_supplied=True)
    summary, _ = aggregate(p)
    row = summary.set_index(["dataset", "model"])
    for ds in ("dvlog", "lmvd"):
        for model in ("asym", "majority"):
            r = row.loc[(ds, model)]
            assert r["protocol"] == "official" and r["subject_independent"] == "true" and r["n_test"] == 40
        r = row.loc[(ds, "mean-mlp")]
        assert r["kind"] == "baseline" and r["recipe"] == "asym" and r["n_params"] == 1000
        assert r["epoch_time_s"] == pytest.approx(0.1) and r["n_units"] == 3
    macro = row.loc[(MACRO, "asym")]
    assert macro["protocol"] == "dvlog: official; lmvd: official" and macro["subject_independent"] == "true"
    again, _ = aggregate(p)                                      # seeded resamples: the same CIs
    pd.testing.assert_frame_equal(summary, again)


def test_one_seed_has_no_spread_and_two_seeds_have_one(tmp_path):
    one = {ds: {m: v[:1] for m, v in models.items()} for ds, models in F1.items()}
    (tmp_path / "one").mkdir()
    row = aggregate(_write_runs(tmp_path / "one", one, n_seeds=1))[0].set_index(["dataset", "model"])
    assert row.loc[("dvlog", "asym"), "f1"] == pytest.approx(0.60) and row.loc[("dvlog", "asym"), "f1_std"] == 0.0
    assert row.loc[("dvlog", "asym"), "n_params"] == 1000 and row.loc[("dvlog", "asym"), "recipe"] == "asym"
    two = {ds: {m: v[:2] for m, v in models.items()} for ds, models in F1.items()}
    (tmp_path / "two").mkdir()
    row = aggregate(_write_runs(tmp_path / "two", two, n_seeds=2))[0].set_index(["dataset", "model"])
    assert row.loc[("dvlog", "mean-mlp"), "f1_std"] == pytest.approx(0.0)
    assert row.loc[("dvlog", "asym"), "f1_std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))


def test_floors_use_the_training_labels_for_the_guess_and_the_test_labels_for_the_score(tmp_path):
    from asym.report.aggregate import floors

    p = _write_runs(tmp_path, F1)
    # training fold mostly depressed, test fold mostly normal: always "depressed" scores 1/4
    pd.DataFrame({"sample_id": [f"v{i}" for i in range(9)], "subject_id": [f"v{i}" for i in range(9)],
                  "label": [1, 1, 1, 0, 0, 1, 0, 0, 0], "partition": 0,
                  "fold": ["train"] * 4 + ["valid"] + ["test"] * 4}).to_csv(Layout.of(p).split_csv("dvlog"), index=False)
    out = floors(p, "dvlog")
    assert out["majority"]["accuracy"] == pytest.approx(0.25) and out["majority"]["recall"] == 1.0
    assert out["chance"]["recall"] == pytest.approx(0.75, abs=0.15)
    from asym.metrics import chance_floor
    expected = chance_floor(np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0]), draws=20, seed=p.report.ci_seed)
    assert out["chance"] == pytest.approx(expected, nan_ok=True)


SUMMARY_COLUMNS = {"dataset", "model", "kind", "recipe", "protocol", "subject_independent", "n_seeds", "n_units",
                   "n_test", "bootstrap_unit", "n_params", "epoch_time_s", "threshold_rule", "threshold",
                   *(f"{k}{s}" for k in METRICS for s in ("", "_std", "_ci_low", "_ci_high")),
                   "delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym", "p_raw_vs_asym",
                   "mde_f1_vs_asym", "mde_f1_holm_vs_asym"}


def test_the_macro_average_against_its_definition(tmp_path):
    from asym.report.aggregate import load_dataset_runs
    from asym.report.stats import percentile_ci, resample_weights, seed_mean_resamples

    p = _write_runs(tmp_path, F1)
    summary, _ = aggregate(p)
    assert set(summary.columns) == SUMMARY_COLUMNS
    row = summary.set_index(["dataset", "model"])
    # CIs: each dataset's seeded resamples, averaged over datasets resample by resample
    per_ds = []
    for d, ds in enumerate(p.datasets):
        runs = load_dataset_runs(p, ds)
        W = resample_weights(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, d]))
        per_ds.append(seed_mean_resamples(runs.y, runs.probs["mean-mlp"], W)["f1"])
        assert (row.loc[(ds, "mean-mlp"), "f1_ci_low"], row.loc[(ds, "mean-mlp"), "f1_ci_high"]) == \
            pytest.approx(percentile_ci(per_ds[-1]))
    macro = row.loc[(MACRO, "mean-mlp")]
    assert (macro["f1_ci_low"], macro["f1_ci_high"]) == pytest.approx(percentile_ci(np.mean(per_ds, axis=0)))
    assert macro["n_units"] == 3 and macro["n_params"] == 1000 and macro["recipe"] == "asym"
    assert macro["epoch_time_s"] == pytest.approx(0.1) and macro["kind"] == "baseline"
    for floor in ("majority", "chance"):
        expected = np.mean([row.loc[(ds, floor), "accuracy"] for ds in p.datasets])
        assert row.loc[(MACRO, floor), "accuracy"] == pytest.approx(expected)
        assert np.isnan(row.loc[(MACRO, floor), "f1_std"]) and np.isnan(row.loc[("dvlog", floor), "f1_ci_low"])


def test_one_dataset_has_no_macro_average(tmp_path):
    summary, _ = aggregate(_write_runs(tmp_path, F1, datasets=["lmvd"]))
    assert set(summary["dataset"]) == {"lmvd"} and set(summary.columns) == SUMMARY_COLUMNS


def test_paired_tests_against_their_definition(tmp_path):
    from asym.report.aggregate import load_dataset_runs
    from asym.report.stats import (
        holm,
        minimum_detectable_effect,
        percentile_ci,
        permutation_p,
        resample_weights,
        seed_mean_resamples,
        swap_deltas,
        swap_draws,
    )

    p = _write_runs(tmp_path, F1, subjects_supplied=True)
    row = aggregate(p)[0].set_index(["dataset", "model"])
    f1, swaps = {}, {}
    for d, ds in enumerate(p.datasets):
        runs = load_dataset_runs(p, ds)
        W = resample_weights(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, d]))
        f1[ds] = {m: seed_mean_resamples(runs.y, runs.probs[m], W)["f1"] for m in MODELS}
        # exchanges of whole subjects, one set per dataset, seeded apart from the resamples
        S = swap_draws(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, d, 1]))
        assert (S[:, 0::2] == S[:, 1::2]).all()                      # p0's two vlogs move together
        swaps[ds] = {m: swap_deltas(runs.y, runs.preds["asym"], runs.preds[m], S) for m in MODELS[1:]}
    f1[MACRO] = {m: (f1["dvlog"][m] + f1["lmvd"][m]) / 2 for m in MODELS}
    swaps[MACRO] = {m: ((swaps["dvlog"][m][0] + swaps["lmvd"][m][0]) / 2, (swaps["dvlog"][m][1] + swaps["lmvd"][m][1]) / 2)
                    for m in MODELS[1:]}
    for ds in ("dvlog", "lmvd", MACRO):
        raw = []
        for m in MODELS[1:]:
            delta = f1[ds][m] - f1[ds]["asym"]
            r = row.loc[(ds, m)]
            assert (r["delta_f1_ci_low"], r["delta_f1_ci_high"]) == pytest.approx(percentile_ci(delta))
            assert r["delta_f1_vs_asym"] == pytest.approx(r["f1"] - row.loc[(ds, "asym"), "f1"])
            observed, null = swaps[ds][m]
            assert r["p_raw_vs_asym"] == pytest.approx(permutation_p(observed, null))
            assert r["mde_f1_vs_asym"] == pytest.approx(minimum_detectable_effect(null, 0.05, 0.8))
            assert r["mde_f1_holm_vs_asym"] == pytest.approx(minimum_detectable_effect(null, 0.05, 0.8, tests=2))
            assert r["mde_f1_holm_vs_asym"] > r["mde_f1_vs_asym"] > 0
            raw.append(permutation_p(observed, null))
        assert [row.loc[(ds, m), "p_vs_asym"] for m in MODELS[1:]] == pytest.approx(holm(raw))
    assert np.isnan(row.loc[("dvlog", "asym"), "mde_f1_vs_asym"])


def test_ablation_and_comparison_captions_state_the_detectable_effect(tmp_path):
    p = _write_runs(tmp_path, F1)
    files = make_report(p)
    summary = pd.read_csv(files["summary_csv"]).set_index(["dataset", "model"])
    for table, models in (("ablation", ["asym-no-mem"]), ("comparison", ["mean-mlp"])):
        md, tex = files[f"{table}_md"].read_text(), files[f"{table}_tex"].read_text()
        for ds in ("dvlog", "lmvd", MACRO):
            section = md.split(f"## {ds}")[1].split("\n## ")[0]
            mde = np.median([100 * summary.loc[(ds, m), "mde_f1_vs_asym"] for m in models])
            holm_mde = np.median([100 * summary.loc[(ds, m), "mde_f1_holm_vs_asym"] for m in models])
            line = f"a ΔF1 of {mde:.1f} points is found with 80% power on"
            assert line in section, (table, ds)
            assert f"{holm_mde:.1f} points at the first step of Holm" in section
            assert ("this test fold (40 vlogs)" if ds != MACRO else "the datasets' test folds together") in section
            assert f"({ds}). " in tex and line.replace("Δ", r"$\Delta$").replace("%", r"\%") in tex
    assert "Detectable" not in files["results_md"].read_text()


def test_combined_subject_independence():
    from asym.report.aggregate import _combine

    assert _combine(["true", "true"]) == "true"
    assert _combine(["true", "false"]) == "false" and _combine(["unknown", "false"]) == "false"
    assert _combine(["true", "unknown"]) == "unknown" and _combine(["unknown"]) == "unknown"


def test_fairness_rows_name_their_dataset_and_model_and_use_known_genders():
    from types import SimpleNamespace

    from asym.report.aggregate import fairness

    runs = _fairness_runs([1, 2, 3, 4, 5, 6], ["f", "m", "f", "m", "f", "m"], [[0.9, 0.1, 0.9, 0.1, 0.2, 0.8]])
    out = fairness(SimpleNamespace(models=["m"]), [runs])
    assert set(out.columns) == {"dataset", "model", "attribute", "group", "n", "accuracy", "f1"}
    assert set(out["dataset"]) == {"d"} and set(out["model"]) == {"m"}
    assert set(out.loc[out["attribute"] == "gender", "group"]) == {"f", "m", "gap (max - min)"}
    assert out.loc[out["group"] == "gap (max - min)", "n"].isna().all()
