"""A model card per (dataset, model): what it was trained on and how, how well it does with what
uncertainty against which floors, per subgroup, and what it must not be used for.

Written by the report step (`reports/model_cards/<dataset>-<model>.md`) from the same summary and
subgroup rows as the tables, plus each seed's training summary and the dataset card; `asym track`
puts the card on the model's registered version in MLflow. Sections follow Mitchell et al.'s "Model
Cards for Model Reporting" (FAT* 2019): details, intended use, data, metrics, subgroups, limits.

A card claims only what its run did, since readers quote it: ASYM's cards open with the rebuild's
provenance; the recipe is listed as trained (its normalisation, and the fold that chose the
checkpoint, with a warning where that was the test fold); a model below paper-scale width says it
is shrunk, with both parameter counts; a seed the report flags as failed is flagged here too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from asym.config import DEFAULT_THRESHOLD, RecipeConfig
from asym.data import formats, protocols
from asym.data.daic_woz import CLNF_RATE, COVAREP_RATE
from asym.errors import ConfigError
from asym.io import read_json, write_text
from asym.layout import Layout
from asym.metrics import CONVENTION
from asym.models import registry
from asym.report.runs import FLOORS, GAP, MIN_GROUP_CLASS
from asym.report.tables import RESULT_METRICS, metric_value

if TYPE_CHECKING:
    from asym.config import Params

FEATURES = {
    "dvlog": "25 eGeMAPS low-level descriptors and 68 facial landmarks (x, y), one row per second",
    "lmvd": "128-d VGGish embeddings (about one row per second) and 68 OpenFace facial landmarks (one video frame "
            "in 30 kept: about one row per second)",
    "daic_woz": f"74 COVAREP acoustic features ({COVAREP_RATE} per second) and 68 CLNF facial landmarks (x, y; "
                f"{CLNF_RATE} frames per second), each averaged over every second",
}
# Where each release's labels come from and who is in it (the releases' papers; datasets.md).
LABELS = {
    "dvlog": "Labels come from four annotators who reviewed each collected vlog against the D-Vlog authors' "
             "annotation criteria (Yoon et al., AAAI 2022): a judgement made from the vlog, not a clinical "
             "assessment of its author.",
    "lmvd": "Labels are the ones LMVD's authors released (He et al., 2024); nothing here checks them against a "
            "clinical assessment of the vloggers.",
    "daic_woz": "Labels are AVEC 2017's PHQ8_Binary: a PHQ-8 score of 10 or more on the participant's own "
                "questionnaire, a screening instrument, not a clinical diagnosis.",
}
POPULATION = {
    "dvlog": "People who posted vlogs on YouTube (January 2020 to January 2021)",
    "lmvd": "People who posted vlogs on Sina Weibo, Bilibili, TikTok and YouTube",
    "daic_woz": "Participants interviewed by a virtual interviewer for the Distress Analysis Interview Corpus "
                "(Gratch et al., LREC 2014)",
}
INDEPENDENCE = {
    "true": "yes: no subject has vlogs in two folds (verified from the subject ids)",
    "false": "no: the split puts vlogs of one subject in several folds, so test scores are optimistic",
    "unknown": "could not be verified: the release has no subject ids, each vlog counts as its own subject",
}
# How new vlogs get the features each format's models read.
NEW_VLOGS = {"dvlog": "`asym predict` applies it to new vlogs (their features made by `asym extract`, with the "
                      "release's landmark column order) for such research only.",
             "lmvd": "`asym predict` applies it to new vlogs whose VGGish and OpenFace features were made as LMVD's "
                     "were (outside asym: `asym extract` writes D-Vlog's features) for such research only.",
             "daic_woz": "`asym predict` applies it to new interviews in DAIC-WOZ's layout (COVAREP and CLNF "
                         "features made as the corpus's were) for such research only.",
             "manifest": "`asym predict` applies it to new vlogs listed in a manifest whose features were made as "
                         "the training data's were, at the same widths, for such research only."}
NOT_DIAGNOSTIC = ("**This is not a diagnostic tool.** Its output is a research model's score for a vlog, "
                  "not a clinical assessment of a person; it must not be used to screen, diagnose, triage or "
                  "make any decision about anyone.")
# The scale at which the baselines take their public code's widths (params.yaml `model.paper`).
PAPER_SCALE = "paper"
# The registry family of ASYM and its variants: their cards open with the rebuild's provenance.
ASYM_FAMILY = "asym"
ASYM_PROVENANCE = (
    "**Provenance: a rebuild from the abstract.** ASYM (Hua, Li, Wen, Zhou, *Front. Psychiatry* 17:1704005, 2026) "
    "is known here from its paper's abstract only: the full text is not public. Where the abstract is silent the "
    "model follows DepMamba's public code (Ye et al., ICASSP 2025), and every hyper-parameter (widths, depths, "
    "kernel sizes, heads, `model.<scale>.asym` in params.yaml) and its training recipe (`recipes.<scale>.asym`) "
    "is an assumption. Its numbers are this rebuild's under those assumptions, not the published model's.")
# What the ablation without the interaction removes, and why it can change nothing (asym.models.asym, asym.nn.mamba).
INTERACTION = (
    "**What is removed.** In the full model the audio and visual Bi-Mambas of each CMIM block scan with one shared "
    "pair of state matrices A (forward and backward, as DepMamba's collaborative SSM); their projections, "
    "convolutions, D and output stay per modality. Tying A is the whole interaction. A starts at the same fixed "
    "value in every block (A_log = log(1, ..., d_state), no random draw), so this variant and the full model start "
    "as the same function from the same weights and see the same batches; they differ only in that here each "
    "stream's A follows its own gradient instead of both following one shared A.")
# What that means at each scale: demo training is too short for the two A to part.
INTERACTION_AT = {
    "demo": "Demo training moves A little, so at demo scale removing the interaction changes next to nothing: "
            "expect its predictions to match the full model's almost exactly, and a tie in the tables is then no "
            "evidence that the module does not matter.",
    "paper": "Whether the two A part far enough over a paper-scale training to matter is what this comparison "
             "measures; at demo scale they do not, and the removal changes next to nothing.",
}
NO_STATE_MATRICES = ("With Transformer layers in place of Bi-Mamba there are no state matrices A to share, so this "
                     "variant has no CMIM interaction either.")
# The registry's words for a baseline built at its public code's widths; true only at those widths.
PUBLIC_CODE = "as its public code builds it"
NORMALISATION = {
    "zscore": "each feature z-scored with the mean and standard deviation of the training fold's frames "
              "(training-fold statistics)",
    "none": "none (the raw features)",
    "per_sample": "each vlog z-scored over its own frames, feature by feature (no statistic shared between vlogs)",
}
SELECTION = {"mean4": "mean of accuracy, precision, recall and F1 (depressed class)", "accuracy": "accuracy",
             "f1": "F1 of the depressed class", "balanced_accuracy": "balanced accuracy", "mcc": "MCC"}
LOSSES = {"bce": "binary cross-entropy on the logit"}
SCHEDULERS = {"none": "none", "cosine": "cosine annealing to zero over the epochs, stepped once per epoch"}
OPTIMISERS = {"adam": "Adam", "adamw": "AdamW"}
WEIGHT_DECAY_ON = {"weights": "weights only (Mamba's A_log and D, norms and biases exempt)",
                   "all": "every parameter"}


def _summaries(params: Params, dataset: str, model: str) -> list[dict[str, Any]]:
    lay = Layout.of(params)
    paths = [lay.run(run).file("summary") for run in params.runs(dataset, model)]
    return [read_json(path) for path in paths if path.is_file()]


def _dataset_card(params: Params, dataset: str) -> dict[str, Any]:
    path = Path(Layout.of(params).card_json(dataset))
    return read_json(path) if path.is_file() else {}


def _release(fmt: str, dataset: str) -> str:
    f = formats.FORMATS.get(fmt)
    if f is None or f.citation is None:
        return f"{dataset} (your data, format `{fmt}`)"
    return f"{f.title} ({f.citation})"


def _widths(params: Params, dataset: str) -> tuple[int, int] | None:
    """The dataset's input widths, as its card records them (what the data holds)."""
    card = _dataset_card(params, dataset)
    return (int(card["audio_dim"]), int(card["visual_dim"])) if "audio_dim" in card and "visual_dim" in card else None


