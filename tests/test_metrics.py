"""Every metric against scikit-learn on hand-made predictions, degenerate cases included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from asym.metrics import (
    METRICS,
    all_metrics,
    chance_floor,
    confusion,
    expected_calibration_error,
    label_metrics,
    majority_floor,
    selection_score,
)

CASES = {
    "random": (np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1]), np.array([.9, .2, .4, .8, .6, .1, .7, .5, .3, .95])),
    "no positive predicted": (np.array([1, 0, 1, 0, 1]), np.array([.1, .2, .3, .4, .45])),
    "no negative predicted": (np.array([1, 0, 1, 0, 1]), np.array([.6, .7, .8, .9, .99])),
    "ties in the scores": (np.array([1, 0, 1, 0, 1, 0]), np.array([.5, .5, .7, .7, .2, .2])),
    "perfect": (np.array([0, 0, 1, 1]), np.array([.1, .2, .8, .9])),
}


@pytest.mark.parametrize("case", CASES)
def test_every_metric_equals_scikit_learn(case):
    y, prob = CASES[case]
    pred = (prob >= 0.5).astype(int)
    m = all_metrics(y, prob)
    assert set(m) == set(METRICS)
    expected = {
        "accuracy": sk.accuracy_score(y, pred),
        "precision": sk.precision_score(y, pred, zero_division=0),
        "recall": sk.recall_score(y, pred, zero_division=0),
        "f1": sk.f1_score(y, pred, zero_division=0),
        "precision_weighted": sk.precision_score(y, pred, average="weighted", zero_division=0),
        "recall_weighted": sk.recall_score(y, pred, average="weighted", zero_division=0),
        "f1_weighted": sk.f1_score(y, pred, average="weighted", zero_division=0),
        "balanced_accuracy": sk.balanced_accuracy_score(y, pred),
        "mcc": sk.matthews_corrcoef(y, pred),
        "auroc": sk.roc_auc_score(y, prob),
        "auprc": sk.average_precision_score(y, prob),
    }
    for k, v in expected.items():
        assert m[k] == pytest.approx(v, abs=1e-12), k


def test_hand_computed_values_and_the_two_conventions():
    # 4 depressed, 2 normal; predictions: TP=3, FN=1, FP=1, TN=1
    y = np.array([1, 1, 1, 1, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 0])
    m = label_metrics(y, pred)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    f1_normal = 2 * (1 / 2) * (1 / 2) / 1
    assert m["f1_weighted"] == pytest.approx((4 * 3 / 4 + 2 * f1_normal) / 6)
    assert confusion(y, pred) == {"tp": 3, "fn": 1, "fp": 1, "tn": 1}


def test_ece_has_its_textbook_value():
    # bin [0.1, 0.2): two vlogs at 0.15, one positive -> |0.5 - 0.15|; bin [0.9, 1]: 0.95, positive
    y, prob = np.array([0, 1, 1]), np.array([0.15, 0.15, 0.95])
    assert expected_calibration_error(y, prob) == pytest.approx((2 * 0.35 + 1 * 0.05) / 3)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


def test_floors_on_d_vlog_official_test_fold():
    # the release's test fold: 123 depressed, 89 normal; the training fold's majority is depressed
    y_test = np.r_[np.ones(123, int), np.zeros(89, int)]
    y_train = np.r_[np.ones(374, int), np.zeros(273, int)]
    maj = majority_floor(y_train, y_test)
    assert maj["accuracy"] == pytest.approx(123 / 212) and maj["f1"] == pytest.approx(2 * 123 / (2 * 123 + 89))
    assert 100 * maj["f1_weighted"] == pytest.approx(42.6, abs=0.1) and maj["auroc"] == 0.5
    chance = chance_floor(y_train, y_test, draws=300, seed=1)
    rate = 374 / 647
    assert chance["recall"] == pytest.approx(rate, abs=0.02)
    assert chance["precision"] == pytest.approx(123 / 212, abs=0.02)
    assert chance["accuracy"] == pytest.approx(rate * 123 / 212 + (1 - rate) * 89 / 212, abs=0.02)


def test_selection_score_is_the_mean_of_the_four_headline_metrics():
    m = {"accuracy": 1.0, "precision": 0.5, "recall": 0.5, "f1": 0.0, "mcc": 0.3}
    assert selection_score(m, "mean4") == 0.5 and selection_score(m, "mcc") == 0.3
