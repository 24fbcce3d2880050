"""The report's maths against known answers, on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asym.config import load_params
from asym.grid import Run
from asym.layout import Layout
from asym.metrics import METRICS, all_metrics
from asym.report.aggregate import aggregate
from asym.report.build import make_report
from asym.report.runs import MACRO
from tests.project import small_params

MODELS = ["asym", "asym-no-mem", "mean-mlp"]
# Hand-made signal per (dataset, model, seed): how far the test probabilities follow the label.
SIGNAL = {"dvlog": {"asym": [0.60, 0.70, 0.80], "asym-no-mem": [0.50, 0.55, 0.60], "mean-mlp": [0.40, 0.40, 0.70]},
          "lmvd": {"asym": [0.50, 0.50, 0.80], "asym-no-mem": [0.45, 0.65, 0.55], "mean-mlp": [0.30, 0.20, 0.10]}}
DEFAULT_SIGNAL = 0.5
BEST_EPOCH = 5


def _write_runs(root: Path, signal: dict | None = None, n_test: int = 40, partitions: int = 1,
                subjects_supplied: bool = False, n_seeds: int = 3, datasets: list[str] | None = None,
                models: list[str] | None = None, probs: dict | None = None, clones: dict[str, float] | None = None,
                best_epoch: dict | None = None) -> object:
    """Hand-made runs: each run's metrics.json holds its own partitions' test metrics, as `evaluate`
    writes them. `probs` replaces a (dataset, model, seed)'s probabilities; `clones` gives a model
    ASYM's probabilities moved by the value; `best_epoch` a (dataset, model, seed)'s checkpoint epoch."""
    signal, models = signal or SIGNAL, models or MODELS
    raw = small_params(models, list(range(n_seeds)), epochs=1, bootstrap=300)
    if datasets:
        raw["run"]["datasets"] = datasets
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    lay = Layout.of(p)
    rng = np.random.default_rng(0)
    for ds in p.datasets:
        ids = [f"{ds}{i:03d}" for i in range(n_test)]
        y = np.r_[np.ones(n_test // 2, int), np.zeros(n_test - n_test // 2, int)]
        part = np.arange(n_test) % partitions
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
        asym_probs = {}
        for model in models:
            for s in range(n_seeds):
                run = lay.run(Run(ds, model, s))
                run.folder.mkdir(parents=True)
                strength = signal.get(ds, {}).get(model, [DEFAULT_SIGNAL] * n_seeds)[s]
                prob = np.clip(y * strength + rng.normal(0.45 - strength / 2, 0.25, n_test), 0, 1)
                if model in (clones or {}):
                    prob = np.clip(asym_probs[s] + clones[model], 0, 1)
                prob = (probs or {}).get((ds, model, s), prob)
                asym_probs.setdefault(s, prob)
                pd.DataFrame({"sample_id": ids, "subject_id": subjects, "partition": part, "fold": "test", "label": y,
                              "prob": prob, "pred": (prob >= 0.5).astype(int), "gender": None,
                              "n_frames": np.arange(n_test) + 10}).to_parquet(run.file("predictions"))
                parts = {str(q): {"test": all_metrics(y[part == q], prob[part == q])} for q in range(partitions)}
                point = all_metrics(y, prob)
                run.file("metrics").write_text(json.dumps({"partitions": parts, "test": point, "valid": point}))
                epoch = (best_epoch or {}).get((ds, model, s), BEST_EPOCH)
                run.file("summary").write_text(json.dumps({"n_params": 1000, "epoch_time_s": 0.1, "recipe_name": "asym",
                                                           "threshold": [0.5] * partitions,
                                                           "best_epoch": [epoch] * partitions}))
    return p


def _seed_metrics(p, ds: str, model: str) -> pd.DataFrame:
    """Each seed's test metrics by scikit-learn, from its saved predictions."""
    rows = []
    for s in p.seeds:
        pred = pd.read_parquet(Layout.of(p).run(Run(ds, model, s)).file("predictions")).sort_values("sample_id")
        rows.append(all_metrics(pred["label"].to_numpy(), pred["prob"].to_numpy()))
    return pd.DataFrame(rows)


def assert_coherent(summary: pd.DataFrame) -> None:
    """Every reported point (any metric, any dataset or the macro-average, ΔF1) within its 95% CI."""
    checks = [(k, f"{k}_ci_low", f"{k}_ci_high") for k in METRICS]
    checks.append(("delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high"))
    tol = 1e-12
    for point, lo, hi in checks:
        rows = summary[np.isfinite(summary[lo].astype(float))]
        outside = rows[(rows[point] < rows[lo] - tol) | (rows[point] > rows[hi] + tol)]
        assert outside.empty, (point, outside[["dataset", "model", point, lo, hi]].to_string())
        trained = summary[(summary["kind"] != "floor") & np.isfinite(summary[point].astype(float))]
        if point != "delta_f1_vs_asym":
            assert np.isfinite(trained[lo].astype(float)).all(), point     # every trained point has its CI


