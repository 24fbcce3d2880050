"""The report's tables, each written as Markdown, CSV (numbers) and LaTeX, with a caption that
names every column's metric convention, each dataset's protocol and subject independence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import DEFAULT_THRESHOLD, Params
from asym.data.protocols import SELECT_ON_TEST
from asym.data.splits import OPTIMISTIC_FLAG
from asym.io import atomic_path, write_text
from asym.metrics import CONVENTION
from asym.reference import OPTIMISTIC_PROTOCOLS, published_results
from asym.report.aggregate import MACRO, DatasetRuns
from asym.report.latex import to_latex

LOWER_IS_BETTER = {"ece"}
RAW_METRICS = frozenset({"mcc"})     # shown as they are, to 3 decimals; the others in %
RESULT_METRICS = ("accuracy", "precision", "recall", "f1", "f1_weighted", "balanced_accuracy", "mcc", "auroc",
                  "auprc", "ece")
LABELS = {"accuracy": "Acc", "precision": "P (dep.)", "recall": "R (dep.)", "f1": "F1 (dep.)",
          "precision_weighted": "P (w.)", "recall_weighted": "R (w.)", "f1_weighted": "F1 (w.)",
          "balanced_accuracy": "BAcc", "mcc": "MCC", "auroc": "AUROC", "auprc": "AUPRC", "ece": "ECE"}
TITLES = {"results": "All models", "comparison": "Comparison with published methods",
          "ablation": "ASYM ablations", "fairness": "Subgroups: gender and vlog length"}


@dataclass
class Context:
    scale: str
    summary: pd.DataFrame
    datasets: list[str]
    protocols: dict[str, str]
    independence: dict[str, str]
    alpha: float
    seeds: list[int]
    power: float                # at which the captions state the detectable ΔF1

    @classmethod
    def of(cls, params: Params, summary: pd.DataFrame, all_runs: list[DatasetRuns]) -> Context:
        datasets = list(dict.fromkeys(summary["dataset"]))
        return cls(params.scale, summary, datasets, {r.name: r.protocol for r in all_runs},
                   {r.name: r.subject_independent for r in all_runs}, params.report.alpha, params.seeds,
                   params.report.mde_power)

    def preface(self) -> list[str]:
        lines = [f"Scale `{self.scale}`; seeds {self.seeds}. Test metrics in %: mean ± std over seeds "
                 "(and outer folds under `kfold`); 95% CIs from a bootstrap of the test set (subjects when "
                 "known, else vlogs), the same resample for every seed and model. Macro-avg = mean over datasets, "
                 "per seed first.", "", "Columns: " + "; ".join(f"{LABELS[k]} = {CONVENTION[k]}" for k in LABELS) + ".",
                 "Floors: `majority` always answers the training fold's majority class; `chance` guesses at "
                 "random with the training fold's rate (expected values).", ""]
        for ds in self.datasets:
            if ds == MACRO:
                continue
            ind = self.independence[ds]
            text = {"true": "verified subject-independent", "false": "NOT subject-independent (the published split "
                    "puts vlogs of one subject in several folds)", "unknown": "subject independence could not be "
                    "verified: no subject ids, each vlog counts as its own subject"}[ind]
            flag = f" **{OPTIMISTIC_FLAG}**;" if self.protocols[ds] in SELECT_ON_TEST else ""
            lines.append(f"- **{ds}**: protocol `{self.protocols[ds]}`;{flag} {text}.")
        return [*lines, "", self.threshold_line()]

    def threshold_line(self) -> str:
        """Which decision threshold labelled each model's test vlogs (the recipe's `threshold`)."""
        trained = self.summary[(self.summary["kind"] != "floor") & (self.summary["dataset"] != MACRO)]
        default = str(DEFAULT_THRESHOLD)
        rules = trained["threshold_rule"].fillna(default).astype(str) if "threshold_rule" in trained else None
        head = "Decision threshold (P(depressed) at or above which a vlog is labelled depressed): "
        if rules is None or rules.nunique() <= 1 and "valid_f1" not in set(rules):
            return head + f"{default if rules is None or rules.empty else rules.iloc[0]} for every model."
        parts = []
        for rule, group in trained.groupby(rules, sort=True):
            if rule == "valid_f1":
                means = ", ".join(f"{m} on {d} {t:.2f}" for m, d, t in zip(group["model"], group["dataset"],
                                                                            group["threshold"], strict=True))
                parts.append("`valid_f1`, the grid's F1-maximising threshold on the validation fold at the chosen "
                             f"checkpoint (mean over seeds and folds: {means})")
            else:
                parts.append(f"{rule} for {', '.join(dict.fromkeys(group['model']))}")
        return head + "; ".join(parts) + "."


def _pct(v: float, digits: int = 2) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}"


def metric_value(k: str, v: Any) -> str:
    """One value of metric `k` as every table and card shows it: in %, or as it is (MCC)."""
    if v is None or not np.isfinite(float(v)):
        return "–"
    return f"{float(v):.3f}" if k in RAW_METRICS else _pct(float(v))


def p_value(p: float) -> str:
    return "–" if not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def _cell(row: pd.Series, k: str) -> str:
    if k in RAW_METRICS:
        mean, std = row[k], row.get(f"{k}_std", np.nan)
        return "–" if not np.isfinite(mean) else (f"{mean:.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else ""))
    std = row.get(f"{k}_std", np.nan)
    return _pct(row[k]) + (f" ± {_pct(std)}" if np.isfinite(std) else "")


def _ci(row: pd.Series, k: str) -> str:
    lo, hi = row.get(f"{k}_ci_low", np.nan), row.get(f"{k}_ci_high", np.nan)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    if k in RAW_METRICS:
        return f"[{lo:.3f}, {hi:.3f}]"
    return f"[{_pct(lo)}, {_pct(hi)}]"


def _bold_best(part: pd.DataFrame, cells: list[str], k: str) -> list[str]:
    trained = part["kind"] != "floor"
    if not trained.any():
        return cells
    values = part.loc[trained, k]
    best = values.min() if k in LOWER_IS_BETTER else values.max()
    return [f"**{c}**" if t and np.isclose(v, best) else c for c, v, t in zip(cells, part[k], trained, strict=True)]


def _model_cell(row: pd.Series) -> str:
    name = str(row["model"])
    if row["kind"] == "floor":
        return f"{name} (floor)"
    return f"**{name}** ◀" if name == "asym" else name


def _ordered(part: pd.DataFrame) -> pd.DataFrame:
    """ASYM first, then the other models in registry order, then the floors."""
    return pd.concat([part[part["model"] == "asym"], part[(part["kind"] != "floor") & (part["model"] != "asym")],
                      part[part["kind"] == "floor"]]).reset_index(drop=True)


def _delta(row: pd.Series) -> str:
    d = row.get("delta_f1_vs_asym", np.nan)
    if not np.isfinite(d):
        return "–"
    return f"{100 * d:+.2f} [{100 * row['delta_f1_ci_low']:+.2f}, {100 * row['delta_f1_ci_high']:+.2f}]"


def _p(row: pd.Series) -> str:
    return p_value(row.get("p_vs_asym", np.nan))


def results_view(part: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    out = pd.DataFrame({"model": [_model_cell(r) for _, r in part.iterrows()],
                        "recipe": part["recipe"].fillna("–")})
    for k in RESULT_METRICS:
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["F1 (dep.) 95% CI"] = [_ci(r, "f1") for _, r in part.iterrows()]
    out["params"] = [f"{n / 1e3:.1f}k" if np.isfinite(n) else "–" for n in part["n_params"].astype(float)]
    out["s/epoch"] = [f"{t:.2f}" if np.isfinite(t) else "–" for t in part["epoch_time_s"].astype(float)]
    numeric = ["model", "kind", "recipe", *[f"{k}{s}" for k in RESULT_METRICS for s in ("", "_std", "_ci_low", "_ci_high")],
               "n_seeds", "n_params", "epoch_time_s"]
    return out, numeric


def _published(ds: str, protocols: dict[str, str]) -> pd.DataFrame:
    """Published numbers usable beside ours: of a model built here (`model`), same dataset, same
    protocol (macro: both datasets, each with its protocol). `key` is that model's registry name."""
    pub = published_results()
    pub = pub[pub["model"] != ""].assign(key=lambda d: d["model"])
    if ds != MACRO:
        return pub[(pub["dataset"] == ds) & (pub["protocol"] == protocols[ds])]
    ok = pub[pub.apply(lambda r: protocols.get(r["dataset"]) == r["protocol"], axis=1)]
    rows = []
    for key, of_key in ok.groupby("key"):
        if set(of_key["dataset"]) != set(protocols):
            continue
        # accuracy has no convention: any row's; F1 only where every dataset's has this convention
        acc = of_key.groupby("dataset")["accuracy"].first()
        accuracy = acc.mean() if acc.notna().all() else np.nan
        for conv, g in of_key.groupby("metric_convention"):
            f1 = g["f1"].mean() if set(g["dataset"]) == set(protocols) and g["f1"].notna().all() else np.nan
            rows.append({"key": key, "metric_convention": conv, "method": g["method"].iloc[0], "accuracy": accuracy,
                         "f1": f1, "source": "; ".join(of_key["source"].unique())})
    return pd.DataFrame(rows, columns=["key", "metric_convention", "method", "accuracy", "f1", "source"])


