"""`normalize: per_sample`: each vlog z-scored over its own frames, feature by feature.

MDD-Net's reader (github rezwanh001/Multimodal-Depression-Detection @b85a8a0, datasets/dvlog.py,
`normalize_data`) subtracts each feature's mean over the vlog's frames and divides by its
standard deviation (population, ddof 0) clipped below at 1e-8 (`std_floor`). No statistic is
shared between vlogs, so nothing leaks between folds and nothing is fitted. The trainer applies
it to what it feeds: with crops, each crop's own frames (MDD-Net trains on whole vlogs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
        """What a checkpoint keeps of it (asym.train.job.load_checkpoint rebuilds it from this)."""
        return {"std_floor": torch.tensor(self.std_floor, dtype=torch.float64)}
