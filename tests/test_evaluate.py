from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from asym.evaluate import binary_metrics, majority_baseline, selection_score


@pytest.mark.parametrize("seed", range(5))
def test_metrics_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    m = binary_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["precision"] == pytest.approx(precision_score(y, p, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, p, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, p, zero_division=0))


def test_degenerate_predictions_and_selection_score():
    assert binary_metrics(np.array([1, 0]), np.array([0, 0]))["f1"] == 0.0
    m = majority_baseline(np.array([1, 1, 0]), np.array([1, 0, 1, 1]))
    assert m["accuracy"] == 0.75 and m["recall"] == 1.0
    assert selection_score({"accuracy": 1, "precision": 0.5, "recall": 0.5, "f1": 0}, "mean4") == 0.5
