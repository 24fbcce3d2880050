"""A model card per (dataset, model): what it was trained on and how, how well it does with what
uncertainty against which floors, per subgroup, and what it must not be used for.

Written by the report step (`reports/model_cards/<dataset>-<model>.md`) from the same summary and
subgroup rows as the tables, plus each seed's training summary and the dataset card; `asym track`
puts the card on the model's registered version in MLflow. Sections follow Mitchell et al.'s "Model
Cards for Model Reporting" (FAT* 2019): details, intended use, data, metrics, subgroups, limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from asym.data.sample import RELEASES
from asym.io import read_json, write_text
from asym.layout import Layout
from asym.metrics import CONVENTION
from asym.models import registry
from asym.report.tables import RESULT_METRICS, metric_value

if TYPE_CHECKING:
    from asym.config import Params

FEATURES = {"dvlog": "25 eGeMAPS low-level descriptors and 68 facial landmarks per second",
            "lmvd": "128 VGGish embeddings and 68 OpenFace facial landmarks per frame"}
INDEPENDENCE = {
    "true": "yes: no subject has vlogs in two folds (verified from the subject ids)",
    "false": "no: the split puts vlogs of one subject in several folds, so test scores are optimistic",
    "unknown": "could not be verified: the release has no subject ids, each vlog counts as its own subject",
}
# How new vlogs get the features each format's models read.
NEW_VLOGS = {"dvlog": "`asym predict` applies it to new vlogs (their features made by `asym extract`, with the "
                      "release's landmark column order) for such research only.",
             "lmvd": "`asym predict` applies it to new vlogs whose VGGish and OpenFace features were made as LMVD's "
                     "were (outside asym: `asym extract` writes D-Vlog's features) for such research only."}
NOT_DIAGNOSTIC = ("**This is not a diagnostic tool.** Its output is a research model's score for a vlog, "
                  "not a clinical assessment of a person; it must not be used to screen, diagnose, triage or "
                  "make any decision about anyone.")


def _summaries(params: Params, dataset: str, model: str) -> list[dict[str, Any]]:
    lay = Layout.of(params)
    paths = [lay.run(run).file("summary") for run in params.runs(dataset, model)]
    return [read_json(path) for path in paths if path.is_file()]


def _dataset_card(params: Params, dataset: str) -> dict[str, Any]:
    path = Path(Layout.of(params).card_json(dataset))
    return read_json(path) if path.is_file() else {}


def _release(fmt: str) -> str:
    name, paper = RELEASES.get(fmt, (fmt, None))
    return f"{name} ({paper})" if paper else name


def _thresholds(params: Params, runs: list[dict[str, Any]], recipe_name: str) -> str:
    """Each seed's (and partition's) threshold from its training summary; before any run, the recipe's rule."""
    values = sorted({float(t) for r in runs for t in np.atleast_1d(r.get("threshold", []))})
    return ", ".join(f"{t:g}" for t in values) if values else str(params.recipe(recipe_name).threshold)


def _row(summary: pd.DataFrame, dataset: str, model: str) -> pd.Series | None:
    rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
    return None if rows.empty else rows.iloc[0]


def metrics_table(summary: pd.DataFrame, dataset: str, model: str) -> list[str]:
    """Test metrics (mean ± std over seeds, 95% CI) beside the majority and chance floors."""
    row = _row(summary, dataset, model)
    floors = {f: _row(summary, dataset, f) for f in ("majority", "chance")}
    lines = ["| metric | convention | mean ± std | 95% CI | majority floor | chance floor |",
             "|---|---|---:|---:|---:|---:|"]
    for k in RESULT_METRICS:
        if row is None or k not in row:
            continue
        std = row.get(f"{k}_std", np.nan)
        ci = f"[{metric_value(k, row.get(f'{k}_ci_low'))}, {metric_value(k, row.get(f'{k}_ci_high'))}]"
        floor = [metric_value(k, f[k]) if f is not None and k in f else "–" for f in floors.values()]
        lines.append(f"| {k} | {CONVENTION[k]} | {metric_value(k, row[k])} ± {metric_value(k, std)} | {ci} | {floor[0]} | {floor[1]} |")
    return lines


def fairness_table(fair: pd.DataFrame, dataset: str, model: str) -> list[str]:
    rows = fair[(fair["dataset"] == dataset) & (fair["model"] == model)] if len(fair) else fair
    if rows.empty:
        return ["No subgroup rows (no test vlogs with known groups)."]
    lines = ["| attribute | group | n | accuracy | F1 (depressed) |", "|---|---|---:|---:|---:|"]
    for r in rows.to_dict("records"):
        n = "" if r["n"] != r["n"] else str(int(r["n"]))
        lines.append(f"| {r['attribute']} | {r['group']} | {n} | {metric_value('accuracy', r['accuracy'])} | "
                     f"{metric_value('f1', r['f1'])} |")
    return lines


