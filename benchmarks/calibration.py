"""Size, power and coverage of the report's statistics, by simulation (no training).

    python benchmarks/calibration.py [--quick] [--part all|tests|optimism] [--json FILE] [--md FILE]

Two classifiers' predictions are drawn on test folds of the real sizes, with a known true
difference in depressed-class F1, and judged by asym.report.stats' own functions, those the report
calls: the paired permutation test of ΔF1 (`swap_draws`, `swap_deltas`, `permutation_p`), the
percentile-bootstrap test it replaced (`resample_weights`, `weighted_metrics`, `bootstrap_p`),
the bootstrap CIs (`centred_ci`, bias-corrected), Holm's adjustment (`holm`) and the normal-approximation
minimum detectable effect (`minimum_detectable_effect`). Resample counts, alpha and the power of
the MDE are the report's, read from params.yaml.

The test folds:
- D-Vlog's official one: 212 vlogs, 123 depressed, no subject ids (the unit is the vlog);
- LMVD at DepMamba's test-fold size: 183 vlogs, 91 depressed, in subject clusters drawn as
  1 + Poisson(1823 / 1475 - 1) vlogs per participant (LMVD's 1823 vlogs of 1475 participants;
  the release has no ids, so the sizes are an assumption), each subject with one label.

The classifiers: classifier k scores vlog i as mu_k (2 y_i - 1) + noise, predicts depressed when
the score is positive, and gives a probability increasing in it (1/2 at 0). The noise has unit variance: a
part shared by the two classifiers (PAIR_CORRELATION: they err on the same hard vlogs) of which,
on LMVD, SUBJECT_SHARE is shared by a subject's vlogs, and a part of each classifier's own. So
each population metric is known in closed form: recall Phi(mu), false-positive rate Phi(-mu),
accuracy Phi(mu), AUROC Phi(sqrt(2) mu), F1 = 2 pi Phi(mu) / (pi + pi Phi(mu) + (1 - pi) Phi(-mu))
at the fold's depressed share pi. Classifier A is set to F1 = F1_LEVEL (ASYM's published level);
classifier B to F1_LEVEL - ΔF1 by solving for its mu. At ΔF1 = 0 the two are exchangeable.

The optimism study's intervals (`protocol_optimism`, asym.report.optimism): one training run's
epochs are drawn the same way, every epoch of the same true accuracy (F1_LEVEL) and their scores
correlated by EPOCH_CORRELATION, on the study's pooled test sets (every vlog tested once over the
k outer folds of params.yaml's split.kfold, whole subjects per fold). In each outer fold the
optimistic arm keeps the epoch best on that fold's test vlogs by the recipe's selection metric;
the honest arm one chosen apart from them (on validation: here at random, the epochs being
alike). The truth, what each protocol reports on average and the average Δ, comes from a large
Monte Carlo of fresh test sets; each replicate then runs the report's own code
(`optimism.reselected_resamples`, the selection made again in each of the report's resamples) and
asks how often each interval holds the truth: the plain percentile interval, the shifted
percentile interval the table prints (`stats.shifted_percentile_ci`), and for comparison the
bias-corrected percentile (BC) and basic ones. One seed per replicate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

# One BLAS thread per process: the work is many small products, and the processes are the parallelism.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asym.config import DEFAULT_THRESHOLD, OPTIMISM_PROTOCOLS, load_params  # noqa: E402
from asym.io import write_json, write_text  # noqa: E402
from asym.models import registry  # noqa: E402
from asym.report import optimism  # noqa: E402
from asym.report.stats import (  # noqa: E402
    CI_LEVEL,
    bootstrap_p,
    centred_ci,
    holm,
    minimum_detectable_effect,
    percentile_ci,
    permutation_p,
    resample_weights,
    shifted_percentile_ci,
    swap_deltas,
    swap_draws,
    weighted_metrics,
)

F1_LEVEL = 0.75                  # classifier A's population F1: ASYM's published 77.13 / 74.90 rounded down
PAIR_CORRELATION = 0.6           # correlation of the two classifiers' scores on one vlog, given its label
SUBJECT_SHARE = 0.3              # LMVD: part of the score variance shared by one subject's vlogs
DELTAS = (1.0, 2.0, 5.0, 10.0)   # ΔF1 in points whose power is reported
MDE_GRID = (8.0, 9.0, 11.0, 12.0, 13.5, 15.0)   # further points around the 80% crossing
FAMILY = 20                      # null comparisons in the family-wise error check
COVERED = ("f1", "accuracy", "auroc")
REPLICATES = {"full": {"size": 6000, "power": 1000, "coverage": 1000, "fwer": 1000},
              "quick": {"size": 600, "power": 100, "coverage": 100, "fwer": 100}}
SEED = 2026
Z = NormalDist()

EPOCH_CORRELATION = 0.8          # two epochs of one run: correlation of their scores on one vlog, given its label
OPTIMISM_REPLICATES = {"full": {"coverage": 1000, "truth": 20000}, "quick": {"coverage": 100, "truth": 2000}}
OPTIMISM_STREAM = 1                 # the optimism simulation's random streams, apart from the tests'
TRUTH_CHUNK = 250                # simulated test sets scored at once for the truth
HONEST, OPTIMISTIC = OPTIMISM_PROTOCOLS


@dataclass(frozen=True)
class Fold:
    """One test fold's labels, bootstrap units and noise structure."""

    name: str
    y: np.ndarray
    units: np.ndarray
    subject_share: float

    @property
    def pi(self) -> float:
        return float(self.y.mean())

    @property
    def n_units(self) -> int:
        return len(set(self.units))


