"""A synthetic DAIC-WOZ corpus in the layout asym.data.daic_woz reads, with the planted signal of
asym.data.synthetic (its `_Generator`, mechanisms and fold assignment).

Participants 300, 301, ... get D-Vlog-style per-second features (74 audio values, the first
PROSODY_DIMS of them the prosodic ones, and 136 landmark columns), which are then written at the
corpus's rates: each second becomes COVAREP_RATE COVAREP rows and CLNF_RATE CLNF frames, the second's
row plus a small noise that averages to zero over the second's rows (over its tracked frames, for
CLNF). A few frames of every participant fail (success 0, low confidence, landmarks 0), never a
whole second, so the reader's per-second means give back the generator's rows up to the written
precision (SIGNIFICANT_DIGITS per column). The COVAREP columns carry no COVAREP semantics (VUV is
not 0/1): they are the generator's features, scaled.

The labels go to AVEC 2017's three labelled CSVs with their columns (PHQ-8 scores and items drawn
to agree with the binary label), and test_split_Depression_AVEC2017.csv lists the test ids and
genders, as the corpus has it.
"""

from __future__ import annotations

import io
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from tqdm import tqdm

from asym.data import daic_woz
from asym.data.synthetic import _check_mechanism, _Generator, _labels, _planted, _stratified_folds
from asym.io import atomic_dir

FIRST_ID = 300                 # DAIC-WOZ's participant ids start at 300
COVAREP_RATE, CLNF_RATE = daic_woz.COVAREP_RATE, daic_woz.CLNF_RATE     # the corpus's rates, which its reader pools
# COVAREP's glottal and prosodic block (F0, VUV, NAQ, QOQ, H1H2, PSP, MDQ, peakSlope, Rd, Rd_conf,
# creak) before its spectral ones: the dimensions the marginal cue flattens.
PROSODY_DIMS = 11
AUDIO_JITTER = 0.05            # within-second noise, in units of each COVAREP column's scale
VISUAL_JITTER = 0.3            # within-second noise of the landmarks, in pixels
FAILED_SECONDS = (1, 3)        # seconds per participant with failed frames: at least, at most
FAILED_FRAMES = (1, 5)         # failed frames in such a second: at least, at most (of CLNF_RATE)
TRACKED_CONFIDENCE = (0.85, 0.98)
FAILED_CONFIDENCE = (0.0, 0.3)
SIGNIFICANT_DIGITS = 4         # of each column's largest value: the files stay compact
PHQ8_ITEMS = ("NoInterest", "Depressed", "Sleep", "Tired", "Appetite", "Failure", "Concentrating", "Moving")
PHQ8_ITEM_MAX = 3
PHQ8_CUT = 10                  # PHQ8_Binary is 1 from this score on
GENDERS = ("0", "1")           # the corpus's codes (asym.data.daic_woz: their meaning is not confirmed)
SPLIT_HEADER = ["Participant_ID", "PHQ8_Binary", "PHQ8_Score", "Gender", *(f"PHQ8_{i}" for i in PHQ8_ITEMS)]
TEST_LABELS_HEADER = ["Participant_ID", "PHQ_Binary", "PHQ_Score", "Gender"]
TEST_IDS_HEADER = ["participant_ID", "Gender"]
CLNF_HEADER = ["frame", "timestamp", "confidence", "success", *daic_woz.LANDMARKS]
FOLD_CSV = {fold: name for name, fold in daic_woz.LABELLED_SPLITS}


@dataclass
class DemoParticipant:
    pid: str
    label: int                 # the released label (under `null`, not the one the features carry)
    fold: str
    gender: str
    phq8: np.ndarray           # the eight item scores; their sum is the PHQ-8 score
    audio: np.ndarray          # (seconds, 74): what the reader's per-second COVAREP means give back
    visual: np.ndarray         # (seconds, 136), x0..x67 then y0..y67


def _phq8(rng: np.random.Generator, label: int) -> np.ndarray:
    """Item scores whose total agrees with the binary label (>= PHQ8_CUT when depressed)."""
    top = len(PHQ8_ITEMS) * PHQ8_ITEM_MAX
    score = int(rng.integers(PHQ8_CUT, top + 1)) if label else int(rng.integers(0, PHQ8_CUT))
    items = np.zeros(len(PHQ8_ITEMS), int)
    for _ in range(score):
        items[rng.choice(np.flatnonzero(items < PHQ8_ITEM_MAX))] += 1
    return items


def demo_participants(cfg: dict[str, Any], seed: int) -> tuple[list[DemoParticipant], np.ndarray]:
    """Every participant's per-second features and labels, and the per-column scale of the audio."""
    mechanism = _check_mechanism(cfg)
    gen = _Generator(cfg, seed, daic_woz.AUDIO_DIM, prosody_dims=PROSODY_DIMS)
    n = int(cfg["n_samples"])
    labels = _labels(gen.rng, n, float(cfg["depressed_fraction"]))
    folds = _stratified_folds(gen.rng, labels, list(cfg["fold_fractions"]))
    planted = _planted(seed, labels, mechanism)
    lo, hi = cfg["seconds"]
    people = []
    for i in range(n):
        seconds = int(gen.rng.integers(lo, hi + 1))
        audio, visual = gen.sample(gen.subject(), int(planted[i]), seconds)
        gender = GENDERS[int(gen.rng.integers(len(GENDERS)))]
        people.append(DemoParticipant(str(FIRST_ID + i), int(labels[i]), folds[i], gender,
                                      _phq8(gen.rng, int(labels[i])), audio, visual))
    return people, gen.audio_scale


