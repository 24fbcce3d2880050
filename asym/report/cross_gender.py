"""The report's `cross_gender` table: what training on the other gender costs.

The cross-gender study (params.yaml `cross_gender`) trains each of its models under every
by-gender protocol (asym.data.protocols: DynMultiDep's `--train_gender` / `--test_gender`, inside
the dataset's own folds). For each test gender g, two protocols test on the very same vlogs, the
test fold's vlogs of gender g: `within_gender_g` (trained on g) and `cross_gender_<other>_to_g`
(trained on the other gender). Their difference is the cost of the gender shift, with the
training set's size changing with it (the table gives both sizes: on D-Vlog, as in the demo, the
genders are not equally many).

The estimand is the main tables' (asym.report.aggregate): the metric of each seed's test labels,
averaged over seeds. Its 95% CI is the report's bootstrap of the test vlogs (subjects when known),
one set of resamples per (dataset, test gender) shared by both protocols, every seed and every
model, so Δ = cross − within is paired resample by resample; CIs are bias-corrected percentile
intervals as the main tables' (asym.report.stats.centred_ci). Both arms choose their checkpoint on
validation, never on the test fold, so no selection is made again inside a resample (unlike the
optimism study's). The p of ΔF1 is the report's paired permutation test (asym.report.stats.swap_deltas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import Params
from asym.data.protocols import GENDER_PAIRS
from asym.errors import DataError
from asym.io import atomic_path, read_json, write_text
from asym.layout import Layout
from asym.report.runs import DatasetRuns, load_dataset_runs
from asym.report.stats import (
    CI_LEVEL,
    centred_ci,
    labelled_resamples,
    permutation_p,
    resample_weights,
    swap_deltas,
    swap_draws,
)
from asym.report.tables import p_value

ARMS = ("within", "cross")
COMPARED = ("accuracy", "f1")
LABELS = {"accuracy": "Acc", "f1": "F1 (dep.)"}
CI_STREAM = 200          # the study's resamples are drawn from their own stream of the report's ci_seed
TABLE = "cross_gender"


def train_size(params: Params, protocol: str, dataset: str) -> int:
    """The training fold's vlogs under `protocol` (its split's description)."""
    info = read_json(Layout.of(params.for_cross_gender(protocol)).split_json(dataset))
    return int(sum(info["per_fold"]["train"].values()))


def load_arms(params: Params, dataset: str, gender: str) -> dict[str, DatasetRuns]:
    """Both protocols' study runs of `dataset` that test on gender `gender`, on the same test vlogs."""
    protocols = dict(zip(ARMS, GENDER_PAIRS[gender], strict=True))
    arms = {arm: load_dataset_runs(params.for_cross_gender(pr), dataset, per_run=False) for arm, pr in protocols.items()}
    if list(arms["within"].ids) != list(arms["cross"].ids):
        raise DataError(Layout.of(params.for_cross_gender(protocols["cross"])).runs,
                        f"{dataset}: the {protocols['within']} and {protocols['cross']} runs were tested on different vlogs")
    wrong = sorted({str(g) for g in arms["within"].gender if g != gender})
    if wrong:
        raise DataError(Layout.of(params.for_cross_gender(protocols["within"])).runs,
                        f"{dataset}: test vlogs of gender(s) {wrong} under a protocol that tests on gender {gender!r}")
    return arms


def compare(params: Params) -> pd.DataFrame:
    """One row per (dataset, test gender, model): the same-gender and the cross-gender score with
    their CIs, their difference with its CI and the paired test's p, and each arm's training size."""
    rows = []
    for d_index, ds in enumerate(params.cross_gender_datasets):
        for g_index, (gender, protocols) in enumerate(GENDER_PAIRS.items()):
            arms = load_arms(params, ds, gender)
            within, cross = arms["within"], arms["cross"]
            n = len(within.y)
            W = resample_weights(within.units, params.report.bootstrap,
                                 np.random.default_rng([params.report.ci_seed, CI_STREAM, d_index, g_index]))
            S = swap_draws(within.units, params.report.bootstrap,
                           np.random.default_rng([params.report.ci_seed, CI_STREAM, d_index, g_index, 1]))
            sizes = {arm: train_size(params, pr, ds) for arm, pr in zip(ARMS, protocols, strict=True)}
            for model in params.cross_gender_models:
                point = {a: labelled_resamples(r.y, r.probs[model], r.preds[model], np.ones((1, n))) for a, r in arms.items()}
                res = {a: labelled_resamples(r.y, r.probs[model], r.preds[model], W) for a, r in arms.items()}
                row: dict[str, Any] = {"dataset": ds, "test_gender": gender, "model": model,
                                       "within_protocol": protocols[0], "cross_protocol": protocols[1],
                                       "subject_independent": within.subject_independent, "n_test": n,
                                       "n_test_depressed": int(within.y.sum()), "n_seeds": len(within.probs[model]),
                                       **{f"n_train_{a}": sizes[a] for a in ARMS}}
                for k in COMPARED:
                    for a in ARMS:
                        row[f"{k}_{a}"] = float(point[a][k][0])
                        row[f"{k}_{a}_ci_low"], row[f"{k}_{a}_ci_high"] = centred_ci(res[a][k], row[f"{k}_{a}"])
                    row[f"delta_{k}"] = row[f"{k}_cross"] - row[f"{k}_within"]
                    row[f"delta_{k}_ci_low"], row[f"delta_{k}_ci_high"] = centred_ci(res["cross"][k] - res["within"][k],
                                                                                     row[f"delta_{k}"])
                observed, null = swap_deltas(within.y, within.preds[model], cross.preds[model], S)
                row["delta_f1_p"] = permutation_p(observed, null)
                rows.append(row)
    return pd.DataFrame(rows)


