"""A synthetic dataset in the manifest format (asym.data.manifest), at any widths and frame rates.

    manifest.csv           id,label,fold,audio,visual,subject,gender
    audio/<id>.npy         (T_a, audio_dim) float32, frame_rates.audio rows per second
    visual/<id>.npy        (T_v, visual_dim) float32, frame_rates.visual rows per second

The planted cue works at any width, one feature included: depressed vlogs move less (a smaller
temporal variation of every feature, by a per-vlog random factor) and sit lower along a fixed
direction of each modality's feature space. Subjects differ in an identity offset and in how
expressive they are; several vlogs per subject share both and a label, and each subject's vlogs
share a fold (folds stratified by label over subjects), so a split that leaks subjects would
look better than it should. Each stream is drawn one row per second and written at its frame
rate, each row of a second that second's value plus a little noise, so the reader's pooling
recovers the per-second rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from asym.data.manifest import MANIFEST
from asym.data.synthetic import _labels, _smooth_noise, _stratified_folds
from asym.io import atomic_dir

HEADER = "id,label,fold,audio,visual,subject,gender"
# How far a depressed vlog sits along its modality's direction, in units of the identity offsets'
# spread (0.5): close enough that the classes overlap whatever the width.
SHIFT = 0.5


class _Modality:
    """One stream's fixed scale, offset and the direction the label moves it along."""

    def __init__(self, rng: np.random.Generator, dim: int) -> None:
        self.dim = dim
        self.scale = np.exp(rng.normal(0, 0.5, dim))
        self.offset = rng.normal(0, 2.0, dim)
        self.direction = rng.choice([-1.0, 1.0], dim)

    def draw(self, rng: np.random.Generator, identity: np.ndarray, expressive: float, s: float,
             seconds: int) -> np.ndarray:
        """`seconds` rows, one per second, carrying a cue of strength `s` (0 for normal vlogs)."""
        amp = expressive * (1 - 0.3 * s * rng.uniform(0.5, 1.5))
        x = identity + amp * _smooth_noise(rng, seconds, self.dim)
        # a shift of the same size along the direction (of norm 1) at any width: a weak cue
        x -= SHIFT * s * rng.uniform(0.5, 1.5) * self.direction / np.sqrt(self.dim)
        x += rng.normal(0, 0.3, x.shape)
        return x * self.scale + self.offset


def at_rate(rng: np.random.Generator, x: np.ndarray, rate: float) -> np.ndarray:
    """Per-second rows `x` as a stream of `rate` rows per second: row j, at time j / rate, is its
    second's row plus noise small against the per-second variation."""
    if rate == 1:
        return x
    n_rows = max(1, int(round(x.shape[0] * rate)))
    second = np.minimum((np.arange(n_rows) / rate).astype(np.int64), x.shape[0] - 1)
    return x[second] + rng.normal(0, 0.05, (n_rows, x.shape[1])) * np.std(x, axis=0, keepdims=True)


def write_manifest(out: Path, cfg: dict[str, Any], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_subj = int(cfg["n_samples"]), int(cfg["n_subjects"])
    signal, jitter = float(cfg["signal"]), int(cfg["length_jitter"])
    lo, hi = (int(v) for v in cfg["seconds"])
    rates = cfg.get("frame_rates") or {}
    rate_a, rate_v = float(rates.get("audio", 1.0)), float(rates.get("visual", 1.0))
    audio, visual = _Modality(rng, int(cfg["audio_dim"])), _Modality(rng, int(cfg["visual_dim"]))
    # Every subject has at least one vlog, the rest are spread at random (several per person);
    # a subject's label and fold are their vlogs'.
    owner = rng.permutation(np.r_[np.arange(n_subj), rng.integers(0, n_subj, n - n_subj)])
    subj_labels = _labels(rng, n_subj, float(cfg["depressed_fraction"]))
    subj_folds = _stratified_folds(rng, subj_labels, list(cfg["fold_fractions"]))
    subjects = [{"audio": rng.normal(0, 0.5, audio.dim), "visual": rng.normal(0, 0.5, visual.dim),
                 "expressive": rng.lognormal(0, 0.3), "gender": "f" if rng.random() < 0.6 else "m"}
                for _ in range(n_subj)]
    with atomic_dir(out) as tmp:
        (tmp / "audio").mkdir()
        (tmp / "visual").mkdir()
        rows = [HEADER]
        for k in range(n):
            j = int(owner[k])
            subj, label = subjects[j], int(subj_labels[j])
            s = signal * label
            seconds = int(rng.integers(lo, hi + 1))
            expressive = subj["expressive"] * rng.lognormal(0, 0.1)
            a = audio.draw(rng, subj["audio"], expressive, s, max(1, seconds + int(rng.integers(-jitter, jitter + 1))))
            v = visual.draw(rng, subj["visual"], expressive, s, seconds)
            sid = f"vlog{k + 1:04d}"
            np.save(tmp / "audio" / f"{sid}.npy", at_rate(rng, a, rate_a).astype(np.float32))
            np.save(tmp / "visual" / f"{sid}.npy", at_rate(rng, v, rate_v).astype(np.float32))
            rows.append(f"{sid},{'depression' if label else 'normal'},{subj_folds[j]},audio/{sid}.npy,"
                        f"visual/{sid}.npy,S{j + 1:04d},{subj['gender']}")
        (tmp / MANIFEST).write_text("\n".join(rows) + "\n", encoding="utf-8")
