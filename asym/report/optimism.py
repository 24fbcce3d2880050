"""The report's `protocol_optimism` table: what choosing the checkpoint on the reported fold adds.

The optimism study (params.yaml `optimism`) trains each of its models under `kfold` and under
`kfold_select_on_test` on the same outer folds, training and validation parts and seeds
(asym.data.splits): on one seed both follow the same training trajectory and label at the same
threshold rule; they differ in the fold that chooses the checkpoint, nothing else.

One estimand throughout, the one the report's CIs and paired tests use for a `kfold` run
(asym.report.aggregate, asym.report.stats): the metric of each seed's test labels pooled over its k outer folds
(every vlog is tested once per seed), averaged over seeds. The point is that estimand on the
test vlogs; its 95% CI comes from the same estimand over the report's bootstrap of those vlogs
(subjects when known), one set of resamples per dataset shared by both protocols, every seed and
every model, so Δ = optimistic − honest is paired resample by resample; the p of ΔF1 is the
report's paired permutation test (asym.report.stats.swap_deltas: a unit's labels exchanged
between the two protocols, all seeds at once).

The selection is made again inside every resample. The optimistic epoch was chosen on the very
test vlogs the bootstrap resamples, so resampling its saved labels would hold the selection
fixed and leave its noise out of the CI. Every study run keeps each epoch's probabilities on the
fold that chose its checkpoint, with the threshold that epoch would label at (epochs.parquet,
asym.layout.OPTIMISM_TRAIN_FILES): in each resample each partition's epoch is chosen again on the
resampled test fold by the recipe's selection metric (first best on ties, as in training) and
its vlogs are labelled at that epoch. The honest epochs were chosen on validation parts, which
the bootstrap leaves alone: their labels stay as saved. The permutation test exchanges saved
labels, so its p is conditional on the selections made.

Each CI is the resamples' percentile interval moved so that their median falls on the point
(`shifted_percentile_ci`), not the percentile interval itself. Choosing the epoch again on a
resample picks the best on vlogs the original choice already favoured: the resampled optimistic
values carry a winner's curse of their own on top of the one the point holds, and sit above the
point, which can then lie below its whole percentile interval. What
the table estimates is what each protocol reports on average over test sets like this one, and
the average difference; each point is one draw of that report, an unbiased estimate of it, so the
resamples are asked for the spread of the point's sampling distribution only, and the point gives
its place. The intervals that move percentiles instead, the bias-corrected percentile (BC: z0
from the share of resamples below the point) and the basic (reflected) one, read the resamples'
upward shift as a bias of the point and move the interval down by as much again, below the
truth; and both exclude the point wherever the percentile interval does (BC whenever |z0|
passes the level's quantile). benchmarks/calibration.py checks this where the truth is known:
epochs of equal true accuracy, the best chosen on each simulated test fold, the expected
inflation by a large Monte Carlo (benchmarks/results/calibration_optimism.md). At 95%, on the
demo's pooled test sets and D-Vlog's release, the percentile interval covers the true ΔAcc and
ΔF1 82–89% of the time, BC and basic 72–79%, the shifted one 95–96% (the optimistic arm's value:
84–90%, 81–92%, 94–97%). The shifted interval holds its point by construction (the median lies
between the two percentiles), and is cut to the metric's range.
For the honest arm, whose resamples centre on the point, it is the percentile interval moved by
the small gap between the point and their median.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import Params
from asym.data.protocols import OPTIMISM_PROTOCOLS, OPTIMISTIC_FLAG
from asym.data.splits import read_split
from asym.errors import DataError
from asym.io import atomic_path, read_json, write_text
from asym.layout import Layout, RunFiles
from asym.metrics import LABEL_METRICS, selection_score
from asym.report.runs import DatasetRuns, load_dataset_runs
from asym.report.stats import (
    CI_LEVEL,
    labelled_resamples,
    permutation_p,
    resample_weights,
    shifted_percentile_ci,
    swap_deltas,
    swap_draws,
    weighted_metrics,
)
from asym.report.tables import p_value

HONEST, OPTIMISTIC = OPTIMISM_PROTOCOLS
COMPARED = ("accuracy", "f1")
LABELS = {"accuracy": "Acc", "f1": "F1 (dep.)"}
CI_STREAM = 100          # the study's resamples are drawn from their own stream of the report's ci_seed
# Selection scores this close count as equal: the first such epoch wins, as training's strict `>`
# keeps the first of equal scores (two orders of summation differ in the last bits only).
TIE = 1e-12
SCORE_RANGE = (0.0, 1.0)                                  # accuracy and F1
DELTA_RANGE = (SCORE_RANGE[0] - SCORE_RANGE[1], SCORE_RANGE[1] - SCORE_RANGE[0])


# --- the interval ---------------------------------------------------------------------------------
def incoherent(table: pd.DataFrame) -> list[str]:
    """Every reported point of `table` (each arm's value and each Δ) that lies outside its own
    finite interval, as 'dataset/model column'; a missing interval (NaN) holds nothing to check."""
    out = []
    for _, row in table.iterrows():
        for col in points_of(table):
            lo, hi, v = row[f"{col}_ci_low"], row[f"{col}_ci_high"], row[col]
            if np.isfinite(lo) and np.isfinite(hi) and not lo <= v <= hi:
                out.append(f"{row['dataset']}/{row['model']} {col}: {v:.6g} outside [{lo:.6g}, {hi:.6g}]")
    return out


def points_of(table: pd.DataFrame) -> list[str]:
    """The columns of `table` that are reported with an interval."""
    return [c[: -len("_ci_low")] for c in table.columns if c.endswith("_ci_low")]


# --- the runs -------------------------------------------------------------------------------------
def check_same_folds(params: Params, dataset: str) -> None:
    """Both protocols' split files must hold the same partitions (they are written alike, one per
    protocol, each with its own record): a difference would make the comparison unpaired."""
    paths = [Path(Layout.of(params.for_optimism(pr)).split_csv(dataset)) for pr in OPTIMISM_PROTOCOLS]
    honest, optimistic = (read_split(p).reset_index(drop=True) for p in paths)
    if not honest.equals(optimistic):
        raise DataError(paths[1], f"not the same folds as {paths[0]}: the optimism study compares the two "
                        "protocols on one split (split both again)")


def load_arms(params: Params, dataset: str) -> dict[str, DatasetRuns]:
    """Each protocol's study runs of `dataset` (asym.report.runs.load_dataset_runs: test labels and
    probabilities aligned by vlog), on the same test vlogs."""
    check_same_folds(params, dataset)
    arms = {pr: load_dataset_runs(params.for_optimism(pr), dataset, per_run=False) for pr in OPTIMISM_PROTOCOLS}
    if list(arms[HONEST].ids) != list(arms[OPTIMISTIC].ids):
        raise DataError(Layout.of(params.for_optimism(OPTIMISTIC)).runs,
                        f"{dataset}: the {HONEST} and {OPTIMISTIC} runs were tested on different vlogs")
    return arms


def run_summaries(params: Params, protocol: str, dataset: str, model: str) -> list[tuple[RunFiles, dict[str, Any]]]:
    """(run files, training summary) of every study seed of `model` under `protocol`."""
    study = params.for_optimism(protocol)
    layout = Layout.of(study)
    return [(files, read_json(files.file("summary")))
            for files in (layout.run(run) for run in study.runs(dataset, model))]


Partition = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]   # positions, epochs, probs (E, n), thresholds (E,)


def read_epochs(files: RunFiles, ids: np.ndarray) -> list[Partition]:
    """A select-on-test run's per-epoch probabilities, per partition: the positions of its test
    vlogs among `ids`, its epochs, their probabilities (epochs, vlogs) and thresholds."""
    path = files.file("epochs")
    df = pd.read_parquet(path)
    if not (df["fold"] == "test").all():
        raise DataError(path, f"holds epochs of the {sorted(set(df['fold']) - {'test'})} fold(s); a "
                        f"{OPTIMISTIC} run's must be of the test fold, which chose its checkpoint")
    where = {s: i for i, s in enumerate(ids)}
    parts: list[Partition] = []
    for p, part in df.groupby("partition", sort=True):
        epochs = np.sort(part["epoch"].unique())
        by_epoch = [part[part["epoch"] == e] for e in epochs]
        order = by_epoch[0]["sample_id"].tolist()
        if any(g["sample_id"].tolist() != order for g in by_epoch):
            raise DataError(path, f"partition {p}: its epochs hold different vlogs")
        unknown = [s for s in order if s not in where]
        if unknown:
            raise DataError(path, f"partition {p}: {len(unknown)} vlog(s) not among the run's test vlogs, e.g. {unknown[:3]}")
        parts.append((np.array([where[s] for s in order]), epochs,
                      np.stack([g["prob"].to_numpy(np.float32) for g in by_epoch]),
                      np.array([float(g["threshold"].iloc[0]) for g in by_epoch])))
    covered = np.sort(np.concatenate([q[0] for q in parts])) if parts else np.array([], int)
    if not np.array_equal(covered, np.arange(len(ids))):
        raise DataError(path, "its partitions' test folds are not the run's test vlogs, each once")
    return parts


# --- the selection, again -------------------------------------------------------------------------
def selection_scores(m: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """asym.metrics.selection_score of every resample at once. The rule is linear in the metrics
    (one of them, or the mean of four), so its weights are read off unit inputs; the first
    resample is checked against the rule itself."""
    keys = list(m)
    weights = {j: selection_score({k: float(k == j) for k in keys}, metric) for j in keys}
    scores = np.sum([w * np.asarray(m[k], float) for k, w in weights.items() if w], axis=0)
    first = {k: float(np.ravel(m[k])[0]) for k in keys} if scores.size else None
    if first is not None and not np.isclose(np.ravel(scores)[0], selection_score(first, metric), rtol=0, atol=1e-12):
        raise ValueError(f"selection metric {metric!r} is not linear in the metrics: cannot score resamples at once")
    return scores


def chosen_epochs(y: np.ndarray, parts: list[Partition], W: np.ndarray, metric: str) -> np.ndarray:
    """(resamples, partitions): the index of the epoch each resample chooses in each partition,
    by the selection score at the default threshold on its resampled test vlogs, first best."""
    choice = np.empty((W.shape[0], len(parts)), dtype=int)
    for j, (idx, _, probs, _) in enumerate(parts):
        Wp = W[:, idx]
        scores = np.stack([selection_scores(weighted_metrics(y[idx], pe, Wp, LABEL_METRICS), metric) for pe in probs])
        choice[:, j] = np.argmax(scores >= scores.max(0) - TIE, axis=0)
    return choice


def reselected_resamples(y: np.ndarray, parts: list[Partition], W: np.ndarray, metric: str) -> dict[str, np.ndarray]:
    """One seed's pooled test metrics (COMPARED) on every resample, each partition labelled at the
    epoch that resample chooses (its threshold for that epoch). Resamples choosing the same
    epochs share one label vector: asym.report.stats.weighted_metrics runs once per distinct choice."""
    choice = chosen_epochs(y, parts, W, metric)
    combos, which = np.unique(choice, axis=0, return_inverse=True)
    which = np.asarray(which).ravel()
    out = {k: np.empty(W.shape[0]) for k in COMPARED}
    for c, combo in enumerate(combos):
        labels = np.empty(len(y))
        for (idx, _, probs, thresholds), e in zip(parts, combo, strict=True):
            labels[idx] = probs[e] >= float(thresholds[e])        # float32 against a float, as training labels
        rows = which == c
        for k, v in weighted_metrics(y, labels, W[rows], COMPARED).items():   # a 0/1 score is its own label
            out[k][rows] = v
    return out


def optimistic_resamples(params: Params, dataset: str, model: str, runs: DatasetRuns, W: np.ndarray) -> dict[str, np.ndarray]:
    """The optimistic arm's seed-mean metrics on every resample, with the selection made again."""
    per_seed = []
    for files, summary in run_summaries(params, OPTIMISTIC, dataset, model):
        metric = summary["recipe"]["selection_metric"]
        per_seed.append(reselected_resamples(runs.y, read_epochs(files, runs.ids), W, metric))
    return {k: np.mean([s[k] for s in per_seed], axis=0) for k in COMPARED}


