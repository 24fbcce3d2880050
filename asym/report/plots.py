"""Every figure of the pipeline, saved atomically through one helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from asym.report.aggregate import DatasetRuns

# Draws a run's confusion counts, titled, into a file: `plot_confusion`, or a ConfusionPlotter
# that reuses one figure across runs.
ConfusionPlot = Callable[[dict[str, int], str, Path], None]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Write a figure under a temporary name and rename it into place, then free it."""
    from asym.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    _plt().close(fig)


def draw_confusion(ax: Any, c: dict[str, int], ticks: tuple[str, str], fontsize: float = 10) -> None:
    """Counts as a 2x2 heat map on `ax`: rows truth, columns prediction, normal first."""
    cm = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize)
    ax.set_xticks([0, 1], list(ticks), fontsize=fontsize - 1)
    ax.set_yticks([0, 1], list(ticks), fontsize=fontsize - 1)


class ConfusionPlotter:
    """Per-run confusion matrices with one figure redrawn for each: a run folder per seed, model
    and dataset makes figure creation the cost worth saving."""

    def __init__(self) -> None:
        plt = _plt()
        self.fig, self.ax = plt.subplots(figsize=(2.8, 2.6))

    def __call__(self, c: dict[str, int], title: str, path: Path) -> None:
        from asym.io import atomic_path

        self.ax.clear()
        draw_confusion(self.ax, c, ("normal", "depressed"))
        self.ax.set_xlabel("prediction")
        self.ax.set_ylabel("truth")
        self.ax.set_title(title, fontsize=8)
        self.fig.tight_layout()
        with atomic_path(path) as tmp:
            self.fig.savefig(tmp, format="png", dpi=100)

    def close(self) -> None:
        _plt().close(self.fig)


def plot_confusion(c: dict[str, int], title: str, path: Path) -> None:
    plotter = ConfusionPlotter()
    try:
        plotter(c, title, path)
    finally:
        plotter.close()


