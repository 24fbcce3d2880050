"""Every run aggregated into the paper's numbers: per (dataset, model) and their macro-average.

One estimand throughout, the one the CIs and the paired tests resample: per seed, the metric of
its test labels (and probabilities) pooled over its partitions (under `kfold` every vlog is
tested once per seed; with one partition this is the run's own test metric), then the mean ± std
over seeds. The 95% CIs (bias-corrected percentile, asym.report.stats.centred_ci) and the paired
tests against ASYM come from one bootstrap and one set of exchanges per dataset; each table's
models form their own Holm family (FAMILIES: the baselines, the ablations), per dataset and for
the macro-average. The floors (`majority`, `always-depressed`, `chance`) are computed from the
real labels, each for the metrics it stands for only (asym.metrics.FLOOR_METRICS). The runs it
reads, and the names of the rows it writes, are the report's data model (asym.report.runs). The
tables are written by asym.report.tables, the figures by asym.report.plots; MLflow logging is the
`track` step's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from asym.config import Params
from asym.data.splits import read_split
from asym.errors import DataError
from asym.layout import Layout
from asym.metrics import METRICS, always_depressed_floor, chance_floor, majority_floor
from asym.models import registry
from asym.report.runs import (
    FAIR_METRICS,
    FLOOR_KIND,
    FLOORS,
    GAP,
    MACRO,
    MIN_GROUP_CLASS,
    DatasetRuns,
    load_dataset_runs,
)
from asym.report.stats import (
    centred_ci,
    holm,
    labelled_resamples,
    minimum_detectable_effect,
    permutation_p,
    resample_weights,
    swap_deltas,
    swap_draws,
    weighted_metrics,
)

SUMMARY_EXTRA = ("delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym", "p_raw_vs_asym",
                 "mde_f1_vs_asym", "mde_f1_holm_vs_asym")
# Each table's comparisons with ASYM form one Holm family, named by its models' registry kind.
FAMILIES = {registry.BASELINE_KIND: "baselines", registry.ABLATION_KIND: "ablations"}
# Epochs count from 1 (asym.train.loop.fit): a checkpoint of the first epoch never improved on it.
FIRST_EPOCH = 1
FAIRNESS_STREAM = 2          # the subgroups' resamples: their own stream of the report's ci_seed


def floors(params: Params, dataset: str) -> dict[str, dict[str, float]]:
    """The floors from each partition's training labels, scored on the real test labels pooled
    over the partitions (the estimand of the models' rows); a metric a floor does not stand for is
    NaN (asym.metrics.FLOOR_METRICS)."""
    split = read_split(Layout.of(params).split_csv(dataset), subjects_disjoint=False)
    parts = [part for _, part in split.groupby("partition")]
    y_train = [p.loc[p["fold"] == "train", "label"].astype(int).to_numpy() for p in parts]
    y_test = [p.loc[p["fold"] == "test", "label"].astype(int).to_numpy() for p in parts]
    return {"majority": majority_floor(y_train, y_test), "always-depressed": always_depressed_floor(y_test),
            "chance": chance_floor(y_train, y_test, draws=params.report.chance_draws, seed=params.report.ci_seed)}


def _seed(runs: DatasetRuns, model: str, row: int) -> int:
    return runs.seeds[model][row] if runs.seeds.get(model) else row


def pooled_metrics(runs: DatasetRuns, model: str) -> pd.DataFrame:
    """One row per seed: the metrics of its test labels and probabilities pooled over its
    partitions, the estimand every CI and test of the report resamples."""
    ones = np.ones((1, len(runs.y)))
    rows = []
    for s, (prob, pred) in enumerate(zip(runs.probs[model], runs.preds[model], strict=True)):
        m = weighted_metrics(runs.y, prob, ones, pred=pred)
        rows.append({"seed": _seed(runs, model, s), **{k: float(v[0]) for k, v in m.items()}})
    return pd.DataFrame(rows)


def failures(runs: DatasetRuns, model: str) -> tuple[str, str]:
    """(failed seeds, why): a seed failed when one of its partitions labels every test vlog with
    one class, a constant answer whatever the vlog; that it also kept its first epoch (it never
    improved on the fold that selects) is said with it. A first-epoch checkpoint alone is no
    failure: a planted cue can be learned within one epoch."""
    partition = runs.partition if runs.partition is not None else np.zeros(len(runs.y), int)
    run_rows = runs.run_metrics
    failed, why = [], []
    for s, pred in enumerate(runs.preds[model]):
        seed = _seed(runs, model, s)
        reasons = []
        for p in np.unique(partition):
            labels = set(pred[partition == p].tolist())
            if len(labels) == 1:
                reasons.append("every test vlog labelled " + ("depressed" if labels == {1} else "normal"))
        if reasons and run_rows is not None and "best_epoch" in run_rows:
            epochs = run_rows.loc[(run_rows["model"] == model) & (run_rows["seed"] == seed), "best_epoch"]
            if (epochs == FIRST_EPOCH).any():
                reasons.append(f"best epoch the first ({FIRST_EPOCH})")
        if reasons:
            failed.append(str(seed))
            why.append(f"seed {seed}: " + ", ".join(dict.fromkeys(reasons)))
    return ", ".join(failed), "; ".join(why)


def _point(per_seed: pd.DataFrame) -> dict[str, float]:
    """Mean and std over seeds of each metric."""
    out: dict[str, float] = {}
    for k in METRICS:
        values = per_seed[k].to_numpy(float)
        out[k] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        out[f"{k}_std"] = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
    return out


def aggregate(params: Params) -> tuple[pd.DataFrame, list[DatasetRuns]]:
    """summary: one row per (dataset or macro-avg, model), floors included."""
    n_boot, rng_seed = params.report.bootstrap, params.report.ci_seed
    all_runs: list[DatasetRuns] = []
    rows: list[dict[str, Any]] = []
    resamples: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    per_seed: dict[tuple[str, str], pd.DataFrame] = {}
    nulls: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    for d_index, ds in enumerate(params.datasets):
        runs = load_dataset_runs(params, ds)
        all_runs.append(runs)
        W = resample_weights(runs.units, n_boot, np.random.default_rng([rng_seed, d_index]))
        nulls.update(_swap_nulls(params, runs, d_index))
        for model in params.models:
            run_rows = runs.run_metrics[runs.run_metrics["model"] == model]
            res = labelled_resamples(runs.y, runs.probs[model], runs.preds[model], W)
            resamples[(ds, model)] = res
            per_seed[(ds, model)] = pooled_metrics(runs, model)
            failed, why = failures(runs, model)
            row = {"dataset": ds, "model": model, "kind": registry.get(model).kind, "recipe": run_rows["recipe"].iloc[0],
                   "protocol": runs.protocol, "subject_independent": runs.subject_independent,
                   "n_seeds": run_rows["seed"].nunique(), "n_units": len(per_seed[(ds, model)]), "n_test": len(runs.y),
                   "bootstrap_unit": "subject" if len(set(runs.units)) < len(runs.units) else "vlog",
                   "n_params": int(run_rows["n_params"].iloc[0]), "epoch_time_s": float(run_rows["epoch_time_s"].mean()),
                   "threshold_rule": run_rows["threshold_rule"].iloc[0], "threshold": float(run_rows["threshold"].mean()),
                   "failed_seeds": failed, "failure": why, **_point(per_seed[(ds, model)])}
            for k in METRICS:
                row[f"{k}_ci_low"], row[f"{k}_ci_high"] = centred_ci(res[k], row[k])
            rows.append(row)
        for name, m in floors(params, ds).items():
            rows.append({"dataset": ds, "model": name, "kind": FLOOR_KIND, "protocol": runs.protocol,
                         "subject_independent": runs.subject_independent, "n_test": len(runs.y),
                         "failed_seeds": "", "failure": "",
                         **m, **{f"{k}_{s}": np.nan for k in METRICS for s in ("std", "ci_low", "ci_high")}})
    summary = pd.DataFrame(rows)
    if len(params.datasets) > 1:
        summary = pd.concat([summary, _macro(params, summary, all_runs, resamples, per_seed)], ignore_index=True)
    return _paired_tests(params, summary, resamples, nulls, all_runs), all_runs


def _swap_nulls(params: Params, runs: DatasetRuns, d_index: int) -> dict[tuple[str, str], tuple[float, np.ndarray]]:
    """Per model, ΔF1 against asym and its permutation distribution (asym.report.stats.swap_deltas),
    from one set of exchanges per dataset shared by every model, seeded like the resamples."""
    if "asym" not in runs.preds:
        return {}
    S = swap_draws(runs.units, params.report.bootstrap, np.random.default_rng([params.report.ci_seed, d_index, 1]))
    return {(runs.name, m): swap_deltas(runs.y, runs.preds["asym"], runs.preds[m], S) for m in runs.preds if m != "asym"}


def _macro(params: Params, summary: pd.DataFrame, all_runs: list[DatasetRuns],
           resamples: dict[tuple[str, str], dict[str, np.ndarray]],
           per_seed: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Mean over datasets, per seed first so its std is over seeds; CIs from the datasets'
    resamples averaged index by index. A floor's macro value only where it means something on
    every dataset."""
    rows = []
    datasets = [r.name for r in all_runs]
    for model in params.models:
        per_ds = [per_seed[(ds, model)].groupby("seed")[list(METRICS)].mean() for ds in datasets]
        seeds = sorted(set.intersection(*(set(t.index) for t in per_ds)))
        if any(set(t.index) != set(seeds) for t in per_ds):
            # the CI averages each dataset's resamples over all its seeds: one seed set, one estimand
            raise DataError(Layout.of(params).runs, f"{model} has different seeds on {datasets}: the macro-average "
                            "needs the same seeds on every dataset")
        macro_seed = (sum(t.loc[seeds] for t in per_ds) / len(per_ds)).reset_index()
        own = summary[(summary["model"] == model) & summary["dataset"].isin(datasets)]
        row = {"dataset": MACRO, "model": model, "kind": registry.get(model).kind, "recipe": own["recipe"].iloc[0],
               "protocol": "; ".join(f"{r.name}: {r.protocol}" for r in all_runs),
               "subject_independent": _combine([r.subject_independent for r in all_runs]),
               "n_seeds": len(seeds), "n_units": len(seeds),
               "n_params": int(own["n_params"].max()), "epoch_time_s": float(own["epoch_time_s"].mean()),
               "failed_seeds": "; ".join(f"{r.dataset}: {r.failed_seeds}" for r in own.itertuples() if r.failed_seeds),
               "failure": "; ".join(f"{r.dataset}: {r.failure}" for r in own.itertuples() if r.failure),
               **_point(macro_seed)}
        for k in METRICS:
            macro = np.mean([resamples[(ds, model)][k] for ds in datasets], axis=0)
            resamples[(MACRO, model)] = {**resamples.get((MACRO, model), {}), k: macro}
            row[f"{k}_ci_low"], row[f"{k}_ci_high"] = centred_ci(macro, row[k])
        rows.append(row)
    for name in FLOORS:
        part = summary[(summary["model"] == name) & summary["dataset"].isin(datasets)]
        rows.append({"dataset": MACRO, "model": name, "kind": FLOOR_KIND, "protocol": "",
                     "subject_independent": _combine([r.subject_independent for r in all_runs]),
                     "failed_seeds": "", "failure": "",
                     **{k: float(part[k].mean(skipna=False)) for k in METRICS},
                     **{f"{k}_{s}": np.nan for k in METRICS for s in ("std", "ci_low", "ci_high")}})
    return pd.DataFrame(rows)


def _combine(values: list[str]) -> str:
    return "true" if all(v == "true" for v in values) else ("false" if "false" in values else "unknown")


def same_labels(a_preds: np.ndarray, b_preds: np.ndarray) -> bool:
    """Whether two models label every test vlog alike on every seed: then ΔF1 is 0 on the test
    set and under every exchange of the permutation test, which has nothing to test (their
    probabilities, and so AUROC or ECE, may still differ)."""
    return bool(np.array_equal(a_preds, b_preds))


def _paired_tests(params: Params, summary: pd.DataFrame, resamples: dict[tuple[str, str], dict[str, np.ndarray]],
                  nulls: dict[tuple[str, str], tuple[float, np.ndarray]], all_runs: list[DatasetRuns]) -> pd.DataFrame:
    """Every model against asym on the same test vlogs: ΔF1 and its bootstrap CI (unadjusted),
    and the paired permutation test's p, raw and Holm-adjusted within its family (FAMILIES, per
    dataset and for the macro-average, whose permutation distribution averages the datasets'
    draw by draw); and the ΔF1 each comparison detects with `mde_power` (alone, and at Holm's
    first step over its family). A model whose predictions are ASYM's on every dataset compared
    (same_labels) has no difference to test: no p, no MDE, and no place in the family's count."""
    summary = summary.assign(**{c: np.nan for c in SUMMARY_EXTRA}, holm_family="", holm_family_size=np.nan,
                             no_difference=False)
    if "asym" not in params.models:
        return summary
    by_name = {r.name: r for r in all_runs}
    for ds in summary["dataset"].unique():
        base = resamples.get((ds, "asym"))
        if base is None:
            continue
        asym_f1 = float(summary.loc[(summary["dataset"] == ds) & (summary["model"] == "asym"), "f1"].iloc[0])
        compared = [by_name[d] for d in params.datasets if ds == MACRO or d == ds]
        for kind, family in FAMILIES.items():
            tested: list[tuple[int, np.ndarray]] = []
            raw: list[float] = []
            for model in (m for m in params.models if m != "asym" and registry.get(m).kind == kind):
                i = summary.index[(summary["dataset"] == ds) & (summary["model"] == model)][0]
                delta = float(summary.loc[i, "f1"]) - asym_f1
                lo, hi = centred_ci(resamples[(ds, model)]["f1"] - base["f1"], delta)
                summary.loc[i, ["delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high"]] = [delta, lo, hi]
                summary.loc[i, "holm_family"] = f"{ds}/{family}"
                if all(same_labels(r.preds["asym"], r.preds[model]) for r in compared):
                    summary.loc[i, "no_difference"] = True
                    continue
                observed = float(np.mean([nulls[(r.name, model)][0] for r in compared]))
                null = np.mean([nulls[(r.name, model)][1] for r in compared], axis=0)
                tested.append((i, null))
                raw.append(permutation_p(observed, null))
            for (i, null), p_raw, p_holm in zip(tested, raw, holm(raw), strict=True):
                summary.loc[i, ["p_raw_vs_asym", "p_vs_asym", "holm_family_size"]] = [p_raw, p_holm, len(tested)]
                summary.loc[i, ["mde_f1_vs_asym", "mde_f1_holm_vs_asym"]] = [
                    minimum_detectable_effect(null, params.report.alpha, params.report.mde_power),
                    minimum_detectable_effect(null, params.report.alpha, params.report.mde_power, tests=len(tested))]
    return summary


# --- subgroups ------------------------------------------------------------------------------------
def subgroups(runs: DatasetRuns) -> dict[tuple[str, str], np.ndarray]:
    """(attribute, group) -> mask of the test vlogs: gender where known, length terciles cut on
    the test vlogs' frame counts (a vlog on an edge goes up); empty groups left out."""
    groups: dict[tuple[str, str], np.ndarray] = {}
    if not all(g is None for g in runs.gender):
        groups.update({("gender", g): runs.gender == g for g in sorted({g for g in runs.gender if g is not None})})
    edges = np.quantile(runs.n_frames, [1 / 3, 2 / 3])
    tercile = np.searchsorted(edges, runs.n_frames, side="right")
    for t, name in enumerate(("short", "medium", "long")):
        groups[("length", name)] = tercile == t
    return {k: m for k, m in groups.items() if m.any()}


def fairness(params: Params, all_runs: list[DatasetRuns]) -> pd.DataFrame:
    """Per (dataset, model, subgroup): its counts, and where it holds MIN_GROUP_CLASS depressed and
    normal vlogs or more, its accuracy and F1 (mean over seeds) with 95% CIs from one bootstrap of
    the dataset's test units (shared by every group, model and seed: a subject whose vlogs fall in
    two groups is drawn for both at once); per attribute, the gap between its best and worst tested
    groups (at the point estimate), its CI from the same resamples of that difference, so paired."""
    rows = []
    for d_index, runs in enumerate(all_runs):
        groups = subgroups(runs)
        W = resample_weights(runs.units, params.report.bootstrap,
                             np.random.default_rng([params.report.ci_seed, d_index, FAIRNESS_STREAM]))
        weights = {key: W[:, mask] for key, mask in groups.items()}
        for model in params.models:
            points: dict[tuple[str, str], dict[str, float]] = {}
            draws: dict[tuple[str, str], dict[str, np.ndarray]] = {}
            for key, mask in groups.items():
                y = runs.y[mask]
                n_dep = int(y.sum())
                tested = min(n_dep, len(y) - n_dep) >= MIN_GROUP_CLASS
                row = {"dataset": runs.name, "model": model, "attribute": key[0], "group": key[1], "n": int(mask.sum()),
                       "n_depressed": n_dep, "n_normal": len(y) - n_dep, "tested": tested}
                if tested:
                    points[key] = _group_metrics(runs, model, mask, np.ones((1, len(y))))
                    draws[key] = _group_metrics(runs, model, mask, weights[key])
                for k in FAIR_METRICS:
                    value = float(points[key][k][0]) if tested else np.nan
                    row[k] = value
                    row[f"{k}_ci_low"], row[f"{k}_ci_high"] = centred_ci(draws[key][k], value) if tested else (np.nan, np.nan)
                rows.append(row)
            for attr in dict.fromkeys(a for a, _ in groups):
                rows.append(_gap(runs.name, model, attr, [g for a, g in groups if a == attr], points, draws))
    return pd.DataFrame(rows)


def _group_metrics(runs: DatasetRuns, model: str, mask: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """FAIR_METRICS of the group's saved labels, seed-averaged, on every row of weights W."""
    per_seed = [weighted_metrics(runs.y[mask], prob[mask], W, FAIR_METRICS, pred=pred[mask])
                for prob, pred in zip(runs.probs[model], runs.preds[model], strict=True)]
    return {k: np.mean([m[k] for m in per_seed], axis=0) for k in FAIR_METRICS}


def _gap(dataset: str, model: str, attr: str, names: list[str], points: dict[tuple[str, str], dict[str, np.ndarray]],
         draws: dict[tuple[str, str], dict[str, np.ndarray]]) -> dict[str, Any]:
    """The attribute's summary row: best minus worst tested group per metric, or NaN with fewer
    than two tested groups; `untested` names the groups left out."""
    tested = [g for g in names if (attr, g) in points]
    row: dict[str, Any] = {"dataset": dataset, "model": model, "attribute": attr, "group": GAP, "n": np.nan,
                           "n_depressed": np.nan, "n_normal": np.nan, "tested": len(tested) > 1,
                           "untested": ", ".join(g for g in names if g not in tested)}
    for k in FAIR_METRICS:
        row[k], row[f"{k}_ci_low"], row[f"{k}_ci_high"], row[f"{k}_between"] = np.nan, np.nan, np.nan, ""
        if len(tested) < 2:
            continue
        value = {g: float(points[(attr, g)][k][0]) for g in tested}
        best, worst = max(tested, key=value.get), min(tested, key=value.get)
        row[k] = value[best] - value[worst]
        row[f"{k}_ci_low"], row[f"{k}_ci_high"] = centred_ci(draws[(attr, best)][k] - draws[(attr, worst)][k], row[k])
        row[f"{k}_between"] = f"{best} - {worst}"
    return row