# --- the table --------------------------------------------------------------------------------------
def _threshold(params: Params, dataset: str, model: str) -> tuple[str, dict[str, float]]:
    """The recipe's threshold rule of the model's study runs, and per protocol the mean threshold."""
    rules, means = set(), {}
    for pr in OPTIMISM_PROTOCOLS:
        summaries = [s for _, s in run_summaries(params, pr, dataset, model)]
        rules |= {str(s["recipe"]["threshold"]) for s in summaries}
        means[pr] = float(np.mean([t for s in summaries for t in s["threshold"]]))
    if len(rules) != 1:
        raise DataError(Layout.of(params.for_optimism(OPTIMISTIC)).runs,
                        f"{dataset}/{model}: the study's runs were labelled by different threshold rules {sorted(rules)}")
    return rules.pop(), means


def compare(params: Params) -> pd.DataFrame:
    """One row per (dataset, model): both protocols' scores with their CIs, their difference with
    its CI and the paired test's p, and the threshold that labelled the vlogs."""
    rows = []
    for d_index, ds in enumerate(params.datasets):
        arms = load_arms(params, ds)
        honest, optimistic = arms[HONEST], arms[OPTIMISTIC]
        n = len(honest.y)
        W = resample_weights(honest.units, params.report.bootstrap,
                             np.random.default_rng([params.report.ci_seed, CI_STREAM, d_index]))
        S = swap_draws(honest.units, params.report.bootstrap,
                       np.random.default_rng([params.report.ci_seed, CI_STREAM, d_index, 1]))
        for model in params.optimism_models:
            point = {pr: labelled_resamples(r.y, r.probs[model], r.preds[model], np.ones((1, n)))
                     for pr, r in arms.items()}
            resamples = {HONEST: labelled_resamples(honest.y, honest.probs[model], honest.preds[model], W),
                         OPTIMISTIC: optimistic_resamples(params, ds, model, optimistic, W)}
            rule, means = _threshold(params, ds, model)
            row: dict[str, Any] = {"dataset": ds, "model": model, "subject_independent": honest.subject_independent,
                                   "n_test": n, "n_seeds": len(honest.probs[model]), "threshold_rule": rule,
                                   **{f"threshold_{pr}": means[pr] for pr in OPTIMISM_PROTOCOLS}}
            for k in COMPARED:
                for pr in OPTIMISM_PROTOCOLS:
                    row[f"{k}_{pr}"] = float(point[pr][k][0])
                    row[f"{k}_{pr}_ci_low"], row[f"{k}_{pr}_ci_high"] = shifted_percentile_ci(
                        resamples[pr][k], row[f"{k}_{pr}"], bounds=SCORE_RANGE)
                row[f"delta_{k}"] = row[f"{k}_{OPTIMISTIC}"] - row[f"{k}_{HONEST}"]
                row[f"delta_{k}_ci_low"], row[f"delta_{k}_ci_high"] = shifted_percentile_ci(
                    resamples[OPTIMISTIC][k] - resamples[HONEST][k], row[f"delta_{k}"], bounds=DELTA_RANGE)
            observed, null = swap_deltas(honest.y, honest.preds[model], optimistic.preds[model], S)
            row["delta_f1_p"] = permutation_p(observed, null)
            rows.append(row)
    return pd.DataFrame(rows)


