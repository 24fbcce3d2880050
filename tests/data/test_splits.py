from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asym.data.parquet import FeatureTable, write_samples
from asym.data.sample import Sample
from asym.data.splits import (
    check_leakage,
    load_partitions,
    make_split,
    read_split,
    stratified_group,
)
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
        make_split(t, "official", None, tmp_path / "x.parquet")


def test_user_csv_split(tmp_path):
    t = table(3, ["a", "b", "c"], [0, 1, 0])
    csv = tmp_path / "folds.csv"
    csv.write_text("sample,fold\ns000,train\ns001,valid\ns002,holdout\n")
    with pytest.raises(DataError, match="unknown fold"):
        make_split(t, "csv", None, tmp_path / "x.parquet", csv)
    csv.write_text("sample,fold\ns000,train\ns001,valid\ns002,test\n")
    df = make_split(t, "csv", None, tmp_path / "x.parquet", csv)
    assert df["fold"].tolist() == ["train", "valid", "test"]


# ---- at training time: the split must be leak-free and describe exactly the data ---------------

SUBJECT_OF = {f"s{i:02d}": f"P{i // 2}" for i in range(12)}                 # two vlogs per subject
FOLD_OF_SUBJECT = {"P0": "train", "P1": "train", "P2": "train", "P3": "train", "P4": "valid", "P5": "test"}


def _label(subject: str) -> int:
    return int(subject[-1]) % 2


@pytest.fixture(scope="module")
def data_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "data.parquet"
    rng = np.random.default_rng(0)
    samples = [Sample(s, _label(p), rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), subject_id=p) for s, p in SUBJECT_OF.items()]
    write_samples(samples, path, {"dataset": "t"})
    return path


def _good_split() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": list(SUBJECT_OF), "subject_id": list(SUBJECT_OF.values()),
                         "label": [_label(p) for p in SUBJECT_OF.values()],
                         "fold": [FOLD_OF_SUBJECT[p] for p in SUBJECT_OF.values()]})


def test_a_split_that_matches_the_data_gives_its_folds(data_parquet, tmp_path):
    split = tmp_path / "split.csv"
    _good_split().to_csv(split, index=False)
    folds = load_partitions(data_parquet, split)[1][0]
    for fold in ("train", "valid", "test"):
        table = folds[fold]
        assert table.sample_id == [s for s, p in SUBJECT_OF.items() if FOLD_OF_SUBJECT[p] == fold]
        assert table.subject_id == [SUBJECT_OF[s] for s in table.sample_id]
        assert table.label.tolist() == [_label(SUBJECT_OF[s]) for s in table.sample_id]


def _with(df: pd.DataFrame, sample: str, **changes) -> pd.DataFrame:
    df = df.copy()
    for col, value in changes.items():
        df.loc[df["sample_id"] == sample, col] = value
    return df


SPLIT_DEFECTS = {
    "sample_missing": (lambda df: df[df["sample_id"] != "s05"], "1 sample(s) without a fold ['s05']"),
    "extra_sample": (lambda df: pd.concat([df, pd.DataFrame([{"sample_id": "s99", "subject_id": "P9", "label": 0, "fold": "test"}])]),
                     "1 split row(s) for samples not in the data ['s99']"),
    "label_differs": (lambda df: _with(df, "s03", label=0), "sample 's03' has label '0' here but 1 in"),
    "subject_differs": (lambda df: _with(df, "s01", subject_id="P9"), "sample 's01' has subject 'P9' here but 'P0' in"),
    # a split made before subject ids were supplied: leak-free by its own ids, not by the data's
    "made_without_subjects": (lambda df: _with(df.assign(subject_id=df["sample_id"]), "s01", fold="test"),
                              "sample 's00' has subject 's00' here but 'P0' in"),
    "duplicate_sample": (lambda df: pd.concat([df, df[df["sample_id"] == "s00"]]), "duplicate sample 's00'"),
    "sample_in_two_folds": (lambda df: pd.concat([df, _with(df, "s00", fold="test")[lambda d: d["sample_id"] == "s00"]]),
                            "leakage: sample 's00' is in folds 'train' and 'test'"),
    "empty_fold": (lambda df: df.assign(fold=df["fold"].replace("valid", "train")), "fold(s) ['valid'] are empty"),
    "subject_in_two_folds": (lambda df: _with(df, "s01", fold="test"),
                             "leakage: subject 'P0' has samples in folds 'train' and 'test'"),
    "unknown_fold": (lambda df: _with(df, "s11", fold="holdout"), "unknown fold(s) ['holdout']"),
}


