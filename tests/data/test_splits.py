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
    folds = stratified_group(t, "x.parquet", [0.8, 0.1, 0.1], seed=1)[0]
    check_leakage(t.sample_id, t.subject_id, folds, "test")
    share = {f: folds.count(f) / 400 for f in ("train", "valid", "test")}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.03
    for f in ("train", "test"):
        lab = [y for y, g in zip(t.label, folds, strict=True) if g == f]
        assert abs(np.mean(lab) - np.mean(t.label)) < 0.1
    assert folds == stratified_group(t, "x.parquet", [0.8, 0.1, 0.1], seed=1)[0]        # seeded
    assert folds != stratified_group(t, "x.parquet", [0.8, 0.1, 0.1], seed=2)[0]


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
    return df, FeatureTable(ids, list(ids), df["label"].astype(int).to_numpy().copy(), [None] * len(df), z, z, {})


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


def _cfg(k: int = 3, valid_fraction: float = 0.25, seed: int = 0, ratios=(0.6, 0.2, 0.2)):
    from types import SimpleNamespace

    return SimpleNamespace(kfold=SimpleNamespace(k=k, valid_fraction=valid_fraction), seed=seed, ratios=list(ratios))


def _subjects_table(n_subjects: int = 15, per_subject: int = 2) -> FeatureTable:
    subjects = [f"p{i:02d}" for i in range(n_subjects) for _ in range(per_subject)]
    labels = [int(s[-1]) % 2 for s in subjects]
    t = table(len(subjects), subjects, labels)
    return t


def test_kfold_tests_every_sample_once_and_carves_validation_from_the_rest(tmp_path):
    from asym.data.splits import COLUMNS

    t = _subjects_table()
    split = make_split(t, "kfold", _cfg(), tmp_path / "x.parquet")
    assert list(split.columns) == COLUMNS and split.index.tolist() == list(range(3 * len(t)))
    assert sorted(split["partition"].unique()) == [0, 1, 2]
    tests = split[split["fold"] == "test"]
    assert sorted(tests["sample_id"]) == sorted(t.sample_id)                    # each vlog tested once
    for _, part in split.groupby("partition"):
        rest = part[part["fold"] != "test"]
        assert rest["fold"].eq("valid").mean() == pytest.approx(0.25, abs=0.1)
        for col in ("subject_id", "label"):
            assert part[col].tolist() == (t.subject_id if col == "subject_id" else t.label.tolist())
    again = make_split(t, "kfold", _cfg(), tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(split, again)
    assert not split.equals(make_split(t, "kfold", _cfg(seed=1), tmp_path / "x.parquet"))
    valid = [set(part.loc[part["fold"] == "valid", "sample_id"]) for _, part in split.groupby("partition")]
    assert valid[0] != valid[1]


def test_kfold_needs_k_subjects(tmp_path):
    t = _subjects_table(n_subjects=2)
    with pytest.raises(DataError, match="kfold with k=3 needs at least 3 subjects, the data has 2"):
        make_split(t, "kfold", _cfg(), tmp_path / "x.parquet")


def test_stratified_group_takes_its_ratios_and_seed_from_the_config(tmp_path):
    t = _subjects_table(n_subjects=40)
    a = make_split(t, "stratified_group", _cfg(ratios=(0.5, 0.25, 0.25)), tmp_path / "x.parquet")
    assert a["fold"].value_counts(normalize=True).to_dict() == pytest.approx({"train": 0.5, "valid": 0.25, "test": 0.25}, abs=0.05)
    assert a["fold"].tolist() == stratified_group(t, "x.parquet", [0.5, 0.25, 0.25], seed=0)[0]
    b = make_split(t, "stratified_group", _cfg(seed=7), tmp_path / "x.parquet")
    assert b["fold"].tolist() == stratified_group(t, "x.parquet", [0.6, 0.2, 0.2], seed=7)[0]


def test_grouped_assignment_is_pinned():
    """The seeded assignment is part of the protocol: a change to its order, class rule or
    tie-breaking must show up here as a changed split, not as silently different numbers."""
    from asym.data.splits import _grouped_assign

    subjects = [f"p{i}" for i in [0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 5, 6, 6, 7, 8, 9, 9]]
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1])
    assert _grouped_assign(subjects, labels, [0.6, 0.2, 0.2], 0, ("train", "valid", "test")) == {
        "p0": "train", "p1": "train", "p2": "valid", "p3": "test", "p4": "train",
        "p5": "train", "p6": "train", "p7": "valid", "p8": "valid", "p9": "test"}