CAPTION = (f"The cost of selecting on the test fold, measured ({OPTIMISTIC_FLAG} in the `{OPTIMISTIC}` "
           f"columns). Each model trained under `{HONEST}` (the checkpoint chosen on a validation part carved from "
           f"the training folds) and under `{OPTIMISTIC}` (chosen on the very fold that is reported, as the LMVD "
           "authors', MDD-Net's and MMFformer's code do), on the same outer folds, training and validation parts and "
           "seeds. Test metrics in %: the metric of each seed's test labels pooled over its outer folds, mean over "
           f"seeds (the estimand of the report's CIs and paired tests); {CI_LEVEL:.0%} CIs from the report's bootstrap "
           "of the test vlogs (subjects when known), the same resamples for both protocols; Δ = optimistic − honest, "
           "paired resample by resample. The CIs reflect the selection's own noise: inside every resample each "
           f"`{OPTIMISTIC}` partition's epoch is chosen again, by the recipe's selection metric, on the resampled "
           "test vlogs (the honest epochs, chosen on validation, stay). Choosing again on vlogs that already favour "
           "the chosen epochs lifts the resampled values above the point, so each CI is a shifted percentile "
           "interval: the resamples' percentile interval moved to put their median on the point (its width from "
           "the bootstrap, its place from the point, an unbiased estimate of what the protocol reports on average; "
           "checked by simulation in benchmarks/calibration.py where every epoch has the same true accuracy, the "
           "case of pure selection noise), not the plain percentile interval, which would sit too high. p (ΔF1): the report's paired permutation "
           "test of ΔF1 on the saved labels, conditional on the selections made. Labels at each run's decision "
           "threshold (column `threshold`): the recipe's fixed value, or `valid_f1`, tuned on the validation part at "
           "the chosen checkpoint under both protocols (never on the test fold), mean over seeds and folds.")


