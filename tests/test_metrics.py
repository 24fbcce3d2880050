"""Every metric against scikit-learn on hand-made predictions, degenerate cases included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from asym.metrics import (
    FLOOR_METRICS,
    LABEL_METRICS,
    METRICS,
    all_metrics,
    always_depressed_floor,
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


def _sklearn_label_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The label metrics by scikit-learn's own functions, called as asym.metrics once called them."""
    p, r, f, _ = sk.precision_recall_fscore_support(y, pred, labels=[1], average=None, zero_division=0)
    pw, rw, fw, _ = sk.precision_recall_fscore_support(y, pred, labels=[0, 1], average="weighted", zero_division=0)
    return {"accuracy": sk.accuracy_score(y, pred), "precision": p[0], "recall": r[0], "f1": f[0],
            "precision_weighted": pw, "recall_weighted": rw, "f1_weighted": fw,
            "balanced_accuracy": sk.recall_score(y, pred, labels=[0, 1], average="macro", zero_division=0),
            "mcc": sk.matthews_corrcoef(y, pred)}


def test_label_metrics_equal_scikit_learns_bit_for_bit_on_a_thousand_random_folds():
    """Checkpoint selection compares epochs by these: a last-bit difference could pick another epoch."""
    rng = np.random.default_rng(0)
    cases = 0
    for _ in range(1000):
        n = int(rng.integers(1, 60))
        y = (rng.random(n) < rng.random()).astype(int)
        pred = (rng.random(n) < rng.random()).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # scikit-learn's "A single label was found"
            theirs = _sklearn_label_metrics(y, pred)
        ours = label_metrics(y, pred)
        assert ours.keys() == set(LABEL_METRICS)
        for k in LABEL_METRICS:
            assert ours[k] == float(theirs[k]), (k, y.tolist(), pred.tolist(), ours[k], theirs[k])
        cases += len(np.unique(y)) == 1 or len(np.unique(pred)) == 1
    assert cases > 50          # one class in the labels or the predictions, many times


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


def test_confusion_counts_a_class_absent_from_both_labels_and_predictions():
    # labels=[0, 1] keeps the 2 x 2 layout when a subgroup holds one class only
    assert confusion(np.zeros(4, int), np.zeros(4, int)) == {"tn": 4, "fp": 0, "fn": 0, "tp": 0}
    assert confusion(np.ones(3, int), np.ones(3, int)) == {"tn": 0, "fp": 0, "fn": 0, "tp": 3}


def test_majority_floor_predicts_the_majority_with_the_training_prior_as_probability():
    y_train = np.r_[np.ones(6, int), np.zeros(4, int)]          # prior of depressed: 0.6
    y_test = np.array([1, 1, 0, 0, 0])
    maj = majority_floor(y_train, y_test)
    assert maj["recall"] == 1.0 and maj["accuracy"] == pytest.approx(2 / 5)
    # a constant prior is (nearly) calibrated: a best case for the ECE, not a floor
    assert np.isnan(maj["ece"])
    assert maj["auroc"] == 0.5 and maj["auprc"] == pytest.approx(2 / 5)
    normal = majority_floor(1 - y_train, y_test)                # majority normal: prior 0.4
    # it never names a depressed vlog: no depressed-class P/R/F1 to stand as a floor
    assert all(np.isnan(normal[k]) for k in ("precision", "recall", "f1")) and normal["accuracy"] == pytest.approx(3 / 5)
    assert normal["balanced_accuracy"] == 0.5 and normal["mcc"] == 0.0
    assert np.isnan(normal["ece"])


def test_floors_score_the_test_labels_pooled_over_partitions_as_a_model_is():
    trains = [np.r_[np.ones(6, int), np.zeros(4, int)], np.r_[np.ones(3, int), np.zeros(7, int)]]
    tests = [np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0, 0, 0, 0, 0])]
    y = np.concatenate(tests)
    # majority: depressed on the first partition, normal on the second, scored on all twelve vlogs
    maj = majority_floor(trains, tests)
    assert maj["accuracy"] == pytest.approx(sk.accuracy_score(y, np.r_[np.ones(4), np.zeros(8)]))
    assert np.isnan(maj["f1"])                                   # not always depressed on every partition
    # always depressed: F1 of the pooled prevalence (4 of 12), not the mean of the partitions' F1s
    assert always_depressed_floor(tests)["f1"] == pytest.approx(0.5)
    assert always_depressed_floor(tests)["f1"] != pytest.approx(np.mean([2 * 0.75 / 1.75, 2 / 8 / (9 / 8)]))
    # a single array is one partition
    assert majority_floor(trains[0], tests[0])["accuracy"] == pytest.approx(3 / 4)


