"""Aggregate every run's metrics into the paper's tables and plots, and log them to MLflow.

Per (dataset, model): mean ± std over seeds of accuracy / precision / recall / F1, a
bootstrap 95% CI of test F1, parameter count and epoch time; the macro-average over datasets
as in the paper; an ablation table (ASYM variants against the full model) and a comparison
table (every model beside the published numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from asym.evaluate import METRICS, binary_metrics, draw_confusion  # noqa: E402
from asym.io import atomic_path, read_json, write_json, write_text  # noqa: E402
from asym.models import registry  # noqa: E402
from asym.reference import published_results  # noqa: E402

MACRO = "macro-avg"


def run_dir(params: Any, dataset: str, model: str, seed: int) -> Path:
    return params.path_of("runs") / dataset / model / f"seed{seed}"


def collect(params: Any) -> pd.DataFrame:
    rows = []
    for ds in params.datasets:
        for model in params.models:
            for seed in params.seeds:
                d = run_dir(params, ds, model, seed)
                m, t = read_json(d / "metrics.json"), read_json(d / "train.json")
                rows.append({"dataset": ds, "model": model, "seed": seed, "kind": registry.get(model).kind,
                             "run_dir": str(d), "mlflow_run_id": t.get("mlflow_run_id"),
                             # "valid_*" is the per-epoch curve; the chosen checkpoint's scores get their own keys
                             "metrics_flat": {f"{'test' if fold == 'test' else 'selected_valid'}_{k}": m[fold][k]
                                              for fold in ("valid", "test") for k in METRICS},
                             **{k: m["test"][k] for k in METRICS}, "n_params": t["n_params"],
                             "epoch_time_s": t["epoch_time_s"], "best_epoch": t["best_epoch"],
                             "confusion": m["test"]["confusion"], "predictions": str(d / "predictions.parquet")})
    return pd.DataFrame(rows)


def bootstrap_f1(pred_files: list[str], n_boot: int, seed: int) -> tuple[float, float]:
    """95% CI of the seed-averaged test F1, resampling test vlogs (same resample for every seed)."""
    preds = [pd.read_parquet(f).query("fold == 'test'").sort_values("sample_id") for f in pred_files]
    y = preds[0]["label"].to_numpy()
    p = np.stack([d["pred"].to_numpy() for d in preds])
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        stats.append(np.mean([binary_metrics(y[idx], p[s, idx])["f1"] for s in range(len(p))]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def aggregate(runs: pd.DataFrame, params: Any) -> pd.DataFrame:
    rows = []
    boot = params.raw.get("report", {})
    for (ds, model), g in runs.groupby(["dataset", "model"], sort=False):
        lo, hi = bootstrap_f1(g["predictions"].tolist(), int(boot.get("bootstrap", 1000)), int(boot.get("ci_seed", 0)))
        row = {"dataset": ds, "model": model, "kind": g["kind"].iloc[0], "n_seeds": len(g),
               "n_params": int(g["n_params"].iloc[0]), "epoch_time_s": float(g["epoch_time_s"].mean()),
               "f1_ci_low": lo, "f1_ci_high": hi}
        for k in METRICS:
            row[k], row[f"{k}_std"] = float(g[k].mean()), float(g[k].std(ddof=1)) if len(g) > 1 else 0.0
        rows.append(row)
    # Macro-average over datasets, per seed first so its std is over seeds too.
    if runs["dataset"].nunique() > 1:
        for model, g in runs.groupby("model", sort=False):
            per_seed = g.groupby("seed")[list(METRICS)].mean()
            row = {"dataset": MACRO, "model": model, "kind": g["kind"].iloc[0], "n_seeds": len(per_seed),
                   "n_params": int(g["n_params"].max()), "epoch_time_s": float(g["epoch_time_s"].mean()),
                   "f1_ci_low": np.nan, "f1_ci_high": np.nan}
            for k in METRICS:
                row[k] = float(per_seed[k].mean())
                row[f"{k}_std"] = float(per_seed[k].std(ddof=1)) if len(per_seed) > 1 else 0.0
            rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _format(table: pd.DataFrame, bold_best: bool = True, highlight: str | None = "asym") -> pd.DataFrame:
    out = pd.DataFrame({"model": table["model"]})
    for k in METRICS:
        cells = [_pm(m, s) for m, s in zip(table[k], table[f"{k}_std"], strict=True)]
        if bold_best and len(table):
            best = table[k].max()
            cells = [f"**{c}**" if np.isclose(v, best) else c for c, v in zip(cells, table[k], strict=True)]
        out[k] = cells
    out["params"] = [f"{n / 1e3:.1f}k" for n in table["n_params"]]
    out["s/epoch"] = [f"{t:.2f}" for t in table["epoch_time_s"]]
    if highlight is not None:
        out["model"] = [f"**{m}** ◀" if m == highlight else m for m in out["model"]]
    return out


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if c == "model" else "---:" for c in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str) -> str:
    def tex(v: Any) -> str:
        s = str(v).replace("±", r"$\pm$").replace("◀", "").replace("%", r"\%").replace("_", r"\_").strip()
        while "**" in s:
            s = s.replace("**", r"\textbf{", 1).replace("**", "}", 1)
        return s
    cols = list(df.columns)
    body = [" & ".join(tex(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(caption)}}}",
                      r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
                      " & ".join(tex(c) for c in cols) + r" \\", r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}", r"\end{table}"]) + "\n"


def ablation_table(agg: pd.DataFrame, ds: str) -> pd.DataFrame | None:
    part = agg[(agg["dataset"] == ds) & agg["kind"].isin(["asym", "ablation"])].reset_index(drop=True)
    if part.empty or "asym" not in set(part["model"]):
        return None
    full = part[part["model"] == "asym"].iloc[0]
    out = _format(part)
    for k in METRICS:
        out[f"Δ{k}"] = [f"{100 * (v - full[k]):+.2f}" for v in part[k]]
    return out


def comparison_table(agg: pd.DataFrame, ds: str) -> pd.DataFrame:
    part = agg[(agg["dataset"] == ds) & (agg["kind"].isin(["asym", "baseline"]))].reset_index(drop=True)
    out = _format(part)
    pub = published_results()
    pub = pub.assign(method_key=pub["method"].str.lower())
    pub_ds = pub if ds == MACRO else pub[pub["dataset"] == ds]
    def published(model: str, metric: str) -> str:
        if ds == MACRO:   # the paper's macro-average: mean of the two datasets' numbers
            values = pub[pub["method_key"] == model].set_index("dataset")[metric].dropna()
            return f"{values.mean():.2f}" if len(values) == 2 else "–"
        rows = pub_ds[pub_ds["method_key"] == model]
        return "–" if rows.empty or pd.isna(rows[metric].iloc[0]) else f"{rows[metric].iloc[0]:.2f}"
    out["published acc"] = [published(m, "accuracy") for m in part["model"]]
    out["published F1"] = [published(m, "f1") for m in part["model"]]
    return out


def plot_metrics(agg: pd.DataFrame, path: Path) -> None:
    datasets = list(dict.fromkeys(agg["dataset"]))
    fig, axes = plt.subplots(len(datasets), 1, figsize=(max(6, 0.9 * agg["model"].nunique() + 2), 3.2 * len(datasets)), squeeze=False)
    for ax, ds in zip(axes[:, 0], datasets, strict=True):
        part = agg[agg["dataset"] == ds]
        x = np.arange(len(part))
        for i, k in enumerate(METRICS):
            ax.bar(x + (i - 1.5) * 0.2, part[k], 0.2, yerr=part[f"{k}_std"], capsize=2, label=k)
        ax.set_xticks(x, part["model"], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{ds}: test metrics, mean ± std over seeds")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=4, fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_confusions(runs: pd.DataFrame, path: Path) -> None:
    keys = list(runs.groupby(["dataset", "model"], sort=False).groups)
    cols = min(6, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (ds, model) in zip(axes.ravel(), keys, strict=False):
        per_seed = runs[(runs["dataset"] == ds) & (runs["model"] == model)]["confusion"]
        summed = {k: sum(c[k] for c in per_seed) for k in ("tn", "fp", "fn", "tp")}
        ax.axis("on")
        draw_confusion(ax, summed, ("N", "D"), fontsize=8)
        ax.set_title(f"{ds}\n{model}", fontsize=7)
    fig.suptitle("Test confusion matrices summed over seeds (rows: truth, cols: prediction)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _split_notes(params: Any) -> list[str]:
    notes = []
    for ds in params.datasets:
        p = params.path_of("splits") / f"{ds}.json"
        info = read_json(p) if p.is_file() else {}
        if not info.get("subject_independent_verified", False):
            notes.append(f"- **{ds}**: no subject ids were supplied; each vlog counts as its own subject, "
                         "so subject independence could not be verified.")
        else:
            notes.append(f"- **{ds}**: split is subject-independent over {info['n_subjects']} subjects (checked).")
    return notes


def write_tables(name: str, title: str, tables: dict[str, pd.DataFrame], out: Path, preface: list[str]) -> list[Path]:
    md = [f"# {title}", "", *preface, ""]
    tex, csv = [], []
    for ds, df in tables.items():
        md += [f"## {ds}", "", to_markdown(df)]
        tex.append(to_latex(df, f"{title} ({ds})"))
        csv.append(df.assign(dataset=ds))
    paths = [out / f"{name}.md", out / f"{name}.tex", out / f"{name}.csv"]
    write_text(paths[0], "\n".join(md))
    write_text(paths[1], "\n".join(tex))
    with atomic_path(paths[2]) as tmp:
        pd.concat(csv, ignore_index=True).to_csv(tmp, index=False)
    return paths


def make_report(params: Any) -> dict[str, Any]:
    out = params.path_of("reports")
    out.mkdir(parents=True, exist_ok=True)
    runs = collect(params)
    agg = aggregate(runs, params)
    datasets = list(dict.fromkeys(agg["dataset"]))
    with atomic_path(out / "runs.csv") as tmp:
        runs.drop(columns=["predictions", "metrics_flat", "run_dir", "confusion"]).to_csv(tmp, index=False)
    with atomic_path(out / "summary.csv") as tmp:
        agg.to_csv(tmp, index=False)
    preface = [f"Scale `{params.scale}`, seeds {params.seeds}; test-set metrics in %, mean ± std over seeds.",
               "Macro-avg = mean over datasets (per seed), as in the paper.", *_split_notes(params)]
    artifacts = [out / "runs.csv", out / "summary.csv"]
    artifacts += write_tables("results", "All models", {ds: _format(agg[agg["dataset"] == ds].reset_index(drop=True)) for ds in datasets}, out, preface)
    ablations = {ds: t for ds in datasets if (t := ablation_table(agg, ds)) is not None}
    if ablations:
        artifacts += write_tables("ablation", "ASYM ablations (Δ against the full model, points)", ablations, out, preface)
    artifacts += write_tables("comparison", "Comparison with published methods", {ds: comparison_table(agg, ds) for ds in datasets}, out,
                              [*preface, "Published accuracy / F1 (on the real releases, with the authors' splits) from "
                               "asym/reference/published_results.csv, where each number's source is given; '–' = not read."])
    plot_metrics(agg, out / "metrics.png")
    plot_confusions(runs, out / "confusion_matrices.png")
    artifacts += [out / "metrics.png", out / "confusion_matrices.png"]
    summary = {f"{r.dataset}/{r.model}/{k}": float(getattr(r, k)) for r in agg.itertuples() for k in METRICS}
    write_json(out / "summary.json", summary)
    from asym import tracking

    tracking.add_to_runs(params, [
        (r.mlflow_run_id, r.metrics_flat, [Path(r.run_dir) / "metrics.json", Path(r.run_dir) / "confusion.png"])
        for r in runs.itertuples() if r.mlflow_run_id
    ])
    macro = agg[agg["dataset"] == (MACRO if MACRO in datasets else datasets[0])]
    tracking.log_run(params, run_name="report", tags={"asym.stage": "report"},
                     run_params={"scale": params.scale, "seeds": params.seeds, "datasets": datasets, "models": params.models},
                     metrics={f"{r.model}.{k}".replace("/", "_"): float(getattr(r, k)) for r in macro.itertuples() for k in METRICS},
                     artifacts=[*artifacts, out / "summary.json"])
    return summary
