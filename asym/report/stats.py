"""Uncertainty and significance: bootstrap CIs, paired permutation tests, Holm's adjustment,
and the smallest difference a test fold can detect.

The resampling unit is the subject when subject ids exist (all of a subject's vlogs enter or
leave a resample together), the vlog otherwise. One resample is drawn per dataset and shared
by every seed and every model, so CIs of a seed-average and differences between models are
paired. A resample is a row of integer weights over the test vlogs (how often each was drawn);
every metric of every resample is evaluated at once from weighted counts. That is the one
place metrics are computed outside scikit-learn, for speed (resamples x metrics x seeds x
models), and tests check every resample against scikit-learn's functions with the same
weights.

Two models are compared by a paired permutation test of ΔF1 (approximate randomisation): each
unit's predictions are exchanged between the two models with probability 1/2, all seeds at once.
It replaced the percentile-bootstrap test (`bootstrap_p`): benchmarks/calibration.py finds that
test at its level on test folds of the releases' sizes but above it on small ones (5.6% and 6.0%
at α = 5% on the embedded demo's 53 and 20 test vlogs), while the permutation test is exact
whenever the two models' predictions are exchangeable and stays below α on every fold, at the
same power within a point. The ΔF1 CIs stay bootstrap ones.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from asym.config import DEFAULT_THRESHOLD
from asym.metrics import ECE_BINS, METRICS, ece_bin

CI_LEVEL = 0.95          # the level of every interval the report prints


def resample_weights(units: list[str] | np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weights: each row draws len(set(units)) units with replacement; every vlog
    of a drawn unit gets that unit's count."""
    codes, uniq = _codes(units)
    k = len(uniq)
    draws = rng.integers(0, k, size=(n_boot, k))
    flat = (np.arange(n_boot)[:, None] * k + draws).ravel()         # (resample, unit) as one index
    counts = np.bincount(flat, minlength=n_boot * k).reshape(n_boot, k).astype(float)
    return counts[:, codes]