def test_mean_std_and_the_seed_wise_macro_average(tmp_path):
    p = _write_runs(tmp_path)
    summary, _ = aggregate(p)
    row = summary.set_index(["dataset", "model"])
    for model in MODELS:
        per_ds = {}
        for ds in ("dvlog", "lmvd"):
            per_ds[ds] = _seed_metrics(p, ds, model)
            for k in ("f1", "accuracy", "auroc", "ece"):
                assert row.loc[(ds, model), k] == pytest.approx(per_ds[ds][k].mean()), (ds, model, k)
                assert row.loc[(ds, model), f"{k}_std"] == pytest.approx(per_ds[ds][k].std(ddof=1))
            assert row.loc[(ds, model), "n_seeds"] == 3
        per_seed = (per_ds["dvlog"]["f1"] + per_ds["lmvd"]["f1"]) / 2
        assert row.loc[(MACRO, model), "f1"] == pytest.approx(per_seed.mean())
        # over seeds, never over the two dataset means
        assert row.loc[(MACRO, model), "f1_std"] == pytest.approx(per_seed.std(ddof=1))
        assert row.loc[(MACRO, model), "f1_std"] != pytest.approx(
            np.std([per_ds["dvlog"]["f1"].mean(), per_ds["lmvd"]["f1"].mean()], ddof=1))
        assert row.loc[(MACRO, model), "n_seeds"] == 3


def test_under_kfold_the_point_is_the_pooled_estimand_of_its_interval(tmp_path):
    p = _write_runs(tmp_path, partitions=2)
    summary, all_runs = aggregate(p)
    r = summary.set_index(["dataset", "model"]).loc[("dvlog", "mean-mlp")]
    pooled = _seed_metrics(p, "dvlog", "mean-mlp")["f1"]                 # each seed's vlogs of both folds at once
    assert r["f1"] == pytest.approx(pooled.mean()) and r["f1_std"] == pytest.approx(pooled.std(ddof=1))
    runs = {x.name: x for x in all_runs}["dvlog"]
    per_fold = runs.run_metrics.query("model == 'mean-mlp'")["f1"]
    assert len(per_fold) == 6 and r["f1"] != pytest.approx(per_fold.mean())   # not the mean of fold metrics
    assert r["n_seeds"] == 3 and r["n_units"] == 3
    assert_coherent(summary)