def _threshold_rule(recipe: RecipeConfig) -> str:
    """The recipe's rule for the decision threshold, in words."""
    if recipe.threshold == "valid_f1" and recipe.threshold_grid is not None:
        g = recipe.threshold_grid
        return (f"tuned per seed on the validation fold at the chosen checkpoint: the threshold of {g.low:g} to "
                f"{g.high:g} (step {g.step:g}) with the highest depressed-class F1")
    return f"fixed at {float(recipe.threshold):g}"


def _thresholds(runs: list[dict[str, Any]], recipe: RecipeConfig) -> str:
    """Each seed's (and partition's) threshold from its training summary beside the recipe's rule."""
    values = sorted({float(t) for r in runs for t in np.atleast_1d(r.get("threshold", []))})
    rule = _threshold_rule(recipe)
    if recipe.threshold == "valid_f1" and values:
        return f"{', '.join(f'{t:g}' for t in values)} ({rule})"
    return ", ".join(f"{t:g}" for t in values) if values else rule


def _crop(recipe: RecipeConfig, dataset: str) -> str:
    crop = recipe.crop
    if crop.kind == "random_window":
        return f"one random window of {crop.min_frames_for(dataset)} to {crop.max_frames} frames per vlog and epoch"
    if crop.kind == "offline":
        return (f"up to {crop.n_crops} random crops of at least {crop.min_frames_for(dataset)} frames added beside "
                "each whole training vlog, once before training")
    return "none (whole vlogs)"


