"""D-Vlog: the converted table equals the release files value for value, and every malformed
file is refused, whichever modality or sample it is in."""

from __future__ import annotations

import shutil

import pytest

from asym.data.convert import convert
from tests.data.source import (
    NPY_DEFECTS,
    assert_matches_source,
    assert_refused,
    damage_npy,
    dvlog_expected,
    read_csv_rows,
    set_cell,
    write_csv_rows,
)

WIDTH = {"acoustic": 25, "visual": 136}


def test_table_equals_the_release_value_for_value(dvlog_dir, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(dvlog_dir / "dvlog-dataset", root)
    rows = read_csv_rows(root / "labels.csv")
    write_csv_rows(root / "labels.csv", rows[::-1])   # row position no longer equals the index
    expected = dvlog_expected(root)
    assert {e["label"] for e in expected.values()} == {0, 1}
    assert {e["fold"] for e in expected.values()} == {"train", "valid", "test"}
    assert any(e["audio_rows"] > e["visual_rows"] for e in expected.values())
    assert any(e["audio_rows"] < e["visual_rows"] for e in expected.values())
    out = tmp_path / "dvlog.parquet"
    convert("dvlog", root, out, params.readers)
    assert_matches_source(out, expected)


@pytest.mark.parametrize("defect", NPY_DEFECTS)
@pytest.mark.parametrize("modality", ["acoustic", "visual"])
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_feature_file_is_refused(position, modality, defect, tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    idx = read_csv_rows(root / "labels.csv")[position]["index"]
    npy = root / idx / f"{idx}_{modality}.npy"
    expected = damage_npy(npy, defect, WIDTH[modality])
    assert_refused("dvlog", root, params.readers, expected, npy, tmp_path / "out")


LABEL_DEFECTS = {
    "unknown_fold": ("fold", "holdout", "unknown fold 'holdout'"),
    "unknown_label": ("label", "Depression", "unknown label 'Depression'"),
    "duration_text": ("duration", "12 min", "duration '12 min' is not a number"),
    "duration_empty": ("duration", "", "duration '' is not a number"),
}


@pytest.mark.parametrize("defect", LABEL_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_bad_labels_row_is_refused(position, defect, tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    column, value, expected = LABEL_DEFECTS[defect]
    set_cell(root / "labels.csv", position, column, value)
    assert_refused("dvlog", root, params.readers, expected, root / "labels.csv", tmp_path / "out")


def test_duplicate_last_row_is_refused(tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    rows = read_csv_rows(root / "labels.csv")
    write_csv_rows(root / "labels.csv", [*rows, {**rows[-1], "fold": "test"}])
    assert_refused("dvlog", root, params.readers, f"duplicate index {rows[-1]['index']!r}",
                   root / "labels.csv", tmp_path / "out")


def test_a_feature_folder_without_its_row_is_refused(tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    rows = read_csv_rows(root / "labels.csv")
    write_csv_rows(root / "labels.csv", rows[:-1])
    assert_refused("dvlog", root, params.readers, "have no row in labels.csv", root, tmp_path / "out")


@pytest.mark.parametrize(("position", "line"), [(0, 2), (-1, 5)], ids=["first", "last"])
def test_a_bad_labels_row_is_named_by_its_line(position, line, tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    assert len(read_csv_rows(root / "labels.csv")) == 4
    set_cell(root / "labels.csv", position, "label", "sad")
    assert_refused("dvlog", root, params.readers, f"line {line}: unknown label 'sad'", root / "labels.csv",
                   tmp_path / "out")


def test_labels_with_another_header_are_refused(tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    write_csv_rows(root / "labels.csv", [{**r, "age": "30"} for r in read_csv_rows(root / "labels.csv")])
    assert_refused("dvlog", root, params.readers, "wrong header", root / "labels.csv", tmp_path / "out")


def test_a_folder_that_is_not_the_release_is_named(params, tmp_path):
    assert_refused("dvlog", tmp_path, params.readers, "not a D-Vlog release: no labels.csv here nor in dvlog-dataset/",
                   tmp_path, tmp_path / "out")


def test_unlabelled_feature_folders_are_listed_five_at_most(tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    for i in range(6):
        (root / f"x{i}").mkdir()
    assert_refused("dvlog", root, params.readers, "6 sample folder(s) have no row in labels.csv: "
                   "['x0', 'x1', 'x2', 'x3', 'x4']", root, tmp_path / "out")


@pytest.mark.parametrize("modality", ["acoustic", "visual"])
def test_a_bad_feature_file_names_its_modality(modality, tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    idx = read_csv_rows(root / "labels.csv")[1]["index"]
    npy = root / idx / f"{idx}_{modality}.npy"
    expected = damage_npy(npy, "narrow", WIDTH[modality])
    assert_refused("dvlog", root, params.readers, f"{modality} features {expected}", npy, tmp_path / "out")
