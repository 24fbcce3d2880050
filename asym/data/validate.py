"""Checked loading of feature and label files: every failure names the file and the problem."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from asym.data.sample import FOLDS
from asym.errors import DataError

FIRST_ROW_LINE = 2     # a CSV's first record, below its header, as an editor numbers lines


def load_features(path: Path, width: int | None, what: str) -> np.ndarray:
    """Load a 2-D float feature matrix from .npy, never with pickle enabled."""
    if not path.is_file():
        raise DataError(path, f"missing {what} file")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(path, "not a plain numeric .npy (object arrays are refused)") from None
        raise DataError(path, f"truncated or corrupt .npy: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataError(path, f"truncated or unreadable .npy: {exc}") from None
    return check_matrix(arr, path, width, what)


def check_matrix(arr: np.ndarray, path: Path, width: int | None, what: str) -> np.ndarray:
    if arr.dtype.kind not in "fiu":
        raise DataError(path, f"{what} has dtype {arr.dtype}, expected floating point")
    if arr.ndim != 2:
        raise DataError(path, f"{what} has shape {arr.shape}, expected 2-D (frames, features)")
    if width is not None and arr.shape[1] != width:
        raise DataError(path, f"{what} has {arr.shape[1]} features per frame, expected {width}")
    if arr.shape[0] == 0:
        raise DataError(path, f"{what} is an empty sequence (0 frames)")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(path, f"{what} has NaN/Inf values (first at frame {bad[0]}, feature {bad[1]})")
    return arr


def read_table(path: Path, required: list[str], exact: bool = False) -> pd.DataFrame:
    """Read a CSV with every column as string, so ids such as `0831` keep their zeros."""
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable CSV: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    cols = list(df.columns)
    if exact and cols != required:
        raise DataError(path, f"wrong header {cols}, expected {required}")
    missing = [c for c in required if c not in cols]
    if missing:
        raise DataError(path, f"wrong header: missing columns {missing} (found {cols})")
    for col in required:
        df[col] = df[col].str.strip()
    return df


def check_unique(ids: list[str], path: Path, what: str = "index") -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise DataError(path, f"duplicate {what} {i!r}")
        if not i:
            raise DataError(path, f"empty {what}")
        seen.add(i)


def read_labels(path: Path, header: list[str], labels: Collection[str], label_hint: str, *, exact: bool = False,
                labels_required: bool = True, folds_required: bool = True) -> list[dict[str, str]]:
    """A release's labels table, one record per row (a message names the row's line in the file):
    every index once, every label among `labels` (`label_hint` says which in the message) and
    every fold one of FOLDS. Without `labels_required` (prediction only) an empty label cell is
    accepted, without `folds_required` an empty fold cell, or no fold column at all."""
    df = read_table(path, header, exact=exact)
    check_unique(df["index"].tolist(), path)
    rows = df.to_dict("records")
    for row_no, row in enumerate(rows, start=FIRST_ROW_LINE):
        if row["label"] not in labels and (labels_required or row["label"]):
            raise DataError(path, f"line {row_no}: unknown label {row['label']!r}, expected {label_hint}")
        fold = (row.get("fold") or "").strip()
        if fold not in FOLDS and (folds_required or fold):
            raise DataError(path, f"line {row_no}: unknown fold {fold!r}, expected one of {list(FOLDS)}")
    return rows


def check_no_extra(folder: Path, expected: set[str], pattern: str, what: str) -> None:
    """Feature files without a label row are an error, not silently dropped."""
    found = sorted(p.name for p in folder.glob(pattern))
    extra = [name for name in found if name not in expected]
    if extra:
        raise DataError(folder, f"{len(extra)} {what} file(s) have no entry in the labels: {extra[:5]}")


def read_subjects(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    df = read_table(path, ["sample", "subject"])
    check_unique(df["sample"].tolist(), path, "sample")
    blank = df.loc[df["subject"] == "", "sample"].tolist()
    if blank:   # a blank cell would silently make the vlog its own subject
        raise DataError(path, f"{len(blank)} sample(s) have an empty subject, e.g. {blank[:3]}")
    return dict(zip(df["sample"], df["subject"], strict=True))
