"""Every run aggregated into the paper's numbers: per (dataset, model) and their macro-average.

Point estimates are the mean ± std over seeds (and folds, under `kfold`) of each run's test
metrics; 95% CIs and the paired tests against ASYM come from one bootstrap per dataset
(asym.report.stats); the floors (`majority`, `chance`) are computed from the real labels. The tables
are written by asym.report.tables, the figures by asym.report.plots; MLflow logging is the `track` step's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import DEFAULT_THRESHOLD, Params
from asym.data.splits import read_split
from asym.errors import DataError
from asym.io import atomic_path, read_json, write_json
from asym.layout import Layout, RunFiles
from asym.metrics import METRICS, chance_floor, confusion, label_metrics, majority_floor
from asym.models import registry
from asym.reference import published_results
from asym.report.stats import (
    holm,
    labelled_resamples,
    minimum_detectable_effect,
    percentile_ci,
    permutation_p,
    resample_weights,
    swap_deltas,
    swap_draws,
)

MACRO = "macro-avg"
FLOORS = ("majority", "chance")
SUMMARY_EXTRA = ("delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym", "p_raw_vs_asym",
                 "mde_f1_vs_asym", "mde_f1_holm_vs_asym")


@dataclass
class DatasetRuns:
    """One dataset's test predictions, aligned by vlog across every model and seed."""

    name: str
    protocol: str
    subject_independent: str                    # true | false | unknown
    ids: np.ndarray
    y: np.ndarray
    units: np.ndarray                           # bootstrap unit: subject if known, else vlog
    gender: np.ndarray
    n_frames: np.ndarray
    probs: dict[str, np.ndarray] = field(default_factory=dict)     # model -> (n_seeds, n)
    preds: dict[str, np.ndarray] = field(default_factory=dict)     # model -> (n_seeds, n) labels at its threshold
    units_metrics: pd.DataFrame | None = None   # one row per (model, seed, partition)


def load_dataset_runs(params: Params, dataset: str, per_run: bool = True) -> DatasetRuns:
    """Every run of `dataset` (params' models and seeds); `per_run`: with each run's per-partition
    metrics (which `evaluate` writes), else its predictions alone."""
    layout = Layout.of(params)
    info = read_json(layout.split_json(dataset))
    subject_independent = info.get("subject_independent", "unknown")
    rows, ref = [], None
    probs: dict[str, list[np.ndarray]] = {}
    preds: dict[str, list[np.ndarray]] = {}
    for run in params.runs(dataset):
        files = layout.run(run)
        if per_run:
            rows += _run_rows(files)
        pred = pd.read_parquet(files.file("predictions")).query("fold == 'test'").sort_values("sample_id")
        if ref is None:
            ref = pred
        elif list(pred["sample_id"]) != list(ref["sample_id"]):
            raise DataError(files.folder, f"its test vlogs differ from those of the other runs of {dataset}")
        probs.setdefault(run.model, []).append(pred["prob"].to_numpy(np.float64))
        preds.setdefault(run.model, []).append(pred["pred"].to_numpy(int))
    if ref is None:
        raise DataError(layout.runs, f"no runs of {dataset} to report")
    units = ref["subject_id" if subject_independent != "unknown" else "sample_id"].to_numpy(str)
    return DatasetRuns(dataset, info.get("protocol", params.protocol(dataset)), subject_independent,
                       ref["sample_id"].to_numpy(str), ref["label"].to_numpy(int), units,
                       ref["gender"].to_numpy(object), ref["n_frames"].to_numpy(int),
                       {m: np.stack(v) for m, v in probs.items()}, {m: np.stack(v) for m, v in preds.items()},
                       pd.DataFrame(rows) if per_run else None)


def _run_rows(files: RunFiles) -> list[dict[str, Any]]:
    """One row per partition of a run: its test metrics and what the tables say of it."""
    metrics, summary = read_json(files.file("metrics")), read_json(files.file("summary"))
    thresholds = summary.get("threshold") or [DEFAULT_THRESHOLD] * len(metrics["partitions"])
    run = files.run
    return [{"model": run.model, "seed": run.seed, "partition": int(p), **{k: folds["test"][k] for k in METRICS},
             "n_params": summary["n_params"], "epoch_time_s": summary["epoch_time_s"], "recipe": summary["recipe_name"],
             "threshold_rule": str(summary.get("recipe", {}).get("threshold", DEFAULT_THRESHOLD)),
             "threshold": float(thresholds[int(p)])} for p, folds in metrics["partitions"].items()]


