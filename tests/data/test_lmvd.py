"""LMVD, in every layout in use: the converted table equals the release files value for value
(frame stride and its offset included), and every malformed file is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asym.data.convert import convert
from tests.data.source import (
    NPY_DEFECTS,
    assert_matches_source,
    assert_refused,
    damage_npy,
    lmvd_authors_expected,
    lmvd_derived_expected,
    read_csv_rows,
    set_cell,
    write_csv_rows,
)

STANDARDISED_ATOL = 1e-6   # z-scored rows are recomputed here in float64 and compared in float32


def _ids(root: Path) -> list[str]:
    return sorted(p.name.removesuffix("_Depression.csv") for p in (root / "label").iterdir())


def _subjects(root: Path) -> dict[str, str]:
    return {r["sample"]: r["subject"] for r in read_csv_rows(root / "subjects.csv")}


def _as_npy_video(root: Path, idx: str, rng: np.random.Generator) -> Path:
    """Replace a vlog's OpenFace CSV by a (T, 171) .npy: landmarks then action units, ~5 rows/s."""
    (root / "Video_feature" / f"{idx}.csv").unlink()
    seconds = len(np.load(root / "Audio_feature" / f"{idx}.npy"))
    npy = root / "Video_feature" / f"{idx}.npy"
    np.save(npy, rng.normal(300, 40, (5 * seconds + int(rng.integers(-12, 13)), 171)))
    return npy


def test_authors_layout_with_openface_csv_equals_the_release(lmvd_dir, params, tmp_path):
    subjects = _subjects(lmvd_dir)
    expected = lmvd_authors_expected(lmvd_dir, subjects)
    assert {e["label"] for e in expected.values()} == {0, 1}
    assert len(set(subjects.values())) < len(subjects)                       # some subjects have several vlogs
    assert any(e["audio_rows"] > e["visual_rows"] for e in expected.values())
    assert any(e["audio_rows"] < e["visual_rows"] for e in expected.values())
    first = pd.read_csv(lmvd_dir / "Video_feature" / "0001.csv", skipinitialspace=True)
    assert first["frame"].iloc[0] == 1 and len(first) > 30 * expected["0001"]["visual_rows"] - 30
    out = tmp_path / "lmvd.parquet"
    convert("lmvd", lmvd_dir, out, params.readers, subjects_csv=lmvd_dir / "subjects.csv")
    assert_matches_source(out, expected, visual_atol=STANDARDISED_ATOL)


def test_authors_layout_with_npy_video_equals_the_release(lmvd_dir, params, tmp_path):
    root = tmp_path / "lmvd"
    for sub in ("Audio_feature", "label", "Video_feature"):
        shutil.copytree(lmvd_dir / sub, root / sub)
    rng = np.random.default_rng(0)
    ids = _ids(root)
    for idx in ids[1::2]:          # a mixed release: every other vlog as .npy
        _as_npy_video(root, idx, rng)
    expected = lmvd_authors_expected(root)
    assert any(e["audio_rows"] > e["visual_rows"] for e in expected.values())
    assert any(e["audio_rows"] < e["visual_rows"] for e in expected.values())
    out = tmp_path / "lmvd.parquet"
    convert("lmvd", root, out, params.readers)
    assert_matches_source(out, expected, visual_atol=STANDARDISED_ATOL)


def test_derived_layout_equals_the_release(tiny_derived, params, tmp_path):
    root = tmp_path / "derived"
    shutil.copytree(tiny_derived, root)
    rows = read_csv_rows(root / "labels.csv")
    folds = ["train", "valid", "test"]
    rows = [{**r, "fold": folds[k % 3]} for k, r in enumerate(rows)][::-1]   # folds given, rows out of order
    write_csv_rows(root / "labels.csv", rows)
    expected = lmvd_derived_expected(root)
    assert {e["label"] for e in expected.values()} == {0, 1}
    out = tmp_path / "derived.parquet"
    card = convert("lmvd", root, out, params.readers)
    assert card["layout"] == "derived"
    assert_matches_source(out, expected)


# ---- the authors' layout, broken one file at a time -------------------------------------------

def _copy(src: Path, tmp_path: Path) -> Path:
    root = tmp_path / "lmvd"
    shutil.copytree(src, root)
    return root


