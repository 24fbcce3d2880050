"""`asym robustness`: every trained run evaluated on its test fold(s) under perturbations applied at
evaluation time (no retraining), as curves of balanced accuracy, AUROC and depressed-class F1 over
each perturbation's levels, with MultiBench's robustness summaries.

What is perturbed. Each seed's model of each partition is rebuilt from its checkpoint alone, as
`asym predict` does (asym.inference.predict.load_run: its normaliser and decision threshold come
with it), and fed its partition's test fold through the training code's own batched prediction
(asym.train.feed.predict, at the checkpoint's eval_batch_size). The perturbation acts on the
features *after* the run's own normalisation (z-scored with the training fold's statistics, raw,
or each vlog z-scored on its own, as its recipe says), in the units of the training fold's frames
so normalised (`FrameStats`: their per-feature mean and std, computed from the partition's training
fold through the checkpoint's normaliser):

- `drop_<audio|visual|both>`: every frame of the modality set to its training-fold mean, i.e. zeros
  under z-scoring. It is the least informative input that stays inside the training distribution
  (the centre of every feature, no value the model never saw on a feature), and it leaves the
  vlog's frames, its lengths and the padding as they were: only what the frames say is taken away.
  `drop_both` leaves a model its lengths alone: the reference no other curve should fall below.
  What a model sees: a model of both modalities gets the mean frame in place of the dropped one;
  a model of one modality (asym-audio-only, asym-visual-only) is unchanged by dropping the other
  (its paired test then has no difference to test).
- `noise_<audio|visual>` at level σ: Gaussian noise of standard deviation σ times each feature's
  training-fold std after normalisation (so σ in z-scored units: σ = 1 is noise as large as the
  feature's own spread across training frames), drawn independently per frame and feature.
- `keep_first` at level k: only the first ceil(k T) of a vlog's T frames (at least one), both
  modalities: a vlog cut short.
- `drop_frames` at level p: round(p T) of the T frames (at most T - 1) removed at random, both
  modalities alike, the rest kept in order: the vlog is shortened (not zero-filled), so the model
  sees a shorter vlog whose neighbouring frames may lie further apart in time.

Every draw is seeded per vlog from robustness.seed, the perturbation's kind and level and the
vlog's id (`vlog_rng`), so a vlog is perturbed alike for every model, seed and partition (common
random numbers: differences between models are not noise of the draws) and whatever order the
vlogs are fed in. Labels are the run's own: each partition's probabilities at its stored decision
threshold (checkpoint meta `threshold`, the one its predictions.parquet `pred` column holds).

Metrics and tests. The estimand is the main report's (asym.report.aggregate): per seed, the metric
of its test vlogs pooled over its partitions, then the mean over seeds; its 95% CI a bias-corrected
percentile bootstrap of the test units (subjects when known, else vlogs; asym.report.stats), one set
of resamples per dataset shared by every model, seed and perturbation, so each drop from the clean
score is paired. Each perturbation level is tested against the clean score by the report's paired
permutation test of ΔF1 on the same test vlogs (the clean and perturbed labels of each unit
exchanged, asym.report.stats.swap_deltas), its p Holm-adjusted over the model's perturbations on
the dataset; the Δ of every metric has its paired bootstrap CI.

MultiBench's robustness (Liang et al., "MultiBench: Multiscale Benchmarks for Multimodal
Representation Learning", NeurIPS 2021 Datasets and Benchmarks track, arXiv:2107.07502, §3
"modality robustness"; its eval_scripts/robustness.py, github.com/pliang279/MultiBench), per model
and perturbation kind, of the metric robustness.metric along the curve f(s) over the kind's
severities s (0 = clean; a noise σ, the share removed 1 - k or p, 1 for a drop):

- relative robustness: the area under the performance–imperfection curve (trapezoid rule),
  MultiBench's `relative_robustness_helper`, with the severities scaled to [0, 1] (MultiBench's
  levels are 0, 0.1, ..., 1) so that it is the curve's mean performance; `retained` is that area
  over the clean score f(0), the share of the clean performance kept on average.
- effective robustness: the model's curve against a reference model's shifted to the model's
  own clean score, summed over the levels, sum_s [f(s) - (r(s) + f(0) - r(0))], MultiBench's
  `effective_robustness_helper` (after Taori et al., NeurIPS 2020), whose reference is late
  fusion: here robustness.reference (a late-fusion model, bilstm), NaN where it is not trained.
  Positive: the model degrades more slowly than the reference from where it starts.
MultiBench then min-max normalises both across the methods compared; we do not (a number would
depend on which other models a run trains). Both come with bootstrap CIs from the same resamples.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from asym.data.parquet import FeatureTable
from asym.errors import DataError
from asym.grid import Run
from asym.layout import ROBUSTNESS_TABLE, Layout, robustness_plot
from asym.report.stats import (
    centred_ci,
    holm,
    permutation_p,
    resample_weights,
    swap_deltas,
    swap_draws,
    weighted_metrics,
)

if TYPE_CHECKING:
    import torch

    from asym.config import Params, RobustnessConfig
    from asym.report.runs import DatasetRuns
    from asym.train.normalize import AnyNormalizer

TABLE = ROBUSTNESS_TABLE                     # reports/robustness.{md,csv,tex,html}
METRICS = ("balanced_accuracy", "auroc", "f1")
CLEAN = "clean"
DROPS = {"audio": "drop_audio", "visual": "drop_visual", "both": "drop_both"}
NOISES = {"audio": "noise_audio", "visual": "noise_visual"}
KIND_ORDER = (CLEAN, "drop_audio", "drop_visual", "drop_both", "noise_audio", "noise_visual", "keep_first",
              "drop_frames")
# A stable code per kind for the draws' seed (its position never changes with the params' order).
KIND_CODE = {k: i for i, k in enumerate(KIND_ORDER)}
LEVEL_SCALE = 10 ** 6                        # a level enters the draws' seed as an integer of millionths
AXIS = {"drop_audio": "dropped", "drop_visual": "dropped", "drop_both": "dropped",
        "noise_audio": "noise std (training-fold stds)", "noise_visual": "noise std (training-fold stds)",
        "keep_first": "share of each vlog kept, from its start", "drop_frames": "share of frames removed"}
# A clean probability further than this from the run's saved one is said (not refused): the checkpoint
# does not reproduce its own predictions.
REPRODUCE_TOL = 1e-4
STREAM_SWAPS = 1                             # the exchanges' stream of robustness.seed (the resamples': none)


# --- perturbations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Perturbation:
    kind: str
    level: float

    @property
    def severity(self) -> float:
        """Where the curve puts it: 0 when clean, growing with the damage."""
        if self.kind == CLEAN:
            return 0.0
        return 1.0 - self.level if self.kind == "keep_first" else float(self.level)


CLEAN_RUN = Perturbation(CLEAN, 0.0)


def perturbations(cfg: RobustnessConfig) -> list[Perturbation]:
    """The clean evaluation first, then every kind's levels as params.yaml's `robustness` lists them."""
    out = [CLEAN_RUN, *(Perturbation(DROPS[m], 1.0) for m in cfg.drop)]
    out += [Perturbation(NOISES[m], float(s)) for m in cfg.noise for s in cfg.noise_levels]
    out += [Perturbation("keep_first", float(k)) for k in sorted(cfg.keep_first, reverse=True)]
    out += [Perturbation("drop_frames", float(p)) for p in cfg.drop_frames]
    return out


@dataclass
class FrameStats:
    """Per-feature mean and std of a training fold's frames after the run's normalisation."""

    a_mean: np.ndarray
    a_std: np.ndarray
    v_mean: np.ndarray
    v_std: np.ndarray

    @classmethod
    def of(cls, norm: AnyNormalizer, train: FeatureTable) -> FrameStats:
        pairs = [norm(a, v) for a, v in zip(train.audio, train.visual, strict=True)]
        a = np.concatenate([p[0] for p in pairs]).astype(np.float64)
        v = np.concatenate([p[1] for p in pairs]).astype(np.float64)
        return cls(a.mean(0), a.std(0), v.mean(0), v.std(0))


def vlog_rng(seed: int, p: Perturbation, sample_id: str) -> np.random.Generator:
    """The draws of one vlog under one perturbation: the same for every model, seed and partition."""
    return np.random.default_rng([seed, KIND_CODE[p.kind], round(p.level * LEVEL_SCALE),
                                  zlib.crc32(sample_id.encode("utf-8"))])


def kept_first(n: int, k: float) -> int:
    """How many of n frames `keep_first` at level k keeps: ceil(k n), at least one."""
    return max(1, min(n, math.ceil(k * n - 1e-9)))


def removed(n: int, p: float) -> int:
    """How many of n frames `drop_frames` at level p removes: round(p n), leaving at least one."""
    return min(n - 1, int(round(p * n)))


def perturb(a: np.ndarray, v: np.ndarray, p: Perturbation, stats: FrameStats,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One vlog's normalised (T, F) audio and visual frames under `p` (new arrays, float32)."""
    a, v = np.array(a, np.float32), np.array(v, np.float32)
    if p.kind in ("drop_audio", "drop_both"):
        a[:] = stats.a_mean
    if p.kind in ("drop_visual", "drop_both"):
        v[:] = stats.v_mean
    if p.kind == "noise_audio":
        a += (rng.standard_normal(a.shape) * (p.level * stats.a_std)).astype(np.float32)
    if p.kind == "noise_visual":
        v += (rng.standard_normal(v.shape) * (p.level * stats.v_std)).astype(np.float32)
    if p.kind == "keep_first":
        n = kept_first(a.shape[0], p.level)
        a, v = a[:n], v[:n]
    if p.kind == "drop_frames":
        gone = rng.choice(a.shape[0], removed(a.shape[0], p.level), replace=False)
        keep = np.setdiff1d(np.arange(a.shape[0]), gone)
        a, v = a[keep], v[keep]
    return a, v


