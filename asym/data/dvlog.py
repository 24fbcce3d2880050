"""Reader of the D-Vlog release (Yoon et al., AAAI 2022) exactly as distributed.

    labels.csv                       index,label,duration,gender,fold
    <index>/<index>_acoustic.npy     (T_a, 25) eGeMAPS LLDs, one row per second
    <index>/<index>_visual.npy       (T_v, 136) 68 facial landmarks (x, y), one row per second
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from asym.data.formats import FORMATS
from asym.data.sample import UNLABELLED, Sample, align
from asym.data.validate import load_features, read_labels
from asym.errors import DataError

HEADER = ["index", "label", "duration", "gender", "fold"]
LABELS = {"depression": 1, "normal": 0}
AUDIO_DIM, VISUAL_DIM = FORMATS["dvlog"].widths


def find_root(path: Path) -> Path:
    """Accept the release folder itself or its parent (archives unpack to `dvlog-dataset/`)."""
    if (path / "labels.csv").is_file():
        return path
    nested = path / "dvlog-dataset"
    if (nested / "labels.csv").is_file():
        return nested
    raise DataError(path, "not a D-Vlog release: no labels.csv here nor in dvlog-dataset/")


def detect(path: Path) -> Path:
    """The release's root, where its labels.csv has D-Vlog's header (LMVD's derived layout has a
    labels.csv too)."""
    root = find_root(path)
    with open(root / "labels.csv", encoding="utf-8-sig") as fh:
        header = [c.strip() for c in fh.readline().strip().split(",")]
    if header != HEADER:
        raise DataError(root / "labels.csv", f"not D-Vlog's header {HEADER}")
    return root


def read(path: Path, settings: dict, labels_required: bool = True) -> tuple[Iterator[Sample], str]:
    """The format's reader (asym.data.formats); D-Vlog's reader reads no settings."""
    find_root(Path(path))
    return read_dvlog(path, labels_required), "release"


def read_dvlog(path: Path, labels_required: bool = True) -> Iterator[Sample]:
    """`labels_required=False` (prediction only): empty label, fold and duration cells are
    accepted, as `asym extract` writes them for vlogs nobody has labelled."""
    root = find_root(Path(path))
    labels_csv = root / "labels.csv"
    rows = read_labels(labels_csv, HEADER, LABELS, f"one of {sorted(LABELS)}", exact=True,
                       labels_required=labels_required, folds_required=labels_required)
    indices = {row["index"] for row in rows}
    extra_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in indices)
    if extra_dirs:
        raise DataError(root, f"{len(extra_dirs)} sample folder(s) have no row in labels.csv: {extra_dirs[:5]}")
    for row in rows:
        idx = row["index"]
        audio = load_features(root / idx / f"{idx}_acoustic.npy", AUDIO_DIM, "acoustic features")
        visual = load_features(root / idx / f"{idx}_visual.npy", VISUAL_DIM, "visual features")
        audio, visual = align(audio, visual)
        extra = {"gender": row["gender"]}
        try:
            if labels_required or row["duration"]:
                extra["duration"] = float(row["duration"])
        except ValueError:
            raise DataError(labels_csv, f"index {idx}: duration {row['duration']!r} is not a number") from None
        yield Sample(idx, LABELS.get(row["label"], UNLABELLED), audio, visual, fold=row["fold"] or None, extra=extra)
