"""Demo datasets in the exact on-disk layout of each release, with a planted, learnable signal.

The real releases are given on request only, so the default pipeline runs on these. They are
read by the very readers that read the real files (asym.data.dvlog / asym.data.lmvd).

Where the label lives is the `mechanism` (params: synth.<dataset>.mechanism), so the pipeline
can be run against known answers:

- `marginal` (the default): a planted cue of strength `signal` (0 = none). Depressed vlogs show
  weaker facial motion and flatter prosody (smaller temporal variation of the "prosodic"
  acoustic dimensions and of the mouth landmarks), slightly lowered mouth corners and lower mean
  energy. Every effect is multiplied by a per-vlog random factor and buried in noise, so classes
  overlap.
- `synchrony`: the label lives only in the coupling between the modalities. The mouth opening
  follows the vocal energy (which drives the prosodic acoustic dimensions) `lag` frames later,
  with correlation `coupling.normal` or `coupling.depressed`. Each modality alone is drawn from one process whatever the label: the
  mouth's driver is `c` times the lagged energy plus `sqrt(1 - c^2)` times an independent copy of
  the same stationary Gaussian AR(1) process, which is that process again for every `c`. So every
  per-frame and per-vlog statistic of the audio alone, or of the landmarks alone, has the same
  distribution in both classes; only their joint distribution differs. Both drivers are centred on
  each vlog, so no per-vlog mean carries the coupling either.
- `null`: the features of `marginal`, planted for a hidden label drawn independently of the
  released one: the labels are independent of the features.

In every mechanism, vlogs of one subject share an identity offset and a label, so a split that
leaks subjects looks better than it should.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asym.data import dvlog, lmvd
from asym.data.sample import FOLDS
from asym.errors import ConfigError
from asym.io import atomic_dir

AU_R = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45"]
AU_C = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "28", "45"]
OPENFACE_HEAD = (
    ["frame", "face_id", "timestamp", "confidence", "success"]
    + [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"]
    + ["gaze_angle_x", "gaze_angle_y", "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
)
OPENFACE_COLUMNS = OPENFACE_HEAD + lmvd.LANDMARK_COLUMNS + [f"AU{a}_r" for a in AU_R] + [f"AU{a}_c" for a in AU_C]
MOUTH = np.arange(48, 68)
MOUTH_CORNERS = np.array([48, 54])
MECHANISMS = ("marginal", "synchrony", "null")


def _face_template(rng: np.random.Generator) -> np.ndarray:
    """68 (x, y) points roughly shaped like a face, in pixels around the origin."""
    t = np.linspace(-1.2, 1.2, 17)
    jaw = np.stack([60 * np.sin(t), 70 * np.cos(t) * 0.9 + 10], 1)
    brows = np.stack([np.r_[np.linspace(-45, -10, 5), np.linspace(10, 45, 5)], np.full(10, -40.0)], 1)
    nose = np.stack([np.r_[np.zeros(4), np.linspace(-12, 12, 5)], np.r_[np.linspace(-25, 5, 4), np.full(5, 10.0)]], 1)
    eyes = np.concatenate([np.stack([c + 10 * np.cos(a), -22 + 5 * np.sin(a)], 1)
                           for c in (-25, 25) for a in [np.linspace(0, 2 * np.pi, 6, endpoint=False)]])
    mouth = np.concatenate([np.stack([25 * np.cos(a), 38 + 8 * np.sin(a)], 1)
                            for a in [np.linspace(0, 2 * np.pi, 12, endpoint=False), np.linspace(0, 2 * np.pi, 8, endpoint=False)]])
    pts = np.concatenate([jaw, brows, nose, eyes, mouth])
    return pts + rng.normal(0, 1.0, pts.shape)


def _smooth_noise(rng: np.random.Generator, n: int, dims: int, rho: float = 0.85) -> np.ndarray:
    """AR(1) noise with unit stationary variance: a cheap stand-in for slow behavioural dynamics."""
    eps = rng.normal(0, np.sqrt(1 - rho**2), (n, dims))
    out = np.empty_like(eps)
    out[0] = rng.normal(0, 1, dims)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + eps[t]
    return out


class _Generator:
    def __init__(self, cfg: dict[str, Any], seed: int, audio_dim: int, prosody_dims: int) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.audio_dim = audio_dim
        self.prosody = np.arange(prosody_dims)
        self.audio_scale = np.exp(self.rng.normal(0, 1, audio_dim))
        self.audio_offset = self.rng.normal(0, 3, audio_dim)
        self.template = _face_template(self.rng)

    def subject(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "audio_id": rng.normal(0, 0.5, self.audio_dim),
            "face": self.template + rng.normal(0, 2.0, self.template.shape),
            "center": rng.uniform(250, 450, 2),
            "scale": rng.uniform(0.8, 1.2),
        }

    def sample(self, subj: dict[str, Any], label: int, seconds: int) -> tuple[np.ndarray, np.ndarray]:
        """One vlog whose features carry `label` by the configured mechanism (under `null`,
        `label` is the hidden one, not the released one)."""
        if self.cfg.get("mechanism", "marginal") == "synchrony":
            return self._synchrony(subj, label, seconds)
        return self._marginal(subj, label, seconds)

    def _marginal(self, subj: dict[str, Any], label: int, seconds: int) -> tuple[np.ndarray, np.ndarray]:
        rng, s = self.rng, float(self.cfg["signal"]) * label
        jitter = int(self.cfg["length_jitter"])
        t_a = max(2, seconds + int(rng.integers(-jitter, jitter + 1)))
        # Audio: identity offset + slow dynamics; prosodic dims flatter and energy lower if depressed.
        expressive = rng.lognormal(0, 0.25)   # people differ: classes overlap
        amp = np.full(self.audio_dim, 0.6)
        amp[self.prosody] = 1.2 * expressive * (1 - 0.5 * s * rng.uniform(0.5, 1.5))
        audio = subj["audio_id"] + _smooth_noise(rng, t_a, self.audio_dim) * amp
        audio[:, :4] -= 0.8 * s * rng.uniform(0.5, 1.5)
        audio += rng.normal(0, 0.3, audio.shape)
        audio = audio * self.audio_scale + self.audio_offset
        # Visual: head motion and mouth movement, weaker if depressed; mouth corners drop.
        t_v = seconds
        motion = 8.0 * expressive * (1 - 0.5 * s * rng.uniform(0.5, 1.5))
        mouth_amp = 4.0 * expressive * (1 - 0.5 * s * rng.uniform(0.5, 1.5))
        face = np.broadcast_to(subj["face"], (t_v, 68, 2)).copy()
        face[:, MOUTH, 1] += mouth_amp * _smooth_noise(rng, t_v, 1, 0.6)
        face[:, MOUTH, 0] += 0.5 * mouth_amp * _smooth_noise(rng, t_v, 1, 0.6)
        face[:, MOUTH_CORNERS, 1] += 6.0 * s * rng.uniform(0.5, 1.5)
        face = face * subj["scale"] + subj["center"] + motion * _smooth_noise(rng, t_v, 2, 0.9)[:, None, :]
        face += rng.normal(0, 0.7, face.shape)
        visual = np.concatenate([face[..., 0], face[..., 1]], axis=1)   # x_0..x_67, y_0..y_67
        return audio.astype(np.float64), visual.astype(np.float64)

    def _synchrony(self, subj: dict[str, Any], label: int, seconds: int) -> tuple[np.ndarray, np.ndarray]:
        """The same vlog for both classes except for how closely the mouth follows the voice."""
        rng, sync = self.rng, self.cfg["synchrony"]
        jitter, lag = int(self.cfg["length_jitter"]), int(sync["lag"])
        c = float(sync["coupling"]["depressed" if label else "normal"])
        t_a, t_v = max(2, seconds + int(rng.integers(-jitter, jitter + 1))), seconds
        expressive = rng.lognormal(0, 0.25)   # people differ, whatever their class
        # Vocal energy at frame t is drive[t + lag]; the mouth at frame t follows drive[t], the
        # energy `lag` frames earlier, with correlation c.
        n = max(t_a, t_v) + lag
        rho = float(sync["smoothness"])
        drive = _smooth_noise(rng, n, 1, rho)[:, 0]
        own = _smooth_noise(rng, n, 1, rho)[:, 0]
        energy = drive[lag:lag + t_a]
        mouth = c * drive[:t_v] + np.sqrt(1 - c**2) * own[:t_v]
        energy, mouth = energy - energy.mean(), mouth - mouth.mean()
        amp = np.full(self.audio_dim, 0.6)
        amp[self.prosody] = 1.2 * expressive
        audio = subj["audio_id"] + _smooth_noise(rng, t_a, self.audio_dim) * amp
        # the prosodic dimensions follow the vocal energy
        audio[:, self.prosody] += float(sync["energy_amplitude"]) * expressive * energy[:, None]
        audio += rng.normal(0, 0.3, audio.shape)
        audio = audio * self.audio_scale + self.audio_offset
        motion = 8.0 * expressive
        mouth_amp = float(sync["mouth_amplitude"]) * expressive
        face = np.broadcast_to(subj["face"], (t_v, 68, 2)).copy()
        face[:, MOUTH, 1] += mouth_amp * mouth[:, None]
        face[:, MOUTH, 0] += 0.5 * mouth_amp * _smooth_noise(rng, t_v, 1, rho)
        face = face * subj["scale"] + subj["center"] + motion * _smooth_noise(rng, t_v, 2, 0.9)[:, None, :]
        face += rng.normal(0, 0.7, face.shape)
        visual = np.concatenate([face[..., 0], face[..., 1]], axis=1)
        return audio.astype(np.float64), visual.astype(np.float64)


def _check_mechanism(cfg: dict[str, Any]) -> str:
    mechanism = cfg.get("mechanism", "marginal")
    if mechanism not in MECHANISMS:
        raise ConfigError(f"unknown synth mechanism {mechanism!r}; expected one of {list(MECHANISMS)}")
    if mechanism == "synchrony" and not cfg.get("synchrony"):
        raise ConfigError("synth mechanism `synchrony` needs its `synchrony` block (lag, coupling, ...)")
    return mechanism


def _planted(seed: int, labels: np.ndarray, mechanism: str) -> np.ndarray:
    """The labels the features are drawn for: the released ones, or under `null` a permutation
    of them (same class counts, no relation to the released labels), drawn from a stream of its
    own so that the released labels, folds and ids are those of `marginal`."""
    return np.random.default_rng([seed, 1]).permutation(labels) if mechanism == "null" else labels


def _labels(rng: np.random.Generator, n: int, frac: float) -> np.ndarray:
    n_pos = int(round(n * frac))
    return rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n - n_pos, int)])


def _stratified_folds(rng: np.random.Generator, labels: np.ndarray, fractions: list[float]) -> list[str]:
    folds = np.empty(len(labels), dtype=object)
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for name, part in zip(FOLDS, np.split(idx, cuts), strict=True):
            folds[part] = name
    return list(folds)


def write_dvlog(out: Path, cfg: dict[str, Any], seed: int) -> None:
    mechanism = _check_mechanism(cfg)
    gen = _Generator(cfg, seed, dvlog.AUDIO_DIM, prosody_dims=6)
    n = int(cfg["n_samples"])
    labels = _labels(gen.rng, n, float(cfg["depressed_fraction"]))
    folds = _stratified_folds(gen.rng, labels, list(cfg["fold_fractions"]))
    planted = _planted(seed, labels, mechanism)
    lo, hi = cfg["seconds"]
    with atomic_dir(out) as tmp:
        root = tmp / "dvlog-dataset"
        root.mkdir()
        rows = ["index,label,duration,gender,fold"]
        for i in tqdm(range(n), desc="synth dvlog", unit="vlog", leave=False):
            seconds = int(gen.rng.integers(lo, hi + 1))
            audio, visual = gen.sample(gen.subject(), int(planted[i]), seconds)
            idx = str(i)
            (root / idx).mkdir()
            np.save(root / idx / f"{idx}_acoustic.npy", audio)
            np.save(root / idx / f"{idx}_visual.npy", visual)
            gender = "f" if gen.rng.random() < 0.6 else "m"
            duration = round(seconds + float(gen.rng.uniform(0, 1)), 2)
            rows.append(f"{idx},{'depression' if labels[i] else 'normal'},{duration},{gender},{folds[i]}")
        (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _openface_frames(rng: np.random.Generator, landmarks: np.ndarray, fps: int) -> np.ndarray:
    """Per-video-frame OpenFace rows whose every `fps`-th frame is the per-second landmark row."""
    t = landmarks.shape[0]
    n = (t - 1) * fps + 1 + int(rng.integers(0, fps))
    pos = np.arange(n) / fps
    base = np.floor(pos).astype(int).clip(0, t - 1)
    nxt = np.minimum(base + 1, t - 1)
    w = (pos - base)[:, None]
    lm = (1 - w) * landmarks[base] + w * landmarks[nxt]
    lm[np.arange(n) % fps != 0] += rng.normal(0, 0.3, (int((np.arange(n) % fps != 0).sum()), lm.shape[1]))
    head = np.zeros((n, len(OPENFACE_HEAD)))
    head[:, 0] = np.arange(1, n + 1)
    head[:, 2] = np.arange(n) / fps
    head[:, 3] = rng.uniform(0.85, 0.98, n)
    head[:, 4] = 1
    head[:, 5:] = rng.normal(0, 0.2, (n, len(OPENFACE_HEAD) - 5))
    aus = np.concatenate([rng.uniform(0, 2, (n, len(AU_R))), rng.integers(0, 2, (n, len(AU_C)))], 1)
    return np.concatenate([head, lm, aus], 1)


def _write_openface_csv(path: Path, table: np.ndarray) -> None:
    n_int = 2  # frame, face_id
    fmt = ["%d"] * n_int + ["%.3f"] * (table.shape[1] - n_int)
    np.savetxt(path, table, fmt=fmt, delimiter=", ", header=", ".join(OPENFACE_COLUMNS), comments="")


def write_lmvd(out: Path, cfg: dict[str, Any], seed: int, layout: str = "authors") -> None:
    mechanism = _check_mechanism(cfg)
    gen = _Generator(cfg, seed, lmvd.AUDIO_DIM, prosody_dims=16)
    n, n_subj = int(cfg["n_samples"]), int(cfg["n_subjects"])
    # Every subject has at least one vlog; the rest are spread at random (several per person).
    owner = np.r_[np.arange(n_subj), gen.rng.integers(0, n_subj, n - n_subj)]
    subj_labels = _labels(gen.rng, n_subj, float(cfg["depressed_fraction"]))
    subj_planted = _planted(seed, subj_labels, mechanism)
    subjects = [gen.subject() for _ in range(n_subj)]
    lo, hi = cfg["seconds"]
    fps = int(cfg["video_fps"])
    order = gen.rng.permutation(n)
    with atomic_dir(out) as tmp:
        if layout == "authors":
            for d in ("Audio_feature", "Video_feature", "label"):
                (tmp / d).mkdir()
        else:
            (tmp / "audio").mkdir()
            (tmp / "visual").mkdir()
        rows, subj_rows = ["index,label,fold"], ["sample,subject"]
        for k in tqdm(range(n), desc=f"synth lmvd ({layout})", unit="vlog", leave=False):
            i = int(order[k])
            idx = f"{k + 1:04d}"
            label = int(subj_labels[owner[i]])
            seconds = int(gen.rng.integers(lo, hi + 1))
            audio, visual = gen.sample(subjects[owner[i]], int(subj_planted[owner[i]]), seconds)
            subj_rows.append(f"{idx},P{owner[i]:04d}")
            if layout == "authors":
                np.save(tmp / "Audio_feature" / f"{idx}.npy", audio)
                _write_openface_csv(tmp / "Video_feature" / f"{idx}.csv", _openface_frames(gen.rng, visual, fps))
                (tmp / "label" / f"{idx}_Depression.csv").write_text(f"{label}\n", encoding="utf-8")
            else:
                np.save(tmp / "audio" / f"{idx}.npy", audio)
                np.save(tmp / "visual" / f"{idx}_visual.npy", lmvd.standardise_rows(visual))
                rows.append(f"{idx},{label},")
        if layout == "derived":
            (tmp / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        # Not part of the release: the participant of each vlog, so the demo can show
        # subject-independent splitting (params: datasets.lmvd.subjects).
        (tmp / "subjects.csv").write_text("\n".join(subj_rows) + "\n", encoding="utf-8")

