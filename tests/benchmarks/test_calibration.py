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
