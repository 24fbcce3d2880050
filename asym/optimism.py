"""The report's `protocol_optimism` table: what choosing the checkpoint on the reported fold adds.

The optimism study (params.yaml `optimism`) trains each of its models under `kfold` and under
`kfold_select_on_test` on the same outer folds, training parts and seeds (asym.data.splits).
Per dataset and model this sets the honest score beside the optimistic one: the mean ± std over
seeds and outer folds of each (seed, fold)'s test metrics, their difference (optimistic minus
honest) with its paired 95% CI and two-sided p from one bootstrap of the pooled test vlogs
(subjects when known), the same resamples for both protocols and every seed; each vlog is tested
once per seed under each protocol, so the pairing is vlog by vlog. Labels are the saved ones (each
run's decision threshold); only metrics of labels are compared, as the published ones are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import STUDY_PROTOCOLS
from asym.data.splits import OPTIMISTIC_FLAG
from asym.errors import DataError
from asym.io import atomic_path, read_json, write_text
from asym.layout import Layout
from asym.metrics import label_metrics
from asym.stats import bootstrap_p, percentile_ci, resample_weights, weighted_metrics

HONEST, OPTIMISTIC = STUDY_PROTOCOLS
COMPARED = ("accuracy", "f1")
LABELS = {"accuracy": "Acc", "f1": "F1 (dep.)"}
CI_STREAM = 100          # the study's resamples are drawn from their own stream of the report's ci_seed


def load_protocol_runs(params: Any, protocol: str, dataset: str) -> dict[str, Any]:
    """Every study run of `dataset` under `protocol`: labels aligned by test vlog, and the
    metrics of each (model, seed, outer fold)."""
    study = params.for_protocol(protocol)
    layout = Layout.of(study)
    info = read_json(layout.split_json(dataset))
    ref, preds, rows = None, {}, []
    for model in study.models:
        for seed in study.seeds:
            run = Path(layout.run_dir(dataset, model, seed))
            test = pd.read_parquet(run / "predictions.parquet").query("fold == 'test'").sort_values("sample_id")
            if ref is None:
                ref = test
            elif list(test["sample_id"]) != list(ref["sample_id"]):
                raise DataError(run, f"its test vlogs differ from those of the other {protocol} runs of {dataset}")
            preds.setdefault(model, []).append(test["pred"].to_numpy(int))
            for p, part in test.groupby("partition", sort=True):
                rows.append({"model": model, "seed": seed, "partition": int(p),
                             **label_metrics(part["label"].to_numpy(int), part["pred"].to_numpy(int))})
    if ref is None:
        raise DataError(layout.runs, f"no {protocol} runs of {dataset} for the optimism table")
    independent = info.get("subject_independent", "unknown")
    units = ref["subject_id" if independent != "unknown" else "sample_id"].to_numpy(str)
    return {"ids": ref["sample_id"].to_numpy(str), "y": ref["label"].to_numpy(int), "units": units,
            "independent": independent, "preds": {m: np.stack(v) for m, v in preds.items()},
            "units_metrics": pd.DataFrame(rows)}


def _seed_mean(y: np.ndarray, preds: np.ndarray, W: np.ndarray, metric: str) -> np.ndarray:
    """The metric of the labels on every resample, averaged over seeds (a 0/1 score is its label)."""
    return np.mean([weighted_metrics(y, p.astype(float), W)[metric] for p in preds], axis=0)


def compare(params: Any) -> pd.DataFrame:
    """One row per (dataset, model): both protocols' scores, their difference, CI and p."""
    rows = []
    for d_index, ds in enumerate(params.datasets):
        runs = {pr: load_protocol_runs(params, pr, ds) for pr in STUDY_PROTOCOLS}
        honest, optimistic = runs[HONEST], runs[OPTIMISTIC]
        if list(honest["ids"]) != list(optimistic["ids"]):
            raise DataError(None, f"{ds}: the {HONEST} and {OPTIMISTIC} runs were tested on different vlogs")
        W = resample_weights(honest["units"], params.report.bootstrap,
                             np.random.default_rng([params.report.ci_seed, CI_STREAM, d_index]))
        for model in params.study_models:
            row: dict[str, Any] = {"dataset": ds, "model": model, "subject_independent": honest["independent"],
                                   "n_test": len(honest["y"])}
            for pr, r in runs.items():
                units = r["units_metrics"][r["units_metrics"]["model"] == model]
                row[f"n_units_{pr}"] = len(units)
                for k in COMPARED:
                    row[f"{k}_{pr}"] = float(units[k].mean())
                    row[f"{k}_{pr}_std"] = float(units[k].std(ddof=1)) if len(units) > 1 else 0.0
            for k in COMPARED:
                delta = (_seed_mean(optimistic["y"], optimistic["preds"][model], W, k)
                         - _seed_mean(honest["y"], honest["preds"][model], W, k))
                row[f"delta_{k}"] = row[f"{k}_{OPTIMISTIC}"] - row[f"{k}_{HONEST}"]
                row[f"delta_{k}_ci_low"], row[f"delta_{k}_ci_high"] = percentile_ci(delta)
                row[f"delta_{k}_p"] = bootstrap_p(delta)
            rows.append(row)
    return pd.DataFrame(rows)


CAPTION = (f"The cost of selecting on the test fold, measured ({OPTIMISTIC_FLAG} in the `{OPTIMISTIC}` "
           f"columns). Each model trained under `{HONEST}` (the checkpoint chosen on a validation part carved from "
           f"the training folds) and under `{OPTIMISTIC}` (chosen on the very fold that is reported, as the LMVD "
           "authors', MDD-Net's and MMFformer's code do), on the same outer folds, training parts and seeds. "
           "Test metrics in %: mean ± std over seeds and outer folds; Δ = optimistic − honest with its paired "
           "95% bootstrap CI and two-sided p over the pooled test vlogs (subjects when known).")


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _delta(row: pd.Series, k: str) -> str:
    return f"{100 * row[f'delta_{k}']:+.2f} [{100 * row[f'delta_{k}_ci_low']:+.2f}, {100 * row[f'delta_{k}_ci_high']:+.2f}]"


def view(part: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"model": part["model"]})
    for k in COMPARED:
        for pr in STUDY_PROTOCOLS:
            flag = " (optimistic)" if pr == OPTIMISTIC else ""
            out[f"{LABELS[k]} `{pr}`{flag}"] = [_pct(r[f"{k}_{pr}"], r[f"{k}_{pr}_std"]) for _, r in part.iterrows()]
        out[f"Δ{LABELS[k]} [95% CI]"] = [_delta(r, k) for _, r in part.iterrows()]
        out[f"p (Δ{LABELS[k]})"] = [f"{r[f'delta_{k}_p']:.3f}" if r[f"delta_{k}_p"] >= 0.001 else "<0.001"
                                    for _, r in part.iterrows()]
    out["seeds × folds"] = [str(int(n)) for n in part[f"n_units_{HONEST}"]]
    return out.reset_index(drop=True)


def write_table(table: pd.DataFrame, params: Any, paths: dict[str, Path]) -> None:
    from asym.tables import to_latex

    independence = {"true": "verified subject-independent", "false": "NOT subject-independent",
                    "unknown": "subject independence could not be verified (no subject ids)"}
    md = ["# Protocol optimism: selection on validation vs on the test fold", "", CAPTION, "",
          f"Scale `{params.scale}`; models {params.study_models}; seeds {params.study_seeds}; "
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
