"""benchmarks/calibration.py: its simulated truth is right, and on a small simulation the paired
test the report uses keeps its level."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import calibration as cal  # noqa: E402

SETTINGS = {"n_draws": 500, "alpha": 0.05, "power": 0.8}


def test_the_paired_test_keeps_its_level_on_dvlogs_test_fold():
    out = cal.rejection(cal.dvlog_fold(), 0.0, 300, SETTINGS, np.random.default_rng(1))
    assert out["new"] <= 0.08 and out["old"] <= 0.08
    assert out["replicates"] == 300 and out["mc_se"]["new"] > 0


def test_a_large_difference_is_found_and_the_mde_is_in_its_range():
    out = cal.rejection(cal.dvlog_fold(), 20.0, 60, SETTINGS, np.random.default_rng(2))
    assert out["new"] > 0.9 and out["old"] > 0.9
    assert 5 < out["mde_normal_approx"] < 15                   # points, on 212 vlogs


def test_the_lmvd_fold_has_lmvds_test_size_in_whole_subjects():
    fold = cal.lmvd_fold(np.random.default_rng(cal.SEED))
    assert len(fold.y) == 183 and fold.y.sum() == 91
    assert 130 < fold.n_units < 170                            # 1.24 vlogs per participant
    for unit in set(fold.units):
        assert len(set(fold.y[fold.units == unit])) == 1        # one label per subject


def test_the_closed_form_population_metrics_match_a_large_sample():
    from asym.metrics import all_metrics

    pi, mu = 0.58, cal.mu_for_f1(0.75, 0.58)
    assert cal.population(mu, pi)["f1"] == pytest.approx(0.75, abs=1e-9)
    n = 200_000
    rng = np.random.default_rng(3)
    y = (rng.random(n) < pi).astype(int)
    fold = cal.Fold("big", y, np.arange(n).astype(str), 0.0)
    got = all_metrics(y, cal.prob(cal.draw_scores(fold, [mu], rng))[0])
    for k, v in cal.population(mu, pi).items():
        assert got[k] == pytest.approx(v, abs=0.005), k


def test_the_power_curve_crossing_is_interpolated():
    assert cal.crossing([(0, 0.05), (5, 0.5), (10, 0.9)], 0.8) == pytest.approx(8.75)
    assert cal.crossing([(0, 0.05), (5, 0.5)], 0.8) is None


def test_a_tiny_run_fills_every_row_of_the_table():
    reps = {"size": 30, "power": 8, "coverage": 8, "fwer": 4}
    small = [cal.dvlog_fold(20, 10, "tiny")]
    results = cal.run(reps, [cal.dvlog_fold()], small, SETTINGS, workers=1)
    assert set(results) == {"dvlog", "tiny"} and "power" not in results["tiny"]
    r = results["dvlog"]
    assert [p["delta"] for p in r["power"]] == sorted({*cal.DELTAS, *cal.MDE_GRID})
    assert set(r["coverage"]) == {*cal.COVERED, "replicates"} and r["fwer"]["family"] == cal.FAMILY
    table = cal.markdown(results, SETTINGS, "test")
    for label in ("size at ΔF1 = 0, old", "size at ΔF1 = 0, new", "power at ΔF1 = 10 pt, new",
                  "MDE at 80% power, normal approx.", "coverage of the 95% CI, auroc", "FWER, 20 null comparisons"):
        assert label in table, label
    assert "tiny (n = 20, 10 dep.)" in table


# --- the optimism study's intervals -------------------------------------------------------------------
OPTIMISM = {"n_draws": 300, "k": 5, "epochs": 8, "metric": "mean4", "level": 0.95}


def test_the_optimism_settings_are_the_reports_and_the_recipes():
    from asym.config import load_params
    from asym.models import registry
    from asym.report.stats import CI_LEVEL

    params = load_params(ROOT / "params.yaml")
    recipe = params.recipe(registry.get(params.optimism_models[0]).recipe)
    assert cal.optimism_settings(ROOT / "params.yaml") == {
        "n_draws": params.report.bootstrap, "k": params.split.kfold.k, "epochs": recipe.epochs,
        "metric": recipe.selection_metric, "level": CI_LEVEL}


def test_the_batched_truth_scores_as_the_report_does():
    """batch_reports (many test sets at once) against optimism.reselected_resamples and the report's
    weighted metrics, one test set at a time."""
    from asym.report import optimism
    from asym.report.stats import weighted_metrics

    rng = np.random.default_rng(4)
    fold = cal.optimism_folds(rng)[1]
    part = cal.outer_folds(fold, 5, rng)
    assert all(len(set(part[fold.units == u])) == 1 for u in set(fold.units))     # whole subjects per fold
    mu = cal.mu_for_f1(cal.F1_LEVEL, fold.pi)
    probs = np.stack([cal.draw_epochs(fold, mu, 8, rng) for _ in range(12)])
    kept = rng.integers(0, 8, size=(12, 5))
    got = cal.batch_reports(fold.y, part, probs, kept, "mean4")
    one = np.ones((1, len(fold.y)))
    for d in range(12):
        opt = optimism.reselected_resamples(fold.y, cal.optimism_parts(part, probs[d]), one, "mean4")
        honest = (probs[d][kept[d][part], np.arange(len(fold.y))] >= 0.5).astype(float)
        hon = weighted_metrics(fold.y, honest, one, optimism.COMPARED)
        for k in optimism.COMPARED:
            assert got[f"{k}_kfold_select_on_test"][d] == pytest.approx(opt[k][0], abs=1e-12)
            assert got[f"{k}_kfold"][d] == pytest.approx(hon[k][0], abs=1e-12)
            assert got[f"delta_{k}"][d] == pytest.approx(opt[k][0] - hon[k][0], abs=1e-12)


def test_the_truth_holds_the_known_accuracy_and_a_positive_inflation():
    """The honest arm's epoch is chosen apart from the test vlogs: its expected accuracy is the
    population's Phi(mu). Choosing on the test vlogs among equal epochs inflates both metrics."""
    rng = np.random.default_rng(5)
    fold = cal.dvlog_fold(240, 139)
    mu = cal.mu_for_f1(cal.F1_LEVEL, fold.pi)
    truth = cal.expected_reports(fold, cal.outer_folds(fold, 5, rng), mu, OPTIMISM, 1500, rng)
    honest = truth["accuracy_kfold"]
    assert abs(honest["value"] - cal.population(mu, fold.pi)["accuracy"]) < 4 * honest["mc_se"]
    for k in ("accuracy", "f1"):
        assert truth[f"delta_{k}"]["value"] > 10 * truth[f"delta_{k}"]["mc_se"] > 0
        assert truth[f"delta_{k}"]["value"] == pytest.approx(
            truth[f"{k}_kfold_select_on_test"]["value"] - truth[f"{k}_kfold"]["value"])


