"""Classification metrics of one set of predictions, by scikit-learn's functions (the label
metrics by their arithmetic on the confusion counts, equal bit for bit: see _label_metrics).

Depressed is the positive class. Two conventions coexist in this literature and both are
reported, under distinct names:

- depressed-class precision / recall / F1 (`precision`, `recall`, `f1`): DepMamba, CAF-Mamba, ASYM;
- weighted precision / recall / F1 (`*_weighted`, support-averaged over both classes): the
  D-Vlog paper, TAMFN, the LMVD paper.

Beside them: accuracy, balanced accuracy, MCC, AUROC and AUPRC from the predicted
probabilities, and the expected calibration error (ECE, equal-width bins), the one metric
scikit-learn lacks: it is built on `sklearn.calibration.calibration_curve`.
"""

from __future__ import annotations

import numpy as np

HEADLINE = ("accuracy", "precision", "recall", "f1")
LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "precision_weighted", "recall_weighted", "f1_weighted",
                 "balanced_accuracy", "mcc")
SCORE_METRICS = ("auroc", "auprc", "ece")
METRICS = LABEL_METRICS + SCORE_METRICS
ECE_BINS = 10
CONVENTION = {
    "accuracy": "accuracy", "precision": "precision, depressed class", "recall": "recall, depressed class",
    "f1": "F1, depressed class", "precision_weighted": "precision, support-weighted over both classes",
    "recall_weighted": "recall, support-weighted over both classes", "f1_weighted": "F1, support-weighted over both classes",
    "balanced_accuracy": "mean recall of both classes", "mcc": "Matthews correlation",
    "auroc": "from probabilities", "auprc": "from probabilities (average precision)",
    "ece": f"expected calibration error, {ECE_BINS} equal-width bins (lower is better)",
}


def _sklearn():
    import sklearn
    from sklearn import metrics

    # The inputs are built here, never by a user: skip scikit-learn's per-call validation.
    sklearn.set_config(skip_parameter_validation=True, assume_finite=True)
    return metrics


def confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    m = _sklearn()
    tn, fp, fn, tp = m.confusion_matrix(np.asarray(y, int), np.asarray(pred, int), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def label_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics of hard predictions; a class absent from the predictions scores 0, not NaN, and
    the MCC of one class is 0 (scikit-learn's definitions)."""
    return _label_metrics(y, pred)


def _label_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """scikit-learn's accuracy_score, precision_recall_fscore_support (depressed class, and
    weighted), recall_score (macro: balanced accuracy) and matthews_corrcoef, zero_division 0,
    computed from the confusion counts with their arithmetic, so equal to theirs bit for bit
    (tests/test_metrics.py): importing scikit-learn costs a training job, which scores every
    epoch, more than its training at demo scale."""
    y, pred = np.asarray(y, int), np.asarray(pred, int)
    n = len(y)
    # counts[t, p]: vlogs of true class t predicted p
    counts = np.bincount(2 * y + pred, minlength=4).reshape(2, 2) if n else np.zeros((2, 2), int)
    tp = np.diag(counts).astype(np.float64)
    true, predicted = counts.sum(axis=1), counts.sum(axis=0)
    precision, recall = _divide(tp, predicted), _divide(tp, true)
    f1 = _divide(2.0 * tp, 1.0 * true.astype(np.float64) + predicted.astype(np.float64))
    out = {"accuracy": float(np.mean(y == pred)) if n else float("nan"),
           "precision": precision[1], "recall": recall[1], "f1": f1[1]}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{name}_weighted"] = _weighted(per_class, true)
    out["balanced_accuracy"] = float(np.mean(recall))
    out["mcc"] = _mcc(counts)
    return {k: float(v) for k, v in out.items()}


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per class, 0 where den is 0 (zero_division=0)."""
    den = np.asarray(den, np.float64)
    out = np.asarray(num, np.float64) / np.where(den == 0, 1.0, den)
    return np.where(den == 0, 0.0, out)


def _weighted(per_class: np.ndarray, support: np.ndarray) -> float:
    """np.average of the per-class scores weighted by their support; the plain mean without support."""
    if support.sum() == 0:
        return float(np.mean(per_class))
    return float(np.average(per_class, weights=support))


def _mcc(counts: np.ndarray) -> float:
    t_sum, p_sum = counts.sum(axis=1, dtype=np.float64), counts.sum(axis=0, dtype=np.float64)
    n_correct, n = np.trace(counts, dtype=np.float64), p_sum.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n**2 - np.dot(t_sum, t_sum)
    return 0.0 if cov_ypyp * cov_ytyt == 0 else float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """sum over bins of (share of samples) x |observed rate - mean predicted probability|."""
    from sklearn.calibration import calibration_curve

    y, prob = np.asarray(y, int), np.asarray(prob, float)
    if len(y) == 0:
        return float("nan")
    observed, predicted = calibration_curve(y, prob, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(ece_bin(prob, n_bins), minlength=n_bins)
    share = counts[counts > 0] / len(y)
    return float(np.sum(share * np.abs(observed - predicted)))


def ece_bin(prob: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """The bin of each probability, exactly as calibration_curve(strategy='uniform') bins it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], np.asarray(prob, float))