@pytest.mark.parametrize("defect", NPY_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_audio_file_is_refused(position, defect, tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    npy = root / "Audio_feature" / f"{_ids(root)[position]}.npy"
    expected = damage_npy(npy, defect, 128)
    assert_refused("lmvd", root, params.readers, expected, npy, tmp_path / "out")


def _kept_line(lines: list[str], last: bool) -> int:
    """Line number (header = 0) of the first or last video frame the reader keeps."""
    frames = [int(line.split(",")[0]) for line in lines[1:]]
    kept = [k + 1 for k, f in enumerate(frames) if (f - 1) % 30 == 0]
    return kept[-1] if last else kept[0]


def _set_openface(lines: list[str], line: int, column: str, value: str) -> None:
    header = [c.strip() for c in lines[0].split(",")]
    cells = lines[line].split(",")
    cells[header.index(column)] = f" {value}"
    lines[line] = ",".join(cells)


OPENFACE_DEFECTS = {
    "header": "wrong header: missing OpenFace columns ['x_3']",
    "nan": "NaN/Inf",
    "text": "NaN/Inf",
    "frame_text": "non-numeric value in column `frame`",
    "missing": "missing video feature file",
}


@pytest.mark.parametrize("defect", OPENFACE_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_openface_csv_is_refused(position, defect, tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    csv = root / "Video_feature" / f"{_ids(root)[position]}.csv"
    lines = csv.read_text().splitlines()
    line = _kept_line(lines, last=position == -1)
    if defect == "header":
        assert lines[0].count(" x_3,") == 1
        lines[0] = lines[0].replace(" x_3,", " x3,")
    elif defect == "nan":
        _set_openface(lines, line, "x_0", "nan")
    elif defect == "text":
        _set_openface(lines, line, "y_67", "n/a face")
    elif defect == "frame_text":
        _set_openface(lines, line, "frame", "frame")
    csv.write_text("\n".join(lines) + "\n")
    if defect == "missing":
        csv.unlink()
    assert_refused("lmvd", root, params.readers, OPENFACE_DEFECTS[defect], csv, tmp_path / "out")


@pytest.mark.parametrize("defect", NPY_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_npy_video_file_is_refused(position, defect, tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    npy = _as_npy_video(root, _ids(root)[position], np.random.default_rng(1))
    expected = damage_npy(npy, defect, 171)
    culprit = npy.with_suffix(".csv") if defect == "missing" else npy
    assert_refused("lmvd", root, params.readers, expected, culprit, tmp_path / "out")


@pytest.mark.parametrize("cell", ["2", "depressed", ""])
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_label_cell_is_refused(position, cell, tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    label = root / "label" / f"{_ids(root)[position]}_Depression.csv"
    label.write_text(f"{cell}\n")
    assert_refused("lmvd", root, params.readers, f"unknown label {cell!r}", label, tmp_path / "out")


@pytest.mark.parametrize("folder,name", [("Audio_feature", "9999.npy"), ("Video_feature", "9999.csv"),
                                         ("Video_feature", "9999.npy")])
def test_feature_file_without_a_label_is_refused(folder, name, tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    like = root / "Audio_feature" / "0001.npy" if name.endswith(".npy") else root / "Video_feature" / "0001.csv"
    shutil.copy(like, root / folder / name)
    assert_refused("lmvd", root, params.readers, f"have no entry in the labels: ['{name}']",
                   root / folder, tmp_path / "out")


# ---- the derived layout, broken one file at a time --------------------------------------------

def _derived_rows(root: Path) -> list[dict[str, str]]:
    return read_csv_rows(root / "labels.csv")


@pytest.mark.parametrize("defect", NPY_DEFECTS)
@pytest.mark.parametrize("modality", ["audio", "visual"])
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_derived_bad_feature_file_is_refused(position, modality, defect, tiny_derived, params, tmp_path):
    root = _copy(tiny_derived, tmp_path)
    idx = _derived_rows(root)[position]["index"]
    npy = root / "audio" / f"{idx}.npy" if modality == "audio" else root / "visual" / f"{idx}_visual.npy"
    expected = damage_npy(npy, defect, 128 if modality == "audio" else 136)
    assert_refused("lmvd", root, params.readers, expected, npy, tmp_path / "out")


DERIVED_LABEL_DEFECTS = {
    "unknown_label": ("label", "2", "unknown label '2'"),
    "unknown_fold": ("fold", "holdout", "unknown fold 'holdout'"),
    "empty_index": ("index", "", "empty index"),
}


@pytest.mark.parametrize("defect", DERIVED_LABEL_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_derived_bad_labels_row_is_refused(position, defect, tiny_derived, params, tmp_path):
    root = _copy(tiny_derived, tmp_path)
    column, value, expected = DERIVED_LABEL_DEFECTS[defect]
    set_cell(root / "labels.csv", position, column, value)
    assert_refused("lmvd", root, params.readers, expected, root / "labels.csv", tmp_path / "out")


def test_derived_wrong_header_and_duplicate_are_refused(tiny_derived, params, tmp_path):
    root = _copy(tiny_derived, tmp_path)
    labels = root / "labels.csv"
    original = labels.read_text()
    labels.write_text(original.replace("index,label,fold", "id,label,fold", 1))
    assert_refused("lmvd", root, params.readers, "wrong header: missing columns ['index']", labels, tmp_path / "out")
    labels.write_text(original)
    rows = _derived_rows(root)
    write_csv_rows(labels, [*rows, rows[-1]])
    assert_refused("lmvd", root, params.readers, f"duplicate index {rows[-1]['index']!r}", labels, tmp_path / "out")


def _with_stray_file(tiny_derived: Path, tmp_path: Path, modality: str):
    """A copy of the derived layout with one extra `modality` file, "9999", that no label row
    names: (root, label rows, the modality's folder, index -> file name)."""
    root = _copy(tiny_derived, tmp_path)
    rows = _derived_rows(root)
    folder = root / modality
    name = (lambda i: f"{i}.npy") if modality == "audio" else (lambda i: f"{i}_visual.npy")
    shutil.copy(folder / name(rows[0]["index"]), folder / name("9999"))
    return root, rows, folder, name


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_derived_missing_and_extra_files_are_refused(modality, tiny_derived, params, tmp_path):
    root, rows, folder, name = _with_stray_file(tiny_derived, tmp_path, modality)
    assert_refused("lmvd", root, params.readers, f"have no entry in the labels: [{name('9999')!r}]",
                   folder, tmp_path / "out")
    (folder / name("9999")).unlink()
    last = folder / name(rows[-1]["index"])
    last.unlink()
    assert_refused("lmvd", root, params.readers, "missing", last, tmp_path / "out")


def test_landmark_rows_are_z_scored_and_a_still_row_is_left_at_zero():
    from asym.data.lmvd import standardise_rows

    x = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.5, 0.0, 0.5]])
    z = standardise_rows(x)
    np.testing.assert_allclose(z[0], (x[0] - 3.0) / np.std(x[0]))
    np.testing.assert_allclose(z[1], 0.0)                        # constant row: no division by zero
    np.testing.assert_allclose(z[2], [-1.0, 1.0, -1.0, 1.0])     # std 0.25 scaled up, not left alone


def test_openface_csv_errors_name_the_file_and_the_columns(tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    csv = root / "Video_feature" / f"{_ids(root)[1]}.csv"
    lines = csv.read_text().splitlines()
    original = list(lines)
    for k in range(7):
        lines[0] = lines[0].replace(f" x_{k},", f" xx{k},")
    csv.write_text("\n".join(lines) + "\n")
    assert_refused("lmvd", root, params.readers,
                   "missing OpenFace columns ['x_0', 'x_1', 'x_2', 'x_3', 'x_4', 'x_5']...", csv, tmp_path / "out")
    lines[0] = original[0]
    for k in range(6):
        lines[0] = lines[0].replace(f" x_{k},", f" xx{k},")
    csv.write_text("\n".join(lines) + "\n")
    assert_refused("lmvd", root, params.readers,
                   "missing OpenFace columns ['x_0', 'x_1', 'x_2', 'x_3', 'x_4', 'x_5']", csv, tmp_path / "out")
    with pytest.raises(Exception) as err:
        convert("lmvd", root, tmp_path / "out" / "d.parquet", params.readers)
    assert str(err.value).endswith("'x_5']")
    csv.write_bytes(b"\xff\xfe\x00garbage\x00\n")
    assert_refused("lmvd", root, params.readers, "unreadable OpenFace CSV", csv, tmp_path / "out")
    _set_openface(original, _kept_line(original, last=False), "x_0", "nan")
    csv.write_text("\n".join(original) + "\n")
    assert_refused("lmvd", root, params.readers, "landmarks has NaN/Inf", csv, tmp_path / "out")


@pytest.mark.parametrize(("position", "line"), [(0, 2), (-1, 5)], ids=["first", "last"])
def test_derived_bad_row_is_named_by_its_line(position, line, tiny_derived, params, tmp_path):
    root = _copy(tiny_derived, tmp_path)
    assert len(_derived_rows(root)) == 4
    set_cell(root / "labels.csv", position, "fold", "holdout")
    assert_refused("lmvd", root, params.readers, f"line {line}: unknown fold", root / "labels.csv", tmp_path / "out")


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_derived_errors_name_the_modality(modality, tiny_derived, params, tmp_path):
    root, rows, folder, name = _with_stray_file(tiny_derived, tmp_path, modality)
    assert_refused("lmvd", root, params.readers, f"1 {modality} file(s) have no entry", folder, tmp_path / "out")
    (folder / name("9999")).unlink()
    npy = folder / name(rows[1]["index"])
    expected = damage_npy(npy, "narrow", 128 if modality == "audio" else 136)
    assert_refused("lmvd", root, params.readers, f"{modality} features {expected}", npy, tmp_path / "out")


def test_a_capped_audio_stream_keeps_its_first_rows(tiny_lmvd, params, tmp_path):
    from asym.data.lmvd import read_lmvd

    root = _copy(tiny_lmvd, tmp_path)
    capped = params.readers.lmvd.model_copy(update={"max_audio_rows": 3})
    samples = {s.sample_id: s for s in read_lmvd(root, capped)}
    for idx, s in samples.items():
        source = np.load(root / "Audio_feature" / f"{idx}.npy")
        assert 1 <= s.audio.shape[0] <= 3                               # then aligned with the video
        np.testing.assert_array_equal(s.audio, source[: s.audio.shape[0]].astype(s.audio.dtype))
    assert max(s.audio.shape[0] for s in read_lmvd(root, params.readers.lmvd)) > 3


def test_label_cells_as_written_by_spreadsheets(tiny_lmvd, params, tmp_path):
    from asym.data.lmvd import read_lmvd

    root = _copy(tiny_lmvd, tmp_path)
    first, second = _ids(root)[:2]
    (root / "label" / f"{first}_Depression.csv").write_text("\ufeff1\n", encoding="utf-8")    # byte-order mark
    (root / "label" / f"{second}_Depression.csv").write_text("0,\n")                         # trailing comma
    labels = {s.sample_id: s.label for s in read_lmvd(root, params.readers.lmvd)}
    assert labels[first] == 1 and labels[second] == 0
    (root / "label" / f"{second}_Depression.csv").write_text("0 1\n")
    assert_refused("lmvd", root, params.readers, "unknown label '0 1'", root / "label" / f"{second}_Depression.csv",
                   tmp_path / "out")


def test_half_a_layout_is_not_a_release(tiny_lmvd, tiny_derived, params, tmp_path):
    for folder in ("label", "Video_feature", "Audio_feature"):
        root = _copy(tiny_lmvd, tmp_path / folder)
        shutil.rmtree(root / folder)
        assert_refused("lmvd", root, params.readers, "not an LMVD release", root, tmp_path / "out")
    for part in ("audio", "visual"):
        root = _copy(tiny_derived, tmp_path / part)
        shutil.rmtree(root / part)
        assert_refused("lmvd", root, params.readers, "not an LMVD release", root, tmp_path / "out")
    root = _copy(tiny_derived, tmp_path / "labels")
    (root / "labels.csv").unlink()
    assert_refused("lmvd", root, params.readers, "not an LMVD release", root, tmp_path / "out")
    from asym.data.lmvd import detect_layout
    from asym.errors import DataError

    with pytest.raises(DataError) as err:
        detect_layout(root)
    assert err.value.problem == ("not an LMVD release: expected Audio_feature/, Video_feature/ and label/ (authors' "
                                 "layout) or labels.csv, audio/ and visual/ (derived layout)")
    root = _copy(tiny_lmvd, tmp_path / "no-labels")
    for p in (root / "label").iterdir():
        p.unlink()
    assert_refused("lmvd", root, params.readers, "no <index>_Depression.csv label files", root / "label",
                   tmp_path / "out")


def test_authors_errors_name_the_stream(tiny_lmvd, params, tmp_path):
    root = _copy(tiny_lmvd, tmp_path)
    idx = _ids(root)[1]
    shutil.copy(root / "Audio_feature" / f"{idx}.npy", root / "Audio_feature" / "9999.npy")
    assert_refused("lmvd", root, params.readers, "1 audio file(s) have no entry", root / "Audio_feature",
                   tmp_path / "out")
    (root / "Audio_feature" / "9999.npy").unlink()
    shutil.copy(root / "Video_feature" / f"{idx}.csv", root / "Video_feature" / "9999.csv")
    assert_refused("lmvd", root, params.readers, "1 video file(s) have no entry", root / "Video_feature",
                   tmp_path / "out")
    (root / "Video_feature" / "9999.csv").unlink()
    audio = root / "Audio_feature" / f"{idx}.npy"
    expected = damage_npy(audio, "narrow", 128)
    assert_refused("lmvd", root, params.readers, f"VGGish audio features {expected}", audio, tmp_path / "out")
    shutil.copy(root / "Audio_feature" / f"{_ids(root)[0]}.npy", audio)
    npy = _as_npy_video(root, idx, np.random.default_rng(2))
    expected = damage_npy(npy, "narrow", 171)
    assert_refused("lmvd", root, params.readers, f"OpenFace video features {expected}", npy, tmp_path / "out")