def test_read_split_of_several_partitions_names_the_partition(tmp_path):
    split = tmp_path / "split.csv"
    good = _good_split()
    two = pd.concat([good.assign(partition=1), good.assign(partition=0)])
    two.to_csv(split, index=False)
    df = read_split(split)
    assert df["partition"].tolist() == [1] * 12 + [0] * 12 and df["partition"].dtype.kind == "i"
    leaky = pd.concat([good.assign(partition=0), _with(good, "s09", fold="test").assign(partition=1)])
    leaky.to_csv(split, index=False)
    with pytest.raises(DataError) as err:
        read_split(split)
    assert err.value.path == f"{split} (partition 1)"
    assert read_split(split, subjects_disjoint=False)["partition"].nunique() == 2
    two.assign(partition="first").to_csv(split, index=False)
    with pytest.raises(DataError, match="column `partition` must hold non-negative integers") as err:
        read_split(split)
    assert err.value.path == str(split)


def test_load_partitions_gives_each_partition_in_order_and_accepts_a_published_leak(data_parquet, tmp_path):
    split = tmp_path / "split.csv"
    good = _good_split()
    other = good.assign(fold=good["fold"].map({"train": "train", "valid": "test", "test": "valid"}))
    pd.concat([other.assign(partition=1), good.assign(partition=0)]).to_csv(split, index=False)
    table, parts = load_partitions(data_parquet, split)
    assert len(table) == 12 and len(parts) == 2
    assert parts[0]["test"].sample_id == ["s10", "s11"] and parts[1]["test"].sample_id == ["s08", "s09"]
    _with(good, "s09", fold="test").to_csv(split, index=False)          # P4 in valid and test
    with pytest.raises(DataError):
        load_partitions(data_parquet, split)
    _, parts = load_partitions(data_parquet, split, subjects_disjoint=False)
    assert parts[0]["test"].sample_id == ["s09", "s10", "s11"]


def test_split_description_counts_and_independence():
    from asym.data.splits import split_description

    good = _good_split().assign(partition=0, label=lambda d: d["label"].astype(int))
    s = split_description(good, subjects_supplied=True, protocol="official")
    assert s["subject_independent"] == "true" and s["subject_independent_verified"] is True
    assert s["n_leaked_subjects"] == 0 and s["n_subjects"] == 6 and s["n_partitions"] == 1
    assert s["per_fold"] == {"test": {"depressed": 2, "normal": 0}, "train": {"depressed": 4, "normal": 4},
                             "valid": {"depressed": 0, "normal": 2}}
    leaky = _with(good, "s09", fold="test")
    s = split_description(leaky, subjects_supplied=True, protocol="depmamba")
    assert s["subject_independent"] == "false" and s["n_leaked_subjects"] == 1 and not s["subject_independent_verified"]
    s = split_description(pd.concat([good, leaky.assign(partition=1)]), subjects_supplied=False, protocol="kfold")
    assert s["subject_independent"] == "unknown" and s["n_partitions"] == 2 and s["protocol"] == "kfold"
    assert s["per_partition"]["1"]["test"] == {"depressed": 2, "normal": 1}


def test_seeded_protocols_are_pinned():
    """kfold's validation carve and stratified_group's class balance, for fixed seeds."""
    from asym.data.splits import _grouped_assign

    t = _subjects_table()
    split = make_split(t, "kfold", _cfg(), "x.parquet")
    assert sorted(split[(split["partition"] == 0) & (split["fold"] == "valid")]["sample_id"]) == \
        ["s024", "s025", "s026", "s027"]
    t = _subjects_table(n_subjects=40)
    folds = stratified_group(t, "x.parquet", [0.5, 0.25, 0.25], seed=0)[0]
    counts = pd.Series(list(zip(folds, t.label.tolist(), strict=True))).value_counts().to_dict()
    assert counts == {("train", 0): 20, ("train", 1): 20, ("valid", 0): 10, ("valid", 1): 10,
                      ("test", 0): 10, ("test", 1): 10}
    # subjects listed out of order: the assignment does not depend on the order of the rows
    subjects = [f"p{i}" for i in [3, 3, 0, 0, 0, 9, 9, 1, 2, 2, 4, 4, 4, 4, 5, 6, 6, 7, 8]]
    labels = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    assert _grouped_assign(subjects, labels, [0.6, 0.2, 0.2], 0, ("train", "valid", "test")) == {
        "p0": "train", "p1": "valid", "p2": "valid", "p3": "test", "p4": "train",
        "p5": "valid", "p6": "train", "p7": "test", "p8": "test", "p9": "train"}


def test_kfold_with_exactly_k_subjects(tmp_path):
    subjects = [f"p{i}" for i in range(3) for _ in range(4)]
    t = table(12, subjects, [0, 1, 1, 1] * 3)                       # every subject mostly depressed
    split = make_split(t, "kfold", _cfg(valid_fraction=0.5), "x.parquet")
    assert split["partition"].nunique() == 3