def published_blocks(ds: str, ctx: Context, shown: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """At `scale: paper`, the dataset's other published numbers, never beside ours: those of the
    same protocol for methods not trained here, and, apart, the protocol-optimistic ones."""
    if ctx.scale == "demo" or ds == MACRO:
        return []
    pub = published_results()
    pub = pub[pub["dataset"] == ds]
    protocol = ctx.protocols[ds]
    same = pub[(pub["protocol"] == protocol) & ~((pub["model"] != "") & pub["model"].isin(shown))]
    optimistic = pub[pub["protocol"].isin(OPTIMISTIC_PROTOCOLS) & (pub["protocol"] != protocol)]
    blocks = []
    if len(same):
        blocks.append((f"Published with the same protocol (`{protocol}`), not trained here", _published_view(same)))
    if len(optimistic):
        blocks.append((f"Protocol-optimistic published numbers ({OPTIMISTIC_FLAG}): comparable with nothing above",
                       _published_view(optimistic)))
    return blocks


def _published_view(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"method": rows["method"], "convention": rows["metric_convention"], "protocol": rows["protocol"]})
    for k in ("accuracy", "precision", "recall", "f1"):
        out[{"accuracy": "Acc", "precision": "P", "recall": "R", "f1": "F1"}[k]] = [
            "–" if not np.isfinite(v) else f"{v:.2f}" for v in rows[k].astype(float)]
    out["confidence"] = rows["confidence"]
    return out.reset_index(drop=True)


