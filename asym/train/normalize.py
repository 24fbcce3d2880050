"""The recipe's normalisation of what the model is fed (`normalize` in its recipe).

`zscore`: each feature centred and scaled by its mean and standard deviation over every frame
of the training fold, fitted there only (no statistic leaks from valid or test); `none`: the
raw features (an identity `Normalizer`, so a checkpoint always holds one).

`per_sample`: each vlog z-scored over its own frames, feature by feature. MDD-Net's reader
(github rezwanh001/Multimodal-Depression-Detection @b85a8a0, datasets/dvlog.py,
`normalize_data`) subtracts each feature's mean over the vlog's frames and divides by its
standard deviation (population, ddof 0) clipped below at 1e-8 (`std_floor`). No statistic is
shared between vlogs, so nothing leaks between folds and nothing is fitted. The trainer applies
it to what it feeds: with crops, each crop's own frames (MDD-Net trains on whole vlogs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from asym.config import RecipeConfig
    from asym.data.parquet import FeatureTable

# A standard deviation at or below this counts as a constant feature: left unscaled.
CONSTANT_STD = 1e-8


@dataclass
class Normalizer:
    """Per-feature z-score from train-fold frames only."""

    a_mean: np.ndarray
    a_std: np.ndarray
    v_mean: np.ndarray
    v_std: np.ndarray

    @classmethod
    def fit(cls, table: FeatureTable) -> Normalizer:
        a = np.concatenate(table.audio).astype(np.float64)
        v = np.concatenate(table.visual).astype(np.float64)

        def safe(s: np.ndarray) -> np.ndarray:
            return np.where(s > CONSTANT_STD, s, 1.0)
        return cls(a.mean(0), safe(a.std(0)), v.mean(0), safe(v.std(0)))

    @classmethod
    def identity(cls, table: FeatureTable) -> Normalizer:
        fa, fv = table.audio[0].shape[1], table.visual[0].shape[1]
        return cls(np.zeros(fa), np.ones(fa), np.zeros(fv), np.ones(fv))

    def __call__(self, a: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((a - self.a_mean) / self.a_std).astype(np.float32), ((v - self.v_mean) / self.v_std).astype(np.float32)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(getattr(self, k))) for k in ("a_mean", "a_std", "v_mean", "v_std")}


def zscore_frames(x: np.ndarray, std_floor: float) -> np.ndarray:
    """(T, F) -> each column minus its mean over the T frames, over its std (at least std_floor)."""
    x = np.asarray(x, np.float64)
    return ((x - x.mean(0)) / np.maximum(x.std(0), std_floor)).astype(np.float32)


@dataclass
class PerSampleNormalizer:
    std_floor: float

    def __call__(self, a: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return zscore_frames(a, self.std_floor), zscore_frames(v, self.std_floor)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of it (asym.train.job.unpack_partition rebuilds it from this)."""
        return {"std_floor": torch.tensor(self.std_floor, dtype=torch.float64)}


# Either normaliser: what the feed, prediction and a checkpoint's partitions hold.
AnyNormalizer = Normalizer | PerSampleNormalizer


def fit_normalizer(recipe: RecipeConfig, train: FeatureTable) -> AnyNormalizer:
    """The recipe's normalisation: fitted on the training fold only, or none to fit (per_sample)."""
    if recipe.normalize == "per_sample":
        return PerSampleNormalizer(float(recipe.std_floor))
    return Normalizer.fit(train) if recipe.normalize == "zscore" else Normalizer.identity(train)