def _loss(recipe: RecipeConfig) -> str:
    c = recipe.combined_loss
    text = LOSSES.get(recipe.loss, recipe.loss)
    if recipe.loss == "combined" and c is not None:
        text = (f"MDD-Net's combined loss: cross-entropy on targets smoothed by {c.smoothing:g}, plus "
                f"{c.focal_weight:g} x a focal term (alpha {c.focal_alpha:g}, gamma {c.focal_gamma:g}), plus "
                f"{c.l2_weight:g} x {c.l2_lambda:g} x the parameters' L2 norms")
    if recipe.class_weighting == "balanced":
        text += "; the depressed class weighted by the training fold's class ratio"
    return text


def _scheduler(recipe: RecipeConfig, dataset: str) -> str:
    if recipe.scheduler == "plateau" and recipe.plateau is not None:
        factor = _for_dataset(recipe.plateau.factor_for, dataset)
        return (f"ReduceLROnPlateau on the validation loss (factor {'–' if factor is None else f'{factor:g}'}, "
                f"patience {recipe.plateau.patience})")
    return SCHEDULERS.get(recipe.scheduler, recipe.scheduler)


def selection_fold(protocol: str, runs: list[dict[str, Any]]) -> str:
    """The fold that chose the checkpoints: as the runs recorded it, else as the protocol implies."""
    recorded = {r.get("selection_fold") for r in runs} - {None}
    if recorded:
        return "test" if "test" in recorded else "valid"
    return protocols.get(protocol).selection_fold


def _for_dataset(value_for: Callable[[str], float], dataset: str) -> float | None:
    """A recipe's per-dataset value as training took it (its `default:` entry for a dataset it does not
    name), or None where it has neither."""
    try:
        return value_for(dataset)
    except ConfigError:
        return None


def recipe_lines(recipe: RecipeConfig, name: str, dataset: str, protocol: str, runs: list[dict[str, Any]]) -> list[str]:
    """The training recipe as run: every setting a reader needs to reproduce or judge it."""
    lr = _for_dataset(recipe.lr_for, dataset)
    betas = f", betas {tuple(recipe.betas)}" if recipe.betas is not None else ""
    decay = (f"{recipe.weight_decay:g} on {WEIGHT_DECAY_ON[recipe.weight_decay_on]}" if recipe.weight_decay > 0
             else "none")
    fold = selection_fold(protocol, runs)
    chosen = (f"on the **test** fold, the fold it is scored on (protocol `{protocol}`): the test metrics below are "
              "optimistic" if fold == "test" else "on the validation fold")
    return [
        f"- Recipe `{name}`:",
        f"  - optimiser {OPTIMISERS.get(recipe.optimizer, recipe.optimizer)}{betas}, learning rate "
        f"{'–' if lr is None else f'{lr:g}'} on {dataset}, weight decay {decay}; scheduler "
        f"{_scheduler(recipe, dataset)}; gradient clipping "
        f"{'none' if recipe.grad_clip is None else f'at norm {recipe.grad_clip:g}'};",
        f"  - normalisation: {NORMALISATION.get(recipe.normalize, recipe.normalize)};",
        f"  - crops: {_crop(recipe, dataset)};",
        f"  - loss: {_loss(recipe)};",
        f"  - {recipe.epochs} epochs, batch {recipe.batch_size};",
        f"  - checkpoint: the epoch with the best {SELECTION.get(recipe.selection_metric, recipe.selection_metric)}, "
        f"scored at threshold {DEFAULT_THRESHOLD:g} and chosen {chosen};",
        f"  - decision threshold: {_threshold_rule(recipe)}.",
    ]