def comparison_view(part: pd.DataFrame, ctx: Context, ds: str) -> tuple[pd.DataFrame, list[str]]:
    metrics = ("accuracy", "precision", "recall", "f1", "f1_weighted")
    out = pd.DataFrame({"model": [_model_cell(r) for _, r in part.iterrows()], "recipe": part["recipe"].fillna("–")})
    for k in metrics:
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["ΔF1 vs asym [95% CI]"] = [_delta(r) for _, r in part.iterrows()]
    out["p (Holm)"] = [_p(r) for _, r in part.iterrows()]
    numeric = ["model", "kind", "recipe", *[f"{k}{s}" for k in metrics for s in ("", "_std", "_ci_low", "_ci_high")],
               "delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym"]
    if ctx.scale != "demo":   # demo numbers are about synthetic data: no published column at all
        pub = _published(ds, ctx.protocols)
        for label, metric, conv in (("published Acc", "accuracy", None), ("published F1 (dep.)", "f1", "depressed-class"),
                                    ("published F1 (w.)", "f1", "weighted")):
            cells = []
            for m in part["model"]:
                rows = pub[(pub["key"] == m) & ((pub["metric_convention"] == conv) if conv else True)]
                vals = rows[metric].dropna()
                cells.append(f"{vals.iloc[0]:.2f}" if len(vals) else "–")
            out[label] = cells
    return out, numeric