def _codes(units: list[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(np.asarray(units, dtype=str), return_inverse=True)
    return codes, uniq


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b == 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def weighted_metrics(y: np.ndarray, prob: np.ndarray, W: np.ndarray,
                     keys: tuple[str, ...] = METRICS, pred: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The metrics `keys` of asym.metrics (default: every one) for each row of weights W
    (n_boot, n): those of labels from `pred` (default: `prob` at the 0.5 threshold), those of
    scores from `prob`. The label metrics cost a few matrix-vector products; the ranking metrics
    and the ECE, which cost far more, are computed only when asked for (simulations ask for F1 alone)."""
    y = np.asarray(y, int)
    prob = np.asarray(prob, float)
    pred = (prob >= DEFAULT_THRESHOLD).astype(int) if pred is None else np.asarray(pred, int)
    tp, fp = W @ ((y == 1) & (pred == 1)), W @ ((y == 0) & (pred == 1))
    fn, tn = W @ ((y == 1) & (pred == 0)), W @ ((y == 0) & (pred == 0))
    n = tp + fp + fn + tn
    s1, s0 = tp + fn, tn + fp
    p1, r1, f1 = _div(tp, tp + fp), _div(tp, s1), _div(2 * tp, 2 * tp + fp + fn)
    p0, r0, f0 = _div(tn, tn + fn), _div(tn, s0), _div(2 * tn, 2 * tn + fn + fp)
    mcc_den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    out = {
        "accuracy": _div(tp + tn, n), "precision": p1, "recall": r1, "f1": f1,
        "precision_weighted": _div(s1 * p1 + s0 * p0, n), "recall_weighted": _div(s1 * r1 + s0 * r0, n),
        "f1_weighted": _div(s1 * f1 + s0 * f0, n), "balanced_accuracy": (r1 + r0) / 2,
        "mcc": _div(tp * tn - fp * fn, mcc_den),
    }
    if {"auroc", "auprc"} & set(keys):
        out.update(_ranking_metrics(y, prob, W))
    if "ece" in keys:
        bins = np.eye(ECE_BINS)[ece_bin(prob)]                      # (n, bins)
        gap = W @ (bins * (y - prob)[:, None])                      # per bin: sum of (observed - predicted)
        out["ece"] = _div(np.abs(gap).sum(1), n)
    return {k: out[k] for k in keys}


def _ranking_metrics(y: np.ndarray, prob: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC (ties count one half) and average precision over distinct score thresholds."""
    order = np.argsort(-prob, kind="stable")
    _, group = np.unique(-prob[order], return_inverse=True)         # groups of equal scores, highest first
    onehot = np.zeros((len(y), group.max() + 1 if len(y) else 0))
    onehot[np.arange(len(y)), group] = 1.0
    pos = W[:, order] @ (onehot * (y[order] == 1)[:, None])         # (n_boot, groups): weight of positives
    neg = W[:, order] @ (onehot * (y[order] == 0)[:, None])
    total_pos, total_neg = pos.sum(1), neg.sum(1)
    neg_below = total_neg[:, None] - np.cumsum(neg, axis=1)         # negatives scored strictly lower
    auroc = (pos * (neg_below + 0.5 * neg)).sum(1)
    both = (total_pos > 0) & (total_neg > 0)
    auroc = np.where(both, _div(auroc, total_pos * total_neg), np.nan)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    ap = (pos * _div(tp, tp + fp)).sum(1)                           # sum of (recall step) x precision
    ap = np.where(both, _div(ap, total_pos), np.nan)
    return {"auroc": auroc, "auprc": ap}


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def centred_ci(samples: np.ndarray, point: float, level: float = CI_LEVEL) -> tuple[float, float]:
    """The bias-corrected percentile interval (Efron's BC) of `point` from its resamples.

    A plain percentile interval assumes the resampled statistic is centred on the estimate. Some
    of the report's are not: the ECE and a best-minus-worst gap are biased upward on resamples,
    and a point far in one tail of its resamples would lie outside its own interval. BC moves both
    percentiles by z0 = Φ⁻¹(share of resamples below the point, ties counted half); with no
    bias (z0 = 0) it is the percentile interval. Where the resamples leave the point in a tail
    so far out that BC's percentiles would exclude it (|z0| at or beyond the level's quantile),
    BC has broken down: the interval is then the percentile one moved onto the point
    (`shifted_percentile_ci`), which keeps the resamples' spread rather than collapsing onto the
    point."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if len(s) == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    below = (np.sum(s < point) + 0.5 * np.sum(s == point)) / len(s)
    norm = NormalDist()
    edge = 0.5 / len(s)                                  # keeps Φ⁻¹ finite: one resample's share
    z0 = norm.inv_cdf(min(max(below, edge), 1 - edge))
    z = norm.inv_cdf(0.5 + level / 2)
    if abs(z0) >= z:
        return shifted_percentile_ci(s, point, level)
    lo, hi = np.percentile(s, [100 * norm.cdf(2 * z0 - z), 100 * norm.cdf(2 * z0 + z)])
    return float(min(lo, point)), float(max(hi, point))


def shifted_percentile_ci(samples: np.ndarray, point: float, level: float = CI_LEVEL,
                          bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """The percentile interval of `samples` moved by `point` minus their median, cut to `bounds`:
    the resamples give the spread, the point the place (asym.report.optimism's docstring says why it is that table's interval). It
    holds `point` exactly: the offsets are clamped at 0 against rounding. NaN without a finite
    resample or point."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if len(s) == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    lo, hi = percentile_ci(s, level)
    mid = float(np.median(s))
    low, high = point + min(lo - mid, 0.0), point + max(hi - mid, 0.0)
    return float(max(low, min(bounds[0], point))), float(min(high, max(bounds[1], point)))


def seed_mean_resamples(y: np.ndarray, probs: np.ndarray, W: np.ndarray,
                        preds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per metric, the seed-averaged value on every resample: probs (and the labels `preds`,
    default: probs at 0.5) are (n_seeds, n)."""
    per_seed = [weighted_metrics(y, p, W, pred=None if preds is None else preds[s]) for s, p in enumerate(probs)]
    return {k: np.mean([m[k] for m in per_seed], axis=0) for k in METRICS}


def labelled_resamples(y: np.ndarray, probs: np.ndarray, preds: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, the seed-averaged value on every resample (seed_mean_resamples), the metrics
    of labels taken from the saved labels `preds` (n_seeds, n), those of scores (AUROC, AUPRC,
    ECE) from `probs`."""
    return seed_mean_resamples(y, probs, W, np.asarray(preds))


def bootstrap_p(deltas: np.ndarray) -> float:
    """Two-sided p of "no difference" from a paired bootstrap distribution of differences.

    The percentile-bootstrap test, which the paired permutation test replaces; kept because benchmarks/calibration.py
    measures both, side by side."""
    d = deltas[np.isfinite(deltas)]
    if len(d) == 0:
        return float("nan")
    tail = min(np.sum(d <= 0), np.sum(d >= 0))
    return float(min(1.0, 2 * (tail + 1) / (len(d) + 1)))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN)."""
    p = np.asarray(pvalues, float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), np.nan)
    if len(finite) == 0:
        return out.tolist()
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


# --- the paired permutation test ---------------------------------------------------------------
# |ΔF1| of an exchange within this of the observed one counts as reaching it: the same counts
# reached by two orders of summation differ in the last bits only.
_TIE = 1e-9


def swap_draws(units: list[str] | np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(n_draws, n) 0/1: in each draw every unit (subject when known, else vlog) has the two
    models' predictions exchanged with probability 1/2; a unit's vlogs are exchanged together."""
    codes, uniq = _codes(units)
    flips = rng.integers(0, 2, size=(n_draws, len(uniq))).astype(float)
    return flips[:, codes]


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(2 * tp, 2 * tp + fp + fn)


def swap_deltas(y: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, S: np.ndarray) -> tuple[float, np.ndarray]:
    """The seed-mean ΔF1 = F1(b) - F1(a) observed, and under every row of exchanges S (see
    `swap_draws`): the permutation distribution of ΔF1 under "no difference". preds_* are the
    0/1 labels (n_seeds, n), seed k of a exchanged with seed k of b. The counts of a model with
    some vlogs exchanged are its own counts plus S times the per-vlog differences, so every
    draw costs one matrix product."""
    y = np.asarray(y, int)
    pa, pb = np.atleast_2d(np.asarray(preds_a)).astype(bool), np.atleast_2d(np.asarray(preds_b)).astype(bool)
    if pa.shape != pb.shape:
        raise ValueError(f"paired predictions of different shapes: {pa.shape} and {pb.shape}")
    pos = y == 1

    def counts(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:   # each (n_seeds, n)
        return (pred & pos).astype(float), (pred & ~pos).astype(float), (~pred & pos).astype(float)

    ca, cb = counts(pa), counts(pb)
    moved = [S @ (b - a).T for a, b in zip(ca, cb, strict=True)]     # (n_draws, n_seeds) per count
    swapped_a = [a.sum(1) + m for a, m in zip(ca, moved, strict=True)]
    swapped_b = [b.sum(1) - m for b, m in zip(cb, moved, strict=True)]
    null = (_f1(*swapped_b) - _f1(*swapped_a)).mean(1)
    observed = float(np.mean(_f1(*(b.sum(1) for b in cb)) - _f1(*(a.sum(1) for a in ca))))
    return observed, null


def permutation_p(observed: float, null: np.ndarray) -> float:
    """Two-sided p: the share of exchanges whose |ΔF1| reaches the observed one, the observed
    arrangement counted among them (so p > 0, and the test is exact under exchangeability)."""
    d = np.asarray(null, float)
    d = d[np.isfinite(d)]
    if len(d) == 0 or not np.isfinite(observed):
        return float("nan")
    hits = np.sum(np.abs(d) >= abs(observed) - _TIE)
    return float((hits + 1) / (len(d) + 1))


def minimum_detectable_effect(null: np.ndarray, alpha: float, power: float, tests: int = 1) -> float:
    """The |ΔF1| the paired test detects with probability `power` at level `alpha` (divided by
    `tests` for Holm's first step over a family), by the normal approximation
    (z_{1 - alpha / (2 tests)} + z_power) x the SD of the test's null distribution.
    Cheap enough for the report; benchmarks/calibration.py checks it against simulated power."""
    d = np.asarray(null, float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return float("nan")
    z = NormalDist()
    return float((z.inv_cdf(1 - alpha / (2 * tests)) + z.inv_cdf(power)) * np.std(d, ddof=1))
