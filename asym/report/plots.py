"""Every figure of the pipeline, saved atomically through one helper.

Each figure is drawn by a `draw_*` function that returns it, so its geometry can be checked
before it is written, and saved by the matching `plot_*`. Figures use matplotlib's constrained
layout and are cropped to their contents when saved, so no title, label or legend is cut off or
drawn over another; every mark has a legend entry or a colour bar.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asym.models import registry

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

    from asym.report.runs import DatasetRuns

# Draws a run's confusion counts, titled, into a file: `plot_confusion`, or a ConfusionPlotter
# that reuses one figure across runs.
ConfusionPlot = Callable[[dict[str, int], str, Path], None]

PERCENT = 100.0
DPI = 110
SAVE_PAD_IN = 0.1                  # margin kept around the cropped contents, inches
FONT = 8                           # tick labels, legends, cell counts
TITLE_FONT = 9                     # panel titles
SUPTITLE_FONT = 10                 # figure titles
LEGEND_COLUMNS = 4
LINE_WIDTH = 1.2                   # floors, curves, marker edges
THIN_LINE_WIDTH = 0.8              # whiskers, the diagonal
MARKER_SIZE = 5.0
GRID_ALPHA = 0.3
CAPSIZE = 1.5

# The kinds of registry entry, one colour each wherever models are compared.
KIND_COLOURS = {registry.ASYM_KIND: "tab:red", registry.ABLATION_KIND: "tab:blue", registry.BASELINE_KIND: "tab:gray"}
KIND_LABELS = {registry.ASYM_KIND: "ASYM", registry.ABLATION_KIND: "ablation of ASYM", registry.BASELINE_KIND: "baseline"}
OTHER_KIND_COLOUR = "tab:olive"
# The floors are black lines told apart by their dash pattern; any other floor, or floors of equal
# value drawn as one line, take the next colour and pattern unused in the figure.
FLOOR_STYLES: dict[str, tuple[str, Any]] = {"majority": ("black", ":"), "chance": ("black", "--"),
                                            "always-depressed": ("black", "-.")}
SPARE_FLOOR_STYLES: tuple[tuple[str, Any], ...] = (
    ("tab:purple", (0, (5, 1))), ("tab:brown", (0, (1, 1))), ("tab:pink", (0, (3, 1, 1, 1, 1, 1))),
    ("tab:cyan", (0, (8, 2))), ("tab:purple", (0, (1, 3))), ("tab:brown", (0, (10, 2, 2, 2))))

# Text is drawn black or white, whichever contrasts more with the cell beneath it (WCAG 2
# relative luminance over sRGB, IEC 61966-2-1).
SRGB_LINEAR_LIMIT = 0.04045
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)
CONTRAST_FLARE = 0.05

# Confusion grid: cells per row and each cell's size, inches.
GRID_COLUMNS = 6
CELL_WIDTH_IN = 1.9
CELL_HEIGHT_IN = 1.75
COLOURBAR_WIDTH_IN = 0.9
COLOURBAR_SHRINK = 0.8
CONFUSION_CMAP = "Blues"

# Metric bars: one row of panels per dataset, one column per metric, one bar per model.
BAR_ROW_IN = 0.19                  # height per model
PANEL_WIDTH_IN = 2.6
NAMES_WIDTH_IN = 1.9               # room for the model names left of the first column
PANEL_EXTRA_IN = 0.9               # a panel's title and axis, beyond its bars
BAR_HEIGHT = 0.75
XLIM_PAD = 0.04                    # share of the axis range kept free beyond the outermost whisker

# Reliability: asym, the best baselines by F1 and the simplest baseline as a reference.
RELIABILITY_BEST_BASELINES = 2
RELIABILITY_REFERENCE = "mean-mlp"
RELIABILITY_PANEL_IN = 5.0
RELIABILITY_HEADER_IN = 0.8        # the figure's title and a panel's
RELIABILITY_LEGEND_LINE_IN = 0.2   # per line of the legend below each panel; two lines per curve
DIAGONAL_DASHES = (0, (2, 2))
# asym is drawn last (on top) as a solid line with filled dots; the others beneath it with their
# own marker and dash pattern, hollow and larger the earlier they are drawn, so a curve identical
# to one drawn over it still shows as a ring around the later marker.
RELIABILITY_TOP_STYLE = ("o", "-", KIND_COLOURS["asym"])
RELIABILITY_STYLES = (("s", "--", "tab:blue"), ("^", "-.", "tab:orange"), ("D", ":", "tab:green"),
                      ("v", (0, (3, 1, 1, 1)), "tab:purple"), ("P", (0, (1, 1)), "tab:brown"))
RELIABILITY_TOP_MARKER = 4.0
RELIABILITY_MARKER_STEP = 2.0
RELIABILITY_TOP_WIDTH = 2.0
RELIABILITY_WIDTH = 1.2
UNIT_PAD = 0.03                    # room beyond 0 and 1 so markers at the ends are drawn whole

# Published vs measured: one row per point.
PUBLISHED_PANEL_IN = 7.2
PUBLISHED_ROW_IN = 0.22
PUBLISHED_MIN_ROWS = 8
PUBLISHED_EXTRA_IN = 1.6
PUBLISHED_CONVENTIONS = {"weighted": ("s", "weighted F1"), "unnamed": ("^", "F1 convention unnamed")}
PUBLISHED_DEFAULT = ("o", "depressed-class F1")
PUBLISHED_LEGEND_ORDER = ("ours", "published", "")        # then the floors
PUBLISHED_NOT_COMPARABLE = "not comparable"          # a published row on other inputs than the release's
PUBLISHED_APART = "published below the dotted line: other inputs, never ranked with those above"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> None:
    """Write a figure under a temporary name and rename it into place, then free it; cropped to
    its contents (whatever lies outside the canvas is kept, never cut)."""
    from asym.io import atomic_path

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=SAVE_PAD_IN)
    _plt().close(fig)


# --- colour --------------------------------------------------------------------------------------
def relative_luminance(colour: Any) -> float:
    """WCAG 2 relative luminance of a matplotlib colour, 0 (black) to 1 (white)."""
    from matplotlib.colors import to_rgb

    c = np.asarray(to_rgb(colour), float)
    linear = np.where(c <= SRGB_LINEAR_LIMIT, c / SRGB_LINEAR_SLOPE, ((c + SRGB_OFFSET) / (1 + SRGB_OFFSET)) ** SRGB_GAMMA)
    return float(linear @ np.asarray(LUMINANCE_WEIGHTS))


def contrast_ratio(a: Any, b: Any) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    hi, lo = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (hi + CONTRAST_FLARE) / (lo + CONTRAST_FLARE)


def text_colour_on(background: Any) -> str:
    """Black or white, whichever reads better on `background`."""
    return "white" if contrast_ratio("white", background) > contrast_ratio("black", background) else "black"


def _draw_floors(ax: Axes, values: dict[str, float], styles: dict[str, tuple[str, Any]], note: str = "") -> None:
    """Floors as vertical lines at `values` (fractions); floors of equal value share one line and
    one legend entry ("majority = always-depressed"), so none hides under another; undefined
    ones are left out. `styles` (floor label to colour and dash pattern) grows as new labels are
    drawn, so one label looks the same in every panel and no two labels look alike."""
    groups: dict[float, list[str]] = {}
    for name, v in values.items():
        if np.isfinite(v):
            groups.setdefault(next((k for k in groups if np.isclose(k, v)), v), []).append(name)
    for v, names in groups.items():
        label = " = ".join(names)
        if label not in styles:
            used = [str(x) for x in styles.values()]
            styles[label] = next((x for x in SPARE_FLOOR_STYLES if str(x) not in used), SPARE_FLOOR_STYLES[-1])
        colour, dashes = styles[label]
        ax.axvline(PERCENT * v, color=colour, ls=dashes, lw=LINE_WIDTH, label=f"floor: {label}{note}")


def _legend_entries(axes: Iterable[Axes]) -> dict[str, Any]:
    """Every labelled artist of `axes`, first handle per label: one figure legend for panels
    that share their marks."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return entries


