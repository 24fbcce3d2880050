"""The splitters of the split protocols (asym.data.protocols, which says what each does), and the
leakage check that guards every split at writing and at training.

A split file has one row per (partition, sample): `sample_id, subject_id, label, partition,
fold` with fold in train / valid / test, or EXCLUDED for a vlog a protocol leaves out of every fold
(the by-gender protocols' other gender). Hold-out protocols have one partition (0); `kfold` has
k, each sample being in the test fold of exactly one.

A split is subject-independent when no subject has vlogs in two folds of a partition. Releases
without subject ids count each vlog as its own subject unless a `sample,subject` CSV is given;
the split record then says independence could not be verified, and reports repeat it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.data import protocols
from asym.data.parquet import FeatureTable, read_samples
from asym.data.sample import FOLDS
from asym.data.validate import check_unique, read_table
from asym.errors import DataError
from asym.layout import PACKAGE

COLUMNS = ["sample_id", "subject_id", "label", "partition", "fold"]
# The fold value of a vlog that takes part in no fold of its partition: training never reads it,
# and it is no leak (a subject may have such vlogs beside those of any one fold).
EXCLUDED = "excluded"
SPLIT_FOLDS = (*FOLDS, EXCLUDED)


# --- the splitters: split(table, source, **inputs) -> partitions (asym.data.protocols) ---------
def official(table: FeatureTable, source: Path) -> list[list[str]]:
    missing = [s for s, f in zip(table.sample_id, table.fold, strict=True) if f not in FOLDS]
    if missing:
        raise DataError(source, f"protocol `official` needs a fold for every sample; {len(missing)} have none "
                        f"(e.g. {missing[:3]}). This release has no official split: use stratified_group, kfold or csv")
    return [list(table.fold)]


def _grouped_assign(subjects: list[str], labels: np.ndarray, ratios: list[float], seed: int,
                    names: tuple[str, ...]) -> dict[str, str]:
    """Whole subjects to parts, per class, to hit `ratios` in vlogs (seeded, greedy).

    A subject's class is the majority label of its vlogs; subjects are shuffled and placed
    largest-first into the part furthest below its target, so ratios hold with uneven groups.
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"subject": subjects, "label": labels})
    groups = df.groupby("subject", sort=True)["label"].agg(["size", "mean"]).reset_index()
    groups["cls"] = (groups["mean"] >= 0.5).astype(int)
    part_of: dict[str, str] = {}
    for cls in (0, 1):
        g = groups[groups["cls"] == cls].sample(frac=1.0, random_state=int(rng.integers(1 << 31)))
        g = g.sort_values("size", ascending=False, kind="stable")
        target = np.array(ratios) * g["size"].sum()
        filled = np.zeros(len(ratios))
        for subject, size in zip(g["subject"], g["size"], strict=True):
            k = int(np.argmax(target - filled))
            part_of[subject] = names[k]
            filled[k] += size
    return part_of


def stratified_group(table: FeatureTable, source: Path, ratios: list[float], seed: int) -> list[list[str]]:
    fold_of = _grouped_assign(table.subject_id, table.label, list(ratios), int(seed), FOLDS)
    return [[fold_of[s] for s in table.subject_id]]


def kfold(table: FeatureTable, source: Path, kfold: Any, seed: int) -> list[list[str]]:
    """k partitions (`kfold.k`): outer test folds by StratifiedGroupKFold; validation
    (`kfold.valid_fraction`) carved from the rest."""
    from sklearn.model_selection import StratifiedGroupKFold

    k, valid_fraction, seed = kfold.k, kfold.valid_fraction, int(seed)
    n_subjects = len(set(table.subject_id))
    if n_subjects < k:
        raise DataError(None, f"kfold with k={k} needs at least {k} subjects, the data has {n_subjects}")
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    idx = np.arange(len(table))
    partitions = []
    for p, (rest, _test) in enumerate(outer.split(idx, table.label, groups=table.subject_id)):
        subjects = [table.subject_id[i] for i in rest]
        part_of = _grouped_assign(subjects, table.label[rest], [1 - valid_fraction, valid_fraction], seed + 1 + p,
                                  ("train", "valid"))
        folds = ["test"] * len(table)
        for i in rest:
            folds[i] = part_of[table.subject_id[i]]
        partitions.append(folds)
    return partitions