def test_always_depressed_is_the_floor_of_the_depressed_class_metrics_only():
    y_test = np.array([1, 1, 0, 0, 0])
    floor = always_depressed_floor(y_test)
    assert floor["precision"] == pytest.approx(2 / 5) and floor["recall"] == 1.0
    assert floor["f1"] == pytest.approx(2 * (2 / 5) / (1 + 2 / 5))
    assert set(FLOOR_METRICS["always-depressed"]) == {"precision", "recall", "f1"}
    assert all(np.isnan(floor[k]) for k in METRICS if k not in ("precision", "recall", "f1"))
    # every metric but the ECE has a floor, and the depressed-class ones are never the majority's by default
    assert set().union(*FLOOR_METRICS.values()) == set(METRICS) - {"ece"}
    assert not set(FLOOR_METRICS["majority"]) & {"precision", "recall", "f1"}


def test_chance_stands_for_the_label_metrics_only():
    y_train = np.r_[np.ones(6, int), np.zeros(4, int)]
    chance = chance_floor(y_train, np.array([1, 1, 0, 0, 0, 1, 0]), draws=50, seed=0)
    assert all(np.isfinite(chance[k]) for k in LABEL_METRICS)
    assert all(np.isnan(chance[k]) for k in ("auroc", "auprc", "ece"))


def test_chance_floor_is_seeded():
    y_train = np.r_[np.ones(6, int), np.zeros(4, int)]
    y_test = np.array([1, 1, 0, 0, 0, 1, 0])

    def labels(**kw):
        return {k: v for k, v in chance_floor(y_train, y_test, **kw).items() if k in LABEL_METRICS}

    a = labels(draws=6, seed=3)
    assert a == labels(draws=6, seed=3)
    assert a != labels(draws=6, seed=4)
    assert labels(draws=6) == labels(draws=6, seed=0)
    # draws differ from one another: the average of 6 is not any single draw
    assert a != labels(draws=1, seed=3)


def test_ece_of_no_vlog_one_vlog_and_other_bin_counts():
    assert np.isnan(expected_calibration_error(np.array([], int), np.array([])))
    assert expected_calibration_error(np.array([1]), np.array([0.7])) == pytest.approx(0.3)
    # 5 bins: 0.25 and 0.35 share [0.2, 0.4) (observed 0.5, predicted 0.3); 0.95 is alone
    y, prob = np.array([0, 1, 1]), np.array([0.25, 0.35, 0.95])
    assert expected_calibration_error(y, prob, n_bins=5) == pytest.approx((2 * 0.2 + 0.05) / 3)
    assert expected_calibration_error(y, prob) == pytest.approx((0.25 + 0.65 + 0.05) / 3)   # 10 bins: all apart


def test_a_subgroup_of_one_class_or_no_positive_prediction_scores_without_a_warning():
    from asym.report.stats import weighted_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_class = label_metrics(np.ones(3, int), np.ones(3, int))
        none_predicted = label_metrics(np.array([1, 0, 1]), np.zeros(3, int))
    assert one_class["mcc"] == 0.0 and one_class["accuracy"] == 1.0
    # the absent class's recall is 0 (never NaN, never dropped), as in the bootstrap's counts
    assert one_class["balanced_accuracy"] == 0.5
    assert weighted_metrics(np.ones(3, int), np.ones(3), np.ones((1, 3)))["balanced_accuracy"][0] == 0.5
    assert none_predicted["precision"] == 0.0 and none_predicted["f1"] == 0.0
    assert none_predicted["precision_weighted"] == pytest.approx(1 / 9)


@pytest.mark.parametrize("label", [0, 1])
def test_ranking_metrics_of_one_class_are_nan(label):
    m = all_metrics(np.full(3, label), np.array([0.2, 0.6, 0.9]))
    assert np.isnan(m["auroc"]) and np.isnan(m["auprc"])
    assert m["accuracy"] == pytest.approx(2 / 3 if label else 1 / 3) and np.isfinite(m["ece"])