# --- confusion matrices ------------------------------------------------------------------------------
def draw_confusion(ax: Axes, c: dict[str, int], ticks: tuple[str, str], fontsize: float = 10) -> AxesImage:
    """Counts as a 2x2 heat map on `ax`: rows truth, columns prediction, normal first. The colour
    is each count's share of its row (the true class), so cells compare across runs of different
    sizes; the count is written in black or white, whichever contrasts more with its cell."""
    from matplotlib.colors import Normalize

    cm = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    norm = Normalize(vmin=0.0, vmax=1.0)
    image = ax.imshow(share, cmap=CONFUSION_CMAP, norm=norm)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize,
                color=text_colour_on(image.cmap(norm(share[i, j]))))
    ax.set_xticks([0, 1], list(ticks), fontsize=fontsize - 1)
    ax.set_yticks([0, 1], list(ticks), fontsize=fontsize - 1)
    return image


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
        self.ax.set_title(title, fontsize=FONT)
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


def draw_confusion_grid(cells: list[tuple[str, str, dict[str, int]]]) -> Figure:
    """One block per dataset, one cell per model, in the order given; one colour scale."""
    plt = _plt()
    datasets = list(dict.fromkeys(ds for ds, _, _ in cells))
    per_ds = {ds: [(m, c) for d, m, c in cells if d == ds] for ds in datasets}
    cols = min(GRID_COLUMNS, max(len(v) for v in per_ds.values()))
    rows = [int(np.ceil(len(per_ds[ds]) / cols)) for ds in datasets]
    fig = plt.figure(layout="constrained",
                     figsize=(CELL_WIDTH_IN * cols + COLOURBAR_WIDTH_IN, CELL_HEIGHT_IN * (sum(rows) + len(datasets))))
    fig.suptitle("Test confusion matrices, summed over seeds: rows truth, columns prediction "
                 "(N normal, D depressed)", fontsize=SUPTITLE_FONT)
    subfigs = np.atleast_1d(fig.subfigures(len(datasets), 1, height_ratios=[r + 1 for r in rows]))
    for sub, ds, n_rows in zip(subfigs, datasets, rows, strict=True):
        sub.suptitle(ds, fontsize=SUPTITLE_FONT, fontweight="bold")
        axes = sub.subplots(n_rows, cols, squeeze=False)
        image = None
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (model, c) in zip(axes.ravel(), per_ds[ds], strict=False):
            ax.axis("on")
            image = draw_confusion(ax, c, ("N", "D"), fontsize=FONT + 1)
            ax.set_title(model, fontsize=FONT)
        sub.colorbar(image, ax=axes.ravel().tolist(), label="share of the true class", shrink=COLOURBAR_SHRINK)
    return fig


