"""The by-gender protocols (DynMultiDep's --train_gender / --test_gender): inside the dataset's own
folds, training on one gender's vlogs, testing on the other's, the validation fold the test
gender's (or the training gender's); every other vlog in no fold; refused, naming the file and the
counts, where the data has no gender or too few vlogs of a class to test."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from asym.config import load_params
from asym.data import protocols
from asym.data.parquet import FeatureTable
from asym.data.splits import EXCLUDED, check_leakage, make_split, read_split, split_description
from asym.errors import ConfigError, DataError
from tests.project import ROOT

SOURCE = Path("data/processed/dvlog.parquet")


def table(genders: list[str | None] | None, labels: list[int], folds: list[str | None],
          subjects: list[str] | None = None) -> FeatureTable:
    n = len(labels)
    z = [np.zeros((3, 2), np.float32)] * n
    return FeatureTable([f"v{i:03d}" for i in range(n)], subjects or [f"p{i:03d}" for i in range(n)], np.array(labels),
                        folds, z, z, {}, gender=genders)


def balanced(n_per_cell: int = 3) -> FeatureTable:
    """Every (fold, gender, label) cell holds `n_per_cell` vlogs, subjects one per vlog."""
    cells = [(f, g, y) for f in ("train", "valid", "test") for g in ("f", "m") for y in (0, 1) for _ in range(n_per_cell)]
    return table([c[1] for c in cells], [c[2] for c in cells], [c[0] for c in cells])


def settings(validation: str = "target", min_test_per_class: int = 2) -> SimpleNamespace:
    gender = SimpleNamespace(validation=validation, min_test_per_class=min_test_per_class)
    return SimpleNamespace(ratios=(0.6, 0.2, 0.2), seed=3, gender=gender)


@pytest.mark.parametrize("validation", ["target", "source"])
@pytest.mark.parametrize("protocol", protocols.GENDER_PROTOCOLS)
def test_each_fold_keeps_its_gender_and_every_other_vlog_is_in_none(protocol, validation):
    t = balanced()
    train, test = protocols.get(protocol).genders
    split = make_split(t, protocol, settings(validation), SOURCE)
    gender_of = dict(zip(t.sample_id, t.gender, strict=True))
    fold_of = dict(zip(t.sample_id, t.fold, strict=True))
    want = {"train": train, "valid": test if validation == "target" else train, "test": test}
    for sample, fold in zip(split["sample_id"], split["fold"], strict=True):
        if fold == EXCLUDED:
            assert gender_of[sample] != want[fold_of[sample]]     # left out: the fold's other gender
        else:
            assert fold == fold_of[sample] and gender_of[sample] == want[fold]   # the release's fold, its gender
    assert (split["fold"] != EXCLUDED).sum() == len(t) // 2
    description = split_description(split, True, protocol)
    assert description["genders"] == {"train": train, "test": test}
    assert description["n_excluded"] == len(t) // 2 and EXCLUDED not in description["per_fold"]
    assert description["per_fold"]["test"] == {"depressed": 3, "normal": 3}


def test_the_cross_and_same_gender_protocols_of_a_test_gender_test_the_same_vlogs():
    t = balanced()
    for gender, (within, cross) in protocols.GENDER_PAIRS.items():
        tests = [set(s["sample_id"][s["fold"] == "test"]) for s in (make_split(t, pr, settings(), SOURCE)
                                                                    for pr in (within, cross))]
        assert tests[0] == tests[1] and tests[0] == {s for s, g, f in zip(t.sample_id, t.gender, t.fold, strict=True)
                                                     if g == gender and f == "test"}


def test_subject_disjointness_is_checked_on_the_kept_vlogs_only(tmp_path):
    """A subject whose other vlogs are left out is no leak; one kept in two folds is refused, and a
    split file with excluded rows reads back, checked."""
    t = balanced()
    subjects = list(t.subject_id)
    # a test vlog of gender f shares the subject of the first training vlog (gender f): left out
    # under f -> m (no leak), kept beside it under within_gender_f (a leak)
    f_test = next(i for i, (g, f) in enumerate(zip(t.gender, t.fold, strict=True)) if g == "f" and f == "test")
    subjects[f_test] = subjects[0]
    t = table(list(t.gender), list(t.label), list(t.fold), subjects)
    split = make_split(t, "cross_gender_f_to_m", settings(), SOURCE)
    path = tmp_path / "split.csv"
    split.to_csv(path, index=False)
    assert read_split(path)["fold"].tolist() == split["fold"].tolist()
    with pytest.raises(DataError, match=f"subject '{subjects[0]}' has samples in folds 'train' and 'test'"):
        make_split(t, "within_gender_f", settings(), SOURCE)
    assert check_leakage(["a", "b", "c", "d"], ["p", "p", "q", "r"], ["train", EXCLUDED, "valid", "test"], "x") == []


def test_a_release_without_folds_is_split_as_the_demo_splits_one_then_by_gender():
    t = balanced(6)
    t = table(list(t.gender), list(t.label), [None] * len(t))
    split = make_split(t, "cross_gender_m_to_f", settings(), SOURCE)
    kept = split[split["fold"] != EXCLUDED]
    gender_of = dict(zip(t.sample_id, t.gender, strict=True))
    assert {gender_of[s] for s in kept.loc[kept["fold"] == "train", "sample_id"]} == {"m"}
    assert {gender_of[s] for s in kept.loc[kept["fold"] == "test", "sample_id"]} == {"f"}
    assert split["fold"].tolist() == make_split(t, "cross_gender_m_to_f", settings(), SOURCE)["fold"].tolist()   # seeded


def test_data_without_gender_is_refused_naming_the_file():
    t = balanced()
    for genders in (None, [None] * len(t)):
        with pytest.raises(DataError, match=r"dvlog\.parquet.*records no gender.*LMVD's release has none"):
            make_split(table(genders, list(t.label), list(t.fold)), "cross_gender_f_to_m", settings(), SOURCE)
    codes = ["0" if g == "f" else "1" for g in t.gender]      # DAIC-WOZ's codes, whose meaning is not documented
    with pytest.raises(DataError, match=r"gender codes \['0', '1'\] are not \['f', 'm'\]"):
        make_split(table(codes, list(t.label), list(t.fold)), "cross_gender_f_to_m", settings(), SOURCE)


def test_too_few_test_vlogs_of_a_class_are_refused_with_the_counts():
    t = balanced(3)
    make_split(t, "cross_gender_f_to_m", settings(min_test_per_class=3), SOURCE)
    with pytest.raises(DataError, match=r"(?s)dvlog\.parquet.*the test part \(gender m\) has 3 depressed and 3 normal, "
                                        r"at least 4 of each needed \(split\.gender\.min_test_per_class\).*gender"):
        make_split(t, "cross_gender_f_to_m", settings(min_test_per_class=4), SOURCE)
    # no depressed vlog of the training gender in the training fold
    keep = [not (f == "train" and g == "m" and y == 1) for f, g, y in zip(t.fold, t.gender, t.label, strict=True)]
    sub = table([g for g, k in zip(t.gender, keep, strict=True) if k], [int(y) for y, k in zip(t.label, keep, strict=True) if k],
                [f for f, k in zip(t.fold, keep, strict=True) if k])
    with pytest.raises(DataError, match=r"the train part \(gender m\) has 0 depressed and 3 normal"):
        make_split(sub, "cross_gender_m_to_f", settings(), SOURCE)
    make_split(sub, "cross_gender_f_to_m", settings(), SOURCE)       # the other direction does not train on it


def _params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["cross_gender"]["models"]["demo"] = ["mean-mlp", "tamfn"]      # off in the demo: on here
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_study_refuses_a_dataset_whose_release_records_no_gender(tmp_path):
    assert load_params(ROOT / "params.yaml").cross_gender_datasets == []          # off in the demo
    assert load_params(_params(tmp_path, lambda r: None)).cross_gender_datasets == ["dvlog"]
    with pytest.raises(ConfigError, match=r"cross_gender\.datasets names 'lmvd', whose release \(LMVD.*records no gender"):
        load_params(_params(tmp_path, lambda r: r["cross_gender"].update(datasets=["dvlog", "lmvd"])))
    with pytest.raises(ConfigError, match=r"cross_gender\.datasets names 'daic', which is not under `datasets`"):
        load_params(_params(tmp_path, lambda r: r["cross_gender"].update(datasets=["daic"])))
    lmvd_only = load_params(_params(tmp_path, lambda r: r["run"].update(datasets=["lmvd"])))
    assert lmvd_only.cross_gender_models and lmvd_only.cross_gender_datasets == []    # nothing of the run to study
    with pytest.raises(ConfigError, match=r"cross_gender uses the by-gender protocols, which need the `split\.gender` block"):
        load_params(_params(tmp_path, lambda r: r["split"].pop("gender")))
    off = load_params(_params(tmp_path, lambda r: r["cross_gender"]["models"].update(demo=[])))
    assert off.cross_gender_datasets == [] and off.cross_gender_models == []