def ablation_view(part: pd.DataFrame, ctx: Context) -> tuple[pd.DataFrame, list[str]]:
    full = part[part["model"] == "asym"].iloc[0]
    out = pd.DataFrame({"model": [_model_cell(r) for _, r in part.iterrows()]})
    out["params (asym)"] = [("–" if r["kind"] == "floor" else f"{r['n_params'] / 1e3:.1f}k ({full['n_params'] / 1e3:.1f}k)")
                            for _, r in part.iterrows()]
    for k in ("accuracy", "f1", "f1_weighted"):
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["ΔAcc"] = ["–" if r["model"] == "asym" or r["kind"] == "floor" else f"{100 * (r['accuracy'] - full['accuracy']):+.2f}"
                   for _, r in part.iterrows()]
    out["ΔF1 vs asym [95% CI]"] = [_delta(r) for _, r in part.iterrows()]
    out["p (Holm)"] = [_p(r) for _, r in part.iterrows()]
    out["removal hurts?"] = [_hurts(r, ctx.alpha) for _, r in part.iterrows()]
    numeric = ["model", "kind", "n_params", "accuracy", "accuracy_std", "f1", "f1_std", "f1_weighted", "f1_weighted_std",
               "delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_vs_asym"]
    return out, numeric


def _hurts(row: pd.Series, alpha: float) -> str:
    p, d = row.get("p_vs_asym", np.nan), row.get("delta_f1_vs_asym", np.nan)
    if row["kind"] != "ablation" or not np.isfinite(p):
        return ""
    if p < alpha:
        return "yes (significant)" if d < 0 else "no: significantly better"
    return "not significant"


CAPTIONS = {
    "results": "Every trained model and the floors.",
    "comparison": "ASYM against the baselines, trained here on the same folds; ΔF1 and its 95% CI from the paired "
                  "bootstrap, p-values from a paired permutation test of ΔF1, Holm-adjusted over the models of each "
                  "dataset. A published number stands only "
                  "beside a measured one of the same metric convention and protocol (never at `scale: demo`: demo "
                  "numbers are about synthetic data); sources in asym/reference/published_results.csv.",
    "ablation": "ASYM with one module (or part) removed or replaced. ‘removal hurts?’ answers the abstract's claim "
                "that removing any module significantly degrades performance: yes when ΔF1 is negative with the paired "
                "permutation test's Holm-adjusted p below alpha. Parameter counts beside the full model's.",
}


def detectable_effect(part: pd.DataFrame, ctx: Context) -> str:
    """The caption's line on what this test fold can detect: the ΔF1 the paired test finds with
    `ctx.power` (asym.report.stats.minimum_detectable_effect, per comparison in the report's summary)."""
    rows = part[(part["model"] != "asym") & (part["kind"] != "floor")]
    if "mde_f1_vs_asym" not in rows or rows["mde_f1_vs_asym"].isna().all():
        return ""
    mde, holm = (100 * rows[c].astype(float).dropna() for c in ("mde_f1_vs_asym", "mde_f1_holm_vs_asym"))
    n = part["n_test"].astype(float).dropna() if "n_test" in part else pd.Series(dtype=float)
    fold = f"this test fold ({int(n.iloc[0])} vlogs)" if len(n) else "the datasets' test folds together"
    spread = f", {mde.min():.1f}–{mde.max():.1f}" if len(mde) > 1 else ""
    return (f"Detectable: a ΔF1 of {mde.median():.1f} points is found with {ctx.power:.0%} power on {fold} by one "
            f"paired permutation test at α = {ctx.alpha:g} (median over the {len(mde)} comparisons here{spread}), "
            f"{holm.median():.1f} points at the first step of Holm's adjustment; smaller true differences are "
            "likely to go unseen. Normal approximation from the test's permutation distribution, which "
            "benchmarks/calibration.py finds some 7% below the simulated value on test folds of D-Vlog's and "
            "LMVD's sizes.")


