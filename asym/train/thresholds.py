"""The decision threshold: the probability at or above which a vlog is labelled depressed.

`threshold: 0.5` (the default) or any fixed value; `threshold: valid_f1` picks, at the chosen
checkpoint, the threshold of a grid (`threshold_grid`) with the highest depressed-class F1 on
the validation fold, as BAR Loss (Gao et al., Interspeech 2026) is described to do. Ties go to
the threshold nearest 0.5, then to the lower one. The checkpoint itself is chosen at 0.5, before
the threshold is tuned; under a select-on-test protocol the threshold is still tuned on the
validation fold, never on the test fold that chose the checkpoint. Each partition's threshold is stored in train.json (`threshold`); the
saved predictions' `pred` column holds the labels at it, and every metric of labels (evaluate,
the report's CIs, fairness, confusion matrices) is computed from that column, never from
`prob >= 0.5` again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from asym.config import DEFAULT_THRESHOLD


def threshold_grid(cfg: Any) -> np.ndarray:
    """low, low + step, ..., up to high (inclusive, up to rounding)."""
    n = int(np.floor((cfg.high - cfg.low) / cfg.step + 1e-9)) + 1
    return np.round(cfg.low + cfg.step * np.arange(n), 12)


def f1_per_threshold(y: np.ndarray, prob: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Depressed-class F1 of `prob >= t` for every t of the grid (0 where it is undefined)."""
    y = np.asarray(y, int) == 1
    pred = np.asarray(prob, float)[None, :] >= grid[:, None]
    tp = (pred & y).sum(1)
    wrong = (pred & ~y).sum(1) + (~pred & y).sum(1)
    den = 2 * tp + wrong
    return np.divide(2 * tp, den, out=np.zeros(len(grid)), where=den > 0)


def best_f1_threshold(y: np.ndarray, prob: np.ndarray, grid: np.ndarray) -> float:
    f1 = f1_per_threshold(y, prob, grid)
    best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0, atol=1e-12))
    order = np.lexsort((grid[best], np.round(np.abs(grid[best] - DEFAULT_THRESHOLD), 9)))   # nearest 0.5, then lower
    return float(grid[best[order[0]]])


def decision_threshold(recipe: Any, valid_labels: np.ndarray, valid_probs: Callable[[], np.ndarray]) -> float:
    """The recipe's threshold for one partition; `valid_probs` is called only when it is tuned."""
    if recipe.threshold == "valid_f1":
        return best_f1_threshold(valid_labels, valid_probs(), threshold_grid(recipe.threshold_grid))
    return float(recipe.threshold)
