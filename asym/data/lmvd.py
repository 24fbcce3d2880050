"""Reader of LMVD (He et al., 2024) in both layouts in use, detected from the folder.

Authors' release (read as their model/kfoldLoader.py reads it):
    Audio_feature/<index>.npy        (T_a, 128) VGGish embeddings, ~one row per second
    Video_feature/<index>.csv        OpenFace per video frame (frame, ..., x_0..x_67, y_0..y_67, AUs)
                 or <index>.npy      (T_v, 171): landmarks (136) then action units (35), ~5 rows/s
    label/<index>_Depression.csv     one cell: its header cell is the label, 0 or 1
Derived layout (DepMamba and later work):
    labels.csv                       index,label,fold
    audio/<index>.npy                (T, 128)
    visual/<index>_visual.npy        (T, 136)
Indices keep their leading zeros (`0831`): they are never parsed as integers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from asym.config import LmvdReaderConfig
from asym.data.formats import FORMATS
from asym.data.sample import UNLABELLED, Sample, align
from asym.data.validate import check_matrix, check_no_extra, load_features, read_labels
from asym.errors import DataError

AUDIO_DIM, VISUAL_DIM = FORMATS["lmvd"].widths
OPENFACE_NPY_DIM = 171
LANDMARK_COLUMNS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
DERIVED_HEADER = ["index", "label", "fold"]
LABELS = {"0": 0, "1": 1}


def detect_layout(root: Path) -> str:
    if (root / "Audio_feature").is_dir() and (root / "Video_feature").is_dir() and (root / "label").is_dir():
        return "authors"
    if (root / "labels.csv").is_file() and (root / "audio").is_dir() and (root / "visual").is_dir():
        return "derived"
    raise DataError(
        root,
        "not an LMVD release: expected Audio_feature/, Video_feature/ and label/ (authors' layout) "
        "or labels.csv, audio/ and visual/ (derived layout)",
    )


def detect(path: Path) -> Path:
    detect_layout(Path(path))
    return Path(path)


def read(path: Path, settings: dict, labels_required: bool = True) -> tuple[Iterator[Sample], str]:
    """The format's reader (asym.data.formats): `settings` is readers.lmvd."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    if not settings:
        raise DataError(root, "an LMVD release needs the LMVD reader's settings (readers.lmvd)")
    return read_lmvd(root, LmvdReaderConfig(**settings), labels_required), detect_layout(root)


def standardise_rows(x: np.ndarray) -> np.ndarray:
    """Z-score each frame's landmark vector, removing head position and scale (as DepMamba)."""
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return (x - mean) / np.where(std > 0, std, 1.0)


def read_lmvd(path: Path, reader: LmvdReaderConfig, labels_required: bool = True) -> Iterator[Sample]:
    """`labels_required=False` (prediction only): the derived layout's empty label cells are accepted."""
    root = Path(path)
    layout = detect_layout(root)
    yield from (_read_authors(root, reader) if layout == "authors" else _read_derived(root, labels_required))


def _read_label_cell(path: Path) -> int:
    if not path.is_file():
        raise DataError(path, "missing label file")
    text = path.read_text(encoding="utf-8-sig").strip().splitlines()
    cell = text[0].split(",")[0].strip() if text else ""
    if cell not in LABELS:
        raise DataError(path, f"unknown label {cell!r}, expected 0 or 1 in the header cell")
    return LABELS[cell]


def _read_openface_csv(path: Path, stride: int) -> np.ndarray:
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable OpenFace CSV: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ["frame", *LANDMARK_COLUMNS] if c not in df.columns]
    if missing:
        raise DataError(path, f"wrong header: missing OpenFace columns {missing[:6]}{'...' if len(missing) > 6 else ''}")
    frame = pd.to_numeric(df["frame"], errors="coerce")
    if frame.isna().any():
        raise DataError(path, "non-numeric value in column `frame`")
    keep = ((frame.to_numpy().astype(np.int64) - 1) % stride) == 0
    values = df.loc[keep, LANDMARK_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    return check_matrix(values, path, VISUAL_DIM, "landmarks")


def _read_authors(root: Path, reader: LmvdReaderConfig) -> Iterator[Sample]:
    label_dir, audio_dir, video_dir = root / "label", root / "Audio_feature", root / "Video_feature"
    ids = sorted(p.name[: -len("_Depression.csv")] for p in label_dir.glob("*_Depression.csv"))
    if not ids:
        raise DataError(label_dir, "no <index>_Depression.csv label files")
    check_no_extra(audio_dir, {f"{i}.npy" for i in ids}, "*.npy", "audio")
    check_no_extra(video_dir, {f"{i}.csv" for i in ids} | {f"{i}.npy" for i in ids}, "*.*", "video")
    cap = reader.max_audio_rows
    for idx in ids:
        label = _read_label_cell(label_dir / f"{idx}_Depression.csv")
        audio = load_features(audio_dir / f"{idx}.npy", AUDIO_DIM, "VGGish audio features")
        if cap:
            audio = audio[: int(cap)]
        csv_path, npy_path = video_dir / f"{idx}.csv", video_dir / f"{idx}.npy"
        if csv_path.is_file():
            visual = _read_openface_csv(csv_path, reader.video_csv_frame_stride)
        elif npy_path.is_file():
            visual = load_features(npy_path, OPENFACE_NPY_DIM, "OpenFace video features")
            visual = visual[:: reader.video_npy_row_stride, :VISUAL_DIM]
        else:
            raise DataError(csv_path, "missing video feature file (neither .csv nor .npy)")
        if reader.standardise_landmark_rows:
            visual = standardise_rows(visual)
        audio, visual = align(audio, visual)
        yield Sample(idx, label, audio, visual)


def _read_derived(root: Path, labels_required: bool = True) -> Iterator[Sample]:
    labels_csv = root / "labels.csv"
    rows = read_labels(labels_csv, DERIVED_HEADER, LABELS, "0 or 1", labels_required=labels_required,
                       folds_required=False)
    ids = {r["index"] for r in rows}
    check_no_extra(root / "audio", {f"{i}.npy" for i in ids}, "*.npy", "audio")
    check_no_extra(root / "visual", {f"{i}_visual.npy" for i in ids}, "*.npy", "visual")
    for row in rows:
        idx = row["index"]
        audio = load_features(root / "audio" / f"{idx}.npy", AUDIO_DIM, "audio features")
        visual = load_features(root / "visual" / f"{idx}_visual.npy", VISUAL_DIM, "visual features")
        audio, visual = align(audio, visual)
        yield Sample(idx, LABELS.get(row["label"], UNLABELLED), audio, visual, fold=row["fold"] or None)