def trainable_parameters(params: Params, model: str, dataset: str, scale: str) -> int | None:
    """Trainable parameters of `model` at `scale` on `dataset`'s input widths, as a run counts them; None where
    the model cannot be built there (an unknown dataset or widths, a scale without the family's block)."""
    from asym.models import factory

    entry = registry.get(model)
    try:
        widths = _widths(params, dataset)
        if widths is None:
            return None
        config = getattr(params.data.model.at(scale), entry.family).resolved(dataset, dict(entry.overrides))
        net = factory.build(model, *widths, config)
    except (ConfigError, KeyError, ValueError, AttributeError):
        return None
    return factory.trainable_count(net)


def size_lines(scale: str, entry: registry.Entry, n_params: int | None, paper: int | None) -> list[str]:
    """The model's size and whether it is the paper-scale size (`paper`: its trainable parameters at `paper`
    scale): a demo-scale model is shrunk, and its card says so with both counts."""
    if not isinstance(n_params, int):
        return ["- Parameters: – (no finished run)."]
    public = PUBLIC_CODE in entry.description
    if paper is None or paper == n_params:
        widths = " at its public code's widths" if public and (paper == n_params or scale == PAPER_SCALE) else ""
        return [f"- Parameters: {n_params:,} (trainable){widths}."]
    return [f"- Parameters: {n_params:,} (trainable): **shrunk** at `{scale}` scale from the {paper:,} of "
            f"`{PAPER_SCALE}` scale, so not the capacity "
            + ("its public code builds." if public else "of the paper-scale model.")]


def plugin_lines(model: str, run: dict[str, Any]) -> list[str]:
    """Where a plug-in model comes from: its file (outside the asym package) and the sha256 its
    runs were trained with (their train.json's), or the file's now before any run finished."""
    plugin = run.get("plugin") or registry.plugin_of(model)
    if not plugin:
        return []
    return [f"- A **plug-in** (the user's own model, outside the asym package): declared in `{plugin['file']}` "
            f"(module `{plugin['module']}`, sha256 `{plugin['sha256'][:12]}`), listed under `plugins` in the params file."]


def description(entry: registry.Entry, full_size: bool) -> str:
    """The registry's description, claiming the public code's build only where the size is that build's."""
    text = entry.description
    if not full_size:
        text = text.replace(f", {PUBLIC_CODE}", "").replace(f" {PUBLIC_CODE}", "")
    return text


def failure_lines(row: pd.Series | None) -> list[str]:
    """A warning block where the report flagged failed seeds (`failed_seeds`, `failure`); none otherwise."""
    seeds = _text(row.get("failed_seeds") if row is not None else None)
    if not seeds:
        return []
    reason = _text(row.get("failure"))
    return [f"> **Warning: failed seed(s) {seeds}.** " + (f"{reason[0].upper()}{reason[1:].rstrip('.')}. " if reason else "")
            + "Such a seed's test labels say nothing about the model's skill; read the numbers below with it in "
            "mind (each seed's `train.json` and `history.csv` are in its run folder).", ""]


