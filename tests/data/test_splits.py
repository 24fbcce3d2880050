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


# ---- each protocol's folds and its refusals, with the file to blame --------------------------

def test_official_keeps_the_release_folds_and_names_the_release_when_one_is_missing(tmp_path):
    folds = ["train", "valid", "test", "train"]
    t = table(4, ["a", "b", "c", "d"], [0, 1, 0, 1], folds)
    assert make_split(t, "official", None, tmp_path / "x.parquet")["fold"].tolist() == folds
    t = table(5, list("abcde"), [0, 1, 0, 1, 0], [*folds, None])
    with pytest.raises(DataError, match=r"1 have none \(e.g. \['s004'\]\)") as err:
        make_split(t, "official", None, tmp_path / "x.parquet")
    assert err.value.path == str(tmp_path / "x.parquet")


@pytest.mark.parametrize(("rows", "expected"), [
    ("s000,train\ns001,valid\ns002,test\ns000,test\n", "duplicate sample 's000'"),
    ("s000,train\ns001,valid\ns002,holdout\n", "unknown fold(s) ['holdout']"),
    ("s000,train\ns001,valid\n", "1 sample(s) have no fold, e.g. ['s002']"),
])
def test_user_csv_split_errors_name_the_csv(rows, expected, tmp_path):
    t = table(3, ["a", "b", "c"], [0, 1, 0])
    csv = tmp_path / "folds.csv"
    csv.write_text("sample,fold\n" + rows)
    with pytest.raises(DataError) as err:
        make_split(t, "csv", None, tmp_path / "x.parquet", csv)
    assert err.value.path == str(csv) and expected in err.value.problem


def test_csv_protocol_without_a_file_and_an_unknown_protocol_are_refused(tmp_path):
    t = table(3, ["a", "b", "c"], [0, 1, 0], ["train", "valid", "test"])
    for protocol, expected in (("csv", "protocol csv needs split_csv"), ("random", "unknown split protocol 'random'")):
        with pytest.raises(DataError) as err:
            make_split(t, protocol, None, tmp_path / "x.parquet")
        assert err.value.path == str(tmp_path / "x.parquet") and expected in err.value.problem


def test_leakage_check_returns_the_leaked_subjects_of_a_published_split():
    ids, subjects = ["a", "b", "c", "d"], ["p1", "p2", "p1", "p3"]
    assert check_leakage(ids, subjects, ["train", "valid", "test", "test"], "x", subjects_disjoint=False) == ["p1"]
    assert check_leakage(ids, subjects, ["train", "valid", "train", "test"], "x") == []
    with pytest.raises(DataError, match="unknown fold 'dev' for sample 'b'") as err:
        check_leakage(ids, subjects, ["train", "dev", "test", "test"], "split.csv")
    assert err.value.path == "split.csv"
    with pytest.raises(ValueError):
        check_leakage(ids, subjects[:3], ["train", "valid", "test", "test"], "x")     # misaligned columns


def _depmamba_table():
    from asym.data.splits import published_split

    df, _ = published_split("depmamba")
    ids, z = list(df["index"]), [np.zeros((3, 2), np.float32)] * len(df)
    return df, FeatureTable(ids, ids, df["label"].astype(int).to_numpy().copy(), [None] * len(df), z, z, {})


def test_depmamba_applies_the_published_split_as_published(tmp_path):
    df, t = _depmamba_table()
    split = make_split(t, "depmamba", None, tmp_path / "x.parquet")
    assert split["fold"].tolist() == df["fold"].tolist()
    assert split["fold"].value_counts().to_dict() == {"train": 1458, "valid": 182, "test": 183}


@pytest.mark.parametrize("defect", ["label", "missing", "absent"])
def test_depmamba_refuses_data_that_is_not_lmvd_as_released(defect, tmp_path):
    df, t = _depmamba_table()
    if defect == "label":
        t.label[5] = 1 - t.label[5]
        expected = f"1 vlog(s) have another label in DepMamba's split than in the data, e.g. ['{t.sample_id[5]}']"
    elif defect == "missing":
        t.sample_id[0] = "9999"
        expected = "1 vlog(s) of the data are not in DepMamba's split, e.g. ['9999']"
    else:
        t = t.select(range(1, len(t)))
        expected = f"1 vlog(s) of DepMamba's split are not in the data, e.g. ['{df['index'][0]}']"
    with pytest.raises(DataError) as err:
        make_split(t, "depmamba", None, tmp_path / "x.parquet")
    assert expected in err.value.problem and err.value.path.endswith("lmvd_depmamba.csv")
