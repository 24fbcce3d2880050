"""Metrics from saved predictions (depressed = positive class), never from a live model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("accuracy", "precision", "recall", "f1")


def confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    return {"tp": int(((y == 1) & (pred == 1)).sum()), "fp": int(((y == 0) & (pred == 1)).sum()),
            "tn": int(((y == 0) & (pred == 0)).sum()), "fn": int(((y == 1) & (pred == 0)).sum())}


def binary_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    c = confusion(y, pred)
    n = sum(c.values())
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (c["tp"] + c["tn"]) / n if n else 0.0, "precision": precision, "recall": recall, "f1": f1}


def selection_score(m: dict[str, float], metric: str) -> float:
    """DepMamba picks the checkpoint with the best validation (acc + precision + recall + F1) / 4."""
    return float(np.mean([m[k] for k in METRICS])) if metric == "mean4" else float(m[metric])


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    majority = int(np.mean(y_train) >= 0.5)
    return binary_metrics(y_test, np.full(len(y_test), majority))


def evaluate_predictions(pred_path: Path) -> dict[str, Any]:
    df = pd.read_parquet(pred_path)
    out: dict[str, Any] = {}
    for fold, part in df.groupby("fold"):
        out[str(fold)] = {**binary_metrics(part["label"].to_numpy(), part["pred"].to_numpy()),
                          "confusion": confusion(part["label"].to_numpy(), part["pred"].to_numpy()),
                          "n": int(len(part))}
    return out


def draw_confusion(ax: Any, c: dict[str, int], ticks: tuple[str, str], fontsize: float = 10) -> None:
    """Counts as a 2x2 heat map on `ax`: rows truth, columns prediction, normal first."""
    cm = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize)
    ax.set_xticks([0, 1], list(ticks), fontsize=fontsize - 1)
    ax.set_yticks([0, 1], list(ticks), fontsize=fontsize - 1)


def plot_confusion(c: dict[str, int], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asym.io import atomic_path

    fig, ax = plt.subplots(figsize=(2.8, 2.6))
    draw_confusion(ax, c, ("normal", "depressed"))
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate_run(run: Path, out: Path | None = None) -> dict[str, Any]:
    from asym.io import read_json, write_json

    info = read_json(run / "train.json")
    metrics = evaluate_predictions(run / "predictions.parquet")
    payload = {"dataset": info["dataset"], "model": info["model"], "seed": info["seed"], **metrics}
    plot_confusion(metrics["test"]["confusion"], f"{info['dataset']}/{info['model']}/seed{info['seed']} (test)",
                   run / "confusion.png")
    write_json(out or run / "metrics.json", payload)
    return payload