def plot_confusion_grid(cells: list[tuple[str, str, dict[str, int]]], path: Path) -> None:
    plt = _plt()
    cols = min(6, len(cells))
    rows = int(np.ceil(len(cells) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (ds, model, c) in zip(axes.ravel(), cells, strict=False):
        ax.axis("on")
        draw_confusion(ax, c, ("N", "D"), fontsize=8)
        ax.set_title(f"{ds}\n{model}", fontsize=7)
    fig.suptitle("Test confusion matrices summed over seeds (rows: truth, cols: prediction)", fontsize=9)
    save_figure(fig, path)


def plot_metric_bars(agg: pd.DataFrame, metrics: tuple[str, ...], floors: pd.DataFrame, path: Path) -> None:
    """Per dataset, every model's test metrics (mean, 95% CI whiskers), floors as lines."""
    plt = _plt()
    datasets = list(dict.fromkeys(agg["dataset"]))
    width = 0.8 / len(metrics)
    fig, axes = plt.subplots(len(datasets), 1, figsize=(max(6, 0.9 * agg["model"].nunique() + 2), 3.4 * len(datasets)),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, ds in zip(axes[:, 0], datasets, strict=True):
        part = agg[agg["dataset"] == ds]
        x = np.arange(len(part))
        for i, k in enumerate(metrics):
            lo = (part[k] - part[f"{k}_ci_low"]).clip(lower=0).fillna(0)
            hi = (part[f"{k}_ci_high"] - part[k]).clip(lower=0).fillna(0)
            ax.bar(x + (i - (len(metrics) - 1) / 2) * width, part[k], width, yerr=[lo, hi], capsize=2, label=k,
                   color=colors[i % len(colors)])
            floor = floors[(floors["dataset"] == ds) & (floors["model"] == "majority")]
            if len(floor):
                ax.axhline(float(floor[k].iloc[0]), color=colors[i % len(colors)], ls=":", lw=1)
        ax.set_xticks(x, part["model"], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{ds}: test metrics, mean over seeds, 95% bootstrap CI (dotted: majority floor)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=len(metrics), fontsize=8, loc="lower right")
    save_figure(fig, path)


def plot_reliability(curves: list[tuple[str, str, np.ndarray, np.ndarray, float]], path: Path) -> None:
    """Reliability diagrams: observed depressed rate against mean predicted probability."""
    plt = _plt()
    datasets = list(dict.fromkeys(c[0] for c in curves))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        for d, model, predicted, observed, ece in curves:
            if d == ds:
                ax.plot(predicted, observed, marker="o", ms=3, lw=1, label=f"{model} (ECE {100 * ece:.1f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted probability (depressed)")
        ax.set_ylabel("observed depressed rate")
        ax.set_title(f"{ds}: reliability, test vlogs of every seed", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    save_figure(fig, path)


def published_points(summary: pd.DataFrame, published: pd.DataFrame, protocols: dict[str, str]) -> pd.DataFrame:
    """What the published plot draws, one row per point: per dataset, ours (F1 with its bootstrap
    CI) then the published F1s, each with its label, convention and whether its checkpoint was
    chosen on the reported fold (`optimistic`)."""
    import pandas as pd

    from asym.reference import OPTIMISTIC_PROTOCOLS

    rows = []
    for ds in [d for d in dict.fromkeys(summary["dataset"]) if d in protocols]:
        ours = summary[(summary["dataset"] == ds) & (summary["kind"] != "floor")]
        for _, r in ours.iterrows():
            rows.append({"dataset": ds, "label": f"{r['model']} (ours, {protocols[ds]})", "source": "ours",
                         "f1": 100 * r["f1"], "ci_low": 100 * r["f1_ci_low"], "ci_high": 100 * r["f1_ci_high"],
                         "convention": "depressed-class", "optimistic": protocols[ds] in OPTIMISTIC_PROTOCOLS})
        pub = published[(published["dataset"] == ds) & published["f1"].notna()]
        for _, r in pub.iterrows():
            optimistic = r["protocol"] in OPTIMISTIC_PROTOCOLS
            conv = r["metric_convention"]
            note = {"weighted": ", w.", "unnamed": ", convention unnamed"}.get(conv, "")
            rows.append({"dataset": ds, "label": f"{r['method']} ({r['protocol']}{note}{', optimistic' if optimistic else ''})",
                         "source": "published", "f1": float(r["f1"]), "ci_low": np.nan, "ci_high": np.nan,
                         "convention": conv, "optimistic": optimistic})
    return pd.DataFrame(rows, columns=["dataset", "label", "source", "f1", "ci_low", "ci_high", "convention",
                                       "optimistic"])


def plot_published(summary: pd.DataFrame, published: pd.DataFrame, protocols: dict[str, str], scale: str,
                   path: Path) -> pd.DataFrame:
    """Per dataset, published F1 beside the F1 measured here (95% CI), majority floor dotted;
    returns what it drew (`published_points`).

    Ours: filled, with their bootstrap CIs. Published: hollow circles (depressed-class F1),
    squares (weighted F1) or triangles (convention unnamed), labelled with their protocol; red
    where the checkpoint was chosen on the reported fold. At `scale: demo` ours are about
    synthetic data and the title says so.
    """
    plt = _plt()
    points = published_points(summary, published, protocols)
    datasets = [d for d in dict.fromkeys(summary["dataset"]) if d in protocols]
    heights = [int((points["dataset"] == d).sum()) for d in datasets]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 0.26 * max(heights + [8]) + 1.6),
                             squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        part = points[points["dataset"] == ds].reset_index(drop=True)
        for y, r in part.iterrows():
            if r["source"] == "ours":
                lo, hi = r["f1"] - r["ci_low"], r["ci_high"] - r["f1"]
                ax.errorbar(r["f1"], y, xerr=[[max(lo, 0)], [max(hi, 0)]], fmt="o", color="tab:blue", capsize=2, ms=4)
            else:
                marker = {"weighted": "s", "unnamed": "^"}.get(r["convention"], "o")
                ax.plot(r["f1"], y, marker, mfc="none", ms=5, color="tab:red" if r["optimistic"] else "tab:gray")
        floor = summary[(summary["dataset"] == ds) & (summary["model"] == "majority")]
        if len(floor):
            ax.axvline(100 * float(floor["f1"].iloc[0]), color="black", ls=":", lw=1, label="majority floor (ours)")
            ax.legend(fontsize=7, loc="best")
        ax.set_yticks(range(len(part)), list(part["label"]), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("F1 of the depressed class, % (squares: weighted F1; triangles: convention unnamed)")
        note = "\n(ours: synthetic demo data, comparable with nothing published)" if scale == "demo" else ""
        ax.set_title(f"{ds}: published vs measured{note}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)
    return points


def reliability_curves(all_runs: list[DatasetRuns]) -> list[tuple[str, str, np.ndarray, np.ndarray, float]]:
    from sklearn.calibration import calibration_curve

    from asym.metrics import ECE_BINS, expected_calibration_error

    curves = []
    for runs in all_runs:
        for model in ("asym", *[m for m in runs.probs if m != "asym"])[:6]:
            if model not in runs.probs:
                continue
            y = np.tile(runs.y, len(runs.probs[model]))
            prob = runs.probs[model].ravel()
            observed, predicted = calibration_curve(y, prob, n_bins=ECE_BINS, strategy="uniform")
            curves.append((runs.name, model, predicted, observed, expected_calibration_error(y, prob)))
    return curves