def dvlog_fold(n: int = 212, n_pos: int = 123, name: str = "dvlog") -> Fold:
    y = np.r_[np.ones(n_pos, int), np.zeros(n - n_pos, int)]
    return Fold(name, y, np.array([f"v{i}" for i in range(len(y))]), 0.0)


def demo_folds() -> list[Fold]:
    """The test folds of the embedded demo (`make run`): D-Vlog's 53 vlogs (31 depressed) and
    LMVD's 20 (10 depressed, 20 subjects), where only the size is measured."""
    return [dvlog_fold(53, 31, "dvlog-demo"), Fold("lmvd-demo", np.r_[np.ones(10, int), np.zeros(10, int)],
                                                    np.array([f"s{i}" for i in range(20)]), SUBJECT_SHARE)]


def lmvd_fold(rng: np.random.Generator, n: int = 183, n_pos: int = 91) -> Fold:
    """183 vlogs of about 148 participants, 91 of them depressed, labels constant per subject."""
    extra = 1823 / 1475 - 1
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(1 + int(rng.poisson(extra)), n - sum(sizes)))
    order = rng.permutation(len(sizes))
    depressed, total = set(), 0
    for s in order:                                  # whole subjects until exactly n_pos vlogs
        if total + sizes[s] <= n_pos:
            depressed.add(int(s))
            total += sizes[s]
    if total != n_pos:
        raise RuntimeError("could not place the depressed vlogs in whole subjects")
    subject = np.repeat(np.arange(len(sizes)), sizes)
    y = np.array([1 if s in depressed else 0 for s in subject])
    return Fold("lmvd", y, np.array([f"s{s}" for s in subject]), SUBJECT_SHARE)


# --- the population ---------------------------------------------------------------------------------
def population(mu: float, pi: float) -> dict[str, float]:
    tpr, fpr = Z.cdf(mu), Z.cdf(-mu)
    return {"f1": 2 * pi * tpr / (pi + pi * tpr + (1 - pi) * fpr), "accuracy": tpr, "auroc": Z.cdf(np.sqrt(2) * mu)}


def mu_for_f1(f1: float, pi: float, lo: float = -6.0, hi: float = 6.0) -> float:
    """The separation mu whose population F1 is `f1` (F1 grows with mu): bisection."""
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if population(mid, pi)["f1"] < f1 else (lo, mid)
    return (lo + hi) / 2