def plot_confusion_grid(cells: list[tuple[str, str, dict[str, int]]], path: Path) -> None:
    save_figure(draw_confusion_grid(cells), path)


# --- metrics -------------------------------------------------------------------------------------------
def draw_metric_bars(agg: pd.DataFrame, metrics: tuple[str, ...], floors: pd.DataFrame) -> Figure:
    """A panel per (dataset, metric): a horizontal bar per model (mean over seeds, coloured by
    kind) with its 95% bootstrap CI, and the floors as vertical lines."""
    plt = _plt()
    datasets = list(dict.fromkeys(agg["dataset"]))
    models = list(dict.fromkeys(agg["model"]))
    kinds = agg.drop_duplicates("model").set_index("model")["kind"]
    styles = dict(FLOOR_STYLES)
    highs = [agg[f"{k}_ci_high"].max() for k in metrics] + [agg[k].max() for k in metrics]
    lows = [agg[f"{k}_ci_low"].min() for k in metrics] + [agg[k].min() for k in metrics]
    hi, lo = max(1.0, np.nanmax(highs)), min(0.0, np.nanmin(lows))
    pad = XLIM_PAD * (hi - lo)
    fig, axes = plt.subplots(len(datasets), len(metrics), sharex=True, sharey=True, squeeze=False, layout="constrained",
                             figsize=(NAMES_WIDTH_IN + PANEL_WIDTH_IN * len(metrics),
                                      len(datasets) * (BAR_ROW_IN * len(models) + PANEL_EXTRA_IN)))
    y = np.arange(len(models))
    for row, ds in zip(axes, datasets, strict=True):
        part = agg[agg["dataset"] == ds].set_index("model").reindex(models)
        ds_floors = floors[floors["dataset"] == ds] if len(floors) else floors
        for ax, k in zip(row, metrics, strict=True):
            value = PERCENT * part[k].to_numpy(float)
            for kind in dict.fromkeys([*KIND_COLOURS, *kinds]):
                mask = (kinds.reindex(models) == kind).to_numpy()
                if mask.any():
                    ax.barh(y[mask], value[mask], BAR_HEIGHT, color=KIND_COLOURS.get(kind, OTHER_KIND_COLOUR),
                            label=KIND_LABELS.get(kind, kind))
            err = np.vstack([(part[k] - part[f"{k}_ci_low"]).clip(lower=0).fillna(0),
                             (part[f"{k}_ci_high"] - part[k]).clip(lower=0).fillna(0)]) * PERCENT
            ax.errorbar(value, y, xerr=err, fmt="none", ecolor="black", elinewidth=THIN_LINE_WIDTH, capsize=CAPSIZE,
                        label="95% bootstrap CI (test sampling)")
            _draw_floors(ax, dict(zip(ds_floors["model"], ds_floors[k].astype(float), strict=True)), styles)
            ax.set_title(f"{ds}: {k}", fontsize=TITLE_FONT)
            ax.grid(axis="x", alpha=GRID_ALPHA)
            ax.tick_params(labelsize=FONT)
    axes[0, 0].set_yticks(y, models)
    axes[0, 0].invert_yaxis()
    axes[0, 0].set_xlim(PERCENT * (lo - pad), PERCENT * (hi + pad))
    for ax in axes[-1]:
        ax.set_xlabel("%", fontsize=FONT)
    entries = _legend_entries(axes.ravel())
    order = sorted(entries, key=lambda label: label.startswith("floor"))
    fig.legend([entries[k] for k in order], order, loc="outside lower center", ncol=LEGEND_COLUMNS, fontsize=FONT)
    fig.suptitle("Test metrics: mean over seeds, whiskers the 95% bootstrap CI over test vlogs "
                 "(not over seeds)", fontsize=SUPTITLE_FONT)
    return fig


