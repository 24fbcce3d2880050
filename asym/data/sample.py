"""The in-memory record every reader yields, whatever the release layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FOLDS = ("train", "valid", "test")
UNLABELLED = -1      # a vlog read for prediction only, with no label given
# Each format's release, as messages and model cards name it, with the paper that published it.
RELEASES = {"dvlog": ("D-Vlog", "Yoon et al., AAAI 2022"), "lmvd": ("LMVD", "He et al., 2024")}


def release_name(fmt: str) -> str:
    return RELEASES[fmt][0] if fmt in RELEASES else fmt


@dataclass
class Sample:
    sample_id: str
    label: int                  # 1 = depressed, 0 = normal
    audio: np.ndarray           # (T, F_a) float32, already cut to the shorter modality
    visual: np.ndarray          # (T, F_v) float32
    fold: str | None = None
    subject_id: str | None = None
    extra: dict = field(default_factory=dict)   # gender, duration where the release has them

    @property
    def n_frames(self) -> int:
        return int(self.audio.shape[0])


def align(audio: np.ndarray, visual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut both modalities to the shorter one (their rates differ by a few rows in the releases)."""
    n = min(audio.shape[0], visual.shape[0])
    return np.ascontiguousarray(audio[:n], dtype=np.float32), np.ascontiguousarray(visual[:n], dtype=np.float32)
