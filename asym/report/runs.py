"""The report's data model: each dataset's runs as the report reads them (`DatasetRuns`,
`load_dataset_runs`), and the names of the summary's and the fairness table's rows and columns
that the aggregation writes and the writers read.

The aggregation (asym.report.aggregate) computes on these; the tables, model cards, figures and
the optimism study read them. This module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from asym.config import DEFAULT_THRESHOLD, Params
from asym.errors import DataError
from asym.io import read_json
from asym.layout import Layout, RunFiles
from asym.metrics import METRICS

MACRO = "macro-avg"                                   # the summary's dataset of the macro-average rows
FLOORS = ("majority", "always-depressed", "chance")   # the summary's floor rows, by model name
FLOOR_KIND = "floor"                                  # their kind: the summary's kinds are the registry's and this
# A subgroup is tested only with at least this many depressed and this many normal test vlogs:
# with fewer, one vlog moves its depressed-class recall (or its specificity) by over 20 points
# and its F1 gap to other groups is an artefact of a handful of vlogs.
MIN_GROUP_CLASS = 5
FAIR_METRICS = ("accuracy", "f1")
GAP = "gap (best - worst)"                            # the fairness table's group of an attribute's gap row


@dataclass
class DatasetRuns:
    """One dataset's test predictions, aligned by vlog across every model and seed."""

    name: str
    protocol: str
    subject_independent: str                    # true | false | unknown
    ids: np.ndarray
    y: np.ndarray
    units: np.ndarray                           # each vlog's bootstrap unit: its subject if known, else itself
    gender: np.ndarray
    n_frames: np.ndarray
    probs: dict[str, np.ndarray] = field(default_factory=dict)     # model -> (n_seeds, n)
    preds: dict[str, np.ndarray] = field(default_factory=dict)     # model -> (n_seeds, n) labels at its threshold
    run_metrics: pd.DataFrame | None = None     # one row per run: (model, seed, partition)
    seeds: dict[str, list[int]] = field(default_factory=dict)      # model -> the seed of each row of probs
    partition: np.ndarray | None = None         # the partition that tested each vlog


def load_dataset_runs(params: Params, dataset: str, per_run: bool = True,
                      models: list[str] | None = None) -> DatasetRuns:
    """Every run of `dataset` (params' models and seeds, or only `models`'); `per_run`: with each
    run's per-partition metrics (which `evaluate` writes), else its predictions alone."""
    layout = Layout.of(params)
    info = read_json(layout.split_json(dataset))
    subject_independent = info.get("subject_independent", "unknown")
    rows, ref = [], None
    probs: dict[str, list[np.ndarray]] = {}
    preds: dict[str, list[np.ndarray]] = {}
    seeds: dict[str, list[int]] = {}
    for run in params.runs(dataset):
        if models is not None and run.model not in models:
            continue
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
        seeds.setdefault(run.model, []).append(run.seed)
    if ref is None:
        raise DataError(layout.runs, f"no runs of {dataset} to report")
    units = ref["subject_id" if subject_independent != "unknown" else "sample_id"].to_numpy(str)
    return DatasetRuns(dataset, info.get("protocol", params.protocol(dataset)), subject_independent,
                       ref["sample_id"].to_numpy(str), ref["label"].to_numpy(int), units,
                       ref["gender"].to_numpy(object), ref["n_frames"].to_numpy(int),
                       {m: np.stack(v) for m, v in probs.items()}, {m: np.stack(v) for m, v in preds.items()},
                       pd.DataFrame(rows) if per_run else None, seeds,
                       ref["partition"].to_numpy(int) if "partition" in ref else None)


def _run_rows(files: RunFiles) -> list[dict[str, Any]]:
    """One row per partition of a run: its test metrics and what the tables say of it."""
    metrics, summary = read_json(files.file("metrics")), read_json(files.file("summary"))
    thresholds = summary.get("threshold") or [DEFAULT_THRESHOLD] * len(metrics["partitions"])
    run = files.run
    return [{"model": run.model, "seed": run.seed, "partition": int(p), **{k: folds["test"][k] for k in METRICS},
             "n_params": summary["n_params"], "epoch_time_s": summary["epoch_time_s"], "recipe": summary["recipe_name"],
             "threshold_rule": str(summary.get("recipe", {}).get("threshold", DEFAULT_THRESHOLD)),
             "threshold": float(thresholds[int(p)]), "best_epoch": _best_epoch(summary, int(p))}
            for p, folds in metrics["partitions"].items()]


def _best_epoch(summary: dict[str, Any], partition: int) -> float:
    """The partition's checkpoint epoch from train.json (NaN where a run does not say)."""
    epochs = summary.get("best_epoch")
    return float(epochs[partition]) if isinstance(epochs, list) and partition < len(epochs) else np.nan