def plot_metric_bars(agg: pd.DataFrame, metrics: tuple[str, ...], floors: pd.DataFrame, path: Path) -> None:
    """Per dataset, every model's test metrics (mean, 95% CI whiskers), floors as lines."""
    save_figure(draw_metric_bars(agg, metrics, floors), path)


# --- reliability ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliabilityCurve:
    """One model's reliability diagram on one dataset, and the two ECEs a reader may meet."""

    dataset: str
    model: str
    role: str                      # why it is shown
    predicted: np.ndarray          # mean predicted probability per non-empty bin
    observed: np.ndarray           # depressed rate per non-empty bin
    ece_pooled: float              # over every seed's test predictions at once: what the curve shows
    ece_table: float               # mean of each run's ECE: what the results table prints


def reliability_models(runs: DatasetRuns) -> dict[str, str]:
    """Which models a reliability panel shows, and why: asym, the baselines with the best mean
    test F1 (the table's F1) and the simplest baseline as a reference (else the weakest), never
    the first entries of the registry (asym's ablations, which may predict as asym does)."""

    f1 = _mean_metric(runs, "f1")
    baselines = sorted((m for m in runs.probs if registry.get(m).kind == registry.BASELINE_KIND), key=lambda m: -f1[m])
    chosen: dict[str, str] = {}
    if "asym" in runs.probs:
        chosen["asym"] = "ours"
    for m in baselines[:RELIABILITY_BEST_BASELINES]:
        chosen[m] = "best baseline by F1"
    reference = RELIABILITY_REFERENCE if RELIABILITY_REFERENCE in runs.probs else (baselines[-1] if baselines else None)
    if reference is not None:
        role = "simplest baseline" if reference == RELIABILITY_REFERENCE else "weakest baseline"
        chosen[reference] = f"{chosen[reference]}; {role}" if reference in chosen else role
    return chosen


