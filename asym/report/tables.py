"""The report's tables, each written as Markdown, CSV (numbers) and LaTeX, with a legend that
names its own columns' metric conventions and units, each dataset's protocol and subject
independence, which floors stand for which metric, the rule of its bold marks, its failed seeds,
and for a paired comparison its Holm family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.config import DEFAULT_THRESHOLD, Params
from asym.data import protocols
from asym.data.protocols import OPTIMISTIC_FLAG
from asym.io import atomic_path, write_text
from asym.metrics import CONVENTION, DEPRESSED_CLASS, FLOOR_METRICS
from asym.models import registry
from asym.reference import (
    DEPRESSED_CONVENTION,
    NOT_COMPARABLE,
    OPTIMISTIC_PROTOCOLS,
    comparable,
    published_results,
)
from asym.report.latex import to_latex
from asym.report.runs import FAIR_METRICS, FLOOR_KIND, GAP, MACRO, MIN_GROUP_CLASS, DatasetRuns

LOWER_IS_BETTER = {"ece"}
RAW_METRICS = frozenset({"mcc"})     # shown as they are, to 3 decimals; the others in %
RESULT_METRICS = ("accuracy", "precision", "recall", "f1", "f1_weighted", "balanced_accuracy", "mcc", "auroc",
                  "auprc", "ece")
LABELS = {"accuracy": "Acc", "precision": "P (dep.)", "recall": "R (dep.)", "f1": "F1 (dep.)",
          "precision_weighted": "P (w.)", "recall_weighted": "R (w.)", "f1_weighted": "F1 (w.)",
          "balanced_accuracy": "BAcc", "mcc": "MCC", "auroc": "AUROC", "auprc": "AUPRC", "ece": "ECE"}
TITLES = {"results": "All models", "comparison": "Comparison with published methods",
          "ablation": "ASYM ablations", "fairness": "Subgroups: gender and vlog length"}
FAILED_MARK = "†"
NO_DIFFERENCE = "no difference to test"
FAMILY_OF = {"comparison": "baselines", "ablation": "ablations"}


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

    def preface(self, shown: tuple[str, ...]) -> list[str]:
        """The legend of a table whose metric columns are `shown`: those columns only."""
        raw = [LABELS[k] for k in shown if k in RAW_METRICS]
        units = "in %" + (f", except {', '.join(raw)} (on -1..1)" if raw else "")
        lines = [f"Scale `{self.scale}`; seeds {self.seeds}. Test metrics {units}: mean ± std over seeds of each "
                 "seed's metric, its test labels pooled over its partitions (under `kfold` every vlog is tested once "
                 "per seed); the std is the spread over seeds. A [95% CI] covers test sampling only: a bias-corrected "
                 "percentile bootstrap of the test set (subjects when known, else vlogs) with every prediction held, "
                 "the same resamples for every seed and model, of the same estimand as the point; it leaves the "
                 "spread over seeds out. Macro-avg = mean over datasets, per seed first.", "",
                 "Columns: " + "; ".join(f"{LABELS[k]} = {CONVENTION[k]}" for k in shown) + ".",
                 floor_legend(shown),
                 "Bold: a column's best value among the models whose MCC 95% CI lies above 0 (better than chance "
                 "beyond test sampling); none where no model qualifies, so a constant predictor's 100% recall or a "
                 "near-chance model's ECE is never bold.", ""]
        for ds in self.datasets:
            if ds == MACRO:
                continue
            ind = self.independence[ds]
            text = {"true": "verified subject-independent", "false": "NOT subject-independent (the published split "
                    "puts vlogs of one subject in several folds)", "unknown": "subject independence could not be "
                    "verified: no subject ids, each vlog counts as its own subject"}[ind]
            flag = f" **{OPTIMISTIC_FLAG}**;" if protocols.get(self.protocols[ds]).optimistic else ""
            lines.append(f"- **{ds}**: protocol `{self.protocols[ds]}`;{flag} {text}.")
        return [*lines, "", self.threshold_line(), *self.failure_lines()]

    def failure_lines(self) -> list[str]:
        """The failed seeds behind each FAILED_MARK (asym.report.aggregate.failures)."""
        if "failure" not in self.summary:
            return []
        failed = self.summary[(self.summary["dataset"] != MACRO) & self.summary["failure"].fillna("").astype(bool)]
        if failed.empty:
            return []
        return ["", f"{FAILED_MARK} failed seed(s), kept in the mean (a seed fails when it labels every test vlog of a "
                "partition with one class, whatever the vlog): "
                + "; ".join(f"{r.model} on {r.dataset}: {r.failure}" for r in failed.itertuples()) + "."]

    def threshold_line(self) -> str:
        """Which decision threshold labelled each model's test vlogs (the recipe's `threshold`)."""
        trained = self.summary[(self.summary["kind"] != FLOOR_KIND) & (self.summary["dataset"] != MACRO)]
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


FLOOR_TEXT = {
    "majority": "always answers the training fold's majority class, its prior as the probability",
    "always-depressed": "calls every vlog depressed",
    "chance": "guesses at random with the training fold's rate (expected values)",
}


def floor_legend(shown: tuple[str, ...]) -> str:
    """What each floor is, and of which of the table's metrics it is the floor (asym.metrics.FLOOR_METRICS)."""
    parts = []
    for name, text in FLOOR_TEXT.items():
        labels = [LABELS[k] for k in shown if k in FLOOR_METRICS[name]]
        extra = ""
        if name == "majority" and set(DEPRESSED_CLASS) & set(shown):
            extra = (", and the depressed-class ones only where that majority is depressed: – where it is normal, "
                     "as it never names a depressed vlog (its P is 0/0, its R and F1 are 0 by construction)")
        if labels or extra:
            parts.append(f"`{name}` {text}: {', '.join(labels) or 'no column here'}{extra}")
    return ("Floors, each only in the columns it is the floor of (– elsewhere): " + "; ".join(parts)
            + ". A macro-avg floor only where it means something on every dataset.")