def _text(value: Any) -> str:
    """A summary cell as text: empty for a missing one (None, NaN); a seed read back as a number (`0`, or `0.0` in
    a column with empty cells) as the integer it is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _row(summary: pd.DataFrame, dataset: str, model: str) -> pd.Series | None:
    rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
    return None if rows.empty else rows.iloc[0]


def metrics_table(summary: pd.DataFrame, dataset: str, model: str) -> list[str]:
    """Test metrics (mean ± std over seeds, 95% CI) beside the floors of each metric (a floor shows
    only the metrics it is a floor for: asym.metrics.FLOOR_METRICS)."""
    row = _row(summary, dataset, model)
    floors = {f: _row(summary, dataset, f) for f in FLOORS}
    lines = ["| metric | convention | mean ± std | 95% CI | " + " | ".join(f"{f} floor" for f in floors) + " |",
             "|---|---|---:|---:|" + "---:|" * len(floors)]
    for k in RESULT_METRICS:
        if row is None or k not in row:
            continue
        std = row.get(f"{k}_std", np.nan)
        ci = f"[{metric_value(k, row.get(f'{k}_ci_low'))}, {metric_value(k, row.get(f'{k}_ci_high'))}]"
        floor = [metric_value(k, f[k]) if f is not None and k in f else "–" for f in floors.values()]
        lines.append(f"| {k} | {CONVENTION[k]} | {metric_value(k, row[k])} ± {metric_value(k, std)} | {ci} | "
                     + " | ".join(floor) + " |")
    return lines


def _with_ci(r: dict[str, Any], k: str) -> str:
    if not r.get("tested", True):
        return "too small to test"
    lo, hi = r.get(f"{k}_ci_low", np.nan), r.get(f"{k}_ci_high", np.nan)
    ci = f" [{metric_value(k, lo)}, {metric_value(k, hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    between = r.get(f"{k}_between")                # a gap: which two groups, per metric
    return metric_value(k, r[k]) + ci + (f" ({between})" if isinstance(between, str) and between else "")


def fairness_table(fair: pd.DataFrame, dataset: str, model: str) -> list[str]:
    """Each subgroup's counts and Acc/F1 with its 95% CI; too-small groups marked, and each
    attribute's gap between its tested groups (asym.report.aggregate.fairness)."""
    rows = fair[(fair["dataset"] == dataset) & (fair["model"] == model)] if len(fair) else fair
    if rows.empty:
        return ["No subgroup rows (no test vlogs with known groups)."]
    lines = ["| attribute | group | n (depressed / normal) | accuracy [95% CI] | F1 (depressed) [95% CI] |",
             "|---|---|---:|---:|---:|"]
    for r in rows.to_dict("records"):
        n = ""
        if r["group"] != GAP:              # a gap's row has no counts of its own
            n = "" if r["n"] != r["n"] else str(int(r["n"]))
            if "n_depressed" in r and r["n_depressed"] == r["n_depressed"]:
                n += f" ({int(r['n_depressed'])} / {int(r['n_normal'])})"
        lines.append(f"| {r['attribute']} | {r['group']} | {n} | {_with_ci(r, 'accuracy')} | {_with_ci(r, 'f1')} |")
    return lines


