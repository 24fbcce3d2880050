"""Subject-independent folds and the leakage check that guards them.

A split is subject-independent when no subject has vlogs in two folds. Releases without
subject ids (D-Vlog, LMVD) count each vlog as its own subject unless a `sample,subject` CSV is
given; the split record then says independence could not be verified, and reports repeat it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asym.data.parquet import FeatureTable
from asym.data.sample import FOLDS
from asym.data.validate import check_unique, read_table
from asym.errors import DataError


def official(table: FeatureTable, source: Path) -> list[str]:
    missing = [s for s, f in zip(table.sample_id, table.fold, strict=True) if f not in FOLDS]
    if missing:
        raise DataError(source, f"split `official` needs a fold for every sample; {len(missing)} have none (e.g. {missing[:3]}). "
                        "This release has no official split: use stratified_group or csv")
    return list(table.fold)


def stratified_group(table: FeatureTable, ratios: list[float], seed: int) -> list[str]:
    """Assign whole subjects to folds, per class, to hit `ratios` in vlogs (seeded, greedy).

    A subject's class is the majority label of its vlogs; subjects are shuffled and placed
    largest-first into the fold furthest below its target, so ratios hold with uneven groups.
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"subject": table.subject_id, "label": table.label})
    groups = df.groupby("subject", sort=True)["label"].agg(["size", "mean"]).reset_index()
    groups["cls"] = (groups["mean"] >= 0.5).astype(int)
    fold_of: dict[str, str] = {}
    for cls in (0, 1):
        g = groups[groups["cls"] == cls].sample(frac=1.0, random_state=int(rng.integers(1 << 31)))
        g = g.sort_values("size", ascending=False, kind="stable")
        total = g["size"].sum()
        target = np.array(ratios) * total
        filled = np.zeros(3)
        for subject, size in zip(g["subject"], g["size"], strict=True):
            k = int(np.argmax(target - filled))
            fold_of[subject] = FOLDS[k]
            filled[k] += size
    return [fold_of[s] for s in table.subject_id]


def from_csv(table: FeatureTable, path: Path) -> list[str]:
    df = read_table(path, ["sample", "fold"])
    check_unique(df["sample"].tolist(), path, "sample")
    mapping = dict(zip(df["sample"], df["fold"], strict=True))
    bad = sorted({f for f in mapping.values() if f not in FOLDS})
    if bad:
        raise DataError(path, f"unknown fold(s) {bad}, expected {list(FOLDS)}")
    missing = [s for s in table.sample_id if s not in mapping]
    if missing:
        raise DataError(path, f"{len(missing)} sample(s) have no fold, e.g. {missing[:3]}")
    return [mapping[s] for s in table.sample_id]


def check_leakage(sample_ids: list[str], subject_ids: list[str], folds: list[str], where: str) -> None:
    """Fail loudly if a sample or a subject appears in two folds."""
    seen_sample: dict[str, str] = {}
    seen_subject: dict[str, str] = {}
    for sample, subject, fold in zip(sample_ids, subject_ids, folds, strict=True):
        if sample in seen_sample and seen_sample[sample] != fold:
            raise DataError(where, f"leakage: sample {sample!r} is in folds {seen_sample[sample]!r} and {fold!r}")
        if sample in seen_sample:
            raise DataError(where, f"duplicate sample {sample!r}")
        seen_sample[sample] = fold
        if subject in seen_subject and seen_subject[subject] != fold:
            raise DataError(where, f"leakage: subject {subject!r} has samples in folds {seen_subject[subject]!r} and {fold!r}")
        seen_subject[subject] = fold
    empty = [f for f in FOLDS if f not in set(folds)]
    if empty:
        raise DataError(where, f"fold(s) {empty} are empty")


def make_split(table: FeatureTable, ds: dict[str, Any], split_cfg: dict[str, Any], source: Path) -> pd.DataFrame:
    kind = ds["split"]
    if kind == "official":
        folds = official(table, source)
    elif kind == "stratified_group":
        folds = stratified_group(table, list(split_cfg["ratios"]), int(split_cfg["seed"]))
    else:
        folds = from_csv(table, Path(ds["split_csv"]))
    check_leakage(table.sample_id, table.subject_id, folds, str(source))
    return pd.DataFrame({"sample_id": table.sample_id, "subject_id": table.subject_id,
                         "label": table.label, "fold": folds})


def read_split(path: Path) -> pd.DataFrame:
    df = read_table(Path(path), ["sample_id", "subject_id", "label", "fold"])
    bad = sorted(set(df["fold"]) - set(FOLDS))
    if bad:
        raise DataError(path, f"unknown fold(s) {bad}, expected {list(FOLDS)}")
    check_leakage(df["sample_id"].tolist(), df["subject_id"].tolist(), df["fold"].tolist(), str(path))
    return df


def match_split(table: FeatureTable, split: pd.DataFrame, path: Path, data: Path) -> list[str]:
    """The fold of each sample of `table`, once the split is known to describe exactly these
    samples with these labels and subjects: a split made from other data (or before subject ids
    were supplied) would make its own leakage check meaningless."""
    rows = {r["sample_id"]: r for r in split.to_dict("records")}
    missing = [s for s in table.sample_id if s not in rows]
    extra = sorted(set(rows) - set(table.sample_id))
    if missing or extra:
        raise DataError(path, f"split does not match {data}: {len(missing)} sample(s) without a fold {missing[:3]}, "
                        f"{len(extra)} split row(s) for samples not in the data {extra[:3]}")
    for sample, subject, label in zip(table.sample_id, table.subject_id, table.label, strict=True):
        row = rows[sample]
        if row["subject_id"] != subject:
            raise DataError(path, f"sample {sample!r} has subject {row['subject_id']!r} here but {subject!r} in {data}")
        if row["label"] != str(int(label)):
            raise DataError(path, f"sample {sample!r} has label {row['label']!r} here but {int(label)} in {data}")
    return [rows[s]["fold"] for s in table.sample_id]


def split_summary(split: pd.DataFrame, subjects_verified: bool) -> dict[str, Any]:
    per = split.groupby(["fold", "label"]).size().unstack(fill_value=0)
    return {
        "subject_independent_verified": subjects_verified,
        "n_subjects": int(split["subject_id"].nunique()),
        "per_fold": {f: {"depressed": int(per.loc[f].get(1, 0)), "normal": int(per.loc[f].get(0, 0))} for f in per.index},
    }