def test_the_comparison_intervals():
    rng = np.random.default_rng(6)
    s = rng.normal(0.3, 0.1, 4000)
    lo, hi = cal.percentile_ci(s)
    assert cal.basic_ci(s, 0.5, 0.95) == pytest.approx((1.0 - hi, 1.0 - lo))
    assert cal.bc_ci(s, float(np.median(s)), 0.95) == pytest.approx((lo, hi), abs=2e-3)   # z0 = 0: percentile
    blo, bhi = cal.bc_ci(s, 0.25, 0.95)                      # point below most resamples: moved down
    assert blo < lo - 0.05 and bhi < hi - 0.05


def test_on_a_small_simulation_the_reports_interval_covers_and_holds_its_points():
    """The demo's LMVD pooled test set: the shifted interval holds every point and covers the true
    inflation about as often as its level says; the percentile one, centred too high, less often."""
    fold = cal.optimism_folds(np.random.default_rng(cal.SEED))[1]
    out = cal.optimism_coverage(fold, 1, {"coverage": 60, "truth": 1000}, OPTIMISM)
    assert set(out["coverage"]) == set(cal.OPTIMISM_ROWS)
    for q in cal.OPTIMISM_ROWS:
        assert out["point_outside"][q]["shifted"] == 0, q
    for k in ("accuracy", "f1"):
        cov = out["coverage"][f"delta_{k}"]
        assert cov["shifted"] >= 0.85 and cov["shifted"] > cov["percentile"], (k, cov)
    table = cal.optimism_markdown({fold.name: out}, OPTIMISM, "test")
    for label in ("ΔAcc, truth", "ΔF1 (dep.), coverage, shifted percentile (the report's)",
                  "Acc `kfold`, coverage, basic", "F1 (dep.) `kfold_select_on_test`, point outside"):
        assert label in table, label
    assert "lmvd-demo (n = 200, 98 dep." in table