def _mean_metric(runs: DatasetRuns, metric: str) -> dict[str, float]:
    """Per model, the table's value of `metric`: the mean over seeds of each seed's metric on its
    test predictions pooled over its partitions (asym.report.aggregate.pooled_metrics)."""
    from asym.report.aggregate import pooled_metrics

    return {m: float(pooled_metrics(runs, m)[metric].mean()) for m in runs.probs}


def reliability_curves(all_runs: list[DatasetRuns]) -> list[ReliabilityCurve]:
    """Per dataset, the curves of `reliability_models`, every seed's test predictions pooled."""
    from sklearn.calibration import calibration_curve

    from asym.metrics import ECE_BINS, expected_calibration_error

    curves = []
    for runs in all_runs:
        table_ece = _mean_metric(runs, "ece")
        for model, role in reliability_models(runs).items():
            y = np.tile(runs.y, len(runs.probs[model]))
            prob = runs.probs[model].ravel()
            observed, predicted = calibration_curve(y, prob, n_bins=ECE_BINS, strategy="uniform")
            curves.append(ReliabilityCurve(runs.name, model, role, predicted, observed,
                                           expected_calibration_error(y, prob), table_ece[model]))
    return curves


def draw_reliability(curves: list[ReliabilityCurve]) -> Figure:
    """Reliability diagrams, one panel per dataset; asym drawn last, on top."""
    from asym.metrics import ECE_BINS

    plt = _plt()
    datasets = list(dict.fromkeys(c.dataset for c in curves))
    legend_lines = 1 + 2 * max(sum(c.dataset == ds for c in curves) for ds in datasets)
    fig = plt.figure(layout="constrained",
                     figsize=(RELIABILITY_PANEL_IN * len(datasets),
                              RELIABILITY_PANEL_IN + RELIABILITY_HEADER_IN + RELIABILITY_LEGEND_LINE_IN * legend_lines))
    fig.suptitle(f"Reliability on the test vlogs, every seed pooled ({ECE_BINS} equal-width bins)\n"
                 "ECE x100, pooled: one ECE over every seed's predictions, as drawn; "
                 "table: the mean of each run's ECE, as in results.md", fontsize=SUPTITLE_FONT)
    subfigs = np.atleast_1d(fig.subfigures(1, len(datasets)))
    for sub, ds in zip(subfigs, datasets, strict=True):
        ax = sub.subplots()
        ax.plot([0, 1], [0, 1], color="black", ls=DIAGONAL_DASHES, lw=THIN_LINE_WIDTH, label="perfect calibration",
                zorder=1)
        mine = [c for c in curves if c.dataset == ds and c.model != "asym"]
        styles = list(zip(mine, itertools.cycle(RELIABILITY_STYLES)))
        styles += [(c, RELIABILITY_TOP_STYLE) for c in curves if c.dataset == ds and c.model == "asym"]
        for z, (c, (marker, ls, colour)) in enumerate(styles):
            top = c.model == "asym"
            ax.plot(c.predicted, c.observed, marker=marker, ls=ls, mew=LINE_WIDTH, zorder=2 + z,
                    lw=RELIABILITY_TOP_WIDTH if top else RELIABILITY_WIDTH,
                    ms=RELIABILITY_TOP_MARKER + RELIABILITY_MARKER_STEP * (len(styles) - 1 - z),
                    mfc=colour if top else "none", color=colour,
                    label=f"{c.model} ({c.role})\nECE {PERCENT * c.ece_pooled:.1f} pooled, "
                          f"{PERCENT * c.ece_table:.1f} table")
        ax.set_xlim(-UNIT_PAD, 1 + UNIT_PAD)
        ax.set_ylim(-UNIT_PAD, 1 + UNIT_PAD)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted probability (depressed)", fontsize=FONT + 1)
        ax.set_ylabel("observed depressed rate", fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=GRID_ALPHA)
        ax.set_title(ds, fontsize=TITLE_FONT + 1, fontweight="bold")
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith("asym ("))
        sub.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
                   fontsize=FONT, ncol=1)
    return fig