def perturbed_table(table: FeatureTable, norm: AnyNormalizer, stats: FrameStats, p: Perturbation,
                    seed: int) -> FeatureTable:
    """`table` normalised by the run's normaliser, then perturbed vlog by vlog: fed to the model
    through an identity normaliser, it is what the model sees."""
    audio, visual = [], []
    for sid, a, v in zip(table.sample_id, table.audio, table.visual, strict=True):
        if a.shape[0] != v.shape[0]:
            raise DataError(Path(str(table.meta.get("source", "table"))),
                            f"vlog {sid}: {a.shape[0]} audio and {v.shape[0]} visual frames")
        na, nv = norm(a, v)
        pa, pv = perturb(na, nv, p, stats, vlog_rng(seed, p, sid)) if p.kind != CLEAN else (na, nv)
        audio.append(pa)
        visual.append(pv)
    return FeatureTable(list(table.sample_id), list(table.subject_id), table.label, list(table.fold), audio, visual,
                        table.meta, table.gender)


# --- one seed --------------------------------------------------------------------------------------
@dataclass
class SeedCurves:
    """One seed's test vlogs (sorted by id, pooled over partitions) under every perturbation."""

    ids: np.ndarray
    prob: dict[Perturbation, np.ndarray]
    pred: dict[Perturbation, np.ndarray]


