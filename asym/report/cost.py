"""The cost table (reports/cost.{md,csv,tex,html}) from `asym.cost.measure`'s rows, and the figure
of F1 against cost (reports/cost.png) from that table and the main report's summary.csv, so the
figure can be drawn once the runs are evaluated and the table whenever the models change.

The CSV holds every measured number (one row per dataset, model and vlog length); the Markdown,
LaTeX and HTML show, per dataset, one row per model: parameters, then MACs, CPU latency and peak
memory at each vlog length, and how much more a minute costs at the longest length than at the
shortest (1.00 for a model linear in the vlog's length).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from asym.io import atomic_path, write_text
from asym.layout import COST_TABLE
from asym.models.registry import ASYM_KIND as ASYM
from asym.report import plots
from asym.report.html import write_page
from asym.report.latex import to_latex
from asym.report.runs import FLOOR_KIND, MACRO

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from asym.config import Params
    from asym.layout import Layout

TABLE = COST_TABLE                 # reports/cost.{md,csv,tex,html} and cost.png (asym.layout)

TITLE = "Cost per minute of vlog"
SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def table_outputs(layout: Layout) -> dict[str, Path]:
    """The table's files by output name (`cost_md`, ...), in `layout`'s reports folder."""
    return {k: Path(f) for k, f in layout.cost_outputs().items()}


def plot_inputs(layout: Layout) -> dict[str, Path]:
    """What the figure reads: the table's CSV and the main report's summary."""
    return {k: Path(f) for k, f in layout.cost_plot_inputs().items()}


def plot_output(layout: Layout) -> Path:
    return Path(layout.cost_plot())


def si(x: float, digits: int = 3) -> str:
    """A count in SI prefixes (1.23M), `digits` significant digits; – where undefined."""
    if x is None or not np.isfinite(x):
        return "–"
    for scale, prefix in SI_PREFIXES:
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{prefix}"
    return f"{x:.{digits}g}"


def _minutes(m: float) -> str:
    return f"{m:g} min"


def ordered_models(models: list[str]) -> list[str]:
    """ASYM first, then the rest in registry order (as the report's tables)."""
    return sorted(models, key=lambda m: (m != "asym", models.index(m)))


def table_view(part: pd.DataFrame) -> pd.DataFrame:
    """One dataset's rows as one row per model, formatted."""
    minutes = sorted(part["minutes"].unique())
    first, last = minutes[0], minutes[-1]
    out: dict[str, list[str]] = {"model": [], "kind": [], "params": []}
    for model in ordered_models(list(dict.fromkeys(part["model"]))):
        rows = part[part["model"] == model].set_index("minutes")
        out["model"].append(f"**{model}** ◀" if model == "asym" else model)
        out["kind"].append(str(rows["kind"].iloc[0]))
        out["params"].append(si(float(rows["params"].iloc[0])))
        for m in minutes:
            out.setdefault(f"MACs/min, {_minutes(m)}", []).append(si(float(rows.loc[m, "macs_per_min"])))
        growth = float(rows.loc[last, "macs_per_min"] / rows.loc[first, "macs_per_min"]) if last != first else np.nan
        if last != first:
            out.setdefault(f"×MACs/min, {_minutes(last)} vs {_minutes(first)}", []).append(
                "–" if not np.isfinite(growth) else f"{growth:.2f}")
        out.setdefault("scan share", []).append(_share(rows["scan_share"]))
        for m in minutes:
            ms = float(rows.loc[m, "latency_ms_per_min"])
            out.setdefault(f"CPU ms/min, {_minutes(m)}", []).append("–" if not np.isfinite(ms) else f"{ms:.3g}")
        for m in minutes:
            mb = float(rows.loc[m, "peak_mb"])
            out.setdefault(f"peak MB, {_minutes(m)}", []).append("–" if not np.isfinite(mb) else f"{mb:.3g}")
    return pd.DataFrame(out)


def _share(shares: pd.Series) -> str:
    """The scans' share of the MACs over the lengths costed (a range where it moves)."""
    s = shares.astype(float).dropna()
    if s.empty or (s == 0).all():
        return "–"
    lo, hi = 100 * s.min(), 100 * s.max()
    return f"{lo:.1f}%" if np.isclose(lo, hi, atol=0.05) else f"{lo:.1f}–{hi:.1f}%"


def caption(rows: pd.DataFrame, params: Params) -> list[str]:
    cfg = params.cost
    threads = int(rows["threads"].iloc[0]) if len(rows) and np.isfinite(rows["threads"].iloc[0]) else cfg.threads
    return [
        f"Scale `{params.scale}`: each model at the active scale's widths on each dataset's input widths, one feature "
        f"row per second of vlog (60 frames a minute), batch {cfg.batch}, the evaluation forward pass (the whole vlog; "
        "crops are a training augmentation). Parameters: those training updates.",
        "MACs: multiply-accumulates of one forward pass per minute of vlog, PyTorch's FLOP counter "
        "(torch.utils.flop_counter: matrix products, convolutions, attention; 2 FLOPs per MAC; no elementwise op) plus "
        "what it cannot see: the selective scan, counted exactly (asym.cost.selective_scan_flops: per step, channel and "
        "state the decay's exp, the state update's and the C readout's multiply-adds; per channel the D skip and the "
        "SiLU(z) gate), CPU attention and CPU LSTM layers. ×MACs/min: how much more a minute costs at the longest vlog "
        "than at the shortest, 1.00 for a cost linear in the vlog's length (above 1: attention over the whole vlog). "
        "Scan share: the scans' part of the MACs.",
        f"CPU ms/min: median of {cfg.repeats.at(params.scale)} timed forward passes after {cfg.warmup} untimed, under "
        f"torch.inference_mode with {threads} thread(s), divided by the minutes of vlog in the batch; measured on "
        f"{platform.machine() or 'an unnamed machine'} with torch {_torch_version()}; wall-clock times, so noise when "
        "other jobs share the machine (the workflow runs this step beside training): compare latencies only from a "
        "run on an otherwise idle machine (parameters and MACs do not depend on it). Peak MB: the process's "
        "resident-set high-water mark over one forward pass, less its resident set before it (the model and inputs "
        "left out; memory freed earlier handed back first), so buffers outside torch's allocator (the CPU scan's) "
        "count too, to within the kernel's resident-set accounting (a few hundred kB); – where it cannot be measured "
        "(Linux with glibc only).",
    ]


def _torch_version() -> str:
    import torch

    return torch.__version__


def write_table(rows: pd.DataFrame, params: Params, paths: dict[str, Path]) -> None:
    """reports/cost.{md,csv,tex,html} from `asym.cost.measure`'s rows."""
    text = caption(rows, params)
    md = [f"# {TITLE}", "", *(x for line in text for x in (line, ""))]
    tex = []
    for ds in dict.fromkeys(rows["dataset"]):
        view = table_view(rows[rows["dataset"] == ds])
        md += [f"## {ds}", "", view.to_markdown(index=False, disable_numparse=True), ""]
        tex.append(to_latex(view, f"{TITLE} ({ds}). " + " ".join(text)))
    write_text(paths[f"{TABLE}_md"], "\n".join(md))
    write_text(paths[f"{TABLE}_tex"], "\n".join(tex))
    with atomic_path(paths[f"{TABLE}_csv"]) as tmp:
        rows.to_csv(tmp, index=False)
    write_page(paths[f"{TABLE}_md"], paths[f"{TABLE}_html"])


# --- F1 against cost ---------------------------------------------------------------------------
def cost_points(cost: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, trained model): its MACs per minute at the longest vlog costed and its
    test F1 with the 95% CI (summary.csv); models the summary lacks are left out."""
    longest = cost["minutes"].max()
    at = cost[cost["minutes"] == longest][["dataset", "model", "kind", "macs_per_min", "latency_ms_per_min"]]
    trained = summary[(summary["kind"] != FLOOR_KIND) & (summary["dataset"] != MACRO)]
    points = at.merge(trained[["dataset", "model", "f1", "f1_ci_low", "f1_ci_high"]], on=["dataset", "model"])
    return points.assign(minutes=longest)


def draw_cost(points: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """A panel per dataset: test F1 (mean over seeds, 95% CI) against MACs per minute (log scale),
    coloured by kind, each point named; the floors' F1 as horizontal lines."""
    plt = plots._plt()
    datasets = list(dict.fromkeys(points["dataset"]))
    fig, axes = plt.subplots(1, max(1, len(datasets)), squeeze=False, layout="constrained",
                             figsize=(plots.PUBLISHED_PANEL_IN * max(1, len(datasets)), plots.PUBLISHED_PANEL_IN * 0.7))
    floors = summary[summary["kind"] == FLOOR_KIND]
    styles = dict(plots.FLOOR_STYLES)
    for ax, ds in zip(axes[0], datasets, strict=False):
        part = points[points["dataset"] == ds]
        # ASYM drawn last, over its ablations (several share its MACs)
        for kind in sorted(dict.fromkeys([*plots.KIND_COLOURS, *part["kind"]]), key=lambda k: k == ASYM):
            k = part[part["kind"] == kind]
            if k.empty:
                continue
            f1 = plots.PERCENT * k["f1"].to_numpy(float)
            err = plots.PERCENT * np.vstack([(k["f1"] - k["f1_ci_low"]).clip(lower=0).fillna(0),
                                             (k["f1_ci_high"] - k["f1"]).clip(lower=0).fillna(0)])
            ax.errorbar(k["macs_per_min"], f1, yerr=err, fmt="o", ms=plots.MARKER_SIZE, capsize=plots.CAPSIZE,
                        elinewidth=plots.THIN_LINE_WIDTH, color=plots.KIND_COLOURS.get(kind, plots.OTHER_KIND_COLOUR),
                        label=plots.KIND_LABELS.get(kind, kind), zorder=3 if kind == ASYM else 2)
        for r in part.itertuples():
            ax.annotate(r.model, (r.macs_per_min, plots.PERCENT * r.f1), xytext=(3, 3), textcoords="offset points",
                        fontsize=plots.FONT - 2)
        _floor_lines(ax, floors[floors["dataset"] == ds], styles)
        ax.set_xscale("log")
        ax.set_xlabel(f"MACs per minute of vlog, {part['minutes'].iloc[0]:g}-minute vlogs (log scale)",
                      fontsize=plots.FONT + 1)
        ax.set_ylabel("test F1 (depressed class), %", fontsize=plots.FONT + 1)
        ax.set_title(f"{ds}: F1 against cost", fontsize=plots.TITLE_FONT + 1)
        ax.grid(alpha=plots.GRID_ALPHA, which="both")
        ax.tick_params(labelsize=plots.FONT)
    entries = plots._legend_entries(axes.ravel())
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=plots.LEGEND_COLUMNS,
                   fontsize=plots.FONT)
    fig.suptitle("Test F1 (mean over seeds, 95% bootstrap CI) against multiply-accumulates", fontsize=plots.SUPTITLE_FONT)
    return fig


def _floor_lines(ax: Any, floors: pd.DataFrame, styles: dict[str, tuple[str, Any]]) -> None:
    """The floors' F1 as horizontal lines, in the report's floor styles."""
    for name, f1 in zip(floors["model"], floors["f1"].astype(float), strict=True):
        if np.isfinite(f1):
            colour, dashes = styles.get(name, plots.SPARE_FLOOR_STYLES[0])
            ax.axhline(plots.PERCENT * f1, color=colour, ls=dashes, lw=plots.LINE_WIDTH, label=f"floor: {name}")


def plot_cost(cost_csv: Path, summary_csv: Path, path: Path) -> pd.DataFrame:
    """reports/cost.png from the cost table's CSV and the main report's summary; returns what it drew."""
    cost, summary = pd.read_csv(cost_csv), pd.read_csv(summary_csv)
    points = cost_points(cost, summary)
    plots.save_figure(draw_cost(points, summary), path)
    return points
