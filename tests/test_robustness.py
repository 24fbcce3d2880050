"""Robustness curves (asym.robustness): each perturbation on a tiny table, the MultiBench summaries on
known curves, the settings block, the step on a small trained project, and two known answers on the
demos' datasets trained through the real steps (tests/test_known_answers.py's projects)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from asym.config import load_params
from asym.data.parquet import FeatureTable
from asym.errors import ConfigError
from asym.robustness import (
    CLEAN_RUN,
    FrameStats,
    Perturbation,
    area,
    effective,
    kept_first,
    perturb,
    perturbations,
    perturbed_table,
    removed,
    vlog_rng,
)
from asym.train.normalize import Normalizer
from tests.conftest import ROOT, params_beside
from tests.test_known_answers import ENV, demo_project, holds_half, run_steps


def tiny_table(n: int = 4, frames: int = 20, fa: int = 3, fv: int = 5, seed: int = 0) -> FeatureTable:
    rng = np.random.default_rng(seed)
    audio = [(rng.normal(2.0, 3.0, (frames + i, fa))).astype(np.float32) for i in range(n)]
    visual = [(rng.normal(-1.0, 0.5, (frames + i, fv))).astype(np.float32) for i in range(n)]
    return FeatureTable([f"v{i}" for i in range(n)], [f"s{i}" for i in range(n)], np.arange(n) % 2,
                        ["test"] * n, audio, visual, {})


@pytest.fixture
def fitted():
    train = tiny_table(6, 30, seed=1)
    norm = Normalizer.fit(train)
    return norm, FrameStats.of(norm, train)


# --- each perturbation ------------------------------------------------------------------------------------
def test_a_dropped_modality_is_its_training_mean_after_normalisation_and_keeps_its_frames(fitted):
    norm, stats = fitted
    np.testing.assert_allclose(stats.a_mean, 0, atol=1e-6)        # z-scored: the training mean is 0
    np.testing.assert_allclose(stats.a_std, 1, atol=1e-5)
    t = tiny_table()
    a, v = norm(t.audio[0], t.visual[0])
    for kind, audio_gone, visual_gone in (("drop_audio", True, False), ("drop_visual", False, True),
                                          ("drop_both", True, True)):
        pa, pv = perturb(a, v, Perturbation(kind, 1.0), stats, np.random.default_rng(0))
        assert pa.shape == a.shape and pv.shape == v.shape        # lengths and padding as they were
        np.testing.assert_array_equal(pa, np.broadcast_to(stats.a_mean, a.shape).astype(np.float32) if audio_gone else a)
        np.testing.assert_array_equal(pv, np.broadcast_to(stats.v_mean, v.shape).astype(np.float32) if visual_gone else v)
    # a raw (normalize: none) run: the dropped modality is the raw training mean, not zeros
    train = tiny_table(6, 30, seed=1)
    raw = FrameStats.of(Normalizer.identity(train), train)
    pa, _ = perturb(train.audio[0], train.visual[0], Perturbation("drop_audio", 1.0), raw, np.random.default_rng(0))
    np.testing.assert_allclose(pa[0], np.concatenate(train.audio).mean(0), rtol=1e-5)
    assert abs(pa[0]).max() > 0.5


def test_noise_is_seeded_per_vlog_and_scaled_by_the_training_std(fitted):
    _, stats = fitted
    stats = FrameStats(stats.a_mean, np.array([1.0, 2.0, 0.5]), stats.v_mean, stats.v_std)
    a, v = np.zeros((4000, 3), np.float32), np.zeros((4000, 5), np.float32)
    p = Perturbation("noise_audio", 0.5)
    first = perturb(a, v, p, stats, vlog_rng(11, p, "v0"))
    again = perturb(a, v, p, stats, vlog_rng(11, p, "v0"))
    other = perturb(a, v, p, stats, vlog_rng(11, p, "v1"))
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    np.testing.assert_array_equal(first[1], v)                      # the other modality untouched
    np.testing.assert_allclose(first[0].std(0), 0.5 * stats.a_std, rtol=0.05)
    other_level = perturb(a, v, Perturbation("noise_audio", 1.0), stats, vlog_rng(11, Perturbation("noise_audio", 1.0), "v0"))
    assert not np.allclose(other_level[0], 2 * first[0])             # each level its own draws


def test_keep_first_keeps_the_first_share_of_frames_of_both_modalities(fitted):
    _, stats = fitted
    a, v = np.arange(30, dtype=np.float32).reshape(10, 3), np.arange(50, dtype=np.float32).reshape(10, 5)
    for k, n in ((0.75, 8), (0.5, 5), (0.25, 3), (0.01, 1)):
        assert kept_first(10, k) == n
        pa, pv = perturb(a, v, Perturbation("keep_first", k), stats, np.random.default_rng(0))
        np.testing.assert_array_equal(pa, a[:n])
        np.testing.assert_array_equal(pv, v[:n])


def test_drop_frames_removes_that_many_frames_alike_in_both_modalities_and_shortens_the_vlog(fitted):
    _, stats = fitted
    a = np.repeat(np.arange(40, dtype=np.float32)[:, None], 3, 1)
    v = np.repeat(np.arange(40, dtype=np.float32)[:, None], 5, 1)
    p = Perturbation("drop_frames", 0.25)
    pa, pv = perturb(a, v, p, stats, vlog_rng(3, p, "v0"))
    assert removed(40, 0.25) == 10 and pa.shape == (30, 3) and pv.shape == (30, 5)
    np.testing.assert_array_equal(pa[:, 0], pv[:, 0])               # the same frames gone from both
    assert np.all(np.diff(pa[:, 0]) > 0)                            # the rest in order
    again = perturb(a, v, p, stats, vlog_rng(3, p, "v0"))[0]
    np.testing.assert_array_equal(pa, again)
    assert removed(2, 0.75) == 1 and removed(1, 0.75) == 0          # never an empty vlog


def test_the_clean_table_is_what_the_training_code_feeds(fitted):
    from asym.train.feed import collate

    norm, stats = fitted
    table = tiny_table()
    clean = perturbed_table(table, norm, stats, CLEAN_RUN, 11)
    identity = Normalizer.identity(table)
    for i in range(len(table)):
        ours = collate([(*identity(clean.audio[i], clean.visual[i]), 0)], torch.device("cpu"))
        theirs = collate([(*norm(table.audio[i], table.visual[i]), 0)], torch.device("cpu"))
        for x, y in zip(ours, theirs, strict=True):
            assert bool((x == y).all())


# --- MultiBench's summaries -------------------------------------------------------------------------------
def test_relative_and_effective_robustness_on_known_curves():
    sev = np.array([0.0, 0.5, 1.0, 2.0])
    flat = np.full(4, 0.8)
    assert area(sev, flat) == pytest.approx(0.8)                    # a flat curve: its own value
    line = np.array([1.0, 0.875, 0.75, 0.5])                        # 1 - s / 4: mean over [0, 1] of s/2 scaled
    assert area(sev, line) == pytest.approx(0.75)
    assert effective(line, line) == pytest.approx(0.0)             # against itself
    assert effective(line + 0.1, line) == pytest.approx(0.0)       # shifted to its own clean score
    assert effective(flat, line) == pytest.approx(0.125 + 0.25 + 0.5)
    boots = np.stack([flat, line])                                  # resamples along the first axis
    np.testing.assert_allclose(area(sev, boots), [0.8, 0.75])


# --- the settings -----------------------------------------------------------------------------------------
def test_the_robustness_block_lists_clean_first_and_refuses_a_typo(tmp_path):
    p = load_params(ROOT / "params.yaml")
    perts = perturbations(p.robustness)
    assert perts[0] == CLEAN_RUN and len(set(perts)) == len(perts)
    assert {q.kind for q in perts} == {"clean", "drop_audio", "drop_visual", "drop_both", "noise_audio",
                                       "noise_visual", "keep_first", "drop_frames"}
    for block, message in (({"noize": ["audio"]}, r"robustness\.noize: unknown key"),
                           ({"keep_first": [1.5]}, r"robustness\.keep_first\.0"),
                           ({"reference": "no-such-model"}, r"robustness\.reference names unknown models")):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"extends": str(ROOT / "params.yaml"), "robustness": block}))
        with pytest.raises(ConfigError, match=message):
            load_params(tmp_path / "p.yaml")


# --- the step ---------------------------------------------------------------------------------------------
def test_the_step_reproduces_the_runs_own_predictions_and_writes_every_file(tmp_path):
    """Clean rows are the main report's estimand from predictions.parquet; a model of the audio alone
    has nothing to lose when the visual features are dropped."""
    from asym.cli import main
    from asym.report.stats import weighted_metrics
    from asym.robustness import run_robustness
    from asym.train.job import train_job
    from tests.project import prepared

    models = ["mean-mlp", "asym-audio-only"]
    p = prepared(tmp_path, models, epochs=2, n_samples=60)
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["robustness"].update(bootstrap=100, noise_levels=[1.0], keep_first=[0.5], drop_frames=[0.5])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(tmp_path / "params.yaml")
    assert main(["--params", str(tmp_path / "params.yaml"), "split", "--dataset", "dvlog"]) == 0
    for m in models:
        train_job(p, "dvlog", m, [0])
    files = run_robustness(p)
    assert all(f.is_file() and f.stat().st_size > 0 for f in files.values())
    table = pd.read_csv(files["robustness_csv"])
    curves = table[table["table"] == "curve"]
    for m in models:
        test = pd.read_parquet(tmp_path / "runs" / "dvlog" / m / "seed0" / "predictions.parquet").query("fold == 'test'")
        ones = np.ones((1, len(test)))
        saved = weighted_metrics(test["label"].to_numpy(), test["prob"].to_numpy(), ones,
                                 ("balanced_accuracy", "auroc", "f1"), pred=test["pred"].to_numpy())
        clean = curves[(curves["model"] == m) & (curves["kind"] == "clean")].iloc[0]
        for k, v in saved.items():
            assert clean[k] == pytest.approx(float(v[0]), abs=1e-9), (m, k)
    audio_only = curves[(curves["model"] == "asym-audio-only") & (curves["kind"] == "drop_visual")].iloc[0]
    assert bool(audio_only["no_difference"]) and audio_only["delta_balanced_accuracy"] == 0
    summary = table[table["table"] == "summary"]
    assert set(summary["kind"]) == set(curves["kind"]) - {"clean"}
    md = files["robustness_md"].read_text()
    assert "## dvlog" in md and "robustness summary" in md


# --- known answers ----------------------------------------------------------------------------------------
def robustness_curves(params_file: Path) -> pd.DataFrame:
    proc = subprocess.run([sys.executable, "-m", "asym", "--params", str(params_file), "robustness"],
                          cwd=params_file.parent, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(params_file.parent / "reports" / "robustness.csv")
    return table[(table["table"] == "curve") & (table["dataset"] == "dvlog")].set_index(["model", "kind"])


def check_synchrony(curves: pd.DataFrame) -> None:
    """ASYM finds the coupling when clean; with either modality dropped its balanced accuracy's CI holds 0.5."""
    assert curves.loc[("asym", "clean"), "balanced_accuracy_ci_low"] > 0.6, curves.loc[("asym", "clean")]
    for kind in ("drop_audio", "drop_visual"):
        row = curves.loc[("asym", kind)]
        assert holds_half(row), (kind, row[["balanced_accuracy_ci_low", "balanced_accuracy_ci_high"]])