def seed_curves(run_dir: Path, partitions: list[dict[str, FeatureTable]], perts: list[Perturbation], seed: int,
                device: torch.device) -> SeedCurves:
    """Every perturbation of every partition's test fold through that partition's model, at its threshold."""
    from asym.inference.predict import load_run
    from asym.train.feed import predict
    from asym.train.normalize import Normalizer

    run = load_run(run_dir, device)
    if len(run.models) != len(partitions):
        raise DataError(run_dir, f"{len(run.models)} partition(s) in its checkpoint, {len(partitions)} in the split")
    batch = int(run.meta["eval_batch_size"])
    ids, prob, pred = [], {p: [] for p in perts}, {p: [] for p in perts}
    for model, norm, threshold, folds in zip(run.models, run.norms, run.thresholds, partitions, strict=True):
        test = folds["test"]
        stats = FrameStats.of(norm, folds["train"])
        identity = Normalizer.identity(test)
        ids += list(test.sample_id)
        for p in perts:
            probs = predict(model, perturbed_table(test, norm, stats, p, seed), identity, batch, device)
            prob[p].append(probs.astype(np.float64))
            pred[p].append((probs >= threshold).astype(int))
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    return SeedCurves(np.asarray(ids, dtype=str)[order], {p: np.concatenate(v)[order] for p, v in prob.items()},
                      {p: np.concatenate(v)[order] for p, v in pred.items()})