def plot_reliability(curves: list[ReliabilityCurve], path: Path) -> None:
    """Reliability diagrams: observed depressed rate against mean predicted probability."""
    save_figure(draw_reliability(curves), path)


# --- published vs measured ----------------------------------------------------------------------------------
def published_points(summary: pd.DataFrame, published: pd.DataFrame, protocols: dict[str, str]) -> pd.DataFrame:
    """What the published plot draws, one row per point: per dataset, ours (F1 with its bootstrap
    CI), the published F1s on the releases' audio and visual features, then, apart and last, those
    on other inputs (`comparable` false, labelled NOT_COMPARABLE's short form); each with its label,
    convention and whether its checkpoint was chosen on the reported fold (`optimistic`)."""
    import pandas as pd

    from asym.reference import OPTIMISTIC_PROTOCOLS, comparable
    from asym.report.runs import FLOOR_KIND

    rows = []
    for ds in [d for d in dict.fromkeys(summary["dataset"]) if d in protocols]:
        ours = summary[(summary["dataset"] == ds) & (summary["kind"] != FLOOR_KIND)]
        for _, r in ours.iterrows():
            rows.append({"dataset": ds, "label": f"{r['model']} (ours, {protocols[ds]})", "source": "ours",
                         "f1": 100 * r["f1"], "ci_low": 100 * r["f1_ci_low"], "ci_high": 100 * r["f1_ci_high"],
                         "convention": "depressed-class", "optimistic": protocols[ds] in OPTIMISTIC_PROTOCOLS,
                         "comparable": True})
        pub = published[(published["dataset"] == ds) & published["f1"].notna()]
        pub = pub.assign(comparable=comparable(pub)).sort_values("comparable", ascending=False, kind="stable")
        for _, r in pub.iterrows():
            optimistic = r["protocol"] in OPTIMISTIC_PROTOCOLS
            conv = r["metric_convention"]
            note = {"weighted": ", w.", "unnamed": ", convention unnamed"}.get(conv, "")
            inputs = "" if r["comparable"] else f", {r['modalities']}: {PUBLISHED_NOT_COMPARABLE}"
            rows.append({"dataset": ds, "label": f"{r['method']} ({r['protocol']}{note}{', optimistic' if optimistic else ''}"
                                                 f"{inputs})",
                         "source": "published", "f1": float(r["f1"]), "ci_low": np.nan, "ci_high": np.nan,
                         "convention": conv, "optimistic": optimistic, "comparable": bool(r["comparable"])})
    return pd.DataFrame(rows, columns=["dataset", "label", "source", "f1", "ci_low", "ci_high", "convention",
                                       "optimistic", "comparable"])


