"""Checked loading of feature and label files: each refusal names the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from asym.data.validate import check_matrix, check_no_extra, load_features, read_subjects
from asym.errors import DataError


def test_object_and_broken_npy_files_are_refused_with_their_path(tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"not a plain numeric \.npy \(object arrays are refused\)") as err:
        load_features(objects, 2, "audio features")
    assert err.value.path == str(objects)
    good = tmp_path / "good.npy"
    np.save(good, np.ones((4, 2)))
    for name, keep in (("empty.npy", 0), ("short.npy", len(good.read_bytes()) - 8)):
        broken = tmp_path / name
        broken.write_bytes(good.read_bytes()[:keep])
        with pytest.raises(DataError, match="truncated or") as err:
            load_features(broken, 2, "audio features")
        assert err.value.path == str(broken)
    np.testing.assert_array_equal(load_features(good, 2, "audio features"), np.ones((4, 2)))


@pytest.mark.parametrize("values", [np.array([["a", "b"]]), np.array([[True, False]])], ids=["text", "bool"])
def test_a_matrix_that_is_not_numbers_is_refused(values, tmp_path):
    with pytest.raises(DataError, match=f"visual features has dtype {values.dtype}, expected floating point") as err:
        check_matrix(values, tmp_path / "v.npy", 2, "visual features")
    assert err.value.path == str(tmp_path / "v.npy")
    assert check_matrix(np.ones((1, 2), np.int16), tmp_path / "v.npy", 2, "visual features").shape == (1, 2)


def test_unlabelled_files_are_listed_five_at_most(tmp_path):
    for i in range(6):
        np.save(tmp_path / f"{i}.npy", np.ones((1, 1)))
    with pytest.raises(DataError) as err:
        check_no_extra(tmp_path, {"0.npy"}, "*.npy", "audio")
    assert err.value.problem == "5 audio file(s) have no entry in the labels: ['1.npy', '2.npy', '3.npy', '4.npy', '5.npy']"
    (tmp_path / "6.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"6 audio file\(s\) .*'5\.npy'\]$"):
        check_no_extra(tmp_path, {"0.npy"}, "*.npy", "audio")


def test_blank_subjects_are_counted_and_three_shown(tmp_path):
    csv = tmp_path / "subjects.csv"
    csv.write_text("sample,subject\na,\nb,\nc,\nd,\ne,P1\n")
    with pytest.raises(DataError) as err:
        read_subjects(csv)
    assert err.value.problem == "4 sample(s) have an empty subject, e.g. ['a', 'b', 'c']"
    csv.write_text("sample,subject\n0831,P1\n0832, P1 \n")
    assert read_subjects(csv) == {"0831": "P1", "0832": "P1"}
    assert read_subjects(None) is None