def render(params: Params, summary: pd.DataFrame, fair: pd.DataFrame, dataset: str, model: str) -> str:
    entry = registry.get(model)
    runs = _summaries(params, dataset, model)
    first = runs[0] if runs else {}
    card = _dataset_card(params, dataset)
    row = _row(summary, dataset, model)
    protocol = (row.get("protocol") if row is not None else None) or params.protocol(dataset)
    independence = str(row.get("subject_independent", "unknown")) if row is not None else "unknown"
    fmt = card.get("format") or params.dataset(dataset).format
    # the demo generator's data: as the fetched release's provenance says, else as params.yaml's source
    synthetic = bool(card.get("synthetic", params.dataset(dataset).source == "demo"))
    sizes = ", ".join(f"{k} {v}" for k in ("n_train", "n_valid", "n_test") if (v := first.get(k)) is not None)
    recipe = first.get("recipe", {})
    lines = [
        f"# Model card: `{model}` on {dataset}",
        "",
        NOT_DIAGNOSTIC,
        "",
        "## Model",
        "",
        f"- **{model}** ({entry.kind}): {entry.description}.",
        f"- Parameters: {n_params:,}." if isinstance(n_params := first.get("n_params"), int) else "- Parameters: –.",
        f"- Scale `{params.scale}`; seeds {list(params.seeds)}; registry entry digest `{entry.digest()}`.",
        f"- Recipe `{first.get('recipe_name', entry.recipe)}`"
        + (f": optimiser {recipe.get('optimizer')}, {recipe.get('epochs')} epochs, batch {recipe.get('batch_size')}, "
           f"normalisation `{recipe.get('normalize')}` (training-fold statistics), checkpoint chosen on the "
           f"validation fold by `{recipe.get('selection_metric')}`." if recipe else "."),
        f"- Decision threshold: {_thresholds(params, runs, first.get('recipe_name', entry.recipe))} (probability of the depressed "
        "class at or above which a vlog is labelled depressed).",
        "",
        "## Training data and protocol",
        "",
        f"- Dataset: {_release(fmt)}; source `{card.get('source', '–')}`"
        + (" — **synthetic demo data** in the release's layout: these numbers show that the pipeline works and say "
           "nothing about depression." if synthetic else "."),
        f"- {card.get('n_samples', '–')} vlogs ({card.get('n_depressed', '–')} depressed, "
        f"{card.get('n_normal', '–')} normal); features per second: "
        f"{card.get('audio_dim', '–')} acoustic + {card.get('visual_dim', '–')} visual.",
        f"- Protocol `{protocol}`" + (f"; vlogs per fold: {sizes}." if sizes else "."),
        f"- Subject independence: {INDEPENDENCE.get(independence, independence)}.",
        "",
        "## Test metrics",
        "",
        "In % (MCC as is): mean ± std over seeds (and outer folds under `kfold`); 95% CI from a bootstrap of the "
        "test set; floors from the training fold's labels (`majority` always answers its majority class, "
        "`chance` guesses at its rate).",
        "",
        *metrics_table(summary, dataset, model),
        "",
        "## Subgroups",
        "",
        "Accuracy and depressed-class F1 per gender (where the release gives it) and per vlog-length tercile of "
        "the test set, mean over seeds; `gap` is the largest difference between an attribute's groups. Small "
        "groups make these rough.",
        "",
        *fairness_table(fair, dataset, model),
        "",
        "## Intended use",
        "",
        f"Research on automatic depression recognition from vlogs, on {dataset} and data prepared the same way: "
        f"comparing methods, ablations and protocols, and studying their failure modes. {NEW_VLOGS.get(fmt, '')}",
        "",
        "## Limits",
        "",
        "- Labels come from vlogs whose authors said they had (or had not) been diagnosed with depression: they "
        "are self-reported and unverified, not clinical assessments.",
        "- Vloggers who post on YouTube are not a clinical population: nothing here measures how the model would "
        "do on patients, in another language or culture, on other recording set-ups, or over time.",
        f"- The model sees {FEATURES.get(fmt, 'per-second acoustic and visual features')}: "
        "anything that changes them (lighting, camera, microphone, editing, faces other than the vlogger's) "
        "changes its output.",
        "- Subgroup results are on small test sets and only for the attributes the release records.",
        *(["- The facial-landmark model used by `asym extract` (dlib's 68 points) is trained on iBUG 300-W, "
           "licensed for research use only."] if fmt == "dvlog" else []),
        "",
        NOT_DIAGNOSTIC,
        "",
    ]
    return "\n".join(lines)


def write_model_cards(params: Params, summary: pd.DataFrame, fair: pd.DataFrame) -> dict[str, Path]:
    """Every (dataset, model) card of the run, written atomically; returns them by path key."""
    lay = Layout.of(params)
    out: dict[str, Path] = {}
    for ds in params.datasets:
        for model in params.models:
            path = Path(lay.model_card(ds, model))
            write_text(path, render(params, summary, fair, ds, model))
            out[f"{ds}/{model}"] = path
    return out
