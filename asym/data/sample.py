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


# Slack for a product of seconds and a non-integer rate landing a hair off a whole row (70 x 0.7).
ROUNDING = 1e-9


def per_second(x: np.ndarray, rate: float) -> np.ndarray:
    """Rows at `rate` per second as one row per second, as D-Vlog's features are: row i starts at
    i / rate seconds, and second s is the mean of the rows that start in [s, s + 1); below one row
    per second, a second in which no row starts repeats the row still running. A trailing partial
    second is kept when a row starts in it."""
    if rate == 1:
        return x
    n_rows = x.shape[0]
    seconds = int(np.ceil(n_rows / rate - ROUNDING))
    if rate < 1:   # at most one row starts in a second: that row, or else the one still running
        s = np.arange(seconds)
        first = np.ceil(s * rate - ROUNDING).astype(np.int64)
        starts_inside = first < np.ceil((s + 1) * rate - ROUNDING)
        return np.ascontiguousarray(x[np.minimum(np.where(starts_inside, first, first - 1), n_rows - 1)])
    starts = np.ceil(np.arange(seconds) * rate - ROUNDING).astype(np.int64)
    starts = starts[starts < n_rows]
    sums = np.add.reduceat(x.astype(np.float64, copy=False), starts, axis=0)
    counts = np.diff(np.r_[starts, n_rows])[:, None]
    return sums / counts