def test_every_point_lies_in_its_interval(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    const = np.full(40, 0.9)
    a = aggregate(_write_runs(tmp_path / "a", subjects_supplied=True, probs={("lmvd", "mean-mlp", 1): const}))[0]
    assert_coherent(a)
    b = aggregate(_write_runs(tmp_path / "b", n_test=20, partitions=2, clones={"asym-no-mem": 0.0}))[0]
    assert_coherent(b)
    assert len(a) + len(b) == 2 * 3 * (3 + 3)


def test_the_check_of_coherence_fails_on_a_point_outside_its_interval(tmp_path):
    summary = aggregate(_write_runs(tmp_path))[0]
    broken = summary.copy()
    i = broken.index[(broken["dataset"] == MACRO) & (broken["model"] == "mean-mlp")][0]
    broken.loc[i, "ece"] = broken.loc[i, "ece_ci_high"] + 0.01
    with pytest.raises(AssertionError, match="ece"):
        assert_coherent(broken)


def test_cis_contain_the_pooled_estimate_and_deltas_are_paired(tmp_path):
    p = _write_runs(tmp_path)
    summary, all_runs = aggregate(p)
    trained = summary[summary["kind"] != "floor"]
    for k in METRICS:
        assert (trained[f"{k}_ci_low"] <= trained[f"{k}_ci_high"]).all(), k
    runs = {r.name: r for r in all_runs}
    for r in trained[trained["dataset"] != MACRO].itertuples():
        pooled = np.mean([all_metrics(runs[r.dataset].y, q)["auroc"] for q in runs[r.dataset].probs[r.model]])
        assert r.auroc == pytest.approx(pooled) and r.auroc_ci_low <= pooled <= r.auroc_ci_high
    p_values = summary["p_vs_asym"].dropna()
    assert len(p_values) == 6 and p_values.between(0, 1).all()        # 2 models x (2 datasets + macro)
    assert summary.loc[summary["model"] == "asym", "p_vs_asym"].isna().all()
    row = summary.set_index(["dataset", "model"])
    d = row.loc[("dvlog", "mean-mlp")]
    assert d["delta_f1_vs_asym"] == pytest.approx(_seed_metrics(p, "dvlog", "mean-mlp")["f1"].mean()
                                                  - _seed_metrics(p, "dvlog", "asym")["f1"].mean())


def test_floors_are_computed_from_the_real_labels(tmp_path):
    p = _write_runs(tmp_path)
    summary, _ = aggregate(p)
    floors = summary[summary["kind"] == "floor"].set_index(["dataset", "model"])
    assert set(floors.index.get_level_values("model")) == {"majority", "always-depressed", "chance"}
    assert floors.loc[("dvlog", "majority"), "accuracy"] == pytest.approx(0.5)
    assert floors.loc[("dvlog", "always-depressed"), "f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert floors.loc[("dvlog", "chance"), "accuracy"] == pytest.approx(0.5, abs=0.1)


def test_the_report_writes_every_declared_file_and_names_its_conventions(tmp_path):
    p = _write_runs(tmp_path)
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
    assert caf["f1"] == pytest.approx((77.04 + 74.87) / 2) and caf["accuracy"] == pytest.approx((72.17 + 74.32) / 2)


def test_the_resampling_unit_is_the_subject_when_subjects_are_known(tmp_path):
    from asym.report.runs import load_dataset_runs

    (tmp_path / "known").mkdir()
    (tmp_path / "unknown").mkdir()
    known = _write_runs(tmp_path / "known", subjects_supplied=True)
    runs = load_dataset_runs(known, "dvlog")
    assert runs.subject_independent == "true" and runs.protocol == "official"
    assert runs.units.tolist() == [f"p{i // 2}" for i in range(40)] and runs.ids[0] == "dvlog000"
    assert runs.probs["asym"].shape == (3, 40) and runs.y.tolist() == [1] * 20 + [0] * 20
    assert runs.run_metrics["partition"].tolist() == [0] * 9
    summary, _ = aggregate(known)
    assert set(summary.loc[(summary["kind"] != "floor") & (summary["dataset"] != MACRO), "bootstrap_unit"]) == {"subject"}
    unknown = _write_runs(tmp_path / "unknown")
    runs = load_dataset_runs(unknown, "dvlog")
    assert runs.subject_independent == "unknown" and runs.units.tolist() == runs.ids.tolist()
    summary, _ = aggregate(unknown)
    assert set(summary.loc[(summary["kind"] != "floor") & (summary["dataset"] != MACRO), "bootstrap_unit"]) == {"vlog"}


def test_runs_on_other_test_vlogs_or_no_runs_are_refused(tmp_path):
    from asym.errors import DataError
    from asym.report.runs import load_dataset_runs

    p = _write_runs(tmp_path)
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
    p = _write_runs(tmp_path, subjects_supplied=True)
    path = Layout.of(p).split_csv("dvlog")
    split = pd.read_csv(path, dtype=str)
    split.loc[split["fold"] == "train", "subject_id"] = "p0"        # p0 also has test vlogs
    split.to_csv(path, index=False)
    summary, _ = aggregate(p)
    assert summary.set_index(["dataset", "model"]).loc[("dvlog", "majority"), "accuracy"] == pytest.approx(0.5)


def _fairness_runs(n_frames, gender, probs):
    from asym.config import DEFAULT_THRESHOLD
    from asym.report.runs import DatasetRuns

    n = len(n_frames)
    y = np.array([1, 0] * n)[:n]
    probs = np.array(probs, float)
    return DatasetRuns("d", "official", "true", np.array([f"v{i}" for i in range(n)]), y, np.arange(n).astype(str),
                       np.array(gender, dtype=object), np.array(n_frames), {"m": probs},
                       {"m": (probs >= DEFAULT_THRESHOLD).astype(int)})      # labelled at the default threshold


def _fair_params(models=("m",)):
    from types import SimpleNamespace

    return SimpleNamespace(models=list(models), report=SimpleNamespace(bootstrap=300, ci_seed=7))


def test_fairness_groups_by_gender_and_length_tercile():
    from asym.report.aggregate import fairness
    from asym.report.runs import GAP

    # lengths 1..7: the tercile edges fall on 3 and 5, which belong to the upper group
    probs = [[0.9, 0.5, 0.2, 0.1, 0.8, 0.7, 0.6], [0.6, 0.1, 0.9, 0.4, 0.2, 0.3, 0.5]]
    runs = _fairness_runs(list(range(1, 8)), ["f", "m", "f", None, "m", "f", "m"], probs)
    out = fairness(_fair_params(), [runs]).set_index(["attribute", "group"])
    groups = {("gender", "f"): [0, 2, 5], ("gender", "m"): [1, 4, 6],
              ("length", "short"): [0, 1], ("length", "medium"): [2, 3], ("length", "long"): [4, 5, 6]}
    for key, idx in groups.items():
        assert out.loc[key, "n"] == len(idx), key
        assert out.loc[key, "n_depressed"] == runs.y[idx].sum() and out.loc[key, "n_normal"] == len(idx) - runs.y[idx].sum()
        # a handful of vlogs: too small to test, no number shown
        assert not out.loc[key, "tested"] and np.isnan(out.loc[key, "accuracy"]) and np.isnan(out.loc[key, "f1_ci_low"])
    assert np.isnan(out.loc[("gender", GAP), "accuracy"]) and out.loc[("gender", GAP), "untested"] == "f, m"
    assert len(out) == 2 + 1 + 3 + 1


def _big_fairness_runs(n: int = 60, seeds: int = 2):
    """n vlogs alternating depressed/normal, gender f/m in blocks, lengths 0..n-1, with a model
    that is right more often on the long vlogs."""
    from asym.config import DEFAULT_THRESHOLD
    from asym.report.runs import DatasetRuns

    rng = np.random.default_rng(3)
    y = np.arange(n) % 2
    right = rng.random((seeds, n)) < np.linspace(0.5, 0.95, n)
    probs = np.where(right, np.where(y == 1, 0.8, 0.2), np.where(y == 1, 0.3, 0.7))
    gender = np.array(["f"] * (n // 2) + ["m"] * (n - n // 2), dtype=object)
    return DatasetRuns("d", "official", "true", np.array([f"v{i}" for i in range(n)]), y,
                       np.array([f"s{i}" for i in range(n)]), gender, np.arange(n), {"m": probs},
                       {"m": (probs >= DEFAULT_THRESHOLD).astype(int)})


def test_fairness_of_tested_groups_against_its_definition():
    from asym.metrics import label_metrics
    from asym.report.aggregate import FAIRNESS_STREAM, fairness, subgroups
    from asym.report.runs import GAP
    from asym.report.stats import centred_ci, resample_weights, weighted_metrics

    runs = _big_fairness_runs()
    params = _fair_params()
    out = fairness(params, [runs]).set_index(["attribute", "group"])
    groups = subgroups(runs)
    # one resample of the whole test set, every group reading its own columns of it
    W_all = resample_weights(runs.units, 300, np.random.default_rng([7, 0, FAIRNESS_STREAM]))
    for key, mask in groups.items():
        r = out.loc[key]
        assert r["tested"] and r["n"] == mask.sum() == 20 if key[0] == "length" else 30
        per_seed = [label_metrics(runs.y[mask], pred[mask]) for pred in runs.preds["m"]]
        W = W_all[:, mask]
        for k in ("accuracy", "f1"):
            assert r[k] == pytest.approx(np.mean([m[k] for m in per_seed])), (key, k)
            draws = np.mean([weighted_metrics(runs.y[mask], pr[mask], W, (k,), pred=pd_[mask])[k]
                             for pr, pd_ in zip(runs.probs["m"], runs.preds["m"], strict=True)], axis=0)
            assert (r[f"{k}_ci_low"], r[f"{k}_ci_high"]) == pytest.approx(centred_ci(draws, r[k]))
            assert r[f"{k}_ci_low"] <= r[k] <= r[f"{k}_ci_high"]
    for attr, names in (("gender", ["f", "m"]), ("length", ["short", "medium", "long"])):
        gap = out.loc[(attr, GAP)]
        for k in ("accuracy", "f1"):
            vals = out.loc[[(attr, g) for g in names], k]
            best, worst = vals.idxmax()[1], vals.idxmin()[1]
            assert gap[k] == pytest.approx(vals.max() - vals.min()) and gap[f"{k}_between"] == f"{best} - {worst}"
            assert gap[f"{k}_ci_low"] <= gap[k] <= gap[f"{k}_ci_high"]
            # paired: the gap's resamples are the two groups' same resamples, differenced
            b, w = groups[(attr, best)], groups[(attr, worst)]
            diff = [np.mean([weighted_metrics(runs.y[m], pr[m], W_all[:, m], (k,), pred=pd_[m])[k]
                             for pr, pd_ in zip(runs.probs["m"], runs.preds["m"], strict=True)], axis=0) for m in (b, w)]
            assert (gap[f"{k}_ci_low"], gap[f"{k}_ci_high"]) == pytest.approx(centred_ci(diff[0] - diff[1], gap[k]))
    assert out.loc[("length", GAP), "accuracy_between"].startswith("long")    # the planted advantage


def test_a_group_too_small_to_test_has_no_number_and_stays_out_of_the_gap():
    from asym.report.aggregate import fairness
    from asym.report.runs import GAP, MIN_GROUP_CLASS

    runs = _big_fairness_runs()
    runs.y[np.arange(40, 60)] = 0                     # the long tercile: no depressed vlog left
    runs.y[40] = 1
    out = fairness(_fair_params(), [runs]).set_index(["attribute", "group"])
    long = out.loc[("length", "long")]
    assert long["n_depressed"] == 1 < MIN_GROUP_CLASS and not long["tested"] and np.isnan(long["f1"])
    gap = out.loc[("length", GAP)]
    assert gap["untested"] == "long" and gap["tested"]
    assert gap["f1"] == pytest.approx(abs(out.loc[("length", "short"), "f1"] - out.loc[("length", "medium"), "f1"]))
    assert "long" not in gap["f1_between"]


def test_fairness_skips_empty_groups_and_unknown_gender():
    from asym.report.aggregate import fairness

    runs = _fairness_runs([5] * 4, [None] * 4, [[0.9, 0.1, 0.9, 0.1]])        # one length: every vlog "long"
    out = fairness(_fair_params(), [runs])
    assert out["group"].tolist() == ["long", "gap (best - worst)"] and out["n"].iloc[0] == 4
    assert np.isnan(out["accuracy"].iloc[1]) and not out["tested"].iloc[1]


def test_summary_rows_describe_their_runs(tmp_path):
    p = _write_runs(tmp_path, subjects_supplied=True)
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
    (tmp_path / "one").mkdir()
    one = _write_runs(tmp_path / "one", n_seeds=1)
    row = aggregate(one)[0].set_index(["dataset", "model"])
    assert row.loc[("dvlog", "asym"), "f1"] == pytest.approx(_seed_metrics(one, "dvlog", "asym")["f1"].iloc[0])
    assert row.loc[("dvlog", "asym"), "f1_std"] == 0.0
    assert row.loc[("dvlog", "asym"), "n_params"] == 1000 and row.loc[("dvlog", "asym"), "recipe"] == "asym"
    (tmp_path / "two").mkdir()
    same = np.linspace(0, 1, 40)
    two = _write_runs(tmp_path / "two", n_seeds=2, probs={("dvlog", "mean-mlp", s): same for s in range(2)})
    row = aggregate(two)[0].set_index(["dataset", "model"])
    assert row.loc[("dvlog", "mean-mlp"), "f1_std"] == pytest.approx(0.0)
    assert row.loc[("dvlog", "asym"), "f1_std"] == pytest.approx(_seed_metrics(two, "dvlog", "asym")["f1"].std(ddof=1))
    assert row.loc[("dvlog", "asym"), "f1_std"] > 0


def test_floors_use_the_training_labels_for_the_guess_and_the_test_labels_for_the_score(tmp_path):
    from asym.report.aggregate import floors

    p = _write_runs(tmp_path)
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
    assert out["always-depressed"]["f1"] == pytest.approx(2 * 0.25 / 1.25) and out["always-depressed"]["recall"] == 1.0
    assert np.isnan(out["always-depressed"]["accuracy"]) and np.isnan(out["chance"]["ece"])


def test_a_normal_majority_has_no_depressed_class_floor_and_the_macro_average_none_either(tmp_path):
    p = _write_runs(tmp_path)
    path = Layout.of(p).split_csv("lmvd")
    split = pd.read_csv(path)
    split.loc[split["fold"].eq("train") & split["label"].eq(1) & split.index.to_series().mod(2).eq(0), "label"] = 0
    split.to_csv(path, index=False)                         # LMVD's training fold now mostly normal
    row = aggregate(p)[0].set_index(["dataset", "model"])
    for k in ("precision", "recall", "f1"):
        assert np.isnan(row.loc[("lmvd", "majority"), k]) and np.isfinite(row.loc[("dvlog", "majority"), k]), k
        assert np.isnan(row.loc[(MACRO, "majority"), k]), k              # a mean with a meaningless part: none
        assert np.isfinite(row.loc[(MACRO, "always-depressed"), k]), k
    assert row.loc[("lmvd", "always-depressed"), "f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert row.loc[(MACRO, "majority"), "accuracy"] == pytest.approx(0.5)


SUMMARY_COLUMNS = {"dataset", "model", "kind", "recipe", "protocol", "subject_independent", "n_seeds", "n_units",
                   "n_test", "bootstrap_unit", "n_params", "epoch_time_s", "threshold_rule", "threshold",
                   *(f"{k}{s}" for k in METRICS for s in ("", "_std", "_ci_low", "_ci_high")),
                   "delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym", "p_raw_vs_asym",
                   "mde_f1_vs_asym", "mde_f1_holm_vs_asym", "holm_family", "holm_family_size", "no_difference",
                   "failed_seeds", "failure"}


def test_the_macro_average_against_its_definition(tmp_path):
    from asym.report.runs import load_dataset_runs
    from asym.report.stats import centred_ci, resample_weights, seed_mean_resamples

    p = _write_runs(tmp_path)
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
            pytest.approx(centred_ci(per_ds[-1], row.loc[(ds, "mean-mlp"), "f1"]))
    macro = row.loc[(MACRO, "mean-mlp")]
    assert (macro["f1_ci_low"], macro["f1_ci_high"]) == pytest.approx(centred_ci(np.mean(per_ds, axis=0), macro["f1"]))
    assert macro["n_units"] == 3 and macro["n_params"] == 1000 and macro["recipe"] == "asym"
    assert macro["epoch_time_s"] == pytest.approx(0.1) and macro["kind"] == "baseline"
    for floor in ("majority", "chance"):
        expected = np.mean([row.loc[(ds, floor), "accuracy"] for ds in p.datasets])
        assert row.loc[(MACRO, floor), "accuracy"] == pytest.approx(expected)
        assert np.isnan(row.loc[(MACRO, floor), "f1_std"]) and np.isnan(row.loc[("dvlog", floor), "f1_ci_low"])


def test_one_dataset_has_no_macro_average(tmp_path):
    summary, _ = aggregate(_write_runs(tmp_path, datasets=["lmvd"]))
    assert set(summary["dataset"]) == {"lmvd"} and set(summary.columns) == SUMMARY_COLUMNS


FAMILY_MODELS = ["asym", "asym-no-mem", "asym-no-gate", "mean-mlp", "bilstm", "tamfn"]
FAMILIES = {"ablations": ["asym-no-mem", "asym-no-gate"], "baselines": ["mean-mlp", "bilstm", "tamfn"]}


def test_paired_tests_against_their_definition_one_holm_family_per_table(tmp_path):
    from asym.report.runs import load_dataset_runs
    from asym.report.stats import (
        centred_ci,
        holm,
        minimum_detectable_effect,
        permutation_p,
        resample_weights,
        seed_mean_resamples,
        swap_deltas,
        swap_draws,
    )

    signal = {ds: {"bilstm": [0.9, 0.9, 0.9], "tamfn": [0.1, 0.1, 0.1], **m} for ds, m in SIGNAL.items()}
    p = _write_runs(tmp_path, signal, subjects_supplied=True, models=FAMILY_MODELS)
    row = aggregate(p)[0].set_index(["dataset", "model"])
    others = FAMILY_MODELS[1:]
    f1, swaps = {}, {}
    for d, ds in enumerate(p.datasets):
        runs = load_dataset_runs(p, ds)
        W = resample_weights(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, d]))
        f1[ds] = {m: seed_mean_resamples(runs.y, runs.probs[m], W)["f1"] for m in FAMILY_MODELS}
        # exchanges of whole subjects, one set per dataset, seeded apart from the resamples
        S = swap_draws(runs.units, p.report.bootstrap, np.random.default_rng([p.report.ci_seed, d, 1]))
        assert (S[:, 0::2] == S[:, 1::2]).all()                      # p0's two vlogs move together
        swaps[ds] = {m: swap_deltas(runs.y, runs.preds["asym"], runs.preds[m], S) for m in others}
    f1[MACRO] = {m: (f1["dvlog"][m] + f1["lmvd"][m]) / 2 for m in FAMILY_MODELS}
    swaps[MACRO] = {m: ((swaps["dvlog"][m][0] + swaps["lmvd"][m][0]) / 2, (swaps["dvlog"][m][1] + swaps["lmvd"][m][1]) / 2)
                    for m in others}
    adjusted_somewhere = False
    for ds in ("dvlog", "lmvd", MACRO):
        for family, members in FAMILIES.items():
            raw = []
            for m in members:
                delta = f1[ds][m] - f1[ds]["asym"]
                r = row.loc[(ds, m)]
                assert r["holm_family"] == f"{ds}/{family}" and r["holm_family_size"] == len(members)
                assert (r["delta_f1_ci_low"], r["delta_f1_ci_high"]) == pytest.approx(
                    centred_ci(delta, r["delta_f1_vs_asym"]))
                assert r["delta_f1_vs_asym"] == pytest.approx(r["f1"] - row.loc[(ds, "asym"), "f1"])
                observed, null = swaps[ds][m]
                assert r["p_raw_vs_asym"] == pytest.approx(permutation_p(observed, null))
                assert r["mde_f1_vs_asym"] == pytest.approx(minimum_detectable_effect(null, 0.05, 0.8))
                # Holm's first step over this family's size, not over every model compared
                assert r["mde_f1_holm_vs_asym"] == pytest.approx(
                    minimum_detectable_effect(null, 0.05, 0.8, tests=len(members)))
                assert r["mde_f1_holm_vs_asym"] > r["mde_f1_vs_asym"] > 0
                raw.append(permutation_p(observed, null))
            adjusted = [row.loc[(ds, m), "p_vs_asym"] for m in members]
            assert adjusted == pytest.approx(holm(raw))
            assert adjusted != pytest.approx(holm([row.loc[(ds, m), "p_raw_vs_asym"] for m in others])[:len(members)]) \
                or family == "ablations"
            adjusted_somewhere |= any(a > r for a, r in zip(adjusted, raw, strict=True))
    assert adjusted_somewhere
    assert np.isnan(row.loc[("dvlog", "asym"), "mde_f1_vs_asym"]) and row.loc[("dvlog", "asym"), "holm_family"] == ""


def test_a_model_with_asyms_predictions_has_no_difference_to_test(tmp_path):
    p = _write_runs(tmp_path, models=FAMILY_MODELS, clones={"asym-no-gate": 0.0, "bilstm": 0.0, "tamfn": 0.3})
    summary = aggregate(p)[0]
    row = summary.set_index(["dataset", "model"])
    for ds in ("dvlog", "lmvd", MACRO):
        for m in ("asym-no-gate", "bilstm"):             # ASYM's labels on every seed
            r = row.loc[(ds, m)]
            assert r["no_difference"] and np.isnan(r["p_vs_asym"]) and np.isnan(r["p_raw_vs_asym"]), (ds, m)
            assert np.isnan(r["mde_f1_vs_asym"]) and r["holm_family"] != ""
        assert not row.loc[(ds, "tamfn"), "no_difference"] and np.isfinite(row.loc[(ds, "tamfn"), "p_vs_asym"])
        assert row.loc[(ds, "asym-no-mem"), "holm_family_size"] == 1           # the clone is not counted
        assert row.loc[(ds, "mean-mlp"), "holm_family_size"] == 2
        assert row.loc[(ds, "asym-no-mem"), "p_vs_asym"] == pytest.approx(row.loc[(ds, "asym-no-mem"), "p_raw_vs_asym"])
    files = make_report(p)
    md = files["ablation_md"].read_text()
    section = md.split("## dvlog")[1].split("\n## ")[0]
    line = next(x for x in section.splitlines() if x.startswith("| asym-no-gate"))
    assert line.count("no difference to test") >= 3                         # ΔF1, p (raw), p (Holm)
    assert "Left out, no difference to test: asym-no-gate." in section
    assert "Holm family: the ablations against ASYM on dvlog, 1 comparison" in section
    detect = next(x for x in section.splitlines() if x.startswith("Detectable"))
    assert "median over the 1 comparisons here" in detect and "0.0" not in detect.split("points")[0]
    comparison = files["comparison_md"].read_text().split("## lmvd")[1].split("\n## ")[0]
    assert "Holm family: the baselines against ASYM on lmvd, 2 comparisons" in comparison
    assert "Left out, no difference to test: bilstm." in comparison


def test_only_identical_labels_leave_nothing_to_test():
    from asym.report.aggregate import same_labels

    labels = np.array([0, 1, 1])
    assert same_labels(labels[None], labels[None].copy())
    assert not same_labels(labels[None], np.array([[0, 1, 0]]))
    # a second seed that differs is enough
    assert not same_labels(np.stack([labels, labels]), np.stack([labels, np.array([1, 1, 1])]))


def test_failed_seeds_are_named_with_their_reason_and_marked_in_the_tables(tmp_path):
    p = _write_runs(tmp_path, probs={("dvlog", "mean-mlp", 0): np.full(40, 0.9)},
                    best_epoch={("dvlog", "asym-no-mem", 2): 1, ("dvlog", "mean-mlp", 0): 1,
                                ("lmvd", "asym", 1): 2})
    row = aggregate(p)[0].set_index(["dataset", "model"])
    assert row.loc[("dvlog", "mean-mlp"), "failed_seeds"] == "0"
    assert row.loc[("dvlog", "mean-mlp"), "failure"] == \
        "seed 0: every test vlog labelled depressed, best epoch the first (1)"
    # a first-epoch checkpoint that still tells the classes apart is no failure
    assert row.loc[("dvlog", "asym-no-mem"), "failed_seeds"] == "" and row.loc[("dvlog", "asym-no-mem"), "failure"] == ""
    assert row.loc[("lmvd", "asym"), "failed_seeds"] == "" and row.loc[("lmvd", "asym"), "failure"] == ""
    assert row.loc[(MACRO, "mean-mlp"), "failed_seeds"] == "dvlog: 0"
    files = make_report(p)
    md = files["results_md"].read_text()
    dvlog = md.split("## dvlog")[1].split("\n## ")[0]
    cells = [line.split("|")[1].strip() for line in dvlog.splitlines() if line.startswith("| ")]
    assert {"mean-mlp †", "asym-no-mem", "**asym** ◀"} <= set(cells)
    lmvd = md.split("## lmvd")[1].split("\n## ")[0]
    assert "†" not in lmvd.split("Decision threshold")[0]
    assert "mean-mlp on dvlog: seed 0: every test vlog labelled depressed" in md
    summary = pd.read_csv(files["summary_csv"], keep_default_na=False)
    assert {"failed_seeds", "failure"} <= set(summary.columns)


def test_a_failed_seed_under_kfold_is_one_partition_labelling_one_class():
    from asym.report.aggregate import failures
    from asym.report.runs import DatasetRuns

    # seed 4's partition 0 (vlogs 0 and 2) calls both depressed, though its labels pooled hold both classes
    pred = np.array([[1, 0, 0, 1], [1, 0, 1, 1]])
    runs = DatasetRuns("d", "kfold", "true", np.arange(4).astype(str), np.array([1, 0, 1, 0]), np.arange(4).astype(str),
                       np.array([None] * 4, dtype=object), np.arange(4), {"m": pred.astype(float)}, {"m": pred},
                       None, {"m": [3, 4]}, np.array([0, 1, 0, 1]))
    assert failures(runs, "m") == ("4", "seed 4: every test vlog labelled depressed")


def test_ablation_and_comparison_captions_state_the_detectable_effect(tmp_path):
    p = _write_runs(tmp_path)
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
    from asym.report.aggregate import fairness

    runs = _fairness_runs([1, 2, 3, 4, 5, 6], ["f", "m", "f", "m", "f", "m"], [[0.9, 0.1, 0.9, 0.1, 0.2, 0.8]])
    out = fairness(_fair_params(), [runs])
    assert {"dataset", "model", "attribute", "group", "n", "n_depressed", "n_normal", "tested", "accuracy", "f1",
            "accuracy_ci_low", "f1_ci_high"} <= set(out.columns)
    assert set(out["dataset"]) == {"d"} and set(out["model"]) == {"m"}
    assert set(out.loc[out["attribute"] == "gender", "group"]) == {"f", "m", "gap (best - worst)"}
    assert out.loc[out["group"] == "gap (best - worst)", "n"].isna().all()


def test_the_fairness_table_shows_counts_once_and_one_row_per_model(tmp_path):
    from asym.report.aggregate import fairness
    from asym.report.tables import fairness_counts, fairness_view

    runs = _big_fairness_runs()
    runs.y[np.arange(40, 60)] = 0
    fair = fairness(_fair_params(), [runs])
    counts = fairness_counts(fair)
    assert counts["group"].tolist() == ["f", "m", "short", "medium", "long"]
    assert counts.set_index("group").loc["long", "tested"].startswith("no") and counts["depressed"].iloc[-1] == "0"
    view = fairness_view(fair, "length")
    assert len(view) == 1 and view["F1 (dep.) long"].iloc[0] == "too small"
    assert view["F1 (dep.) gap"].iloc[0].endswith(")") and "[" in view["F1 (dep.) short"].iloc[0]


def test_each_legend_describes_its_own_table(tmp_path):
    from asym.report.tables import LABELS, SHOWN

    files = make_report(_write_runs(tmp_path))
    for name in ("results", "comparison", "ablation"):
        md = files[f"{name}_md"].read_text()
        columns = next(x for x in md.splitlines() if x.startswith("Columns: "))
        named = [part.split(" = ")[0] for part in columns.removeprefix("Columns: ").rstrip(".").split("; ")]
        assert named == [LABELS[k] for k in SHOWN[name]], name
        header = next(x for x in md.splitlines() if x.startswith("| model"))
        assert all(f" {label} " in header for label in named), name     # every label it explains is a column
        assert "over seeds" in md and "test sampling only" in md and "spread over seeds out" in md
    results = files["results_md"].read_text()
    assert "P (w.)" not in results and "R (w.)" not in results
    assert "Test metrics in %, except MCC (on -1..1)" in results
    assert "Test metrics in %:" in files["ablation_md"].read_text()               # no MCC column there
    assert "MCC 95% CI lies above 0" in results


def test_captions_name_the_test_and_say_the_intervals_are_unadjusted(tmp_path):
    files = make_report(_write_runs(tmp_path))
    summary = pd.read_csv(files["summary_csv"]).set_index(["dataset", "model"])
    for name, model, family in (("ablation", "asym-no-mem", "ablations"), ("comparison", "mean-mlp", "baselines")):
        md, tex = files[f"{name}_md"].read_text(), files[f"{name}_tex"].read_text()
        head = md.split("## dvlog")[0]
        assert "paired permutation test" in head and "paired-bootstrap p" not in md
        assert "unadjusted 95% CI" in head and "p (raw)" in md and "p (Holm)" in md
        for ds in ("dvlog", "lmvd", MACRO):
            section = md.split(f"## {ds}")[1].split("\n## ")[0]
            where = "the macro-average" if ds == MACRO else ds
            assert f"Holm family: the {family} against ASYM on {where}, 1 comparison" in section
            line = next(x for x in section.splitlines() if x.startswith(f"| {model} "))
            raw, adjusted = summary.loc[(ds, model), ["p_raw_vs_asym", "p_vs_asym"]]
            assert f" {raw:.3f} " in line or raw < 0.001
            assert summary.loc[(ds, model), "holm_family"] == f"{ds}/{family}"
        assert "Holm family: the" in tex and "unadjusted" in tex


def test_bold_marks_only_models_better_than_chance():
    from asym.report.tables import _bold_best, eligible

    part = pd.DataFrame({"model": ["asym", "always", "weak", "majority"], "kind": ["asym", "baseline", "baseline", "floor"],
                         "recall": [0.8, 1.0, 0.7, 1.0], "ece": [0.20, 0.30, 0.05, 0.0],
                         "mcc_ci_low": [0.1, 0.0, -0.2, np.nan]})
    assert eligible(part).tolist() == [True, False, False, False]
    cells = ["a", "b", "c", "d"]
    assert _bold_best(part, cells, "recall") == ["**a**", "b", "c", "d"]     # not the constant's 100% recall
    assert _bold_best(part, cells, "ece") == ["**a**", "b", "c", "d"]        # not the near-chance model's ECE
    none = part.assign(mcc_ci_low=[-0.1, 0.0, -0.2, np.nan])
    assert _bold_best(none, cells, "recall") == cells


def test_a_printed_p_never_lands_on_or_across_a_level():
    from asym.report.tables import p_value

    assert p_value(0.04995) == "0.04995" and p_value(0.0501) == "0.0501"   # 3 decimals would print 0.050
    assert p_value(0.05) == "0.050" and p_value(0.123) == "0.123" and p_value(0.0004) == "<0.001"
    for p in np.linspace(0.001, 0.2, 2001):
        printed = float(p_value(p))
        assert all((printed < a) == (p < a) for a in (0.05, 0.01)), p
