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