def from_csv(table: FeatureTable, source: Path, split_csv: Path) -> list[list[str]]:
    df = read_table(split_csv, ["sample", "fold"])
    check_unique(df["sample"].tolist(), split_csv, "sample")
    mapping = dict(zip(df["sample"], df["fold"], strict=True))
    bad = sorted({f for f in mapping.values() if f not in FOLDS})
    if bad:
        raise DataError(split_csv, f"unknown fold(s) {bad}, expected {list(FOLDS)}")
    missing = [s for s in table.sample_id if s not in mapping]
    if missing:
        raise DataError(split_csv, f"{len(missing)} sample(s) have no fold, e.g. {missing[:3]}")
    return [[mapping[s] for s in table.sample_id]]


def by_gender(table: FeatureTable, source: Path, ratios: list[float], seed: int, gender: Any,
              train: str, test: str) -> list[list[str]]:
    """The dataset's own folds (its release's, else `stratified_group`'s, as the demo splits a
    release without them), then by gender (asym.data.protocols): the training fold keeps gender
    `train`'s vlogs, the test fold gender `test`'s, the validation fold `test`'s (DynMultiDep's) or,
    with `gender.validation: source`, `train`'s; every other vlog is EXCLUDED. Refused where the
    table records no gender, holds codes other than protocols.GENDER_CODES, or leaves a part too
    small: fewer than `gender.min_test_per_class` vlogs of a class in the test part, or no vlog of
    a class in the training or validation part."""
    if gender is None:
        raise DataError(source, "the by-gender protocols need the `split.gender` block of params.yaml")
    codes = table.gender
    if codes is None or all(g is None for g in codes):
        raise DataError(source, "records no gender (no `gender` column, or every value empty): the by-gender protocols "
                        "need one (D-Vlog's labels.csv has it; LMVD's release has none)")
    unknown = sorted({str(g) for g in codes if g is not None and g not in protocols.GENDER_CODES})
    if unknown:
        raise DataError(source, f"gender codes {unknown} are not {list(protocols.GENDER_CODES)}, the codes the "
                        "by-gender protocols split on (D-Vlog's); recode them in the release's labels")
    if all(f in FOLDS for f in table.fold):
        folds = list(table.fold)
    else:
        folds = stratified_group(table, source, ratios, seed)[0]
    keep = {"train": train, "valid": test if gender.validation == "target" else train, "test": test}
    out = [f if g == keep[f] else EXCLUDED for f, g in zip(folds, codes, strict=True)]
    counts = pd.crosstab([pd.Series(folds, name="fold"), pd.Series([g or "none" for g in codes], name="gender")],
                         pd.Series(np.asarray(table.label, int), name="label"))
    for fold, g in keep.items():
        need = gender.min_test_per_class if fold == "test" else 1
        have = {c: int(sum(1 for f, y in zip(out, table.label, strict=True) if f == fold and int(y) == c)) for c in (0, 1)}
        if min(have.values()) < need:
            raise DataError(source, f"too few vlogs to split by gender {train} -> {test}: the {fold} part (gender {g}) has "
                            f"{have[1]} depressed and {have[0]} normal, at least {need} of each needed"
                            f"{' (split.gender.min_test_per_class)' if fold == 'test' else ''}. Vlogs per fold, gender "
                            f"and label (1 = depressed):\n{counts.to_string()}")
    return [out]