def _upsample(rng: np.random.Generator, x: np.ndarray, rate: int, scale: np.ndarray | float,
              tracked: np.ndarray | None = None) -> np.ndarray:
    """`rate` rows per row of `x`: the row plus noise of std `scale` whose mean over the second's
    rows (its tracked ones, where given) is zero."""
    noise = rng.normal(0.0, 1.0, (x.shape[0], rate, x.shape[1])) * scale
    weight = np.ones((x.shape[0], rate, 1)) if tracked is None else tracked[..., None].astype(np.float64)
    noise -= (noise * weight).sum(1, keepdims=True) / weight.sum(1, keepdims=True)
    return (x[:, None, :] + noise).reshape(-1, x.shape[1])


def _failed_frames(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """(seconds, CLNF_RATE) True where CLNF tracked the face: a few frames in a few seconds fail."""
    tracked = np.ones((seconds, CLNF_RATE), bool)
    n_bad = min(seconds, int(rng.integers(FAILED_SECONDS[0], FAILED_SECONDS[1] + 1)))
    for s in rng.choice(seconds, n_bad, replace=False):
        k = int(rng.integers(FAILED_FRAMES[0], FAILED_FRAMES[1] + 1))
        tracked[s, rng.choice(CLNF_RATE, k, replace=False)] = False
    return tracked


def _rounded(x: np.ndarray) -> np.ndarray:
    """Each column to SIGNIFICANT_DIGITS of its largest value (at least whole numbers): the
    decimal that is written, read back exactly."""
    top = np.abs(x).max(0)
    with np.errstate(divide="ignore"):
        digits = SIGNIFICANT_DIGITS - 1 - np.floor(np.log10(np.where(top > 0, top, 1.0)))
    scale = 10.0 ** np.maximum(digits, 0)
    return np.rint(x * scale) / scale


def _write_table(path: Path, columns: list[np.ndarray], header: list[str] | None, sep: str) -> None:
    """Columns as CSV text, fast (Arrow's writer): no quoting, `sep` between cells."""
    table = pa.Table.from_arrays([pa.array(c) for c in columns], names=[str(i) for i in range(len(columns))])
    buf = io.BytesIO()
    pa_csv.write_csv(table, buf, pa_csv.WriteOptions(include_header=False))
    body = buf.getvalue()
    if sep != ",":
        body = body.replace(b",", sep.encode())
    with open(path, "wb") as fh:
        if header is not None:
            fh.write((sep.join(header) + "\n").encode())
        fh.write(body)


def _clnf_columns(rng: np.random.Generator, visual: np.ndarray) -> list[np.ndarray]:
    """The CLNF file's columns: frame, timestamp, confidence, success, then the landmarks."""
    tracked = _failed_frames(rng, visual.shape[0])
    frames = _upsample(rng, visual, CLNF_RATE, VISUAL_JITTER, tracked)
    flat = tracked.reshape(-1)
    frames[~flat] = 0.0
    n = len(flat)
    confidence = np.where(flat, rng.uniform(*TRACKED_CONFIDENCE, n), rng.uniform(*FAILED_CONFIDENCE, n))
    head = [np.arange(1, n + 1), np.round(np.arange(n) / CLNF_RATE, 3), np.round(confidence, 3), flat.astype(np.int64)]
    return [*head, *_rounded(frames).T]


def _split_rows(people: list[DemoParticipant]) -> dict[str, list[list[str]]]:
    """The rows of every split CSV, by file name."""
    rows: dict[str, list[list[str]]] = {name: [] for name in daic_woz.SPLIT_CSVS}
    for p in people:
        score = str(int(p.phq8.sum()))
        if p.fold == "test":
            rows[daic_woz.TEST_LABELS_CSV].append([p.pid, str(p.label), score, p.gender])
            rows[daic_woz.TEST_IDS_CSV].append([p.pid, p.gender])
        else:
            rows[FOLD_CSV[p.fold]].append([p.pid, str(p.label), score, p.gender, *map(str, p.phq8)])
    return rows


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def write_daic_woz(out: Path, cfg: dict[str, Any], seed: int) -> None:
    """The demo corpus in `out` (replaced whole, or left as it was if this fails)."""
    people, audio_scale = demo_participants(cfg, seed)
    rng = np.random.default_rng([seed, 2])     # the files' noise: its own stream, so `demo_participants` stands alone
    headers = {daic_woz.TEST_LABELS_CSV: TEST_LABELS_HEADER, daic_woz.TEST_IDS_CSV: TEST_IDS_HEADER}
    # The noise is drawn here, in order; writing the text (most of the time) runs beside it, on
    # every core, a few files at a time.
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with atomic_dir(out) as tmp, ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future] = deque()
        for p in tqdm(people, desc="synth daic_woz", unit="participant", leave=False):
            folder = tmp / f"{p.pid}_P"
            folder.mkdir()
            covarep = list(_rounded(_upsample(rng, p.audio, COVAREP_RATE, AUDIO_JITTER * audio_scale)).T)
            pending.append(pool.submit(_write_table, folder / f"{p.pid}_COVAREP.csv", covarep, None, ","))
            pending.append(pool.submit(_write_table, folder / f"{p.pid}_CLNF_features.txt",
                                       _clnf_columns(rng, p.visual), CLNF_HEADER, ", "))
            while len(pending) > 2 * workers:
                pending.popleft().result()
        for job in pending:
            job.result()
        for name, rows in _split_rows(people).items():
            _write_csv(tmp / name, headers.get(name, SPLIT_HEADER), rows)
