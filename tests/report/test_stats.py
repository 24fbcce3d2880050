"""The bootstrap, the paired tests, Holm's adjustment and the detectable effect against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from asym.metrics import METRICS, all_metrics
from asym.report.stats import (
    bootstrap_p,
    centred_ci,
    holm,
    minimum_detectable_effect,
    percentile_ci,
    permutation_p,
    resample_weights,
    seed_mean_resamples,
    swap_deltas,
    swap_draws,
    weighted_metrics,
)


def test_every_resample_equals_scikit_learn_with_the_same_weights():
    rng = np.random.default_rng(0)
    for _ in range(10):
        n = 30
        y, prob = rng.integers(0, 2, n), np.round(rng.random(n), 1)   # rounded: ties
        W = rng.integers(0, 4, (6, n)).astype(float)
        out = weighted_metrics(y, prob, W)
        pred = (prob >= 0.5).astype(int)
        for b, w in enumerate(W):
            ref = {"accuracy": sk.accuracy_score(y, pred, sample_weight=w),
                   "precision": sk.precision_score(y, pred, sample_weight=w, zero_division=0),
                   "recall": sk.recall_score(y, pred, sample_weight=w, zero_division=0),
                   "f1": sk.f1_score(y, pred, sample_weight=w, zero_division=0),
                   "f1_weighted": sk.f1_score(y, pred, sample_weight=w, average="weighted", zero_division=0),
                   "precision_weighted": sk.precision_score(y, pred, sample_weight=w, average="weighted", zero_division=0),
                   "recall_weighted": sk.recall_score(y, pred, sample_weight=w, average="weighted", zero_division=0),
                   "balanced_accuracy": sk.balanced_accuracy_score(y, pred, sample_weight=w),
                   "mcc": sk.matthews_corrcoef(y, pred, sample_weight=w),
                   "auroc": sk.roc_auc_score(y, prob, sample_weight=w),
                   "auprc": sk.average_precision_score(y, prob, sample_weight=w)}
            for k, v in ref.items():
                assert out[k][b] == pytest.approx(v, abs=1e-10), k
        ones = weighted_metrics(y, prob, np.ones((1, n)))
        point = all_metrics(y, prob)
        for k in METRICS:
            assert ones[k][0] == pytest.approx(point[k], abs=1e-10), k   # ECE included


def test_resampling_unit_is_the_subject_when_given():
    units = np.array(["a"] * 5 + ["b", "c", "d", "e"])
    W = resample_weights(units, 500, np.random.default_rng(1))
    assert W.shape == (500, 9)
    assert (W[:, :5] == W[:, [0]]).all()                    # a subject's vlogs enter together
    assert np.allclose(W[:, [0, 5, 6, 7, 8]].sum(1), 5)     # 5 subjects drawn per resample
    assert np.allclose(W[:, [0, 5, 6, 7, 8]].mean(), 1, atol=0.05)


def test_accuracy_ci_matches_the_normal_approximation_in_large_samples():
    rng = np.random.default_rng(2)
    n = 2000
    y = rng.integers(0, 2, n)
    prob = np.where(rng.random(n) < 0.7, y, 1 - y).astype(float)   # 70% correct
    W = resample_weights(np.arange(n).astype(str), 2000, np.random.default_rng(3))
    acc = weighted_metrics(y, prob, W)["accuracy"]
    p = np.mean((prob >= 0.5) == y)
    se = np.sqrt(p * (1 - p) / n)
    lo, hi = percentile_ci(acc)
    assert lo == pytest.approx(p - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(p + 1.96 * se, abs=0.25 * se)
    assert acc.std() == pytest.approx(se, rel=0.1)


def test_subject_ci_is_wider_than_the_vlog_ci_when_one_subject_has_many_vlogs():
    rng = np.random.default_rng(4)
    # one subject with 40 vlogs, all misclassified; 40 other subjects with one vlog each, mostly right
    y = np.r_[np.ones(40, int), rng.integers(0, 2, 40)]
    prob = np.r_[np.zeros(40), np.where(rng.random(40) < 0.9, y[40:], 1 - y[40:])].astype(float)
    subjects = np.r_[["big"] * 40, [f"s{i}" for i in range(40)]]
    vlogs = np.array([f"v{i}" for i in range(80)])
    by_subject = weighted_metrics(y, prob, resample_weights(subjects, 2000, np.random.default_rng(5)))["accuracy"]
    by_vlog = weighted_metrics(y, prob, resample_weights(vlogs, 2000, np.random.default_rng(5)))["accuracy"]
    w_subject, w_vlog = np.subtract(*percentile_ci(by_subject)[::-1]), np.subtract(*percentile_ci(by_vlog)[::-1])
    assert w_subject > 2 * w_vlog


def test_the_same_resample_serves_every_seed():
    y = np.array([1, 0, 1, 0, 1, 1])
    probs = np.array([[.9, .1, .8, .3, .2, .7], [.6, .4, .2, .1, .9, .8]])
    W = resample_weights(np.arange(6).astype(str), 50, np.random.default_rng(0))
    res = seed_mean_resamples(y, probs, W)
    each = [weighted_metrics(y, p, W)["f1"] for p in probs]
    assert np.allclose(res["f1"], (each[0] + each[1]) / 2)


def test_holm_against_a_hand_worked_family():
    # sorted p: .01 (x4), .02 (x3), .03 (x2), .5 (x1) -> .04, .06, .06 (monotone), .5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    out = holm([np.nan, 0.01])
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.01)


def test_bootstrap_p_is_small_for_a_clear_difference_and_large_for_none():
    rng = np.random.default_rng(0)
    assert bootstrap_p(rng.normal(1.0, 0.1, 999)) == pytest.approx(2 / 1000)
    assert bootstrap_p(rng.normal(0.0, 0.1, 999)) > 0.5
    assert 0 <= bootstrap_p(np.r_[np.ones(10), -np.ones(10)]) <= 1


def test_bootstrap_p_counts_zero_differences_on_both_sides():
    # one resample of no difference among nine that favour one side: tail 1 of 10 -> 2 * 2 / 11
    assert bootstrap_p(np.r_[0.0, np.ones(9)]) == pytest.approx(4 / 11)
    assert bootstrap_p(np.r_[0.0, -np.ones(9)]) == pytest.approx(4 / 11)
    assert bootstrap_p(np.r_[np.nan, np.ones(9)]) == pytest.approx(2 / 10)     # NaN resamples left out


def test_bootstrap_p_of_one_resample_and_of_none():
    assert bootstrap_p(np.array([0.5])) == 1.0
    assert np.isnan(bootstrap_p(np.array([]))) and np.isnan(bootstrap_p(np.array([np.nan, np.nan])))


def test_percentile_ci_has_the_exact_percentiles_and_degenerate_cases():
    grid = np.arange(1001) / 1000
    assert percentile_ci(grid) == pytest.approx((0.025, 0.975), abs=1e-12)
    assert percentile_ci(grid, level=0.9) == pytest.approx((0.05, 0.95), abs=1e-12)
    assert percentile_ci(np.r_[grid, np.nan]) == pytest.approx((0.025, 0.975), abs=1e-12)   # NaN resamples left out
    assert percentile_ci(np.array([0.3])) == (0.3, 0.3)
    assert all(np.isnan(percentile_ci(np.array([np.nan]))))


def test_centred_ci_is_the_percentile_interval_when_the_resamples_centre_on_the_point():
    grid = np.arange(1001) / 1000
    assert centred_ci(grid, 0.5) == pytest.approx(percentile_ci(grid), abs=1e-12)
    assert centred_ci(np.full(50, 0.7), 0.7) == (0.7, 0.7)                # a constant predictor's recall
    assert all(np.isnan(centred_ci(np.array([np.nan]), 0.5))) and all(np.isnan(centred_ci(grid, np.nan)))


def test_centred_ci_moves_with_the_bias_of_the_resamples():
    # the resamples sit above the point (as a resampled ECE does): z0 = Φ⁻¹(0.2)
    rng = np.random.default_rng(0)
    samples = rng.normal(0.0, 1.0, 200_000)
    point = float(np.quantile(samples, 0.2))
    from statistics import NormalDist

    z0, z = NormalDist().inv_cdf(0.2), NormalDist().inv_cdf(0.975)
    expected = np.quantile(samples, [NormalDist().cdf(2 * z0 - z), NormalDist().cdf(2 * z0 + z)])
    assert centred_ci(samples, point) == pytest.approx(tuple(expected), abs=1e-9)
    lo, hi = centred_ci(samples, point)
    plain = percentile_ci(samples)
    assert lo < plain[0] and hi < plain[1] and lo <= point <= hi


def test_centred_ci_never_leaves_its_point_outside():
    rng = np.random.default_rng(1)
    for shift in (-5.0, -2.5, -1.0, 0.0, 1.0, 2.5, 5.0):            # the point anywhere, far tails included
        samples = rng.normal(0.0, 1.0, 999)
        lo, hi = centred_ci(samples, shift)
        assert lo <= shift <= hi, shift
        assert percentile_ci(samples)[0] > shift or percentile_ci(samples)[1] < shift or abs(shift) < 2


def test_ece_of_each_resample_equals_the_ece_of_that_resample_drawn_out():
    from asym.metrics import expected_calibration_error

    rng = np.random.default_rng(6)
    y, prob = rng.integers(0, 2, 25), rng.random(25)
    W = rng.integers(0, 3, (5, 25)).astype(float)
    ece = weighted_metrics(y, prob, W)["ece"]
    for b, w in enumerate(W):
        idx = np.repeat(np.arange(25), w.astype(int))
        assert ece[b] == pytest.approx(expected_calibration_error(y[idx], prob[idx]), abs=1e-12)
    assert len(set(np.round(ece, 12))) > 1


def test_ranking_metrics_need_both_classes_in_the_resample():
    y, prob = np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1])
    W = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], float)   # positives only, negatives only, both
    out = weighted_metrics(y, prob, W)
    assert np.isnan(out["auroc"][:2]).all() and np.isnan(out["auprc"][:2]).all()
    assert out["auroc"][2] == 1.0 and out["auprc"][2] == 1.0
    empty = weighted_metrics(np.array([], int), np.array([]), np.ones((2, 0)))
    assert np.isnan(empty["auroc"]).all() and (empty["accuracy"] == 0).all()


def test_a_subset_of_metrics_equals_the_same_metrics_of_the_full_set():
    rng = np.random.default_rng(7)
    y, prob = rng.integers(0, 2, 40), rng.random(40)
    W = rng.integers(0, 3, (8, 40)).astype(float)
    full = weighted_metrics(y, prob, W)
    for keys in (("f1",), ("accuracy", "auroc"), ("ece",), METRICS):
        part = weighted_metrics(y, prob, W, keys)
        assert list(part) == list(keys)
        for k in keys:
            assert np.array_equal(part[k], full[k]), k


def test_each_resample_counts_its_own_draws():
    units = np.array(["b", "a", "c", "a", "d"])
    W = resample_weights(units, 200, np.random.default_rng(9))
    draws = np.random.default_rng(9).integers(0, 4, size=(200, 4))          # the same draws, of a..d
    for row, drawn in zip(W, draws, strict=True):
        counts = np.bincount(drawn, minlength=4)
        assert row.tolist() == [counts[1], counts[0], counts[2], counts[0], counts[3]]


def test_exchanges_move_a_subjects_vlogs_together_half_the_time():
    units = np.array(["a"] * 4 + [f"s{i}" for i in range(6)])
    S = swap_draws(units, 4000, np.random.default_rng(3))
    assert S.shape == (4000, 10) and set(np.unique(S)) == {0.0, 1.0}
    assert (S[:, :4] == S[:, [0]]).all()
    assert S.mean(0) == pytest.approx(np.full(10, 0.5), abs=0.03)
    assert abs(np.corrcoef(S[:, 4], S[:, 5])[0, 1]) < 0.05               # units independently


def test_swap_deltas_equal_the_f1_of_every_exchanged_pair_drawn_out():
    rng = np.random.default_rng(11)
    n = 30
    y = rng.integers(0, 2, n)
    a, b = rng.integers(0, 2, (3, n)), rng.integers(0, 2, (3, n))        # 3 seeds each
    S = swap_draws(np.array([f"p{i // 3}" for i in range(n)]), 25, rng)
    observed, null = swap_deltas(y, a, b, S)
    f1 = np.mean([sk.f1_score(y, pb, zero_division=0) - sk.f1_score(y, pa, zero_division=0)
                  for pa, pb in zip(a, b, strict=True)])
    assert observed == pytest.approx(f1, abs=1e-12)
    for row, value in zip(S, null, strict=True):
        swap = row.astype(bool)
        a2, b2 = np.where(swap, b, a), np.where(swap, a, b)
        expected = np.mean([sk.f1_score(y, q, zero_division=0) - sk.f1_score(y, p, zero_division=0)
                            for p, q in zip(a2, b2, strict=True)])
        assert value == pytest.approx(expected, abs=1e-12)
    assert swap_deltas(y, a, b, np.zeros((1, n)))[1][0] == pytest.approx(observed, abs=1e-12)
    assert swap_deltas(y, a, b, np.ones((1, n)))[1][0] == pytest.approx(-observed, abs=1e-12)
    with pytest.raises(ValueError, match="different shapes"):
        swap_deltas(y, a, b[:2], S)


def test_permutation_p_against_hand_counts():
    null = np.array([0.3, -0.2, 0.1, -0.05, 0.0, 0.2, np.nan])
    assert permutation_p(0.2, null) == pytest.approx((3 + 1) / (6 + 1))   # |0.3|, |-0.2|, |0.2| reach 0.2
    assert permutation_p(-0.2, null) == pytest.approx(4 / 7)              # two-sided
    assert permutation_p(0.0, null) == 1.0
    assert permutation_p(0.5, null) == pytest.approx(1 / 7)               # never 0
    assert np.isnan(permutation_p(0.1, np.array([np.nan]))) and np.isnan(permutation_p(np.nan, null))


def test_the_permutation_test_keeps_its_level_when_the_models_are_exchangeable():
    rng = np.random.default_rng(12)
    n, reps = 60, 400
    y = rng.integers(0, 2, n)
    units = np.array([f"v{i}" for i in range(n)])
    rejected = 0
    for _ in range(reps):
        shared = rng.normal(size=n)
        a = (y - 0.5 + shared + rng.normal(size=n) > 0).astype(int)
        b = (y - 0.5 + shared + rng.normal(size=n) > 0).astype(int)
        observed, null = swap_deltas(y, a[None], b[None], swap_draws(units, 199, rng))
        rejected += permutation_p(observed, null) < 0.05
    assert rejected / reps <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)
    assert rejected > 0                                                   # not a test that never rejects


def test_minimum_detectable_effect_is_the_normal_power_calculation():
    from statistics import NormalDist

    z = NormalDist()
    null = np.random.default_rng(13).normal(0, 0.04, 5000)
    sd = null.std(ddof=1)
    mde = minimum_detectable_effect(null, 0.05, 0.8)
    assert mde == pytest.approx((1.959964 + 0.841621) * sd, rel=1e-5)
    # a normal estimate centred on the MDE crosses the two-sided critical value 80% of the time
    crit = z.inv_cdf(0.975) * sd
    assert 1 - NormalDist(mde, sd).cdf(crit) + NormalDist(mde, sd).cdf(-crit) == pytest.approx(0.8, abs=1e-3)
    holm_first_step = (z.inv_cdf(1 - 0.05 / 20) + z.inv_cdf(0.8)) * sd              # alpha / 10, two-sided
    assert minimum_detectable_effect(null, 0.05, 0.8, tests=10) == pytest.approx(holm_first_step)
    assert minimum_detectable_effect(null, 0.05, 0.9) > mde
    assert np.isnan(minimum_detectable_effect(np.array([0.1]), 0.05, 0.8))


def test_where_bc_breaks_down_the_interval_keeps_the_resamples_spread():
    """A point in a far tail of its resamples (an ECE's upward bias, say): BC's percentiles would
    exclude it, and clamping to the point would collapse the interval to a sliver beside it."""
    from asym.report.stats import shifted_percentile_ci

    rng = np.random.default_rng(2)
    samples = rng.normal(9.0, 3.0, 1000)
    point = float(np.quantile(samples, 0.015))              # |z0| beyond the 95% level's quantile
    lo, hi = centred_ci(samples, point)
    assert lo <= point <= hi
    plain = percentile_ci(samples)
    assert hi - lo == pytest.approx(plain[1] - plain[0])     # the spread kept, moved onto the point
    assert (lo, hi) == pytest.approx(shifted_percentile_ci(samples, point))
    inside = float(np.quantile(samples, 0.2))                # BC still holds: not the shifted interval
    assert centred_ci(samples, inside) != pytest.approx(shifted_percentile_ci(samples, inside))