# --- one dataset -------------------------------------------------------------------------------------
@dataclass
class ModelCurves:
    """A model's (n_seeds, n) probabilities and labels per perturbation, aligned with the dataset's runs."""

    model: str
    prob: dict[Perturbation, np.ndarray]
    pred: dict[Perturbation, np.ndarray]


def model_curves(params: Params, runs: DatasetRuns, model: str, partitions: list[dict[str, FeatureTable]],
                 perts: list[Perturbation], device: torch.device) -> ModelCurves:
    layout = Layout.of(params)
    seeds = runs.seeds.get(model) or params.seeds
    per_seed = []
    for s, seed in enumerate(seeds):
        folder = layout.run(Run(runs.name, model, seed)).folder
        curves = seed_curves(folder, partitions, perts, params.robustness.seed, device)
        if list(curves.ids) != list(runs.ids):
            raise DataError(folder, f"its test vlogs differ from those of the other runs of {runs.name}")
        gap = float(np.max(np.abs(curves.prob[CLEAN_RUN] - runs.probs[model][s]), initial=0.0))
        if gap > REPRODUCE_TOL:
            print(f"asym robustness: warning: {folder}: its checkpoint's clean probabilities differ from its saved "
                  f"predictions by up to {gap:.2g}", file=sys.stderr)
        per_seed.append(curves)
    return ModelCurves(model, {p: np.stack([c.prob[p] for c in per_seed]) for p in perts},
                       {p: np.stack([c.pred[p] for c in per_seed]) for p in perts})


