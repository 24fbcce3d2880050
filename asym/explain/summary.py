"""Attributions summed into shares: per vlog (each modality's), per model (each feature's and
group's over the test vlogs), and beside the re-initialised model's (the sanity check).

Every vlog weighs the same: its |attribution| is turned into shares of its own total before the
vlogs are averaged, so a long vlog, or one far from the baseline, does not outweigh the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from asym.explain.attribute import VlogAttribution
from asym.explain.groups import MODALITIES, Columns


def _share(x: np.ndarray) -> np.ndarray:
    """Rows of x as shares of their sums (a row of zeros stays zeros)."""
    total = x.sum(-1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


@dataclass
class Shares:
    """Per-feature shares of |attribution| (audio columns, then visual), averaged over vlogs."""

    overall: np.ndarray          # of each vlog's total
    in_modality: np.ndarray      # of each vlog's total over the feature's own modality
    modality: np.ndarray         # (vlogs, 2): each vlog's audio and visual share
    per_feature_mass: np.ndarray  # (F,) mean |attribution| per feature: what the rank correlation compares

    @classmethod
    def of(cls, attrs: list[VlogAttribution], audio_width: int) -> Shares:
        mass = np.stack([a.per_feature() for a in attrs]).astype(np.float64)        # (vlogs, F)
        a, v = mass[:, :audio_width], mass[:, audio_width:]
        modality = _share(np.c_[a.sum(1), v.sum(1)])
        return cls(_share(mass).mean(0), np.c_[_share(a), _share(v)].mean(0), modality, mass.mean(0))


def sanity(trained: Shares, randomised: Shares) -> float:
    """Spearman rank correlation of the per-feature attribution of the trained and re-initialised
    models: near 1 means the attributions do not depend on what the model learnt (Adebayo et al.,
    2018)."""
    rho = spearmanr(trained.per_feature_mass, randomised.per_feature_mass).statistic
    return float(rho)


def table(columns: tuple[Columns, Columns], trained: Shares, randomised: Shares) -> pd.DataFrame:
    """One row per modality, group and feature: its share of the columns, of the trained model's
    attribution and of the re-initialised model's, overall and within its modality."""
    widths = [c.width for c in columns]
    offset = {m: o for m, o in zip(MODALITIES, (0, widths[0]), strict=True)}
    total = sum(widths)
    rows = []

    def row(level: str, modality: str, name: str, idx: np.ndarray) -> dict:
        cols = offset[modality] + np.asarray(idx)
        width = widths[MODALITIES.index(modality)]
        return {"level": level, "modality": modality, "name": name, "columns": " ".join(map(str, idx)),
                "n_features": len(idx), "feature_share": len(idx) / total,
                "attribution_share": trained.overall[cols].sum(), "random_attribution_share": randomised.overall[cols].sum(),
                "feature_share_in_modality": len(idx) / width,
                "attribution_share_in_modality": trained.in_modality[cols].sum(),
                "random_attribution_share_in_modality": randomised.in_modality[cols].sum()}

    for c in columns:
        rows.append(row("modality", c.modality, c.modality, np.arange(c.width)))
    for c in columns:
        rows += [row("group", c.modality, g, idx) for g, idx in c.groups.items()]
    for c in columns:
        rows += [row("feature", c.modality, n, np.array([j])) for j, n in enumerate(c.names)]
    return pd.DataFrame(rows)


def vlog_table(attrs: list[VlogAttribution], shares: Shares) -> pd.DataFrame:
    """One row per attributed vlog: its logit, its attribution's completeness, each modality's share."""
    return pd.DataFrame({
        "id": [a.sample_id for a in attrs], "label": [a.label for a in attrs],
        "n_frames": [a.n_frames for a in attrs], "logit": [a.logit for a in attrs],
        "baseline_logit": [a.baseline_logit for a in attrs], "convergence_delta": [a.delta for a in attrs],
        "audio_share": shares.modality[:, 0], "visual_share": shares.modality[:, 1]})