def draw_published(summary: pd.DataFrame, points: pd.DataFrame, protocols: dict[str, str], scale: str) -> Figure:
    """Per dataset, the points of `published_points`, with the floors as vertical lines."""
    from asym.report.runs import FLOOR_KIND

    plt = _plt()
    datasets = [d for d in dict.fromkeys(summary["dataset"]) if d in protocols]
    floors = summary[summary["kind"] == FLOOR_KIND]
    styles = dict(FLOOR_STYLES)
    heights = [int((points["dataset"] == d).sum()) for d in datasets]
    fig, axes = plt.subplots(1, len(datasets), squeeze=False, layout="constrained",
                             figsize=(PUBLISHED_PANEL_IN * len(datasets),
                                      PUBLISHED_ROW_IN * max(heights + [PUBLISHED_MIN_ROWS]) + PUBLISHED_EXTRA_IN))
    for ax, ds in zip(axes[0], datasets, strict=True):
        part = points[points["dataset"] == ds].reset_index(drop=True)
        for y, r in part.iterrows():
            if r["source"] == "ours":
                lo, hi = r["f1"] - r["ci_low"], r["ci_high"] - r["f1"]
                ax.errorbar(r["f1"], y, xerr=[[max(lo, 0)], [max(hi, 0)]], fmt="o", color="tab:blue", capsize=CAPSIZE,
                            ms=MARKER_SIZE - 1, label="ours: mean over seeds, 95% bootstrap CI")
            else:
                marker, convention = PUBLISHED_CONVENTIONS.get(r["convention"], PUBLISHED_DEFAULT)
                label = f"published, {convention}" + (", checkpoint chosen on the test fold" if r["optimistic"] else "")
                color = "tab:red" if r["optimistic"] else "tab:gray"
                if not r["comparable"]:
                    label, color = f"published, other inputs: {PUBLISHED_NOT_COMPARABLE}", "tab:brown"
                ax.plot(r["f1"], y, marker, mfc="none", ms=MARKER_SIZE, color=color, label=label)
        apart = part.index[~part["comparable"].astype(bool)]
        if len(apart):          # the rows on other inputs stand below a line, never among the ranked
            ax.axhline(apart[0] - 0.5, color="tab:brown", ls=":", lw=1, label=PUBLISHED_APART)
        ds_floors = floors[floors["dataset"] == ds]
        _draw_floors(ax, dict(zip(ds_floors["model"], ds_floors["f1"].astype(float), strict=True)), styles, " (ours)")
        ax.set_yticks(range(len(part)), list(part["label"]), fontsize=FONT - 1)
        ax.invert_yaxis()
        ax.set_xlabel("F1, %", fontsize=FONT + 1)
        ax.tick_params(axis="x", labelsize=FONT)
        ax.set_title(f"{ds}: published vs measured here", fontsize=TITLE_FONT + 1)
        ax.grid(axis="x", alpha=GRID_ALPHA)
    entries = _legend_entries(axes.ravel())
    order = sorted(entries, key=lambda label: [label.startswith(x) for x in PUBLISHED_LEGEND_ORDER].index(True))
    fig.legend([entries[k] for k in order], order, loc="outside lower center", ncol=2, fontsize=FONT)
    if scale == "demo":
        fig.suptitle("Ours: synthetic demo data, comparable with nothing published", fontsize=SUPTITLE_FONT)
    return fig


def plot_published(summary: pd.DataFrame, published: pd.DataFrame, protocols: dict[str, str], scale: str,
                   path: Path) -> pd.DataFrame:
    """Per dataset, published F1 beside the F1 measured here (95% CI), floors as lines; returns
    what it drew (`published_points`).

    Ours: filled, with their bootstrap CIs. Published: hollow circles (depressed-class F1),
    squares (weighted F1) or triangles (convention unnamed), labelled with their protocol; red
    where the checkpoint was chosen on the reported fold; brown, below a dotted line and labelled
    "not comparable", those on other inputs (a trimodal model). At `scale: demo` ours are about
    synthetic data and the title says so.
    """
    points = published_points(summary, published, protocols)
    save_figure(draw_published(summary, points, protocols, scale), path)
    return points