def check_marginal(curves: pd.DataFrame) -> None:
    """One modality left is better than none: the better single drop lies above the whole CI of dropping
    both, and so does the mean of the two (which modality is lost being a coin flip). Not each: a model
    may lean on one modality's cue (the demo's ASYM leans on the audio's, and falls to chance without it)."""
    both = curves.loc[("asym", "drop_both")]
    one = [curves.loc[("asym", k), "balanced_accuracy"] for k in ("drop_audio", "drop_visual")]
    assert max(one) > both["balanced_accuracy_ci_high"], (one, both["balanced_accuracy_ci_high"])
    assert np.mean(one) > both["balanced_accuracy"] + 0.05, (one, both["balanced_accuracy"])


@pytest.mark.slow
@pytest.mark.xdist_group("synchrony")
def test_synchrony_dropping_either_modality_brings_asym_to_chance(synchrony_demo):
    """The label lives only in the coupling of the modalities: without either, nothing is left."""
    raw = yaml.safe_load(synchrony_demo.read_text())
    check_synchrony(robustness_curves(params_beside(synchrony_demo, "robustness",
                                                    robustness={**raw["robustness"], "models": {**raw["robustness"]["models"], "demo": ["asym"]}})))


@pytest.mark.slow
def test_marginal_dropping_one_modality_hurts_less_than_dropping_both(tmp_path):
    """Each modality carries the cue on its own: one left is better than none."""
    run_steps(demo_project(tmp_path, "marginal", ["asym"]), ["asym"])
    check_marginal(robustness_curves(tmp_path / "params.yaml"))
