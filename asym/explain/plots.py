"""The explanation figures: a vlog's attribution over time, and a model's share per feature group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asym.explain.attribute import VlogAttribution
from asym.report.plots import FONT, GRID_ALPHA, LINE_WIDTH, PERCENT, TITLE_FONT, _plt, save_figure

CAPTION = ("Integrated Gradients of a research model's depressed-class logit: they explain what this model "
           "reads, not depression")
TIMELINE_SIZE = (7.0, 3.6)
BAR_HEIGHT = 0.27
BAR_ROW_IN = 0.38
BAR_WIDTH_IN = 7.0
BARS = (("feature_share", "share of the features", "lightgray"),
        ("attribution_share", "share of attribution (trained)", "tab:red"),
        ("random_attribution_share", "share of attribution (re-initialised)", "tab:blue"))


def plot_timeline(a: VlogAttribution, probability: float, title: str, path: Path) -> None:
    """Two panels, audio above visual: the sum of |attribution| over each modality's features per frame."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=TIMELINE_SIZE, layout="constrained")
    frames = np.arange(a.n_frames)
    for ax, series, name, colour in zip(axes, a.per_frame(), ("audio", "visual"), ("tab:purple", "tab:green"),
                                        strict=True):
        ax.plot(frames, series, color=colour, lw=LINE_WIDTH, label=f"{name}: sum of |attribution|\nover its features")
        ax.set_ylabel("|attribution|", fontsize=FONT)
        ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(alpha=GRID_ALPHA)
        ax.tick_params(labelsize=FONT)
    axes[-1].set_xlabel("frame (one per second)", fontsize=FONT)
    label = {1: "depressed", 0: "normal"}.get(a.label, "unlabelled")
    axes[0].set_title(f"{title}: vlog {a.sample_id} (label {label}, P(depressed) {probability:.2f})", fontsize=TITLE_FONT)
    fig.supxlabel(CAPTION, fontsize=FONT - 1, style="italic")
    save_figure(fig, path)


def plot_groups(groups: pd.DataFrame, title: str, path: Path) -> None:
    """Per feature group: its share of the columns beside its share of the trained and the
    re-initialised model's attribution (of all features, both modalities)."""
    plt = _plt()
    names = [f"{m}: {n}" for m, n in zip(groups["modality"], groups["name"], strict=True)]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(BAR_WIDTH_IN, 1.2 + BAR_ROW_IN * len(names)), layout="constrained")
    for k, (col, label, colour) in enumerate(BARS):
        ax.barh(y + (k - 1) * BAR_HEIGHT, PERCENT * groups[col].to_numpy(), BAR_HEIGHT, color=colour, label=label)
    ax.set_yticks(y, names, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlabel("% (of all features / of all attribution, mean over test vlogs)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(axis="x", alpha=GRID_ALPHA)
    ax.set_title(title, fontsize=TITLE_FONT)
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.supxlabel(CAPTION, fontsize=FONT - 1, style="italic")
    save_figure(fig, path)