def score_metrics(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """AUROC / AUPRC need both classes in y: NaN otherwise."""
    m = _sklearn()
    y, prob = np.asarray(y, int), np.asarray(prob, float)
    both = len(np.unique(y)) == 2
    return {"auroc": float(m.roc_auc_score(y, prob)) if both else float("nan"),
            "auprc": float(m.average_precision_score(y, prob)) if both else float("nan"),
            "ece": expected_calibration_error(y, prob)}


def all_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    prob = np.asarray(prob, float)
    return {**label_metrics(y, (prob >= threshold).astype(int)), **score_metrics(y, prob)}


def selection_score(m: dict[str, float], metric: str) -> float:
    """DepMamba picks the checkpoint with the best validation (acc + precision + recall + F1) / 4."""
    return float(np.mean([m[k] for k in HEADLINE])) if metric == "mean4" else float(m[metric])


DEPRESSED_CLASS = ("precision", "recall", "f1")
# What each floor stands for: the metrics on which it is the score a model must beat. The
# majority's constant prior is the uninformed reference of every label and ranking metric but the
# depressed-class ones (when the majority is normal it never names a depressed vlog: its P is 0/0
# and its R and F1 are 0 by construction); not of the ECE, where a constant prior is nearly
# perfectly calibrated, a best case rather than a floor. "Always depressed" is the floor of the
# depressed-class ones; a random guess's 0/1 scores have no ranking or calibration to compare with.
FLOOR_METRICS = {
    "majority": tuple(k for k in METRICS if k not in (*DEPRESSED_CLASS, "ece")),
    "always-depressed": DEPRESSED_CLASS,
    "chance": LABEL_METRICS,
}
Partitions = np.ndarray | list[np.ndarray]


def _keep(m: dict[str, float], keys: tuple[str, ...]) -> dict[str, float]:
    """Every metric, NaN where the floor means nothing (FLOOR_METRICS)."""
    return {k: float(m[k]) if k in keys else float("nan") for k in METRICS}


def _partitions(y: Partitions) -> list[np.ndarray]:
    """One array of labels per partition: a single array is one partition."""
    if isinstance(y, np.ndarray) and y.ndim == 1:
        return [y.astype(int)]
    return [np.asarray(part, int) for part in y]


def majority_floor(y_train: Partitions, y_test: Partitions) -> dict[str, float]:
    """Always each partition's training majority class (its prior as the probability), scored on
    the test labels pooled over the partitions, as a model's are; its depressed-class P/R/F1 only
    where every partition's majority is depressed (then it is "always depressed")."""
    from sklearn.dummy import DummyClassifier

    preds, probs = [], []
    for train, test in zip(_partitions(y_train), _partitions(y_test), strict=True):
        clf = DummyClassifier(strategy="prior").fit(np.zeros((len(train), 1)), train)
        x = np.zeros((len(test), 1))
        preds.append(clf.predict(x))
        probs.append(clf.predict_proba(x)[:, -1])
    y, pred = np.concatenate(_partitions(y_test)), np.concatenate(preds)
    m = {**label_metrics(y, pred), **score_metrics(y, np.concatenate(probs))}
    depressed = len(pred) > 0 and bool(np.all(pred == 1))
    return _keep(m, FLOOR_METRICS["majority"] + (DEPRESSED_CLASS if depressed else ()))


def always_depressed_floor(y_test: Partitions) -> dict[str, float]:
    """Every test vlog called depressed: the floor of the depressed-class P (the prevalence),
    R (1) and F1 (2·prevalence / (1 + prevalence)), which a constant "normal" cannot give."""
    y = np.concatenate(_partitions(y_test))
    return _keep(label_metrics(y, np.ones_like(y)), FLOOR_METRICS["always-depressed"])


def chance_floor(y_train: Partitions, y_test: Partitions, draws: int = 1000, seed: int = 0) -> dict[str, float]:
    """Expected label metrics of a stratified random guess (predicts depressed with each
    partition's training rate), each guess scored on the test labels pooled over the partitions,
    averaged over `draws` guesses."""
    from sklearn.dummy import DummyClassifier

    trains, tests = _partitions(y_train), _partitions(y_test)
    y = np.concatenate(tests)
    rows = []
    for k in range(draws):
        guess = [DummyClassifier(strategy="stratified", random_state=seed + k)
                 .fit(np.zeros((len(train), 1)), train).predict(np.zeros((len(test), 1)))
                 for train, test in zip(trains, tests, strict=True)]
        rows.append(label_metrics(y, np.concatenate(guess)))
    return _keep({k: float(np.mean([r[k] for r in rows])) for k in LABEL_METRICS}, FLOOR_METRICS["chance"])