def seed_mean(y: np.ndarray, prob: np.ndarray, pred: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, the seed-mean on every row of weights W (the report's estimand)."""
    per_seed = [weighted_metrics(y, pr, W, METRICS, pred=pd_) for pr, pd_ in zip(prob, pred, strict=True)]
    return {k: np.mean([m[k] for m in per_seed], axis=0) for k in METRICS}


def _seed_points(y: np.ndarray, prob: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, each seed's value on the whole test set."""
    ones = np.ones((1, len(y)))
    return {k: np.array([float(weighted_metrics(y, pr, ones, METRICS, pred=pd_)[k][0])
                         for pr, pd_ in zip(prob, pred, strict=True)]) for k in METRICS}


def curve_rows(runs: DatasetRuns, curves: ModelCurves, perts: list[Perturbation], W: np.ndarray,
               S: np.ndarray) -> tuple[list[dict[str, Any]], dict[Perturbation, dict[str, np.ndarray]]]:
    """One row per perturbation: each metric's mean ± std over seeds and CI, its drop from the clean
    score with a paired CI, and the paired permutation test of ΔF1 (Holm over the model's levels)."""
    y = runs.y
    draws = {p: seed_mean(y, curves.prob[p], curves.pred[p], W) for p in perts}
    points = {p: _seed_points(y, curves.prob[p], curves.pred[p]) for p in perts}
    rows, tested, raw = [], [], []
    for p in perts:
        row: dict[str, Any] = {"dataset": runs.name, "model": curves.model, "kind": p.kind, "level": p.level,
                               "severity": p.severity, "n_seeds": len(curves.prob[p]), "n_test": len(y)}
        for k in METRICS:
            v = points[p][k]
            row[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            row[f"{k}_std"] = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else 0.0
            row[f"{k}_ci_low"], row[f"{k}_ci_high"] = centred_ci(draws[p][k], row[k])
            delta = float(np.nanmean(points[p][k] - points[CLEAN_RUN][k]))
            row[f"delta_{k}"] = delta
            row[f"delta_{k}_ci_low"], row[f"delta_{k}_ci_high"] = (
                centred_ci(draws[p][k] - draws[CLEAN_RUN][k], delta) if p != CLEAN_RUN else (0.0, 0.0))
        row["no_difference"] = bool(np.array_equal(curves.pred[p], curves.pred[CLEAN_RUN]))
        row["p_raw"] = row["p"] = float("nan")
        if p != CLEAN_RUN and not row["no_difference"]:
            observed, null = swap_deltas(y, curves.pred[CLEAN_RUN], curves.pred[p], S)
            tested.append(len(rows))
            raw.append(permutation_p(observed, null))
        rows.append(row)
    for i, p_raw, p_holm in zip(tested, raw, holm(raw), strict=True):
        rows[i].update(p_raw=p_raw, p=p_holm, holm_family_size=len(tested))
    return rows, draws


def area(severity: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Trapezoid area under values (..., levels) over severities scaled to [0, 1]: the curve's mean."""
    s = np.asarray(severity, float) / np.max(severity)
    v = np.asarray(values, float)
    return ((v[..., 1:] + v[..., :-1]) / 2 * np.diff(s)).sum(-1)


def effective(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """sum over levels of f(s) - (r(s) + f(0) - r(0)): the curve against the reference's shifted to it."""
    f, r = np.asarray(values, float), np.asarray(reference, float)
    return (f - (r + f[..., :1] - r[..., :1])).sum(-1)


def kinds_of(perts: list[Perturbation]) -> list[str]:
    return [k for k in KIND_ORDER if k != CLEAN and any(p.kind == k for p in perts)]


def curve_of(perts: list[Perturbation], kind: str) -> list[Perturbation]:
    """The clean evaluation, then the kind's levels by severity."""
    return [CLEAN_RUN, *sorted((p for p in perts if p.kind == kind), key=lambda p: p.severity)]


def summary_rows(dataset: str, model: str, perts: list[Perturbation], rows: list[dict[str, Any]],
                 draws: dict[Perturbation, dict[str, np.ndarray]],
                 ref: tuple[list[dict[str, Any]], dict[Perturbation, dict[str, np.ndarray]]] | None,
                 metric: str) -> list[dict[str, Any]]:
    """Per kind: relative robustness (its CI), retained share, effective robustness against the
    reference (its CI), all of `metric`."""
    at = {(r["kind"], r["level"]): r for r in rows}
    ref_at = {(r["kind"], r["level"]): r for r in ref[0]} if ref is not None else {}
    out = []
    for kind in kinds_of(perts):
        curve = curve_of(perts, kind)
        sev = np.array([p.severity for p in curve])
        point = np.array([at[(p.kind, p.level)][metric] for p in curve])
        boot = np.stack([draws[p][metric] for p in curve], axis=-1)
        rel = float(area(sev, point))
        row = {"dataset": dataset, "model": model, "kind": kind, "metric": metric, "n_levels": len(curve) - 1,
               "clean": float(point[0]), "worst": float(np.min(point)), "relative_robustness": rel,
               "retained": rel / point[0] if point[0] else float("nan")}
        row["relative_robustness_ci_low"], row["relative_robustness_ci_high"] = centred_ci(area(sev, boot), rel)
        row["effective_robustness"] = row["effective_robustness_ci_low"] = row["effective_robustness_ci_high"] = np.nan
        if ref is not None:
            ref_point = np.array([ref_at[(p.kind, p.level)][metric] for p in curve])
            ref_boot = np.stack([ref[1][p][metric] for p in curve], axis=-1)
            eff = float(effective(point, ref_point))
            row["effective_robustness"] = eff
            row["effective_robustness_ci_low"], row["effective_robustness_ci_high"] = centred_ci(
                effective(boot, ref_boot), eff)
        out.append(row)
    return out


def dataset_tables(params: Params, d_index: int, dataset: str, device: torch.device,
                   curves_of: Callable[..., ModelCurves] = model_curves) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The curve rows and the summary rows of the models of robustness.models on `dataset`."""
    from asym.data import protocols
    from asym.data.splits import load_partitions
    from asym.report.runs import load_dataset_runs

    cfg = params.robustness
    layout = Layout.of(params)
    models = params.robustness_models
    runs = load_dataset_runs(params, dataset, per_run=False, models=models)
    _, partitions = load_partitions(Path(layout.parquet(dataset)), Path(layout.split_csv(dataset)),
                                    subjects_disjoint=protocols.get(params.protocol(dataset)).subject_disjoint)
    perts = perturbations(cfg)
    W = resample_weights(runs.units, cfg.bootstrap, np.random.default_rng([cfg.seed, d_index]))
    S = swap_draws(runs.units, cfg.bootstrap, np.random.default_rng([cfg.seed, d_index, STREAM_SWAPS]))
    results = {m: curve_rows(runs, curves_of(params, runs, m, partitions, perts, device), perts, W, S)
               for m in models}
    ref = results.get(cfg.reference) if cfg.reference else None
    curves = [r for rows, _ in results.values() for r in rows]
    summary = [r for m, (rows, draws) in results.items()
               for r in summary_rows(dataset, m, perts, rows, draws, ref, cfg.metric)]
    return pd.DataFrame(curves), pd.DataFrame(summary)


# --- the step ---------------------------------------------------------------------------------------
def outputs(params: Params) -> dict[str, Path]:
    """Every file the step writes (asym.layout): the table in each format, and one figure per dataset."""
    return {k: Path(f) for k, f in Layout.of(params).robustness_outputs(params.datasets).items()}


def run_robustness(params: Params, device: torch.device | str = "cpu") -> dict[str, Path]:
    """The `robustness` step: every model of the run on every dataset, written to the reports folder."""
    import torch

    device = torch.device(device)
    curves, summary = [], []
    for d_index, ds in enumerate(params.datasets):
        c, s = dataset_tables(params, d_index, ds, device)
        curves.append(c)
        summary.append(s)
    curves_df, summary_df = pd.concat(curves, ignore_index=True), pd.concat(summary, ignore_index=True)
    files = outputs(params)
    write_tables(params, curves_df, summary_df, files)
    for ds in params.datasets:
        plot_curves(curves_df[curves_df["dataset"] == ds], params.robustness.metric, ds,
                    files[f"{TABLE}_{ds}_png"])
    return files


# --- the report's files -------------------------------------------------------------------------------
CAPTION = ("Robustness: every trained run evaluated on its test fold(s) under perturbations applied at evaluation "
           "time, never retrained (asym/robustness.py says how each is drawn). Metrics in %: mean ± std over seeds of "
           "each seed's metric, its test vlogs pooled over its partitions, with a 95% CI (bias-corrected percentile "
           "bootstrap of the test units, test sampling only). Δ: the drop from the same model's clean score on the "
           "same vlogs, with a paired CI. p: the paired permutation test of ΔF1 against the clean labels, "
           "Holm-adjusted over the model's perturbations on the dataset.")
KIND_TEXT = {
    "drop_audio": "the audio replaced by its training-fold mean after normalisation (zeros under z-scoring), "
                  "lengths and padding unchanged",
    "drop_visual": "the visual features so replaced",
    "drop_both": "both so replaced: the model keeps the lengths alone (the reference)",
    "noise_audio": "Gaussian noise on the audio, its std the level times each feature's training-fold std after "
                   "normalisation",
    "noise_visual": "the same on the visual features",
    "keep_first": "only the first share (the level) of each vlog's frames kept",
    "drop_frames": "that share of each vlog's frames removed at random, the vlog shortened (not zero-filled)",
}
SUMMARY_CAPTION = ("MultiBench's robustness (Liang et al., NeurIPS 2021 Datasets and Benchmarks), of {metric}: "
                   "relative robustness = the area under the curve of the metric over the kind's severities scaled "
                   "to [0, 1] (clean at 0), i.e. its mean along the curve; retained = that area over the clean score; "
                   "effective robustness = the sum over levels of the curve minus the reference model's ({reference}) "
                   "shifted to the model's clean score (positive: it degrades more slowly than the reference). "
                   "95% CIs from the same resamples; no min-max normalisation across models.")


def _pct(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _interval(lo: float, hi: float) -> str:
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{_pct(lo)}, {_pct(hi)}]"


def _level(row: pd.Series) -> str:
    if row["kind"] == CLEAN:
        return "–"
    if row["kind"].startswith("drop_") and row["kind"] != "drop_frames":
        return "dropped"
    return f"{row['level']:g}"


def curves_view(part: pd.DataFrame, headline: str) -> pd.DataFrame:
    """The curve rows as the Markdown and LaTeX tables show them."""
    from asym.report.tables import LABELS, p_value

    view = pd.DataFrame({"model": part["model"], "perturbation": part["kind"], "level": part.apply(_level, axis=1)})
    for k in METRICS:
        view[LABELS[k]] = [f"{_pct(r[k])} ± {_pct(r[f'{k}_std'])} {_interval(r[f'{k}_ci_low'], r[f'{k}_ci_high'])}"
                           for _, r in part.iterrows()]
    view[f"Δ {LABELS[headline]}"] = ["–" if r["kind"] == CLEAN else
                                     f"{_pct(r[f'delta_{headline}'])} "
                                     f"{_interval(r[f'delta_{headline}_ci_low'], r[f'delta_{headline}_ci_high'])}"
                                     for _, r in part.iterrows()]
    view["Δ F1 (dep.)"] = ["–" if r["kind"] == CLEAN else _pct(r["delta_f1"]) for _, r in part.iterrows()]
    view["p (ΔF1, Holm)"] = ["–" if r["kind"] == CLEAN else ("no difference" if r["no_difference"] else p_value(r["p"]))
                             for _, r in part.iterrows()]
    return view.reset_index(drop=True)


def summary_view(part: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": part["model"], "perturbation": part["kind"], "clean": part["clean"].map(_pct),
        "worst": part["worst"].map(_pct),
        "relative robustness": [f"{_pct(r.relative_robustness)} "
                                f"{_interval(r.relative_robustness_ci_low, r.relative_robustness_ci_high)}"
                                for r in part.itertuples()],
        "retained": part["retained"].map(_pct),
        "effective robustness": [f"{_pct(r.effective_robustness)} "
                                 f"{_interval(r.effective_robustness_ci_low, r.effective_robustness_ci_high)}"
                                 for r in part.itertuples()],
    }).reset_index(drop=True)


def write_tables(params: Params, curves: pd.DataFrame, summary: pd.DataFrame, files: dict[str, Path]) -> None:
    """reports/robustness.md (and its HTML page), .tex and .csv (the curve rows, then the summary rows,
    told apart by `table`)."""
    from asym.io import atomic_path, write_text
    from asym.report.html import write_page
    from asym.report.latex import to_latex
    from asym.report.tables import LABELS

    cfg = params.robustness
    summary_caption = SUMMARY_CAPTION.format(metric=LABELS[cfg.metric], reference=cfg.reference or "none")
    kinds = kinds_of(perturbations(cfg))
    md = ["# Robustness to missing modalities, noise and shortened vlogs", "", CAPTION, "",
          f"Scale `{params.scale}`; models {', '.join(params.robustness_models)} (`robustness.models`); seeds "
          f"{params.seeds}; perturbations drawn from seed {cfg.seed}; "
          f"{cfg.bootstrap} resamples and exchanges.", "",
          *(f"- `{k}`: {KIND_TEXT[k]}." for k in kinds), ""]
    tex = []
    for ds in params.datasets:
        part = curves[curves["dataset"] == ds]
        view = curves_view(part, cfg.metric)
        sview = summary_view(summary[summary["dataset"] == ds])
        md += [f"## {ds}", "", view.to_markdown(index=False, disable_numparse=True), "",
               f"### {ds}: robustness summary", "", summary_caption, "",
               sview.to_markdown(index=False, disable_numparse=True), "",
               f"![robustness curves, {ds}]({robustness_plot(ds)})", ""]
        tex.append(to_latex(view, f"Robustness ({ds}). {CAPTION}"))
        tex.append(to_latex(sview, f"Robustness summary ({ds}). {summary_caption}"))
    write_text(files[f"{TABLE}_md"], "\n".join(md))
    write_text(files[f"{TABLE}_tex"], "\n".join(tex))
    with atomic_path(files[f"{TABLE}_csv"]) as tmp:
        pd.concat([curves.assign(table="curve"), summary.assign(table="summary")], ignore_index=True).to_csv(
            tmp, index=False)
    write_page(files[f"{TABLE}_md"], files[f"{TABLE}_html"])


def draw_curves(part: pd.DataFrame, metric: str, dataset: str) -> Any:
    """One panel per perturbation kind: the metric (%) over the kind's levels, a line per model with its
    95% CI as a band; the clean score is each curve's first point."""
    from asym.report import plots
    from asym.report.tables import LABELS

    plt = plots._plt()
    kinds = [k for k in KIND_ORDER if k != CLEAN and k in set(part["kind"])]
    models = list(dict.fromkeys(part["model"]))
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    columns = min(len(kinds), 4)
    rows = math.ceil(len(kinds) / columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, sharey=True, layout="constrained",
                             figsize=(plots.PANEL_WIDTH_IN * columns, 2.4 * rows + 0.8))
    clean = part[part["kind"] == CLEAN].set_index("model")
    for ax, kind in zip(axes.ravel(), kinds, strict=False):
        for i, model in enumerate(models):
            own = part[(part["model"] == model) & (part["kind"] == kind)]
            curve = pd.concat([clean.loc[[model]].reset_index(), own]).sort_values("severity", kind="stable")
            x = np.where(curve["kind"].to_numpy() == CLEAN, 1.0 if kind == "keep_first" else 0.0,
                         curve["level"].to_numpy(float))
            y = plots.PERCENT * curve[metric].to_numpy(float)
            colour = colours(i % colours.N)
            ax.plot(x, y, marker="o", markersize=plots.MARKER_SIZE - 2, linewidth=plots.LINE_WIDTH, color=colour,
                    label=model)
            ax.fill_between(x, plots.PERCENT * curve[f"{metric}_ci_low"].to_numpy(float),
                            plots.PERCENT * curve[f"{metric}_ci_high"].to_numpy(float), color=colour, alpha=0.15,
                            linewidth=0)
        if kind == "keep_first":
            ax.invert_xaxis()
        if AXIS[kind] == "dropped":
            ax.set_xticks([0.0, 1.0], ["clean", "dropped"])
        ax.set_title(kind, fontsize=plots.TITLE_FONT)
        ax.set_xlabel("" if AXIS[kind] == "dropped" else AXIS[kind], fontsize=plots.FONT)
        ax.grid(alpha=plots.GRID_ALPHA)
        ax.tick_params(labelsize=plots.FONT)
    for ax in axes.ravel()[len(kinds):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{LABELS[metric]} (%)", fontsize=plots.FONT)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=plots.LEGEND_COLUMNS, fontsize=plots.FONT)
    fig.suptitle(f"{dataset}: {LABELS[metric]} under each perturbation (mean over seeds; band: 95% bootstrap CI "
                 "over test vlogs)", fontsize=plots.SUPTITLE_FONT)
    return fig


def plot_curves(part: pd.DataFrame, metric: str, dataset: str, path: Path) -> None:
    from asym.report.plots import save_figure

    save_figure(draw_curves(part, metric, dataset), path)
