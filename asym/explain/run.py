"""`asym explain`: one trained run (or every run of the grid) explained on its own test vlogs.

Each partition's model is attributed on that partition's test fold, which it never trained on,
with its own normaliser and the baseline of its own training fold (asym.explain.attribute). The
same architecture, re-initialised from the checkpoint's config with `explain.random_seed`, is
attributed the same way on the same vlogs: Adebayo et al.'s (2018) model-randomisation check.
Attributions that barely change when the weights are random describe the architecture and the
inputs, not what the model learnt.

Outputs, per run, in <reports>/explain/ (each written atomically):
  <dataset>-<model>-seed<k>.md          the report
  <dataset>-<model>-seed<k>.csv         shares per modality, feature group and feature
  <dataset>-<model>-seed<k>-vlogs.csv   per vlog: logit, convergence delta, each modality's share
  <dataset>-<model>-seed<k>.json        the headline numbers (modality shares, sanity check, completeness)
  <dataset>-<model>-seed<k>-groups.png  share of attribution vs share of features, per group
  <dataset>-<model>-seed<k>-timelines/timeline-<i>.png   `explain.timelines` vlogs' attribution over time,
                                        i = 1.., from the lowest logit to the highest (each names its vlog)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from asym.config import ExplainConfig, Params
from asym.data import formats, protocols
from asym.data.splits import load_partitions
from asym.errors import DataError
from asym.explain import plots, summary
from asym.explain.attribute import VlogAttribution, attribute, training_mean
from asym.explain.groups import Columns, columns_of
from asym.inference.predict import DISCLAIMER, RunModel, load_run, model_builder
from asym.io import atomic_path, write_json, write_text
from asym.layout import TRAIN_FILES, Layout, explain_outputs

# A group's key in the JSON (and so in a tracker's metric names): letters, digits, `_`, `.`, `-` only.
UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")
PERCENT = 100.0
METHOD = ("Captum's IntegratedGradients of the depressed-class logit (Sundararajan et al., 2017), Gauss-Legendre "
          "path of {n_steps} steps from the baseline")
BASELINE = ("the training fold's mean model input after the run's normalisation, on every real frame (zero on padded "
            "frames, as the input there): zeros after z-scoring (per fold or per vlog), the raw training mean for "
            "raw features. It is the \"absent\" input of the robustness study")


@dataclass
class Explained:
    """One run's attributions, trained and re-initialised, on the same test vlogs."""

    run: RunModel
    columns: tuple[Columns, Columns]
    trained: list[VlogAttribution]
    randomised: list[VlogAttribution]
    baseline_max_abs: float            # how far the baseline is from zero (0 after z-scoring)



def _test_folds(params: Params, dataset: str, n_partitions: int, where: Path) -> list[dict[str, Any]]:
    layout = Layout.of(params)
    _, partitions = load_partitions(Path(layout.parquet(dataset)), Path(layout.split_csv(dataset)),
                                    subjects_disjoint=protocols.get(params.protocol(dataset)).subject_disjoint)
    if len(partitions) != n_partitions:
        raise DataError(where, f"{n_partitions} partition(s) in the checkpoint, {len(partitions)} in "
                        f"{layout.split_csv(dataset)}: the run was trained on another split")
    return partitions


def _capped(tables: list[Any], cap: int | None) -> list[Any]:
    """The first `cap` test vlogs, taken from the partitions in turn (all of them without a cap)."""
    if cap is None:
        return tables
    left, out = cap, []
    for t in tables:
        out.append(t.select(range(min(left, len(t)))))
        left -= len(out[-1])
    return out


def explain(params: Params, run_dir: Path, device: torch.device, cfg: ExplainConfig | None = None) -> Explained:
    """Attributions of one run (a seed folder) and of its re-initialised twin on its test vlogs."""
    cfg = cfg or params.explain
    run = load_run(run_dir, device)
    meta = run.meta
    ckpt = Path(run_dir) / TRAIN_FILES["checkpoint"]
    partitions = _test_folds(params, meta["dataset"], len(run.models), ckpt)
    first = partitions[0]["test"]
    widths = (first.audio[0].shape[1], first.visual[0].shape[1])
    if widths != (int(meta["audio_dim"]), int(meta["visual_dim"])):
        raise DataError(ckpt, f"trained on {meta['audio_dim']} + {meta['visual_dim']} features, but dataset "
                        f"{meta['dataset']!r} of {params.path} has {widths[0]} + {widths[1]}")
    order = params.data.extract.landmark_order if params.data.extract is not None else "xy_blocks"
    columns = columns_of(meta["format"], widths, cfg.generic_groups, order)
    torch.manual_seed(cfg.random_seed)
    random_model = model_builder(meta, ckpt)().to(device).eval()
    tests = _capped([p["test"] for p in partitions], cfg.max_vlogs)
    trained, randomised, far = [], [], 0.0
    for model, norm, part, test in zip(run.models, run.norms, partitions, tests, strict=True):
        if len(test) == 0:
            continue
        baseline = training_mean(part["train"], norm)
        far = max(far, float(max(np.abs(b).max() for b in baseline)))
        for m, out in ((model, trained), (random_model, randomised)):
            out += attribute(m, test, norm, baseline, cfg.n_steps, cfg.internal_batch_size, device)
    if not trained:
        raise DataError(ckpt, "no test vlog to explain")
    return Explained(run, columns, trained, randomised, far)