# --- published splits shipped with the package ----------------------------------------------
def published_split(name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The split protocol `name` ships in the package: its row's files, a provenance record (.json)
    and the split file it names, checked against the sha256 it records."""
    files = [PACKAGE.parent / f for f in protocols.get(name).files]
    record = next(f for f in files if f.suffix == ".json")
    info = json.loads(record.read_text(encoding="utf-8"))
    path = record.parent / info["file"]
    if path not in files:
        raise DataError(record, f"names {info['file']}, which is not a file of protocol {name!r} (asym.data.protocols)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != info["sha256"]:
        raise DataError(path, f"checksum mismatch: sha256 {digest}, its provenance records {info['sha256']}")
    df = read_table(path, info["columns"], exact=True)
    check_unique(df["index"].tolist(), path)
    return df, {**info, "path_in_package": str(path)}


def depmamba(table: FeatureTable, source: Path) -> list[list[str]]:
    df, info = published_split("depmamba")
    where = info["path_in_package"]
    fold_of = dict(zip(df["index"], df["fold"], strict=True))
    label_of = dict(zip(df["index"], df["label"], strict=True))
    missing = [s for s in table.sample_id if s not in fold_of]
    if missing:
        raise DataError(where, f"{len(missing)} vlog(s) of the data are not in DepMamba's split, e.g. {missing[:3]} "
                        "(it covers LMVD's 1823 released vlogs, ids as in the release)")
    absent = sorted(set(fold_of) - set(table.sample_id))
    if absent:
        raise DataError(where, f"{len(absent)} vlog(s) of DepMamba's split are not in the data, e.g. {absent[:3]}")
    wrong = [s for s, y in zip(table.sample_id, table.label, strict=True) if int(label_of[s]) != int(y)]
    if wrong:
        raise DataError(where, f"{len(wrong)} vlog(s) have another label in DepMamba's split than in the data, e.g. {wrong[:3]}")
    return [[fold_of[s] for s in table.sample_id]]


# --- checks -----------------------------------------------------------------------------------
def check_leakage(sample_ids: list[str], subject_ids: list[str], folds: list[str], where: str,
                  subjects_disjoint: bool = True) -> list[str]:
    """Fail loudly if, within one partition, a sample appears twice or a subject appears in two
    folds. A published split that is not subject-independent (a protocol whose row is not
    `subject_disjoint`) is applied as published: `subjects_disjoint=False` returns the subjects
    it leaks instead of failing."""
    seen_sample: dict[str, str] = {}
    seen_subject: dict[str, str] = {}
    leaked: set[str] = set()
    for sample, subject, fold in zip(sample_ids, subject_ids, folds, strict=True):
        if fold not in SPLIT_FOLDS:
            raise DataError(where, f"unknown fold {fold!r} for sample {sample!r}, expected one of {list(SPLIT_FOLDS)}")
        if sample in seen_sample and seen_sample[sample] != fold:
            raise DataError(where, f"leakage: sample {sample!r} is in folds {seen_sample[sample]!r} and {fold!r}")
        if sample in seen_sample:
            raise DataError(where, f"duplicate sample {sample!r}")
        seen_sample[sample] = fold
        if fold == EXCLUDED:
            continue
        if subject in seen_subject and seen_subject[subject] != fold:
            if subjects_disjoint:
                raise DataError(where, f"leakage: subject {subject!r} has samples in folds {seen_subject[subject]!r} and {fold!r}")
            leaked.add(subject)
        seen_subject.setdefault(subject, fold)
    empty = [f for f in FOLDS if f not in set(folds)]
    if empty:
        raise DataError(where, f"fold(s) {empty} are empty")
    return sorted(leaked)


def make_split(table: FeatureTable, protocol: str, split_cfg: Any, source: Path, split_csv: Path | None = None) -> pd.DataFrame:
    """The split by `protocol`'s splitter, given the `split` settings its row names (from
    `split_cfg`) and `split_csv` where its row reads one."""
    if protocol not in protocols.PROTOCOLS:
        raise DataError(source, f"unknown split protocol {protocol!r}; known: {list(protocols.names())}")
    row = protocols.get(protocol)
    inputs = {**{k: getattr(split_cfg, k) for k in row.settings}, **dict(row.arguments)}
    if row.split_csv:
        if split_csv is None:
            raise DataError(source, f"protocol {protocol} needs split_csv")
        inputs["split_csv"] = split_csv
    frames = []
    for p, folds in enumerate(row.split_function()(table, source, **inputs)):
        check_leakage(table.sample_id, table.subject_id, folds, str(source), subjects_disjoint=row.subject_disjoint)
        frames.append(pd.DataFrame({"sample_id": table.sample_id, "subject_id": table.subject_id,
                                    "label": table.label, "partition": p, "fold": folds}))
    return pd.concat(frames, ignore_index=True)


def read_split(path: Path, subjects_disjoint: bool = True) -> pd.DataFrame:
    df = read_table(Path(path), ["sample_id", "subject_id", "label", "fold"])
    bad = sorted(set(df["fold"]) - set(SPLIT_FOLDS))
    if bad:
        raise DataError(path, f"unknown fold(s) {bad}, expected {list(SPLIT_FOLDS)}")
    if "partition" not in df.columns:
        df["partition"] = "0"
    if not df["partition"].str.fullmatch(r"\d+").all():
        raise DataError(path, "column `partition` must hold non-negative integers")
    df["partition"] = df["partition"].astype(int)
    for p, part in df.groupby("partition", sort=True):
        check_leakage(part["sample_id"].tolist(), part["subject_id"].tolist(), part["fold"].tolist(),
                      f"{path} (partition {p})" if df["partition"].nunique() > 1 else str(path), subjects_disjoint)
    return df[COLUMNS]


def fold_tables(table: FeatureTable, split: pd.DataFrame, split_path: Path, data_path: Path) -> list[dict[str, FeatureTable]]:
    """Per partition, the train / valid / test tables. The split must describe exactly the
    data's samples, with the data's labels and subjects: a split made for other data (or before
    subject ids were supplied), or edited by hand into a leak, is refused here, at training
    time, not only when it was written."""
    out = []
    for _, part in split.groupby("partition", sort=True):
        rows = {r["sample_id"]: r for r in part.to_dict("records")}
        missing = [s for s in table.sample_id if s not in rows]
        extra = sorted(set(rows) - set(table.sample_id))
        if missing or extra:
            raise DataError(split_path, f"split does not match {data_path}: {len(missing)} sample(s) without a fold "
                            f"{missing[:3]}, {len(extra)} split row(s) for samples not in the data {extra[:3]}")
        for sample, subject, label in zip(table.sample_id, table.subject_id, table.label, strict=True):
            row = rows[sample]
            if row["subject_id"] != subject:
                raise DataError(split_path, f"sample {sample!r} has subject {row['subject_id']!r} here but {subject!r} in {data_path}")
            if str(row["label"]) != str(int(label)):
                raise DataError(split_path, f"sample {sample!r} has label {str(row['label'])!r} here but {int(label)} in {data_path}")
        out.append({f: table.select([i for i, s in enumerate(table.sample_id) if rows[s]["fold"] == f]) for f in FOLDS})
    return out


def selection_fold(protocol: str) -> str:
    """The fold whose score chooses the checkpoint: the test fold under an optimistic protocol,
    the validation fold otherwise (asym.data.protocols.SplitProtocol.selection_fold)."""
    return protocols.get(protocol).selection_fold


def load_partitions(data: Path, split_path: Path, subjects_disjoint: bool = True) -> tuple[FeatureTable, list[dict[str, FeatureTable]]]:
    """The feature table and its folds per partition, once the split is checked against it."""
    table = read_samples(data)
    return table, fold_tables(table, read_split(split_path, subjects_disjoint), split_path, data)


def split_description(split: pd.DataFrame, subjects_supplied: bool, protocol: str) -> dict[str, Any]:
    """The split's description, written beside it (<dataset>.json): its protocol, how its checkpoints
    are selected, its subject independence and its classes per fold. `subject_independent` is "true" (subjects known, none in two folds), "false" (subjects
    known and leaked by a published split) or "unknown" (no subject ids)."""
    leaked = sorted({s for _, part in split.groupby("partition")
                     for s in check_leakage(part["sample_id"].tolist(), part["subject_id"].tolist(),
                                            part["fold"].tolist(), "split", subjects_disjoint=False)})
    independent = "unknown" if not subjects_supplied else ("false" if leaked else "true")
    per_partition = {}
    for p, part in split.groupby("partition", sort=True):
        per = part.groupby(["fold", "label"]).size().unstack(fill_value=0)
        per_partition[str(p)] = {f: {"depressed": int(per.loc[f].get(1, 0)), "normal": int(per.loc[f].get(0, 0))}
                                 for f in per.index if f != EXCLUDED}
    return {
        "protocol": protocol,
        "checkpoint_selection": "test fold (" + protocols.OPTIMISTIC_FLAG + ")" if protocols.get(protocol).optimistic else "validation fold",
        "subject_independent": independent,
        "subject_independent_verified": independent == "true",
        "n_leaked_subjects": len(leaked),
        "n_subjects": int(split["subject_id"].nunique()),
        "n_excluded": int((split["fold"] == EXCLUDED).sum()),
        **({"genders": dict(zip(("train", "test"), protocols.get(protocol).genders, strict=True))}
           if protocols.get(protocol).genders else {}),
        "n_partitions": len(per_partition),
        "per_fold": per_partition["0"],
        "per_partition": per_partition,
    }