def _pct(value: float, lo: float, hi: float, sign: str = "") -> str:
    ci = f"[{100 * lo:{sign}.2f}, {100 * hi:{sign}.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "[–]"
    return f"{100 * value:{sign}.2f} {ci}"


def _threshold_cell(row: pd.Series) -> str:
    if row["threshold_rule"] != "valid_f1":
        return str(row["threshold_rule"])
    return f"valid_f1 ({row[f'threshold_{HONEST}']:.2f} / {row[f'threshold_{OPTIMISTIC}']:.2f})"


def view(part: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"model": part["model"], "threshold": [_threshold_cell(r) for _, r in part.iterrows()]})
    for k in COMPARED:
        for pr in OPTIMISM_PROTOCOLS:
            flag = " (optimistic)" if pr == OPTIMISTIC else ""
            out[f"{LABELS[k]} `{pr}`{flag} [{CI_LEVEL:.0%} CI]"] = [
                _pct(r[f"{k}_{pr}"], r[f"{k}_{pr}_ci_low"], r[f"{k}_{pr}_ci_high"]) for _, r in part.iterrows()]
        out[f"Δ{LABELS[k]} [{CI_LEVEL:.0%} CI]"] = [_pct(r[f"delta_{k}"], r[f"delta_{k}_ci_low"], r[f"delta_{k}_ci_high"], "+")
                                          for _, r in part.iterrows()]
    out["p (ΔF1)"] = [p_value(p) for p in part["delta_f1_p"]]
    out["seeds"] = [str(int(n)) for n in part["n_seeds"]]
    return out.reset_index(drop=True)