def outputs(reports: Path, dataset: str, model: str, seed: int) -> dict[str, Path]:
    """Every output of `asym explain` for one run in `reports`, by name (asym.layout.Layout.explain_outputs)."""
    return {k: Path(v) for k, v in explain_outputs(Path(reports).as_posix(), dataset, model, seed).items()}


def timeline_file(folder: Path, i: int) -> Path:
    """The i-th timeline (1, 2, ...: from the lowest logit to the highest) in a run's timeline folder."""
    return Path(folder) / f"timeline-{i}.png"


def _timeline_picks(attrs: list[VlogAttribution], k: int) -> list[int]:
    """min(k, vlogs) distinct vlogs spread from the lowest to the highest logit, in that order."""
    ranked = np.argsort([a.logit for a in attrs], kind="stable")
    return [int(ranked[i]) for i in np.round(np.linspace(0, len(attrs) - 1, min(k, len(attrs)))).astype(int)]


def _pct(x: float) -> str:
    return f"{PERCENT * x:.1f}%"


def _markdown(e: Explained, cfg: ExplainConfig, rows: pd.DataFrame, rho: float, vlogs: pd.DataFrame,
              figures: list[str]) -> str:
    m = e.run.meta
    t, r = summary.Shares.of(e.trained, e.columns[0].width), summary.Shares.of(e.randomised, e.columns[0].width)
    rel = _relative_delta(vlogs)
    lines = [f"# Attributions: {m['model']} on {formats.title(m['format'])} ({m['dataset']}), seed {m['seed']}", "",
             f"> {plots.CAPTION}. The model is a {DISCLAIMER}.", "",
             f"- Run: `{e.run.run_dir}`; {len(e.trained)} test vlog(s) of {len(e.run.models)} partition(s), each "
             "attributed by the partition's model that never trained on it.",
             f"- Method: {METHOD.format(n_steps=cfg.n_steps)}; attributions summed as |attribution|.",
             f"- Baseline: {BASELINE} (largest |baseline| here: {e.baseline_max_abs:.2g}).",
             f"- Completeness: the median |convergence delta| is {PERCENT * rel:.2g}% of |logit - baseline logit| "
             "(sum of attributions against the change of the logit; small means enough steps).",
             "- Shares: each vlog's |attribution| as shares of its own total, then averaged over vlogs (every vlog "
             "weighs the same).", ""]
    lines += ["## Modalities", "",
              "| modality | share of features | share of attribution (mean ± sd over vlogs) | re-initialised |",
              "|---|---|---|---|"]
    modality_rows = rows[rows["level"] == "modality"]
    for j, c in enumerate(e.columns):
        lines.append(f"| {c.modality} | {_pct(modality_rows.iloc[j]['feature_share'])} | "
                     f"{_pct(t.modality[:, j].mean())} ± {_pct(t.modality[:, j].std())} | {_pct(r.modality[:, j].mean())} |")
    lines += ["", "## Feature groups", "",
              "Shares of all attribution (both modalities), and within the group's own modality.", "",
              "| modality | group | features | share of features | share of attribution | re-initialised | "
              "share of features (modality) | share of attribution (modality) | re-initialised (modality) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for _, g in rows.query("level == 'group'").iterrows():
        lines.append(f"| {g['modality']} | {g['name']} | {g['n_features']} | {_pct(g['feature_share'])} | "
                     f"{_pct(g['attribution_share'])} | {_pct(g['random_attribution_share'])} | "
                     f"{_pct(g['feature_share_in_modality'])} | {_pct(g['attribution_share_in_modality'])} | "
                     f"{_pct(g['random_attribution_share_in_modality'])} |")
    lines += ["", "Groups: " + "; ".join(f"{c.modality}: {c.scheme}" for c in e.columns) + "."]
    generic = [c.modality for c in e.columns if c.generic]
    if generic:
        lines += ["", f"No column names are known for the {' and '.join(generic)} features of this format: their "
                  "groups are contiguous blocks of columns, which locate attribution but do not name it."]
    feats = rows.query("level == 'feature'").sort_values("attribution_share", ascending=False).head(10)
    lines += ["", "## Top features", "", "| modality | feature | share of attribution | re-initialised |",
              "|---|---|---|---|"]
    lines += [f"| {f['modality']} | {f['name']} | {_pct(f['attribution_share'])} | "
              f"{_pct(f['random_attribution_share'])} |" for _, f in feats.iterrows()]
    lines += ["", "## Sanity check: model randomisation (Adebayo et al., 2018)", "",
              f"The same architecture, re-initialised from the checkpoint's config (seed {cfg.random_seed}), "
              "attributed the same way on the same vlogs. Spearman rank correlation of the per-feature attribution "
              f"(mean |attribution| per feature, {len(t.per_feature_mass)} features): **{rho:.3f}**. Near 1, the "
              "attributions would describe the architecture and the inputs rather than what the model learnt; the "
              "group shares of both models are side by side above.", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def _relative_delta(vlogs: pd.DataFrame) -> float:
    """Median |convergence delta| over |logit - baseline logit|: how far the sum of attributions is
    from the change it explains."""
    gap = np.abs(vlogs["logit"] - vlogs["baseline_logit"])
    return float(np.median(np.abs(vlogs["convergence_delta"]) / np.maximum(gap, 1e-12)))


def group_key(modality: str, name: str) -> str:
    """`modality.group` with anything but letters, digits, `_`, `.`, `-` turned into `_`."""
    return f"{modality}.{UNSAFE_KEY.sub('_', name).strip('_')}"


def headline(e: Explained, cfg: ExplainConfig, rows: pd.DataFrame, rho: float, vlogs: pd.DataFrame) -> dict[str, Any]:
    """The numbers a tracker logs of one run's explanation (modality and group shares keyed by
    `group_key`, safe as metric names)."""
    groups = rows[rows["level"] != "feature"]
    return {"n_vlogs": len(e.trained), "n_steps": cfg.n_steps, "spearman_vs_randomised": rho,
            "median_relative_delta": _relative_delta(vlogs),
            **{col: {group_key(g["modality"], g["name"]): float(g[col]) for _, g in groups.iterrows()}
               for col in ("attribution_share", "random_attribution_share", "feature_share")}}


def write(e: Explained, cfg: ExplainConfig, reports: Path) -> list[Path]:
    """The run's report, tables and figures in <reports>/explain/; the paths written."""
    m = e.run.meta
    files = outputs(reports, m["dataset"], m["model"], int(m["seed"]))
    width = e.columns[0].width
    t, r = summary.Shares.of(e.trained, width), summary.Shares.of(e.randomised, width)
    rows = summary.table(e.columns, t, r)
    rho = summary.sanity(t, r)
    vlogs = summary.vlog_table(e.trained, t)
    for frame, key in ((rows, "csv"), (vlogs, "vlogs_csv")):
        with atomic_path(files[key]) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    title = f"{m['model']} on {m['dataset']}, seed {m['seed']}"
    plots.plot_groups(rows.query("level == 'group'"), f"{title}: {len(e.trained)} test vlogs", files["groups_png"])
    figures = [files["groups_png"]]
    folder = files["timelines"]
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("timeline-*.png"):        # an earlier explanation's, perhaps more of them
        stale.unlink()
    for i, j in enumerate(_timeline_picks(e.trained, cfg.timelines), start=1):
        a = e.trained[j]
        plots.plot_timeline(a, 1 / (1 + math.exp(-a.logit)), title, timeline_file(folder, i))
        figures.append(timeline_file(folder, i))
    write_json(files["json"], headline(e, cfg, rows, rho, vlogs))
    write_text(files["md"], _markdown(e, cfg, rows, rho, vlogs,
                                                [f.relative_to(files["md"].parent).as_posix() for f in figures]))
    return [files["md"], files["csv"], files["vlogs_csv"], files["json"], *figures]


def explain_path(params: Params, path: Path, device: torch.device) -> list[Path]:
    """`asym explain --run`: a seed folder, or every complete seed of a model folder."""
    from asym.inference.predict import run_dirs

    cfg = params.explain
    return [f for d in run_dirs(path) for f in write(explain(params, d, device, cfg), cfg, params.path_of("reports"))]


def explain_all(params: Params, device: torch.device, dataset: str | None = None, model: str | None = None,
                seeds: list[int] | None = None) -> list[Path]:
    """Every complete run of the grid (datasets x models x seeds of --params), or of one dataset,
    model or some seeds of it (a workflow step's)."""
    cfg = params.explain
    layout = Layout.of(params)
    if dataset is not None:
        params.dataset(dataset)                       # an undeclared dataset is refused, named
    runs = [r for r in params.runs(dataset, model) if seeds is None or r.seed in seeds]
    done = [layout.run(r).folder for r in runs if layout.run(r).complete()]
    if not done:
        raise DataError(params.path_of("runs"), "no complete run to explain here "
                        f"(dataset {dataset or 'any'}, model {model or 'any'}, seeds {seeds or 'all'}): train first")
    return [f for d in done for f in write(explain(params, d, device, cfg), cfg, params.path_of("reports"))]