def _pct(v: float, digits: int = 2) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}"


def metric_value(k: str, v: Any) -> str:
    """One value of metric `k` as every table and card shows it: in %, or as it is (MCC)."""
    if v is None or not np.isfinite(float(v)):
        return "–"
    return f"{float(v):.3f}" if k in RAW_METRICS else _pct(float(v))


P_DIGITS = 3            # decimals of a printed p, more only where rounding would cross a level
P_LEVELS = (0.05, 0.01)  # the levels a reader compares a p with: a printed p never lands on or across one


def p_value(p: float) -> str:
    """A p-value to 3 decimals; with more where 3 would print it on or across a conventional level
    (0.04995 prints as 0.04995, not 0.050)."""
    if not np.isfinite(p):
        return "–"
    if p < 10 ** -P_DIGITS:
        return f"<{10 ** -P_DIGITS:.{P_DIGITS}f}"
    digits = P_DIGITS
    while digits < 2 * P_DIGITS and any((round(p, digits) >= a) != (p >= a) or round(p, digits) == a != p
                                        for a in P_LEVELS):
        digits += 1
    return f"{p:.{digits}f}"


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


def eligible(part: pd.DataFrame) -> pd.Series:
    """The models that may carry a bold mark: trained, with the MCC 95% CI above 0 (better than
    chance beyond test sampling; a constant or near-chance model never is)."""
    low = part["mcc_ci_low"].astype(float) if "mcc_ci_low" in part else pd.Series(np.nan, index=part.index)
    return (part["kind"] != FLOOR_KIND) & (low > 0)


def _bold_best(part: pd.DataFrame, cells: list[str], k: str) -> list[str]:
    ok = eligible(part)
    if not ok.any():
        return cells
    values = part.loc[ok, k].astype(float)
    if not np.isfinite(values).any():
        return cells
    best = values.min() if k in LOWER_IS_BETTER else values.max()
    return [f"**{c}**" if t and np.isclose(v, best) else c for c, v, t in zip(cells, part[k], ok, strict=True)]


def _model_cell(row: pd.Series) -> str:
    name = str(row["model"])
    if row["kind"] == FLOOR_KIND:
        return f"{name} (floor)"
    mark = f" {FAILED_MARK}" if str(row.get("failed_seeds", "") or "") not in ("", "nan") else ""
    return (f"**{name}** ◀" if name == "asym" else name) + mark


def _ordered(part: pd.DataFrame) -> pd.DataFrame:
    """ASYM first, then the other models in registry order, then the floors."""
    return pd.concat([part[part["model"] == "asym"], part[(part["kind"] != FLOOR_KIND) & (part["model"] != "asym")],
                      part[part["kind"] == FLOOR_KIND]]).reset_index(drop=True)


def _no_difference(row: pd.Series) -> bool:
    return bool(row.get("no_difference", False) is True or row.get("no_difference", False) == 1)


