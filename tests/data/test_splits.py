from __future__ import annotations

import numpy as np
import pytest

from asym.data.parquet import FeatureTable
from asym.data.splits import check_leakage, make_split, stratified_group
from asym.errors import DataError


def table(n: int, subjects: list[str], labels: list[int], folds=None) -> FeatureTable:
    z = [np.zeros((3, 2), np.float32)] * n
    return FeatureTable([f"s{i:03d}" for i in range(n)], subjects, np.array(labels), folds or [None] * n, z, z, {})


def test_stratified_group_is_subject_independent_and_hits_the_ratios():
    rng = np.random.default_rng(0)
    subjects = [f"p{rng.integers(0, 150)}" for _ in range(400)]
    subj_label = {s: int(rng.random() < 0.5) for s in set(subjects)}
    t = table(400, subjects, [subj_label[s] for s in subjects])
    folds = stratified_group(t, [0.8, 0.1, 0.1], seed=1)
    check_leakage(t.sample_id, t.subject_id, folds, "test")
    share = {f: folds.count(f) / 400 for f in ("train", "valid", "test")}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.03
    for f in ("train", "test"):
        lab = [y for y, g in zip(t.label, folds, strict=True) if g == f]
        assert abs(np.mean(lab) - np.mean(t.label)) < 0.1
    assert folds == stratified_group(t, [0.8, 0.1, 0.1], seed=1)        # seeded
    assert folds != stratified_group(t, [0.8, 0.1, 0.1], seed=2)


def test_leakage_check_fails_loudly_on_a_shared_subject():
    with pytest.raises(DataError, match="subject 'p1' has samples in folds 'train' and 'test'"):
        check_leakage(["a", "b", "c", "d"], ["p1", "p2", "p1", "p3"], ["train", "valid", "test", "test"], "split.csv")
    with pytest.raises(DataError, match="sample 'a' is in folds 'train' and 'valid'"):
        check_leakage(["a", "a", "c"], ["p1", "p1", "p3"], ["train", "valid", "test"], "split.csv")


def test_official_split_needs_folds(tmp_path):
    t = table(4, ["a", "b", "c", "d"], [0, 1, 0, 1])
    with pytest.raises(DataError, match="no official split"):
        make_split(t, {"split": "official"}, {}, tmp_path / "x.parquet")


def test_user_csv_split(tmp_path):
    t = table(3, ["a", "b", "c"], [0, 1, 0])
    csv = tmp_path / "folds.csv"
    csv.write_text("sample,fold\ns000,train\ns001,valid\ns002,holdout\n")
    with pytest.raises(DataError, match="unknown fold"):
        make_split(t, {"split": "csv", "split_csv": str(csv)}, {}, tmp_path / "x.parquet")
    csv.write_text("sample,fold\ns000,train\ns001,valid\ns002,test\n")
    df = make_split(t, {"split": "csv", "split_csv": str(csv)}, {}, tmp_path / "x.parquet")
    assert df["fold"].tolist() == ["train", "valid", "test"]