def floors(params: Params, dataset: str) -> dict[str, dict[str, float]]:
    """Majority and chance from each partition's training labels and real test labels."""
    split = read_split(Layout.of(params).split_csv(dataset), subjects_disjoint=False)
    out: dict[str, list[dict[str, float]]] = {f: [] for f in FLOORS}
    for _, part in split.groupby("partition"):
        y_train = part.loc[part["fold"] == "train", "label"].astype(int).to_numpy()
        y_test = part.loc[part["fold"] == "test", "label"].astype(int).to_numpy()
        out["majority"].append(majority_floor(y_train, y_test))
        out["chance"].append(chance_floor(y_train, y_test, draws=params.report.chance_draws, seed=params.report.ci_seed))
    return {f: {k: float(np.mean([r[k] for r in rows])) for k in METRICS} for f, rows in out.items()}


def _point(units: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in METRICS:
        values = units[k].to_numpy(float)
        out[k] = float(np.nanmean(values))
        out[f"{k}_std"] = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
    return out


def aggregate(params: Params) -> tuple[pd.DataFrame, list[DatasetRuns]]:
    """summary: one row per (dataset or macro-avg, model), floors included."""
    n_boot, rng_seed = params.report.bootstrap, params.report.ci_seed
    all_runs: list[DatasetRuns] = []
    rows: list[dict[str, Any]] = []
    resamples: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    nulls: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    for d_index, ds in enumerate(params.datasets):
        runs = load_dataset_runs(params, ds)
        all_runs.append(runs)
        W = resample_weights(runs.units, n_boot, np.random.default_rng([rng_seed, d_index]))
        nulls.update(_swap_nulls(params, runs, d_index))
        for model in params.models:
            units = runs.units_metrics[runs.units_metrics["model"] == model]
            res = labelled_resamples(runs.y, runs.probs[model], runs.preds[model], W)
            resamples[(ds, model)] = res
            row = {"dataset": ds, "model": model, "kind": registry.get(model).kind, "recipe": units["recipe"].iloc[0],
                   "protocol": runs.protocol, "subject_independent": runs.subject_independent,
                   "n_seeds": units["seed"].nunique(), "n_units": len(units), "n_test": len(runs.y),
                   "bootstrap_unit": "subject" if len(set(runs.units)) < len(runs.units) else "vlog",
                   "n_params": int(units["n_params"].iloc[0]), "epoch_time_s": float(units["epoch_time_s"].mean()),
                   "threshold_rule": units["threshold_rule"].iloc[0], "threshold": float(units["threshold"].mean()),
                   **_point(units)}
            for k in METRICS:
                row[f"{k}_ci_low"], row[f"{k}_ci_high"] = percentile_ci(res[k])
            rows.append(row)
        for name, m in floors(params, ds).items():
            rows.append({"dataset": ds, "model": name, "kind": "floor", "protocol": runs.protocol,
                         "subject_independent": runs.subject_independent, "n_test": len(runs.y),
                         **m, **{f"{k}_{s}": np.nan for k in METRICS for s in ("std", "ci_low", "ci_high")}})
    summary = pd.DataFrame(rows)
    if len(params.datasets) > 1:
        summary = pd.concat([summary, _macro(params, summary, all_runs, resamples)], ignore_index=True)
    return _paired_tests(params, summary, resamples, nulls), all_runs


def _swap_nulls(params: Params, runs: DatasetRuns, d_index: int) -> dict[tuple[str, str], tuple[float, np.ndarray]]:
    """Per model, ΔF1 against asym and its permutation distribution (asym.report.stats.swap_deltas),
    from one set of exchanges per dataset shared by every model, seeded like the resamples."""
    if "asym" not in runs.preds:
        return {}
    S = swap_draws(runs.units, params.report.bootstrap, np.random.default_rng([params.report.ci_seed, d_index, 1]))
    return {(runs.name, m): swap_deltas(runs.y, runs.preds["asym"], runs.preds[m], S) for m in runs.preds if m != "asym"}


def _macro(params: Params, summary: pd.DataFrame, all_runs: list[DatasetRuns],
           resamples: dict[tuple[str, str], dict[str, np.ndarray]]) -> pd.DataFrame:
    """Mean over datasets, per seed first so its std is over seeds; CIs from the datasets'
    resamples averaged index by index."""
    rows = []
    datasets = [r.name for r in all_runs]
    for model in params.models:
        per_ds = []
        for runs in all_runs:
            u = runs.units_metrics[runs.units_metrics["model"] == model]
            per_ds.append(u.groupby("seed")[list(METRICS)].mean())     # partitions averaged within a seed
        seeds = sorted(set.intersection(*(set(t.index) for t in per_ds)))
        per_seed = sum(t.loc[seeds] for t in per_ds) / len(per_ds)
        per_seed = per_seed.reset_index().assign(model=model)
        row = {"dataset": MACRO, "model": model, "kind": registry.get(model).kind,
               "recipe": summary.loc[summary["model"] == model, "recipe"].iloc[0],
               "protocol": "; ".join(f"{r.name}: {r.protocol}" for r in all_runs),
               "subject_independent": _combine([r.subject_independent for r in all_runs]),
               "n_seeds": len(seeds), "n_units": len(seeds),
               "n_params": int(summary.loc[summary["model"] == model, "n_params"].max()),
               "epoch_time_s": float(summary.loc[(summary["model"] == model) & summary["dataset"].isin(datasets),
                                                 "epoch_time_s"].mean()),
               **_point(per_seed)}
        for k in METRICS:
            macro = np.mean([resamples[(ds, model)][k] for ds in datasets], axis=0)
            resamples[(MACRO, model)] = {**resamples.get((MACRO, model), {}), k: macro}
            row[f"{k}_ci_low"], row[f"{k}_ci_high"] = percentile_ci(macro)
        rows.append(row)
    for name in FLOORS:
        part = summary[(summary["model"] == name) & summary["dataset"].isin(datasets)]
        rows.append({"dataset": MACRO, "model": name, "kind": "floor", "protocol": "",
                     "subject_independent": _combine([r.subject_independent for r in all_runs]),
                     **{k: float(part[k].mean()) for k in METRICS},
                     **{f"{k}_{s}": np.nan for k in METRICS for s in ("std", "ci_low", "ci_high")}})
    return pd.DataFrame(rows)


def _combine(values: list[str]) -> str:
    return "true" if all(v == "true" for v in values) else ("false" if "false" in values else "unknown")


def _paired_tests(params: Params, summary: pd.DataFrame, resamples: dict[tuple[str, str], dict[str, np.ndarray]],
                  nulls: dict[tuple[str, str], tuple[float, np.ndarray]]) -> pd.DataFrame:
    """Every model against asym on the same test vlogs: ΔF1, its bootstrap CI and the paired
    permutation test's Holm-adjusted p per dataset (and for the macro-average, whose
    permutation distribution averages the datasets' draw by draw), over the family of models
    compared there; and the ΔF1 each comparison detects with `mde_power` (alone, and at Holm's
    first step over the family)."""
    summary = summary.assign(**{c: np.nan for c in SUMMARY_EXTRA})
    if "asym" not in params.models:
        return summary
    for ds in summary["dataset"].unique():
        base = resamples.get((ds, "asym"))
        if base is None:
            continue
        asym_f1 = float(summary.loc[(summary["dataset"] == ds) & (summary["model"] == "asym"), "f1"].iloc[0])
        idx, raw = [], []
        others = [m for m in params.models if m != "asym"]
        datasets = [d for d in params.datasets if ds == MACRO or d == ds]
        for model in others:
            delta = resamples[(ds, model)]["f1"] - base["f1"]
            i = summary.index[(summary["dataset"] == ds) & (summary["model"] == model)][0]
            lo, hi = percentile_ci(delta)
            summary.loc[i, ["delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high"]] = \
                [summary.loc[i, "f1"] - asym_f1, lo, hi]
            observed = float(np.mean([nulls[(d, model)][0] for d in datasets]))
            null = np.mean([nulls[(d, model)][1] for d in datasets], axis=0)
            summary.loc[i, ["mde_f1_vs_asym", "mde_f1_holm_vs_asym"]] = [
                minimum_detectable_effect(null, params.report.alpha, params.report.mde_power),
                minimum_detectable_effect(null, params.report.alpha, params.report.mde_power, tests=len(others))]
            idx.append(i)
            raw.append(permutation_p(observed, null))
        summary.loc[idx, "p_raw_vs_asym"] = raw
        summary.loc[idx, "p_vs_asym"] = holm(raw)
    return summary


# --- subgroups ------------------------------------------------------------------------------------
def fairness(params: Params, all_runs: list[DatasetRuns]) -> pd.DataFrame:
    """Accuracy and F1 per gender (where known) and per length tercile of the test vlogs, mean
    over seeds, with the gap (max - min) between a attribute's groups."""
    rows = []
    for runs in all_runs:
        groups: dict[str, np.ndarray] = {}
        if not all(g is None for g in runs.gender):
            groups.update({f"gender={g}": runs.gender == g for g in sorted({g for g in runs.gender if g is not None})})
        edges = np.quantile(runs.n_frames, [1 / 3, 2 / 3])
        tercile = np.searchsorted(edges, runs.n_frames, side="right")
        for t, name in enumerate(("short", "medium", "long")):
            groups[f"length={name}"] = tercile == t
        for model in params.models:
            by_attr: dict[str, list[dict[str, float]]] = {}
            for g, mask in groups.items():
                if not mask.any():
                    continue
                per_seed = [label_metrics(runs.y[mask], p[mask]) for p in runs.preds[model]]
                acc, f1 = (float(np.mean([m[k] for m in per_seed])) for k in ("accuracy", "f1"))
                attr = g.split("=")[0]
                by_attr.setdefault(attr, []).append({"accuracy": acc, "f1": f1})
                rows.append({"dataset": runs.name, "model": model, "attribute": attr, "group": g.split("=")[1],
                             "n": int(mask.sum()), "accuracy": acc, "f1": f1})
            for attr, vals in by_attr.items():
                rows.append({"dataset": runs.name, "model": model, "attribute": attr, "group": "gap (max - min)",
                             "n": np.nan, **{k: max(v[k] for v in vals) - min(v[k] for v in vals) for k in ("accuracy", "f1")}})
    return pd.DataFrame(rows)


# --- the step ---------------------------------------------------------------------------------------
def make_report(params: Params) -> dict[str, Path]:
    from asym.report import plots, tables

    layout = Layout.of(params)
    out = layout.report_outputs(params.models, params.datasets, study=bool(params.study_models))
    summary, all_runs = aggregate(params)
    runs = pd.concat([r.units_metrics.assign(dataset=r.name) for r in all_runs], ignore_index=True)
    with atomic_path(out["runs_csv"]) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(out["summary_csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    write_json(out["summary_json"], {f"{r.dataset}/{r.model}/{k}": float(getattr(r, k))
                                     for r in summary.itertuples() for k in METRICS if np.isfinite(getattr(r, k))})
    fair = fairness(params, all_runs)
    context = tables.Context.of(params, summary, all_runs)
    for name in ("results", "comparison", "ablation"):
        if f"{name}_md" in out:
            tables.write_table(name, context, {k: Path(v) for k, v in out.items() if k.startswith(f"{name}_")})
    tables.write_fairness(fair, context, {k: Path(v) for k, v in out.items() if k.startswith("fairness_")})
    from asym.report.model_card import write_model_cards

    write_model_cards(params, summary, fair)                 # reports/model_cards/<dataset>-<model>.md
    trained = summary[summary["kind"] != "floor"]
    plots.plot_metric_bars(trained, ("accuracy", "precision", "recall", "f1"), summary[summary["kind"] == "floor"],
                           Path(out["metrics_plot"]))
    cells = []
    for r in all_runs:
        for model in params.models:
            counts = [confusion(r.y, pred) for pred in r.preds[model]]
            cells.append((r.name, model, {k: sum(c[k] for c in counts) for k in counts[0]}))
    plots.plot_confusion_grid(cells, Path(out["confusion_plot"]))
    plots.plot_reliability(plots.reliability_curves(all_runs), Path(out["reliability_plot"]))
    plots.plot_published(summary, published_results(), context.protocols, params.scale, Path(out["published_plot"]))
    if "protocol_optimism_md" in out:
        from asym.report import optimism

        optimism.write_table(optimism.compare(params), params, {k: Path(v) for k, v in out.items()
                                                                  if k.startswith("protocol_optimism_")})
    from asym.report import html

    html.write_pages(params, {k: Path(v) for k, v in out.items()})
    return {k: Path(v) for k, v in out.items()}