def write_table(table: pd.DataFrame, params: Params, paths: dict[str, Path]) -> None:
    from asym.report.latex import to_latex

    wrong = incoherent(table)
    if wrong:
        raise ValueError(f"points outside their own intervals: {wrong}")
    independence = {"true": "verified subject-independent", "false": "NOT subject-independent",
                    "unknown": "subject independence could not be verified (no subject ids)"}
    md = ["# Protocol optimism: selection on validation vs on the test fold", "", CAPTION, "",
          f"Scale `{params.scale}`; models {params.optimism_models}; seeds {params.optimism_seeds}; "
          f"k = {params.split.kfold.k} outer folds over each dataset's pooled vlogs.", ""]
    tex = []
    for ds in params.datasets:
        part = table[table["dataset"] == ds]
        if part.empty:
            continue
        v = view(part)
        md += [f"## {ds} ({part['n_test'].iloc[0]} test vlogs per seed; "
               f"{independence[part['subject_independent'].iloc[0]]})", "",
               v.to_markdown(index=False, disable_numparse=True), ""]
        tex.append(to_latex(v, f"Protocol optimism ({ds}). {CAPTION}"))
    write_text(paths["protocol_optimism_md"], "\n".join(md))
    write_text(paths["protocol_optimism_tex"], "\n".join(tex))
    with atomic_path(paths["protocol_optimism_csv"]) as tmp:
        table.to_csv(tmp, index=False)