def render(params: Params, summary: pd.DataFrame, fair: pd.DataFrame, dataset: str, model: str) -> str:
    entry = registry.get(model)
    runs = _summaries(params, dataset, model)
    first = runs[0] if runs else {}
    card = _dataset_card(params, dataset)
    row = _row(summary, dataset, model)
    protocol = (row.get("protocol") if row is not None else None) or params.protocol(dataset)
    independence = str(row.get("subject_independent", "unknown")) if row is not None else "unknown"
    fmt = card.get("format", "")
    # the demo generator's data: as the fetched release's provenance says, else as params.yaml's source
    synthetic = bool(card.get("synthetic", params.dataset(dataset).source == "demo"))
    sizes = ", ".join(f"{k.removeprefix('n_')} {' / '.join(str(n) for n in np.atleast_1d(v))}"
                      for k in ("n_train", "n_valid", "n_test") if (v := first.get(k)) is not None)
    recipe_name = first.get("recipe_name", entry.recipe)
    recipe = RecipeConfig.model_validate(first["recipe"]) if first.get("recipe") else params.recipe(recipe_name)
    scale = first.get("scale", params.scale)
    n_params = first.get("n_params")
    paper = (n_params if scale == PAPER_SCALE else trainable_parameters(params, model, dataset, PAPER_SCALE)) \
        if isinstance(n_params, int) else None
    full_size = scale == PAPER_SCALE or (paper is not None and paper == n_params)
    asym_family = entry.family == ASYM_FAMILY
    notes = []
    if entry.overrides.get("use_mamba_interaction") is False:
        notes = [f"- {INTERACTION} {INTERACTION_AT.get(scale, INTERACTION_AT[PAPER_SCALE])}"]
    elif entry.overrides.get("sequence_block") == "transformer":
        notes = [f"- {NO_STATE_MATRICES}"]
    optimistic = selection_fold(protocol, runs) == "test"
    lines = [
        f"# Model card: `{model}` on {dataset}",
        "",
        NOT_DIAGNOSTIC,
        "",
        *([ASYM_PROVENANCE, ""] if asym_family else []),
        *failure_lines(row),
        *([f"> **Optimistic numbers.** Under protocol `{protocol}` each checkpoint was chosen on the test fold it "
           "is scored on, so the test metrics below are biased upward and not comparable with a held-out test.",
           ""] if optimistic else []),
        "## Model",
        "",
        f"- **{model}** ({entry.kind}{', a variant of the ASYM rebuild' if entry.kind == registry.ABLATION_KIND else ''}): "
        f"{description(entry, full_size)}.",
        *notes,
        *size_lines(scale, entry, n_params if isinstance(n_params, int) else None, paper),
        *plugin_lines(model, first),
        f"- Scale `{scale}`; seeds {list(params.seeds)}; registry entry digest `{entry.digest()}`.",
        *recipe_lines(recipe, recipe_name, dataset, protocol, runs),
        f"- Decision thresholds used: {_thresholds(runs, recipe)} (the probability of the depressed class at or "
        "above which a vlog is labelled depressed).",
        "",
        "## Training data and protocol",
        "",
        f"- Dataset: {_release(fmt, dataset)}; source `{card.get('source', '–')}`"
        + (" — **synthetic demo data** in the release's layout: these numbers show that the pipeline works and say "
           "nothing about depression." if synthetic else "."),
        f"- {card.get('n_samples', '–')} vlogs ({card.get('n_depressed', '–')} depressed, "
        f"{card.get('n_normal', '–')} normal); {card.get('audio_dim', '–')} acoustic + {card.get('visual_dim', '–')} "
        f"visual features per row: {FEATURES.get(fmt, 'about one row per second')}.",
        f"- Protocol `{protocol}`" + (f"; vlogs per fold: {sizes}." if sizes else "."),
        f"- Subject independence: {INDEPENDENCE.get(independence, independence)}.",
        "",
        "## Test metrics",
        "",
        "In % (MCC as is): mean ± std over seeds of each seed's metric, its test labels pooled over its partitions "
        "(outer folds under `kfold`); 95% CI from a bias-corrected bootstrap of the test set, so it covers test sampling only, not the spread over seeds; floors from the training fold's "
        "labels, each shown only for the metrics it is a floor for (`majority` always answers its majority class, and its "
        "depressed-class P/R/F1 are no floor where that class is normal, since it never names a depressed vlog (P is 0/0, "
        "R and F1 are 0); `always-depressed` is the floor of the "
        "depressed-class P/R/F1; `chance` guesses at the training fold's rate)."
        + (" Optimistic: the checkpoint was chosen on this test fold." if optimistic else ""),
        "",
        *metrics_table(summary, dataset, model),
        "",
        "## Subgroups",
        "",
        "Accuracy and depressed-class F1 per gender (where the release gives it) and per vlog-length tercile of "
        "the test set, mean over seeds, with 95% CIs from a bootstrap of the group's vlogs (subjects when known); "
        f"a group with fewer than {MIN_GROUP_CLASS} depressed or {MIN_GROUP_CLASS} normal vlogs is too small to test, "
        "and the gap is best minus worst among the tested groups.",
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
        f"- {LABELS.get(fmt, 'Labels are those the release gives; nothing here checks them clinically.')}",
        f"- {POPULATION.get(fmt, 'People who post vlogs')} are not a clinical population: nothing here measures how "
        "the model would do on patients, in another language or culture, on other recording set-ups, or over time.",
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
