"""Published results of ASYM and its peers on D-Vlog and LMVD, each row with its metric
convention, evaluation protocol, inputs, selection, source and how sure we are of them; and
published splits."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from asym.data import protocols
from asym.errors import DataError

# `model`: the registry name of the model built here that the row reports (empty: not built, or
# not known to be the same model); a number stands beside ours only through it. `selection`: how
# the checkpoint, the decision threshold and the hyper-parameters were chosen, as far as the source
# says. `auc`: ROC AUC, where the source gives one (no convention: it is threshold-free).
COLUMNS = ["method", "model", "dataset", "modalities", "accuracy", "precision", "recall", "f1", "auc",
           "metric_convention", "protocol", "selection", "source", "confidence"]
METRICS = ("accuracy", "precision", "recall", "f1", "auc")
REQUIRED = ("modalities", "protocol", "selection", "source", "confidence")
# `unnamed`: the source names no convention and its numbers do not settle it (never set beside a
# measured F1 of either convention).
DEPRESSED_CONVENTION = "depressed-class"
CONVENTIONS = (DEPRESSED_CONVENTION, "weighted", "unnamed")
# The inputs a row's model used. Only the releases' own two modalities are comparable with ours:
# a row with any other input (DepM³'s text, which the D-Vlog release does not hold) is listed,
# flagged NOT_COMPARABLE, and never ranked, marked best or set beside a bimodal number.
COMPARABLE_MODALITIES = ("audio+visual",)
MODALITIES = (*COMPARABLE_MODALITIES, "audio+visual+text")
NOT_COMPARABLE = "not comparable: other inputs than the release's audio and visual features"
# Protocols a published row may name: ours (asym.data.protocols) but a user's own split file, and
# the published protocols we do not run. Optimistic (the checkpoint chosen on the fold that is
# reported): ours that are, and `kfold10_select_on_test_vlog`, MDD-Net's and MMFformer's own:
# KFold(10, shuffle, random_state 42) over the pooled vlogs (not grouped by subject), training on
# the other nine folds whole (no validation part). `unstated`: what we read names no split. Their
# tags never equal one of ours, so their numbers never stand beside ours.
OPTIMISTIC_PUBLISHED = ("kfold10_select_on_test_vlog",)
UNSTATED = "unstated"
PUBLISHED_ONLY = (*OPTIMISTIC_PUBLISHED, UNSTATED)
PROTOCOLS = (*(p.name for p in protocols.PROTOCOLS.values() if not p.split_csv), *PUBLISHED_ONLY)
OPTIMISTIC_PROTOCOLS = (*protocols.optimistic(), *OPTIMISTIC_PUBLISHED)
# One row per method, dataset, protocol and convention: a number read again updates its row.
KEY = ["method", "dataset", "protocol", "metric_convention"]


def comparable(df: pd.DataFrame) -> pd.Series:
    """Whether each row's inputs are the releases' own audio and visual features."""
    return df["modalities"].isin(COMPARABLE_MODALITIES)


def published_results() -> pd.DataFrame:
    from asym.models import registry

    path = resources.files(__package__).joinpath("published_results.csv")
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype={"model": str}, keep_default_na=True)
    return validate(df, str(path), registry.names())


def validate(df: pd.DataFrame, path: str, models: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """The published table as its readers rely on it, or a DataError naming the file and the fault."""
    if list(df.columns) != COLUMNS:
        raise DataError(path, f"header {list(df.columns)} != {COLUMNS}")
    for col in REQUIRED:
        if df[col].isna().any() or (df[col].astype(str).str.strip() == "").any():
            raise DataError(path, f"every row must give its {col}")
    for col, allowed in (("metric_convention", CONVENTIONS), ("protocol", PROTOCOLS), ("modalities", MODALITIES)):
        bad = sorted(set(df[col].astype(str)) - set(allowed))
        if bad:
            raise DataError(path, f"unknown {col} {bad}, expected one of {list(allowed)}")
    for col in METRICS:
        values = pd.to_numeric(df[col], errors="coerce")
        if (values.isna() & df[col].notna()).any() or ((values < 0) | (values > 100)).any():
            raise DataError(path, f"{col} must be a percentage in [0, 100] or empty")
        df[col] = values.astype(float)
    empty = df[list(METRICS)].isna().all(axis=1)
    if empty.any():
        raise DataError(path, f"rows {list(df.loc[empty, 'method'])} give no metric")
    twice = df[df.duplicated(KEY, keep=False)]
    if len(twice):
        raise DataError(path, f"{KEY} given twice: {sorted(set(map(tuple, twice[KEY].to_numpy())))}; update the row")
    df["model"] = df["model"].fillna("")
    bad = sorted(set(df["model"]) - {"", *models})
    if bad:
        raise DataError(path, f"model {bad} is not a registry name")
    return df
