"""The in-memory record every reader yields, whatever the release layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FOLDS = ("train", "valid", "test")
UNLABELLED = -1      # a vlog read for prediction only, with no label given


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


def per_second(x: np.ndarray, rate: float) -> np.ndarray:
    """Rows at `rate` per second as one row per second, as D-Vlog's features are: second s is
    the mean of the rows that fall in [s, s + 1); below one row per second, each row is repeated
    over the seconds it covers. A trailing partial second is kept when it holds a row."""
    if rate == 1:
        return x
    n_rows = x.shape[0]
    seconds = int(np.ceil(n_rows / rate))
    if rate < 1:
        return np.ascontiguousarray(x[np.minimum((np.arange(seconds) * rate).astype(np.int64), n_rows - 1)])
    starts = np.ceil(np.arange(seconds) * rate - 1e-9).astype(np.int64)
    starts = starts[starts < n_rows]
    sums = np.add.reduceat(x.astype(np.float64, copy=False), starts, axis=0)
    counts = np.diff(np.r_[starts, n_rows])[:, None]
    return sums / counts
