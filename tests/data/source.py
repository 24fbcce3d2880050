"""What a converted table must hold, computed from the raw release files without the
converter's code, and the table read back with pyarrow alone."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asym.data.convert import convert
from asym.data.parquet import read_samples
from asym.errors import DataError

LANDMARKS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
OPENFACE_FPS = 30          # OpenFace runs on every video frame; the release's video is 30 fps
NPY_ROWS_PER_SECOND = 5    # the (T, 171) copies hold about 5 rows a second


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def _cut(audio: np.ndarray, visual: np.ndarray) -> dict[str, Any]:
    n = min(len(audio), len(visual))
    return {"n_frames": n, "audio": audio[:n].astype(np.float32), "visual": visual[:n].astype(np.float32),
            "audio_rows": len(audio), "visual_rows": len(visual)}


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def dvlog_expected(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for row in read_csv_rows(root / "labels.csv"):
        idx = row["index"]
        rec = _cut(np.load(root / idx / f"{idx}_acoustic.npy"), np.load(root / idx / f"{idx}_visual.npy"))
        out[idx] = {**rec, "label": {"depression": 1, "normal": 0}[row["label"]], "fold": row["fold"],
                    "subject_id": idx, "gender": row["gender"], "duration": float(row["duration"])}
    return out


def openface_landmarks(path: Path) -> np.ndarray:
    """One OpenFace row per second: frames are numbered from 1, so frames 1, 31, 61, ..."""
    df = pd.read_csv(path, skipinitialspace=True)
    kept = df[(df["frame"] - 1) % OPENFACE_FPS == 0]
    return kept[LANDMARKS].to_numpy(np.float64)


def lmvd_authors_expected(root: Path, subjects: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for label_file in sorted((root / "label").glob("*_Depression.csv")):
        idx = label_file.name.removesuffix("_Depression.csv")
        cell = pd.read_csv(label_file, header=None, dtype=str).iat[0, 0]
        video_csv = root / "Video_feature" / f"{idx}.csv"
        if video_csv.exists():
            landmarks = openface_landmarks(video_csv)
        else:
            landmarks = np.load(root / "Video_feature" / f"{idx}.npy")[::NPY_ROWS_PER_SECOND, :136]
        rec = _cut(np.load(root / "Audio_feature" / f"{idx}.npy"), _zscore_rows(landmarks))
        out[idx] = {**rec, "label": int(cell), "fold": None, "subject_id": (subjects or {}).get(idx, idx)}
    return out


def lmvd_derived_expected(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for row in read_csv_rows(root / "labels.csv"):
        idx = row["index"]
        rec = _cut(np.load(root / "audio" / f"{idx}.npy"), np.load(root / "visual" / f"{idx}_visual.npy"))
        out[idx] = {**rec, "label": int(row["label"]), "fold": row["fold"] or None, "subject_id": idx}
    return out


def pyarrow_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The table read with pyarrow only, after checking features are stored as float32."""
    table = pq.read_table(path)
    for col in ("audio", "visual"):
        frame_type = table.schema.field(col).type.value_type
        assert pa.types.is_fixed_size_list(frame_type) and frame_type.value_type == pa.float32(), col
    rows = {}
    for row in table.to_pylist():
        rows[row["sample_id"]] = {**row, "audio": np.array(row["audio"], np.float32), "visual": np.array(row["visual"], np.float32)}
    assert len(rows) == table.num_rows, "duplicate sample ids"
    return rows


def asym_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The same table through asym's own reader."""
    t = read_samples(path)
    assert len(set(t.sample_id)) == len(t)
    return {s: {"label": int(t.label[i]), "fold": t.fold[i], "subject_id": t.subject_id[i], "n_frames": len(t.audio[i]),
                "audio": t.audio[i], "visual": t.visual[i]} for i, s in enumerate(t.sample_id)}


def assert_matches_source(path: Path, expected: dict[str, dict[str, Any]], visual_atol: float = 0.0) -> None:
    """Every sample's metadata and every feature value, by both readers, against the raw files."""
    for reader in (pyarrow_rows, asym_rows):
        got = reader(path)
        assert sorted(got) == sorted(expected), reader.__name__
        for sid, exp in expected.items():
            row = got[sid]
            for key in ("label", "fold", "subject_id", "n_frames", "gender", "duration"):
                if key in exp and key in row:
                    assert row[key] == exp[key], (reader.__name__, sid, key, row[key], exp[key])
            assert row["audio"].dtype == np.float32 and row["visual"].dtype == np.float32
            np.testing.assert_array_equal(row["audio"], exp["audio"], err_msg=f"{reader.__name__} {sid} audio")
            np.testing.assert_allclose(row["visual"], exp["visual"], rtol=0, atol=visual_atol,
                                       err_msg=f"{reader.__name__} {sid} visual")
    raw = pyarrow_rows(path)
    for sid, exp in expected.items():
        for key in ("gender", "duration"):
            if key in exp:
                assert raw[sid][key] == exp[key], (sid, key)


def assert_refused(fmt: str, root: Path, readers: dict[str, Any], expected: str, culprit: Path,
                   out_dir: Path, subjects: Path | None = None) -> None:
    """Conversion fails with a DataError naming `culprit` and `expected`, and writes nothing."""
    out = out_dir / "data.parquet"
    with pytest.raises(DataError) as err:
        convert(fmt, root, out, readers, subjects_csv=subjects)
    assert Path(err.value.path) == culprit, str(err.value)
    assert expected in err.value.problem, str(err.value)
    assert not out_dir.exists() or not list(out_dir.iterdir())


def write_csv_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def set_cell(path: Path, position: int, column: str, value: str) -> None:
    rows = read_csv_rows(path)
    rows[position][column] = value
    write_csv_rows(path, rows)


NPY_DEFECTS = ["narrow", "wide", "nan", "empty", "missing"]


def damage_npy(path: Path, defect: str, width: int) -> str:
    """Break one feature file in place; return the problem the error must state."""
    a = np.load(path)
    if defect == "narrow":
        np.save(path, a[:, :-1])
        return f"has {width - 1} features per frame, expected {width}"
    if defect == "wide":   # one column too many must not be silently cut away
        np.save(path, np.c_[a, a[:, :1]])
        return f"has {width + 1} features per frame, expected {width}"
    if defect == "nan":
        a[len(a) // 2, width // 2] = np.nan
        np.save(path, a)
        return f"NaN/Inf values (first at frame {len(a) // 2}, feature {width // 2})"
    if defect == "empty":
        np.save(path, a[:0])
        return "empty sequence"
    if defect == "missing":
        path.unlink()
        return "missing"
    raise ValueError(defect)