def caption(params: Params) -> str:
    validation = {"target": "the test gender's vlogs of the validation fold (as DynMultiDep's code filters it)",
                  "source": "the training gender's vlogs of the validation fold (no test-gender label seen before the test)"}
    return ("Train on one gender, test on the other (DynMultiDep's `--train_gender` / `--test_gender`), inside each "
            "dataset's own train / valid / test folds. For each test gender, `same` is the model trained on that "
            "gender's training vlogs, `cross` the model trained on the other gender's; both are tested on the same "
            "vlogs, the test fold's of the test gender, and choose their checkpoint on "
            f"{validation[params.split.gender.validation]} (`split.gender.validation`). Test metrics in %: each "
            f"seed's, mean over seeds; {CI_LEVEL:.0%} bias-corrected percentile CIs from the report's bootstrap of the "
            "test vlogs (subjects when known), the same resamples for both arms; Δ = cross − same, paired resample "
            "by resample; p (ΔF1): the report's paired permutation test. `train` gives each arm's training vlogs: "
            "the genders are not equally many, so Δ holds the change in training size along with the change of gender.")


def _pct(value: float, lo: float, hi: float, sign: str = "") -> str:
    ci = f"[{100 * lo:{sign}.2f}, {100 * hi:{sign}.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "[–]"
    return f"{100 * value:{sign}.2f} {ci}"


def view(part: pd.DataFrame) -> pd.DataFrame:
    """The rows of one (dataset, test gender) as the table shows them."""
    out = pd.DataFrame({"model": part["model"],
                        "train (same / cross)": [f"{int(r['n_train_within'])} / {int(r['n_train_cross'])}"
                                                 for _, r in part.iterrows()]})
    for k in COMPARED:
        for a, name in zip(ARMS, ("same", "cross"), strict=True):
            out[f"{LABELS[k]} {name} [{CI_LEVEL:.0%} CI]"] = [
                _pct(r[f"{k}_{a}"], r[f"{k}_{a}_ci_low"], r[f"{k}_{a}_ci_high"]) for _, r in part.iterrows()]
        out[f"Δ{LABELS[k]} [{CI_LEVEL:.0%} CI]"] = [_pct(r[f"delta_{k}"], r[f"delta_{k}_ci_low"], r[f"delta_{k}_ci_high"], "+")
                                          for _, r in part.iterrows()]
    out["p (ΔF1)"] = [p_value(p) for p in part["delta_f1_p"]]
    out["seeds"] = [str(int(n)) for n in part["n_seeds"]]
    return out.reset_index(drop=True)


def write_table(table: pd.DataFrame, params: Params, paths: dict[str, Path]) -> None:
    from asym.report.latex import to_latex

    independence = {"true": "verified subject-independent", "false": "NOT subject-independent",
                    "unknown": "subject independence could not be verified (no subject ids)"}
    text = caption(params)
    md = ["# Cross-gender: trained on the other gender vs on the same", "", text, "",
          f"Scale `{params.scale}`; models {params.cross_gender_models}; seeds {params.cross_gender_seeds}; "
          f"datasets {params.cross_gender_datasets}.", ""]
    tex = []
    for (ds, gender), part in table.groupby(["dataset", "test_gender"], sort=False):
        first = part.iloc[0]
        v = view(part)
        md += [f"## {ds}, tested on gender {gender}: `{first['within_protocol']}` (same) vs `{first['cross_protocol']}` "
               f"(cross) ({first['n_test']} test vlogs, {first['n_test_depressed']} depressed; "
               f"{independence[first['subject_independent']]})", "",
               v.to_markdown(index=False, disable_numparse=True), ""]
        tex.append(to_latex(v, f"Cross-gender ({ds}, tested on gender {gender}). {text}"))
    write_text(paths[f"{TABLE}_md"], "\n".join(md))
    write_text(paths[f"{TABLE}_tex"], "\n".join(tex))
    with atomic_path(paths[f"{TABLE}_csv"]) as tmp:
        table.to_csv(tmp, index=False)