def write_table(name: str, ctx: Context, paths: dict[str, Path]) -> None:
    kinds = {"results": None, "comparison": ("asym", "baseline", "floor"), "ablation": ("asym", "ablation", "floor")}[name]
    md = [f"# {TITLES[name]}", "", CAPTIONS[name], "", *ctx.preface(), ""]
    tex, csv = [], []
    for ds in ctx.datasets:
        part = ctx.summary[ctx.summary["dataset"] == ds]
        if kinds is not None:
            part = part[part["kind"].isin(kinds)]
        part = _ordered(part)
        if name == "results":
            view, numeric = results_view(part)
        elif name == "comparison":
            view, numeric = comparison_view(part, ctx, ds)
        else:
            view, numeric = ablation_view(part, ctx)
        detectable = detectable_effect(part, ctx) if name in ("comparison", "ablation") else ""
        md += [f"## {ds}" + (f" (protocol `{ctx.protocols[ds]}`)" if ds in ctx.protocols else ""), "",
               view.to_markdown(index=False, disable_numparse=True), "", *([detectable, ""] if detectable else [])]
        tex.append(to_latex(view, f"{TITLES[name]} ({ds}). {CAPTIONS[name]}" + (f" {detectable}" if detectable else "")))
        for title, block in published_blocks(ds, ctx, list(part["model"])) if name == "comparison" else []:
            md += [f"### {title}", "", block.to_markdown(index=False, disable_numparse=True), ""]
            tex.append(to_latex(block, f"{title} ({ds}); sources in asym/reference/published_results.csv."))
        csv.append(part[[c for c in numeric if c in part.columns]].assign(dataset=ds))
    write_text(paths[f"{name}_md"], "\n".join(md))
    write_text(paths[f"{name}_tex"], "\n".join(tex))
    with atomic_path(paths[f"{name}_csv"]) as tmp:
        pd.concat(csv, ignore_index=True).to_csv(tmp, index=False)


def write_fairness(fair: pd.DataFrame, ctx: Context, paths: dict[str, Path]) -> None:
    caption = ("Accuracy and depressed-class F1 (%) per subgroup of the test vlogs, mean over seeds; "
               "length terciles are cut on each dataset's test vlogs; gap = best minus worst group.")
    md = [f"# {TITLES['fairness']}", "", caption, ""]
    tex = []
    for ds in [d for d in ctx.datasets if d != MACRO]:
        part = fair[fair["dataset"] == ds]
        view = pd.DataFrame({"model": part["model"], "attribute": part["attribute"], "group": part["group"],
                             "n": ["–" if not np.isfinite(n) else str(int(n)) for n in part["n"].astype(float)],
                             "Acc": [_pct(v) for v in part["accuracy"]], "F1 (dep.)": [_pct(v) for v in part["f1"]]})
        md += [f"## {ds}", "", view.to_markdown(index=False, disable_numparse=True), ""]
        tex.append(to_latex(view, f"{TITLES['fairness']} ({ds}). {caption}"))
    write_text(paths["fairness_md"], "\n".join(md))
    write_text(paths["fairness_tex"], "\n".join(tex))
    with atomic_path(paths["fairness_csv"]) as tmp:
        fair.to_csv(tmp, index=False)