@pytest.mark.parametrize("defect", SPLIT_DEFECTS)
def test_training_refuses_a_split_that_leaks_or_disagrees_with_the_data(defect, data_parquet, tmp_path):
    change, expected = SPLIT_DEFECTS[defect]
    split = tmp_path / "split.csv"
    change(_good_split()).to_csv(split, index=False)
    with pytest.raises(DataError) as err:
        load_partitions(data_parquet, split)
    assert err.value.path == str(split)
    assert expected in err.value.problem, err.value.problem


def test_read_split_refuses_a_subject_in_two_folds(tmp_path):
    split = tmp_path / "split.csv"
    _with(_good_split(), "s09", fold="test").to_csv(split, index=False)   # P4: valid and test
    with pytest.raises(DataError, match="leakage: subject 'P4' has samples in folds 'valid' and 'test'") as err:
        read_split(split)
    assert err.value.path == str(split)


# ---- protocols ---------------------------------------------------------------------------------

def test_depmamba_split_matches_its_checksum_and_gives_1458_182_183():
    import hashlib
    import json
    from importlib import resources

    from asym.data.splits import published_split

    folder = resources.files("asym.reference").joinpath("splits")
    info = json.loads(folder.joinpath("lmvd_depmamba.json").read_text())
    data = folder.joinpath("lmvd_depmamba.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert info["repository"].endswith("Jiaxin-Ye/DepMamba") and len(info["commit"]) == 40
    df, _ = published_split("depmamba")
    assert df["fold"].value_counts().to_dict() == {"train": 1458, "valid": 182, "test": 183}
    assert len(df) == 1823 and "0831" in set(df["index"])             # ids keep their leading zeros
    assert df[df["fold"] == "test"]["label"].value_counts().to_dict() == {"0": 92, "1": 91}


def test_depmamba_protocol_applies_the_published_folds_and_refuses_other_data(tmp_path):
    from asym.data.splits import published_split

    df, _ = published_split("depmamba")
    t = FeatureTable(df["index"].tolist(), df["index"].tolist(), df["label"].astype(int).to_numpy(),
                     [None] * len(df), [np.zeros((3, 2), np.float32)] * len(df), [np.zeros((3, 2), np.float32)] * len(df), {})
    split = make_split(t, "depmamba", None, tmp_path / "lmvd.parquet")
    assert split["fold"].tolist() == df["fold"].tolist()
    wrong = FeatureTable(t.sample_id, t.subject_id, 1 - t.label, t.fold, t.audio, t.visual, {})
    with pytest.raises(DataError, match="another label in DepMamba's split"):
        make_split(wrong, "depmamba", None, tmp_path / "lmvd.parquet")
    demo = FeatureTable(["9999"], ["9999"], np.array([1]), [None], t.audio[:1], t.visual[:1], {})
    with pytest.raises(DataError, match="not in DepMamba's split"):
        make_split(demo, "depmamba", None, tmp_path / "lmvd.parquet")


def test_kfold_puts_every_subject_in_exactly_one_test_fold():
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    subjects = [f"p{rng.integers(0, 60)}" for _ in range(150)]
    label_of = {s: int(rng.random() < 0.5) for s in set(subjects)}
    t = table(150, subjects, [label_of[s] for s in subjects])
    cfg = SimpleNamespace(seed=5, ratios=(0.8, 0.1, 0.1), kfold=SimpleNamespace(k=5, valid_fraction=0.15))
    split = make_split(t, "kfold", cfg, "x.parquet")
    assert sorted(split["partition"].unique()) == [0, 1, 2, 3, 4]
    tests = split[split["fold"] == "test"]
    assert sorted(tests["sample_id"]) == sorted(t.sample_id)          # each vlog tested exactly once
    assert tests.groupby("subject_id")["partition"].nunique().max() == 1
    for _, part in split.groupby("partition"):
        check_leakage(part["sample_id"].tolist(), part["subject_id"].tolist(), part["fold"].tolist(), "x")
        share = (part["fold"] == "valid").sum() / (part["fold"] != "test").sum()
        assert 0.08 < share < 0.25