def test_make_split_guards_every_protocol_but_the_published_one(tmp_path):
    t = table(4, ["a", "a", "b", "c"], [0, 0, 1, 1])
    csv = tmp_path / "folds.csv"
    csv.write_text("sample,fold\ns000,train\ns001,test\ns002,valid\ns003,test\n")      # subject a in two folds
    with pytest.raises(DataError, match="leakage: subject 'a'") as err:
        make_split(t, "csv", None, tmp_path / "x.parquet", csv)
    assert err.value.path == str(tmp_path / "x.parquet")
    df, d = _depmamba_table()
    other = int(np.flatnonzero(df["fold"] != df["fold"][0])[0])
    d.subject_id[0] = d.subject_id[other] = "same person"          # one person in two folds
    split = make_split(d, "depmamba", None, tmp_path / "x.parquet")          # applied as published
    assert len(split) == len(df)


def test_refusals_list_three_examples_at_most(data_parquet, tmp_path):
    t = table(6, list("abcdef"), [0, 1, 0, 1, 0, 1], ["train", "valid", None, None, None, None])
    with pytest.raises(DataError, match=r"4 have none \(e.g. \['s002', 's003', 's004'\]\)\."):
        make_split(t, "official", None, tmp_path / "x.parquet")
    csv = tmp_path / "folds.csv"
    csv.write_text("sample,fold\ns000,train\ns001,valid\n")
    with pytest.raises(DataError, match=r"4 sample\(s\) have no fold, e.g. \['s002', 's003', 's004'\]$"):
        make_split(t, "csv", None, tmp_path / "x.parquet", csv)
    split = tmp_path / "split.csv"
    good = _good_split()
    extra = pd.DataFrame({"sample_id": [f"x{i}" for i in range(4)], "subject_id": "P9", "label": 0, "fold": "test"})
    pd.concat([good[good["sample_id"] < "s04"], good[good["sample_id"] >= "s08"], extra]).to_csv(split, index=False)
    with pytest.raises(DataError) as err:
        load_partitions(data_parquet, split)
    assert err.value.problem == (f"split does not match {data_parquet}: 4 sample(s) without a fold "
                                 "['s04', 's05', 's06'], 4 split row(s) for samples not in the data ['x0', 'x1', 'x2']")
    df, d = _depmamba_table()
    for i in range(4):
        d.sample_id[i] = f"99{i}"
    with pytest.raises(DataError) as err:
        make_split(d, "depmamba", None, tmp_path / "x.parquet")
    assert err.value.problem == ("4 vlog(s) of the data are not in DepMamba's split, e.g. ['990', '991', '992'] "
                                 "(it covers LMVD's 1823 released vlogs, ids as in the release)")
    df, d = _depmamba_table()
    d.label[:4] = 1 - d.label[:4]
    with pytest.raises(DataError) as err:
        make_split(d, "depmamba", None, tmp_path / "x.parquet")
    assert err.value.problem.endswith(f"e.g. {d.sample_id[:3]}")


def test_a_published_split_whose_checksum_differs_is_refused(monkeypatch):
    import asym.data.splits as splits

    class Wrong:
        def __init__(self, data: bytes) -> None:
            pass

        def hexdigest(self) -> str:
            return "0" * 64
    monkeypatch.setattr(splits.hashlib, "sha256", Wrong)
    with pytest.raises(DataError) as err:
        splits.published_split("depmamba")
    assert err.value.path.endswith("lmvd_depmamba.csv")
    assert err.value.problem == ("checksum mismatch: sha256 " + "0" * 64 + ", its provenance records "
                                 "af513d30f2245dfaf521e24a6c8e1be72b39f3a6e80b1d9c60a0416df36628b1")


def test_split_description_of_a_partition_with_one_class():
    from asym.data.splits import split_description

    good = _good_split().assign(partition=0)
    for label, key, other in ((0, "normal", "depressed"), (1, "depressed", "normal")):
        s = split_description(good.assign(label=label), subjects_supplied=True, protocol="official")
        assert all(c[other] == 0 and c[key] > 0 for c in s["per_fold"].values())


def test_the_first_partition_that_leaks_is_named(tmp_path):
    split = tmp_path / "split.csv"
    leaky = _with(_good_split(), "s09", fold="test")
    pd.concat([leaky.assign(partition=1), leaky.assign(partition=0)]).to_csv(split, index=False)
    with pytest.raises(DataError) as err:
        read_split(split)
    assert err.value.path == f"{split} (partition 0)"


def test_a_split_for_other_data_names_the_data(data_parquet, tmp_path):
    split = tmp_path / "split.csv"
    _with(_good_split(), "s03", label=0).to_csv(split, index=False)
    with pytest.raises(DataError) as err:
        load_partitions(data_parquet, split)
    assert err.value.problem.endswith(f"but 1 in {data_parquet}")