def draw_scores(fold: Fold, mus: list[float], rng: np.random.Generator,
                correlation: float = PAIR_CORRELATION) -> np.ndarray:
    """(len(mus), n) scores: signal, the subject's and the vlog's shared noise, each one's own;
    two rows' scores of one vlog correlate by `correlation` given its label."""
    n = len(fold.y)
    codes = np.unique(fold.units, return_inverse=True)[1]
    subject = rng.normal(size=codes.max() + 1)[codes]
    vlog = rng.normal(size=n)
    own = rng.normal(size=(len(mus), n))
    shared = np.sqrt(fold.subject_share) * subject + np.sqrt(correlation - fold.subject_share) * vlog
    signal = np.asarray(mus)[:, None] * (2 * fold.y - 1)[None, :]
    return signal + shared[None, :] + np.sqrt(1 - correlation) * own


def prob(scores: np.ndarray) -> np.ndarray:
    """A probability increasing in the score, 1/2 at 0: every metric simulated here depends on the
    scores only through their ranks and their side of 0."""
    return 1 / (1 + np.exp(-scores))


# --- one replicate ---------------------------------------------------------------------------------
def compare(fold: Fold, probs: np.ndarray, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Classifier 0 against each of the others, as the report compares ASYM with each model: one
    bootstrap resample and one set of exchanges shared by every comparison."""
    W = resample_weights(fold.units, n_draws, rng)
    S = swap_draws(fold.units, n_draws, rng)
    f1 = [weighted_metrics(fold.y, p, W, ("f1",))["f1"] for p in probs]
    labels = (probs >= 0.5).astype(int)
    old, new, mde = [], [], []
    for k in range(1, len(probs)):
        old.append(bootstrap_p(f1[k] - f1[0]))
        observed, null = swap_deltas(fold.y, labels[:1], labels[k:k + 1], S)
        new.append(permutation_p(observed, null))
        mde.append(null)
    return {"old": np.array(old), "new": np.array(new), "null": np.array(mde)}


def rejection(fold: Fold, delta: float, reps: int, settings: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Rejection rates of both tests at a true ΔF1 of `delta` points, and the normal
    approximation's MDE averaged over the replicates."""
    mu_a = mu_for_f1(F1_LEVEL, fold.pi)
    mu_b = mu_for_f1(F1_LEVEL - delta / 100, fold.pi)
    alpha, power = settings["alpha"], settings["power"]
    hits = {"old": 0, "new": 0}
    mdes = []
    for _ in range(reps):
        out = compare(fold, prob(draw_scores(fold, [mu_a, mu_b], rng)), settings["n_draws"], rng)
        hits["old"] += int(out["old"][0] < alpha)
        hits["new"] += int(out["new"][0] < alpha)
        mdes.append(minimum_detectable_effect(out["null"][0], alpha, power))
    rates = {k: v / reps for k, v in hits.items()}
    return {"delta": delta, "replicates": reps, **rates,
            "mc_se": {k: float(np.sqrt(max(r, 1 / reps) * (1 - r) / reps)) for k, r in rates.items()},
            "mde_normal_approx": float(100 * np.mean(mdes))}


def coverage(fold: Fold, reps: int, settings: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """How often the report's bootstrap 95% CI of each metric (bias-corrected, `centred_ci`) holds
    classifier A's population value."""
    mu = mu_for_f1(F1_LEVEL, fold.pi)
    truth = population(mu, fold.pi)
    held = dict.fromkeys(COVERED, 0)
    for _ in range(reps):
        p = prob(draw_scores(fold, [mu], rng))[0]
        res = weighted_metrics(fold.y, p, resample_weights(fold.units, settings["n_draws"], rng), COVERED)
        point = weighted_metrics(fold.y, p, np.ones((1, len(fold.y))), COVERED)
        for k in COVERED:
            lo, hi = centred_ci(res[k], float(point[k][0]))
            held[k] += int(lo <= truth[k] <= hi)
    return {k: {"rate": held[k] / reps, "truth": truth[k],
                "mc_se": float(np.sqrt(0.95 * 0.05 / reps))} for k in COVERED} | {"replicates": reps}


def family_error(fold: Fold, reps: int, settings: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A family of FAMILY null comparisons against one classifier: how often Holm's adjustment
    lets at least one through (and how often one would without it)."""
    mu = mu_for_f1(F1_LEVEL, fold.pi)
    alpha = settings["alpha"]
    any_holm = {"old": 0, "new": 0}
    any_raw = {"old": 0, "new": 0}
    for _ in range(reps):
        out = compare(fold, prob(draw_scores(fold, [mu] * (FAMILY + 1), rng)), settings["n_draws"], rng)
        for k in ("old", "new"):
            any_raw[k] += int((out[k] < alpha).any())
            any_holm[k] += int((np.asarray(holm(list(out[k]))) < alpha).any())
    return {"family": FAMILY, "replicates": reps, "holm": {k: v / reps for k, v in any_holm.items()},
            "unadjusted": {k: v / reps for k, v in any_raw.items()}, "mc_se": float(np.sqrt(0.05 * 0.95 / reps))}


def crossing(points: list[tuple[float, float]], target: float) -> float | None:
    """The ΔF1 where the power curve first reaches `target`, linearly interpolated."""
    points = sorted(points)
    for (d0, p0), (d1, p1) in zip(points, points[1:], strict=False):
        if p0 < target <= p1:
            return d0 + (target - p0) * (d1 - d0) / (p1 - p0)
    return None


def simulate(fold: Fold, f_index: int, reps: dict[str, int], settings: dict[str, Any],
             size_only: bool = False) -> dict[str, Any]:
    """Every figure of one test fold (or its size alone), from its own seeded stream."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([SEED, f_index])
    size = rejection(fold, 0.0, reps["size"], settings, rng)
    if size_only:
        return {"n_test": len(fold.y), "n_depressed": int(fold.y.sum()), "n_units": fold.n_units, "size": size,
                "seconds": time.perf_counter() - t0}
    power = [rejection(fold, d, reps["power"], settings, rng) for d in sorted({*DELTAS, *MDE_GRID})]
    curve = [(0.0, size)] + [(p["delta"], p) for p in power]
    mde = {k: crossing([(d, r[k]) for d, r in curve], settings["power"]) for k in ("old", "new")}
    return {"n_test": len(fold.y), "n_depressed": int(fold.y.sum()), "n_units": fold.n_units,
            "size": size, "power": power, "mde_simulated": mde, "mde_normal_approx": size["mde_normal_approx"],
            "coverage": coverage(fold, reps["coverage"], settings, rng),
            "fwer": family_error(fold, reps["fwer"], settings, rng), "seconds": time.perf_counter() - t0}


def run(reps: dict[str, int], folds: list[Fold], small: list[Fold], settings: dict[str, Any],
        workers: int) -> dict[str, Any]:
    """One process per test fold (each has its own stream, so the figures do not depend on the
    number of workers); the `small` folds get their size alone."""
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(f, False) for f in folds] + [(f, True) for f in small]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(simulate, fold, i, reps, settings, only) for i, (fold, only) in enumerate(tasks)]
        return {fold.name: job.result() for (fold, _), job in zip(tasks, jobs, strict=True)}


# --- the optimism study's intervals -------------------------------------------------------------------
def optimism_folds(rng: np.random.Generator) -> list[Fold]:
    """The study's pooled test sets (each vlog tested once over the outer folds): the demo's D-Vlog
    (240 vlogs, 139 depressed) and LMVD (200, 98, in subjects), as `asym synth` writes them, and
    D-Vlog's release (961, 555)."""
    lmvd = lmvd_fold(rng, 200, 98)
    return [dvlog_fold(240, 139, "dvlog-demo"), Fold("lmvd-demo", lmvd.y, lmvd.units, lmvd.subject_share),
            dvlog_fold(961, 555, "dvlog-release")]


def optimism_settings(params_path: str | Path) -> dict[str, Any]:
    """What the simulated study takes from params.yaml: the report's resamples, k, and the epochs
    and selection metric of the first study model's recipe."""
    params = load_params(params_path)
    recipe = params.recipe(registry.get(params.optimism_models[0]).recipe)
    return {"n_draws": params.report.bootstrap, "k": params.split.kfold.k, "epochs": recipe.epochs,
            "metric": recipe.selection_metric, "level": CI_LEVEL}


def outer_folds(fold: Fold, k: int, rng: np.random.Generator) -> np.ndarray:
    """Each vlog's outer fold: whole units dealt to the k folds in random order."""
    codes = np.unique(fold.units, return_inverse=True)[1]
    return (rng.permutation(codes.max() + 1) % k)[codes]


def draw_epochs(fold: Fold, mu: float, epochs: int, rng: np.random.Generator) -> np.ndarray:
    """(epochs, n) probabilities of one run's epochs, all of the same true accuracy Phi(mu), in
    float32 as epochs.parquet keeps them."""
    return prob(draw_scores(fold, [mu] * epochs, rng, EPOCH_CORRELATION)).astype(np.float32)


def optimism_parts(part: np.ndarray, probs: np.ndarray) -> list[optimism.Partition]:
    """The epochs of each outer fold as optimism.read_epochs gives them, labelled at 0.5."""
    e = len(probs)
    return [(idx, np.arange(e), probs[:, idx], np.full(e, DEFAULT_THRESHOLD))
            for idx in (np.flatnonzero(part == j) for j in range(part.max() + 1))]


def _headline(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, depressed-class precision, recall and F1 from counts, 0 where undefined."""
    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)
    return {"accuracy": div(tp + tn, tp + fp + fn + tn), "precision": div(tp, tp + fp),
            "recall": div(tp, tp + fn), "f1": div(2 * tp, 2 * tp + fp + fn)}


def batch_reports(y: np.ndarray, part: np.ndarray, probs: np.ndarray, honest: np.ndarray,
                  metric: str) -> dict[str, np.ndarray]:
    """What both protocols report on each of many simulated test sets at once: probs (sets,
    epochs, n), honest (sets, k) the epoch the honest arm keeps in each outer fold. The optimistic
    arm keeps in each outer fold the first epoch best by `metric` on its test vlogs (as training
    and optimism.chosen_epochs do); both pool their labels over the folds."""
    lab = probs >= DEFAULT_THRESHOLD
    pos = np.asarray(y) == 1
    onehot = np.eye(part.max() + 1)[part]                                   # (n, k)
    counts = [np.einsum("den,nk->dek", (lab == p) & (pos == t), onehot)     # (sets, epochs, k)
              for p, t in ((True, True), (True, False), (False, True), (False, False))]
    score = optimism.selection_scores(_headline(*counts), metric)
    chosen = np.argmax(score >= score.max(1, keepdims=True) - optimism.TIE, axis=1)    # (sets, k)
    out = {}
    for pr, epochs in ((OPTIMISTIC, chosen), (HONEST, honest)):
        pooled = [np.take_along_axis(c, epochs[:, None, :], 1)[:, 0, :].sum(1) for c in counts]
        m = _headline(*pooled)
        out |= {f"{k}_{pr}": m[k] for k in optimism.COMPARED}
    return out | {f"delta_{k}": out[f"{k}_{OPTIMISTIC}"] - out[f"{k}_{HONEST}"] for k in optimism.COMPARED}


def expected_reports(fold: Fold, part: np.ndarray, mu: float, settings: dict[str, Any], draws: int,
                     rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """The truth the intervals are to hold: each reported quantity's mean over `draws` fresh test
    sets, with its Monte-Carlo standard error."""
    k, e = part.max() + 1, settings["epochs"]
    got: dict[str, list[np.ndarray]] = {}
    for start in range(0, draws, TRUTH_CHUNK):
        sets = min(TRUTH_CHUNK, draws - start)
        probs = np.stack([draw_epochs(fold, mu, e, rng) for _ in range(sets)])
        for q, v in batch_reports(fold.y, part, probs, rng.integers(0, e, size=(sets, k)), settings["metric"]).items():
            got.setdefault(q, []).append(v)
    return {q: {"value": float(np.mean(np.concatenate(v))), "mc_se": float(np.std(np.concatenate(v)) / np.sqrt(draws))}
            for q, v in got.items()}


def optimism_replicate(fold: Fold, part: np.ndarray, mu: float, settings: dict[str, Any],
                    rng: np.random.Generator) -> dict[str, tuple[float, np.ndarray]]:
    """One simulated study scored as the report scores it: per reported quantity, the point and
    its values on the report's resamples (the optimistic epochs chosen again in each)."""
    probs = draw_epochs(fold, mu, settings["epochs"], rng)
    parts = optimism_parts(part, probs)
    kept = rng.integers(0, len(probs), size=part.max() + 1)[part]         # the honest arm's epochs
    honest = (probs[kept, np.arange(len(fold.y))] >= DEFAULT_THRESHOLD).astype(float)
    W = resample_weights(fold.units, settings["n_draws"], rng)
    one = np.ones((1, len(fold.y)))
    arms = {pr: [f(one), f(W)] for pr, f in (
        (OPTIMISTIC, lambda w: optimism.reselected_resamples(fold.y, parts, w, settings["metric"])),
        (HONEST, lambda w: weighted_metrics(fold.y, honest, w, optimism.COMPARED)))}
    out = {}
    for k in optimism.COMPARED:
        for pr, (pt, res) in arms.items():
            out[f"{k}_{pr}"] = (float(pt[k][0]), res[k])
        out[f"delta_{k}"] = (out[f"{k}_{OPTIMISTIC}"][0] - out[f"{k}_{HONEST}"][0],
                             arms[OPTIMISTIC][1][k] - arms[HONEST][1][k])
    return out


def bc_ci(samples: np.ndarray, point: float, level: float) -> tuple[float, float]:
    """Efron's bias-corrected percentile interval: both percentiles moved by z0, the normal
    quantile of the share of resamples below the point (ties half), kept finite at one resample."""
    below = (np.sum(samples < point) + 0.5 * np.sum(samples == point)) / len(samples)
    edge = 0.5 / len(samples)
    z0, z = Z.inv_cdf(min(max(below, edge), 1 - edge)), Z.inv_cdf(0.5 + level / 2)
    lo, hi = np.percentile(samples, [100 * Z.cdf(2 * z0 - z), 100 * Z.cdf(2 * z0 + z)])
    return float(lo), float(hi)


def basic_ci(samples: np.ndarray, point: float, level: float) -> tuple[float, float]:
    """The basic (reflected percentile) interval: 2 point - the upper and lower percentiles."""
    lo, hi = percentile_ci(samples, level)
    return 2 * point - hi, 2 * point - lo


def _range(quantity: str) -> tuple[float, float]:
    return optimism.DELTA_RANGE if quantity.startswith("delta_") else optimism.SCORE_RANGE


INTERVALS = {
    "percentile": lambda s, pt, lvl, q: percentile_ci(s, lvl),
    "shifted": lambda s, pt, lvl, q: shifted_percentile_ci(s, pt, lvl, _range(q)),
    "bc": lambda s, pt, lvl, q: bc_ci(s, pt, lvl),
    "basic": lambda s, pt, lvl, q: basic_ci(s, pt, lvl),
}


def optimism_coverage(fold: Fold, f_index: int, reps: dict[str, int], settings: dict[str, Any]) -> dict[str, Any]:
    """How often each interval holds the truth, and how often it leaves out its own point, over
    simulated studies on `fold`, from its own seeded stream."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([SEED, OPTIMISM_STREAM, f_index])
    mu = mu_for_f1(F1_LEVEL, fold.pi)
    part = outer_folds(fold, settings["k"], rng)
    truth = expected_reports(fold, part, mu, settings, reps["truth"], rng)
    held = {q: dict.fromkeys(INTERVALS, 0) for q in truth}
    outside = {q: dict.fromkeys(INTERVALS, 0) for q in truth}
    for _ in range(reps["coverage"]):
        for q, (point, samples) in optimism_replicate(fold, part, mu, settings, rng).items():
            for name, ci in INTERVALS.items():
                lo, hi = ci(samples, point, settings["level"], q)
                held[q][name] += int(lo <= truth[q]["value"] <= hi)
                outside[q][name] += int(not lo <= point <= hi)
    n = reps["coverage"]
    return {"n_test": len(fold.y), "n_depressed": int(fold.y.sum()), "n_units": fold.n_units, "truth": truth,
            "coverage": {q: {m: v / n for m, v in c.items()} for q, c in held.items()},
            "point_outside": {q: {m: v / n for m, v in c.items()} for q, c in outside.items()},
            "replicates": n, "mc_se": float(np.sqrt(settings["level"] * (1 - settings["level"]) / n)),
            "seconds": time.perf_counter() - t0}


def run_optimism(reps: dict[str, int], folds: list[Fold], settings: dict[str, Any], workers: int) -> dict[str, Any]:
    """One process per pooled test set, each with its own stream."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(optimism_coverage, fold, i, reps, settings) for i, fold in enumerate(folds)]
        return {fold.name: job.result() for fold, job in zip(folds, jobs, strict=True)}


OPTIMISM_ROWS = {f"delta_{k}": f"Δ{optimism.LABELS[k]}" for k in optimism.COMPARED} | {
    f"{k}_{pr}": f"{optimism.LABELS[k]} `{pr}`" for pr in (OPTIMISTIC, HONEST) for k in optimism.COMPARED}
INTERVAL_NAMES = {"percentile": "plain percentile", "shifted": "shifted percentile (the report's)",
                  "bc": "bias-corrected percentile (BC)", "basic": "basic"}


def optimism_markdown(results: dict[str, Any], settings: dict[str, Any], mode: str) -> str:
    names = list(results)
    level = settings["level"]
    lines = [f"# Coverage of the `protocol_optimism` intervals (`{mode}`)", "",
             f"One run's {settings['epochs']} epochs per simulated study, all of true F1 {F1_LEVEL:.2f} (their scores "
             f"correlated {EPOCH_CORRELATION} on a vlog); k = {settings['k']} outer folds; in each the optimistic arm "
             f"keeps the epoch best on its test vlogs by `{settings['metric']}`, the honest arm one chosen apart from "
             f"them. Truth: what each protocol reports on average and the average Δ, over fresh test sets (Monte "
             f"Carlo, ± its standard error, in points). Coverage: how often the {level:.0%} interval from "
             f"{settings['n_draws']} resamples, the selection made again in each, holds the truth (± the Monte-Carlo "
             f"standard error at {level:.0%}). Point outside: how often an interval leaves out its own point "
             "(percentile / shifted / BC / basic).", "",
             *_table_head(results, names)]
    row = _row_writer(lines, results, names)

    for q, label in OPTIMISM_ROWS.items():
        sign = "+" if q.startswith("delta_") else ""
        row(f"{label}, truth", lambda r, q=q, sign=sign: f"{100 * r['truth'][q]['value']:{sign}.2f} ± "
            f"{100 * r['truth'][q]['mc_se']:.2f}")
        for m, name in INTERVAL_NAMES.items():
            row(f"{label}, coverage, {name}", lambda r, q=q, m=m: _rate(r["coverage"][q][m], r["mc_se"]))
        row(f"{label}, point outside", lambda r, q=q: " / ".join(f"{r['point_outside'][q][m]:.3f}" for m in INTERVALS))
    return "\n".join(lines) + "\n"


# --- tables -------------------------------------------------------------------------------------------
def _table_head(results: dict[str, Any], names: list[str]) -> list[str]:
    """A calibration table's header: one column per simulated test fold, with its sizes."""
    return ["| | " + " | ".join(f"{n} (n = {results[n]['n_test']}, {results[n]['n_depressed']} dep., "
                                f"{results[n]['n_units']} units)" for n in names) + " |",
            "|---|" + "---:|" * len(names)]


def _row_writer(lines: list[str], results: dict[str, Any], names: list[str]) -> Any:
    """row(label, cell) appends a row to `lines`: `cell` of each fold's results."""
    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    return row


def _rate(r: float, se: float) -> str:
    return f"{r:.3f} ± {se:.3f}"


def markdown(results: dict[str, Any], settings: dict[str, Any], mode: str) -> str:
    names = [n for n in results if "power" in results[n]]
    small = [n for n in results if "power" not in results[n]]
    alpha = settings["alpha"]
    lines = [f"# Calibration of the paired test, the bootstrap CIs and Holm (`{mode}`)", "",
             f"Two simulated classifiers per test fold (population F1 of A = {F1_LEVEL:.2f}; score correlation "
             f"between them {PAIR_CORRELATION}; LMVD's subjects share {SUBJECT_SHARE} of the score variance); "
             f"{settings['n_draws']} resamples / exchanges per test, α = {alpha}. *old* = percentile-bootstrap "
             "test (`bootstrap_p`), *new* = paired permutation test (`permutation_p`, what the report uses). "
             "± = Monte-Carlo standard error.", "",
             *_table_head(results, names)]
    row = _row_writer(lines, results, names)

    for k, label in (("old", "old"), ("new", "new")):
        row(f"size at ΔF1 = 0, {label}", lambda r, k=k: _rate(r["size"][k], r["size"]["mc_se"][k]))
    for d in DELTAS:
        for k in ("old", "new"):
            row(f"power at ΔF1 = {d:g} pt, {k}",
                lambda r, d=d, k=k: _rate(*next((p[k], p["mc_se"][k]) for p in r["power"] if p["delta"] == d)))
    for k in ("old", "new"):
        row(f"MDE at {settings['power']:.0%} power, simulated, {k}",
            lambda r, k=k: "–" if r["mde_simulated"][k] is None else f"{r['mde_simulated'][k]:.1f} pt")
    row(f"MDE at {settings['power']:.0%} power, normal approx. (report)", lambda r: f"{r['mde_normal_approx']:.1f} pt")
    for m in COVERED:
        row(f"coverage of the 95% CI, {m}", lambda r, m=m: _rate(r["coverage"][m]["rate"], r["coverage"][m]["mc_se"]))
    for k in ("old", "new"):
        row(f"FWER, {FAMILY} null comparisons, Holm, {k}", lambda r, k=k: _rate(r["fwer"]["holm"][k], r["fwer"]["mc_se"]))
        row(f"(same, unadjusted, {k})", lambda r, k=k: f"{r['fwer']['unadjusted'][k]:.3f}")
    if small:
        lines += ["", "On the embedded demo's smaller test folds (size alone):", "",
                  "| | " + " | ".join(f"{n} (n = {results[n]['n_test']}, {results[n]['n_depressed']} dep.)"
                                       for n in small) + " |", "|---|" + "---:|" * len(small)]
        for k in ("old", "new"):
            lines.append(f"| size at ΔF1 = 0, {k} | " + " | ".join(
                _rate(results[n]["size"][k], results[n]["size"]["mc_se"][k]) for n in small) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small simulation (about 10x fewer replicates)")
    ap.add_argument("--part", choices=("all", "tests", "optimism"), default="all",
                    help="the paired test, CIs and Holm (tests), the optimism study's intervals, or both")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--workers", type=int, default=2, help="processes (one test fold each)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    ap.add_argument("--md", default=str(ROOT / "benchmarks" / "results" / "calibration.md"))
    ap.add_argument("--optimism-json", default=str(ROOT / "benchmarks" / "results" / "calibration_optimism.json"))
    ap.add_argument("--optimism-md", default=str(ROOT / "benchmarks" / "results" / "calibration_optimism.md"))
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    if args.part in ("all", "tests"):
        report = load_params(args.params).report
        settings = {"n_draws": report.bootstrap, "alpha": report.alpha, "power": report.mde_power}
        t0 = time.perf_counter()
        folds = [dvlog_fold(), lmvd_fold(np.random.default_rng(SEED))]
        results = run(REPLICATES[mode], folds, demo_folds(), settings, args.workers)
        table = markdown(results, settings, mode)
        print(table)
        write_json(args.json, {"mode": mode, "settings": {**settings, "f1_level": F1_LEVEL,
                                                          "pair_correlation": PAIR_CORRELATION,
                                                          "subject_share": SUBJECT_SHARE, "family": FAMILY,
                                                          "replicates": REPLICATES[mode], "seed": SEED},
                               "results": results, "seconds": time.perf_counter() - t0})
        write_text(args.md, table)
    if args.part in ("all", "optimism"):
        settings = optimism_settings(args.params)
        t0 = time.perf_counter()
        results = run_optimism(OPTIMISM_REPLICATES[mode], optimism_folds(np.random.default_rng(SEED)), settings, args.workers)
        table = optimism_markdown(results, settings, mode)
        print(table)
        write_json(args.optimism_json, {"mode": mode, "settings": {**settings, "f1_level": F1_LEVEL,
                                                                   "epoch_correlation": EPOCH_CORRELATION,
                                                                   "replicates": OPTIMISM_REPLICATES[mode], "seed": SEED},
                                        "results": results, "seconds": time.perf_counter() - t0})
        write_text(args.optimism_md, table)


if __name__ == "__main__":
    main()