def _delta(row: pd.Series) -> str:
    d = row.get("delta_f1_vs_asym", np.nan)
    if _no_difference(row):
        return NO_DIFFERENCE
    if not np.isfinite(d):
        return "–"
    return f"{100 * d:+.2f} [{100 * row['delta_f1_ci_low']:+.2f}, {100 * row['delta_f1_ci_high']:+.2f}]"


def _p(row: pd.Series, column: str = "p_vs_asym") -> str:
    return NO_DIFFERENCE if _no_difference(row) else p_value(row.get(column, np.nan))


PAIRED_COLUMNS = ("delta_f1_vs_asym", "delta_f1_ci_low", "delta_f1_ci_high", "p_raw_vs_asym", "p_vs_asym",
                  "holm_family", "holm_family_size", "no_difference", "failed_seeds")
SHOWN = {"results": RESULT_METRICS, "comparison": ("accuracy", "precision", "recall", "f1", "f1_weighted"),
         "ablation": ("accuracy", "f1", "f1_weighted")}


def results_view(part: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    out = pd.DataFrame({"model": [_model_cell(r) for _, r in part.iterrows()],
                        "recipe": part["recipe"].fillna("–")})
    for k in RESULT_METRICS:
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["F1 (dep.) 95% CI"] = [_ci(r, "f1") for _, r in part.iterrows()]
    out["params"] = [f"{n / 1e3:.1f}k" if np.isfinite(n) else "–" for n in part["n_params"].astype(float)]
    out["s/epoch"] = [f"{t:.2f}" if np.isfinite(t) else "–" for t in part["epoch_time_s"].astype(float)]
    numeric = ["model", "kind", "recipe", *[f"{k}{s}" for k in RESULT_METRICS for s in ("", "_std", "_ci_low", "_ci_high")],
               "n_seeds", "n_params", "epoch_time_s", "failed_seeds"]
    return out, numeric


def _published(ds: str, protocols: dict[str, str]) -> pd.DataFrame:
    """Published numbers usable beside ours: of a model built here (`model`), on the releases' own
    inputs, same dataset, same protocol (macro: both datasets, each with its protocol). `key` is
    that model's registry name."""
    pub = published_results()
    pub = pub[(pub["model"] != "") & comparable(pub)].assign(key=lambda d: d["model"])
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


PUBLISHED_RANK = "rank (F1 dep.)"


def published_blocks(ds: str, ctx: Context, shown: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """At `scale: paper`, the dataset's other published numbers, never beside ours: those of the
    same protocol for methods not trained here (ranked), the protocol-optimistic ones, those of
    another or an unstated protocol, and, last and never ranked, those on other inputs than the
    releases' audio and visual features (NOT_COMPARABLE)."""
    if ctx.scale == "demo" or ds == MACRO:
        return []
    pub = published_results()
    pub = pub[pub["dataset"] == ds]
    other_inputs = pub[~comparable(pub)]
    pub = pub[comparable(pub)]
    protocol = ctx.protocols[ds]
    same = pub[(pub["protocol"] == protocol) & ~((pub["model"] != "") & pub["model"].isin(shown))]
    optimistic = pub[pub["protocol"].isin(OPTIMISTIC_PROTOCOLS) & (pub["protocol"] != protocol)]
    other = pub[~pub["protocol"].isin([protocol, *OPTIMISTIC_PROTOCOLS])]
    blocks = []
    if len(same):
        blocks.append((f"Published with the same protocol (`{protocol}`), not trained here", _published_view(same, True)))
    if len(optimistic):
        blocks.append((f"Protocol-optimistic published numbers ({OPTIMISTIC_FLAG}): comparable with nothing above",
                       _published_view(optimistic)))
    if len(other):
        blocks.append(("Published with another or an unstated protocol: comparable with nothing above",
                       _published_view(other)))
    if len(other_inputs):
        blocks.append((f"Published on other inputs ({NOT_COMPARABLE}): never ranked", _published_view(other_inputs)))
    return blocks


def _published_view(rows: pd.DataFrame, ranked: bool = False) -> pd.DataFrame:
    """The rows as shown. `ranked` (one protocol, the releases' inputs): a rank by depressed-class
    F1 among the rows of that convention, the best bold; the other conventions are not ranked."""
    rows = rows.reset_index(drop=True)
    out = pd.DataFrame({"method": rows["method"], "inputs": [
        m if ok else f"{m} ({NOT_COMPARABLE})" for m, ok in zip(rows["modalities"], comparable(rows), strict=True)],
        "convention": rows["metric_convention"], "protocol": rows["protocol"]})
    for k, label in (("accuracy", "Acc"), ("precision", "P"), ("recall", "R"), ("f1", "F1"), ("auc", "AUC")):
        out[label] = ["–" if not np.isfinite(v) else f"{v:.2f}" for v in rows[k].astype(float)]
    if ranked:
        rankable = comparable(rows) & (rows["metric_convention"] == DEPRESSED_CONVENTION) & rows["f1"].notna()
        rank = rows["f1"].where(rankable).rank(ascending=False, method="min")
        out.insert(0, PUBLISHED_RANK, ["–" if np.isnan(r) else str(int(r)) for r in rank])
        out["F1"] = [f"**{c}**" if r == 1 else c for c, r in zip(out["F1"], rank, strict=True)]
    out["selection"] = rows["selection"]
    out["confidence"] = rows["confidence"]
    return out


def comparison_view(part: pd.DataFrame, ctx: Context, ds: str) -> tuple[pd.DataFrame, list[str]]:
    metrics = SHOWN["comparison"]
    out = pd.DataFrame({"model": [_model_cell(r) for _, r in part.iterrows()], "recipe": part["recipe"].fillna("–")})
    for k in metrics:
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["ΔF1 vs asym [95% CI]"] = [_delta(r) for _, r in part.iterrows()]
    out["p (raw)"] = [_p(r, "p_raw_vs_asym") for _, r in part.iterrows()]
    out["p (Holm)"] = [_p(r) for _, r in part.iterrows()]
    numeric = ["model", "kind", "recipe", *[f"{k}{s}" for k in metrics for s in ("", "_std", "_ci_low", "_ci_high")],
               *PAIRED_COLUMNS]
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
    out["params (asym)"] = [("–" if r["kind"] == FLOOR_KIND else f"{r['n_params'] / 1e3:.1f}k ({full['n_params'] / 1e3:.1f}k)")
                            for _, r in part.iterrows()]
    for k in SHOWN["ablation"]:
        out[LABELS[k]] = _bold_best(part, [_cell(r, k) for _, r in part.iterrows()], k)
    out["ΔAcc"] = ["–" if r["model"] == "asym" or r["kind"] == FLOOR_KIND else f"{100 * (r['accuracy'] - full['accuracy']):+.2f}"
                   for _, r in part.iterrows()]
    out["ΔF1 vs asym [95% CI]"] = [_delta(r) for _, r in part.iterrows()]
    out["p (raw)"] = [_p(r, "p_raw_vs_asym") for _, r in part.iterrows()]
    out["p (Holm)"] = [_p(r) for _, r in part.iterrows()]
    out["removal hurts?"] = [_hurts(r, ctx.alpha) for _, r in part.iterrows()]
    numeric = ["model", "kind", "n_params", "accuracy", "accuracy_std", "f1", "f1_std", "f1_weighted", "f1_weighted_std",
               *PAIRED_COLUMNS]
    return out, numeric


def _hurts(row: pd.Series, alpha: float) -> str:
    p, d = row.get("p_vs_asym", np.nan), row.get("delta_f1_vs_asym", np.nan)
    if row["kind"] == registry.ABLATION_KIND and _no_difference(row):
        return "untested: the same predictions"
    if row["kind"] != registry.ABLATION_KIND or not np.isfinite(p):
        return ""
    if p < alpha:
        return "yes (significant)" if d < 0 else "no: significantly better"
    return "not significant"


PAIRED = ("ΔF1 vs asym: the depressed-class F1 minus ASYM's, in points, with its unadjusted 95% CI (paired "
          "bootstrap, bias-corrected percentile); p (raw): a paired permutation test of ΔF1 (each subject's, else each "
          "vlog's, labels exchanged between the two models, all seeds at once); p (Holm): that p adjusted by Holm's "
          "step-down within this table's family, named under each dataset. The CIs are not adjusted, so a CI that "
          "excludes 0 can go with a Holm p above alpha; and the CI (a bootstrap) and the raw p (a permutation test) "
          f"are two procedures, which can disagree near the boundary. ‘{NO_DIFFERENCE}’: the model's test labels are ASYM's "
          "(no label differs on any seed, so ΔF1 is 0 under every exchange; its probabilities may differ): no p, not counted in the family, "
          "left out of the detectable-effect range.")
CAPTIONS = {
    "results": "Every trained model and the floors.",
    "comparison": "ASYM against the baselines, trained here on the same folds. " + PAIRED + " A published number "
                  "stands only beside a measured one of the same metric convention and protocol (never at `scale: "
                  "demo`: demo numbers are about synthetic data); sources in asym/reference/published_results.csv.",
    "ablation": "ASYM with one module (or part) removed or replaced. " + PAIRED + " ‘removal hurts?’ answers the "
                "abstract's claim that removing any module significantly degrades performance: yes when ΔF1 is "
                "negative with the paired permutation test's Holm-adjusted p below alpha. Parameter counts beside the "
                "full model's.",
}


def family_line(part: pd.DataFrame, name: str, ds: str) -> str:
    """The Holm family of a comparison table's section: which comparisons, how many, which left out."""
    rows = part[(part["model"] != "asym") & (part["kind"] != FLOOR_KIND)]
    none = rows[[_no_difference(r) for _, r in rows.iterrows()]]
    n = len(rows) - len(none)
    where = "the macro-average" if ds == MACRO else ds
    line = (f"Holm family: the {FAMILY_OF[name]} against ASYM on {where}, {n} comparison{'' if n == 1 else 's'} "
            "(one family per table and dataset), alpha = {alpha}.")
    if len(none):
        line += f" Left out, {NO_DIFFERENCE}: {', '.join(none['model'])}."
    return line


def detectable_effect(part: pd.DataFrame, ctx: Context) -> str:
    """The caption's line on what this test fold can detect: the ΔF1 the paired test finds with
    `ctx.power` (asym.report.stats.minimum_detectable_effect, per comparison in the report's summary);
    a comparison with no difference to test has none and is left out."""
    rows = part[(part["model"] != "asym") & (part["kind"] != FLOOR_KIND)]
    rows = rows[[not _no_difference(r) for _, r in rows.iterrows()]]
    if "mde_f1_vs_asym" not in rows or rows["mde_f1_vs_asym"].isna().all():
        return ""
    mde, holm = (100 * rows[c].astype(float).dropna() for c in ("mde_f1_vs_asym", "mde_f1_holm_vs_asym"))
    n = part["n_test"].astype(float).dropna() if "n_test" in part else pd.Series(dtype=float)
    fold = f"this test fold ({int(n.iloc[0])} vlogs)" if len(n) else "the datasets' test folds together"
    spread = f", {mde.min():.1f}–{mde.max():.1f}" if len(mde) > 1 else ""
    return (f"Detectable: a ΔF1 of {mde.median():.1f} points is found with {ctx.power:.0%} power on {fold} by one "
            f"paired permutation test at α = {ctx.alpha:g} (median over the {len(mde)} comparisons here{spread}), "
            f"{holm.median():.1f} points at the first step of Holm's adjustment over this family; smaller true "
            "differences are likely to go unseen. Normal approximation from the test's permutation distribution, "
            "which benchmarks/calibration.py finds some 7% below the simulated value on test folds of D-Vlog's and "
            "LMVD's sizes.")


def write_table(name: str, ctx: Context, paths: dict[str, Path]) -> None:
    kinds = {"results": None, "comparison": (registry.ASYM_KIND, registry.BASELINE_KIND, FLOOR_KIND),
             "ablation": (registry.ASYM_KIND, registry.ABLATION_KIND, FLOOR_KIND)}[name]
    md = [f"# {TITLES[name]}", "", CAPTIONS[name], "", *ctx.preface(SHOWN[name]), ""]
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
        notes = []
        if name in FAMILY_OF:
            notes.append(family_line(part, name, ds).format(alpha=f"{ctx.alpha:g}"))
            notes.append(detectable_effect(part, ctx))
        notes = [n for n in notes if n]
        md += [f"## {ds}" + (f" (protocol `{ctx.protocols[ds]}`)" if ds in ctx.protocols else ""), "",
               view.to_markdown(index=False, disable_numparse=True), "", *(x for n in notes for x in (n, ""))]
        tex.append(to_latex(view, " ".join([f"{TITLES[name]} ({ds}). {CAPTIONS[name]}", *notes])))
        for title, block in published_blocks(ds, ctx, list(part["model"])) if name == "comparison" else []:
            md += [f"### {title}", "", block.to_markdown(index=False, disable_numparse=True), ""]
            tex.append(to_latex(block, f"{title} ({ds}); sources in asym/reference/published_results.csv."))
        csv.append(part[[c for c in numeric if c in part.columns]].assign(dataset=ds))
    write_text(paths[f"{name}_md"], "\n".join(md))
    write_text(paths[f"{name}_tex"], "\n".join(tex))
    with atomic_path(paths[f"{name}_csv"]) as tmp:
        pd.concat(csv, ignore_index=True).to_csv(tmp, index=False)


# --- subgroups ------------------------------------------------------------------------------------
FAIR_LABELS = {"accuracy": "Acc", "f1": "F1 (dep.)"}
FAIR_CAPTION = (f"Accuracy and depressed-class F1 (%) per subgroup of the test vlogs: mean over seeds, with a 95% CI "
                "from a bias-corrected percentile bootstrap of the group's own units (subjects when known, else vlogs; "
                "test sampling only). Length terciles are cut on each dataset's test vlogs. A group is tested only "
                f"with at least {MIN_GROUP_CLASS} depressed and {MIN_GROUP_CLASS} normal vlogs (counts in the first "
                "table); a smaller one shows no number. Gap = best minus worst tested group at the point estimate "
                "(which two, in brackets), its CI resampling that same difference: a CI that covers 0 leaves the "
                "order of the groups to chance.")


def _fair_cell(row: pd.Series, k: str) -> str:
    if not np.isfinite(row[k]):
        return "–"
    return f"{_pct(row[k])} [{_pct(row[f'{k}_ci_low'])}, {_pct(row[f'{k}_ci_high'])}]"


def fairness_counts(part: pd.DataFrame) -> pd.DataFrame:
    """One row per subgroup of a dataset: its counts and whether it is tested (the same for every model)."""
    groups = part[part["group"] != GAP].drop_duplicates(["attribute", "group"])
    return pd.DataFrame({"attribute": groups["attribute"], "group": groups["group"],
                         "vlogs": groups["n"].astype(int).astype(str), "depressed": groups["n_depressed"].astype(int).astype(str),
                         "normal": groups["n_normal"].astype(int).astype(str),
                         "tested": ["yes" if t else f"no: under {MIN_GROUP_CLASS} of a class" for t in groups["tested"]]}
                        ).reset_index(drop=True)


def fairness_view(part: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """One row per model: each group's Acc and F1 [95% CI], then the attribute's gaps."""
    rows = part[part["attribute"] == attribute]
    names = list(dict.fromkeys(rows.loc[rows["group"] != GAP, "group"]))
    out: dict[str, list[str]] = {"model": []}
    for model, of_model in rows.groupby("model", sort=False):
        out["model"].append(str(model))
        by_group = of_model.set_index("group")
        for k in FAIR_METRICS:
            for g in names:
                r = by_group.loc[g]
                out.setdefault(f"{FAIR_LABELS[k]} {g}", []).append(_fair_cell(r, k) if r["tested"] else "too small")
            gap = by_group.loc[GAP]
            cell = _fair_cell(gap, k)
            out.setdefault(f"{FAIR_LABELS[k]} gap", []).append(
                f"{cell} ({gap[f'{k}_between']})" if np.isfinite(gap[k]) else "not tested: under two tested groups")
    return pd.DataFrame(out)


def write_fairness(fair: pd.DataFrame, ctx: Context, paths: dict[str, Path]) -> None:
    md = [f"# {TITLES['fairness']}", "", FAIR_CAPTION, ""]
    tex = []
    for ds in [d for d in ctx.datasets if d != MACRO]:
        part = fair[fair["dataset"] == ds]
        if part.empty:
            continue
        counts = fairness_counts(part)
        md += [f"## {ds}", "", counts.to_markdown(index=False, disable_numparse=True), ""]
        tex.append(to_latex(counts, f"{TITLES['fairness']} ({ds}): the subgroups' test vlogs."))
        for attribute in dict.fromkeys(part["attribute"]):
            view = fairness_view(part, attribute)
            md += [f"### {ds}: {attribute}", "", view.to_markdown(index=False, disable_numparse=True), ""]
            tex.append(to_latex(view, f"{TITLES['fairness']} ({ds}, {attribute}). {FAIR_CAPTION}"))
    write_text(paths["fairness_md"], "\n".join(md))
    write_text(paths["fairness_tex"], "\n".join(tex))
    with atomic_path(paths["fairness_csv"]) as tmp:
        fair.to_csv(tmp, index=False)
