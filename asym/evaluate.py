"""Per-run metrics from the predictions a training job saved (no model is loaded here).

One `evaluate` job covers every run: it is torch-free and cheap, and a change of the metric
code reruns it alone, never the training. Each run gets its metrics (valid and test, pooled
over partitions and per partition) and its confusion matrix's figure (test).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from asym.grid import Run
from asym.io import read_json, write_json
from asym.layout import EVAL_FILES, TRAIN_FILES, Layout
from asym.metrics import confusion, label_metrics, score_metrics

if TYPE_CHECKING:
    from asym.config import Params
    from asym.report.plots import ConfusionPlot


def fold_metrics(part: pd.DataFrame) -> dict[str, Any]:
    """Metrics of labels from the saved labels (`pred`, at the run's decision threshold), of
    scores from the probabilities."""
    y, prob, pred = part["label"].to_numpy(), part["prob"].to_numpy(), part["pred"].to_numpy()
    return {**label_metrics(y, pred), **score_metrics(y, prob), "confusion": confusion(y, pred), "n": int(len(part))}


def evaluate_predictions(pred_path: Path) -> dict[str, Any]:
    df = pd.read_parquet(pred_path)
    if "partition" not in df.columns:
        df["partition"] = 0
    out: dict[str, Any] = {fold: fold_metrics(part) for fold, part in df.groupby("fold", sort=True)}
    out["partitions"] = {str(p): {fold: fold_metrics(g) for fold, g in part.groupby("fold", sort=True)}
                         for p, part in df.groupby("partition", sort=True)}
    return out


def evaluate_run(run: Path, plot: ConfusionPlot | None = None) -> dict[str, Any]:
    """The metrics and confusion figure of one run folder (`asym evaluate --run` names a folder,
    not a run of a params file); `plot` draws (a ConfusionPlotter)."""
    from asym.report.plots import plot_confusion

    plot = plot or plot_confusion
    info = read_json(run / TRAIN_FILES["summary"])
    metrics = evaluate_predictions(run / TRAIN_FILES["predictions"])
    payload = {"dataset": info["dataset"], "model": info["model"], "seed": info["seed"],
               "protocol": info.get("protocol"), **metrics}
    plot(metrics["test"]["confusion"], f"{Run(info['dataset'], info['model'], info['seed']).key} (test)",
         run / EVAL_FILES["confusion"])
    write_json(run / EVAL_FILES["metrics"], payload)
    return payload


def evaluate_all(params: Params) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from asym.report.plots import ConfusionPlotter

    layout = Layout.of(params)
    runs = [layout.run(run).folder for run in params.runs()]
    plotter = ConfusionPlotter()
    try:
        return [evaluate_run(r, plotter) for r in tqdm(runs, desc="evaluate", unit="run", leave=False, disable=None)]
    finally:
        plotter.close()
