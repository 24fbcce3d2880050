"""Published results of ASYM and its peers on D-Vlog and LMVD, each row with its metric
convention, evaluation protocol, source and how sure we are of them; and published splits."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from asym.data import protocols
from asym.errors import DataError

# `model`: the registry name of the model built here that the row reports (empty: not built, or
# not known to be the same model); a number stands beside ours only through it.
COLUMNS = ["method", "model", "dataset", "accuracy", "precision", "recall", "f1", "metric_convention", "protocol",
           "source", "confidence"]
# `unnamed`: the source names no convention and its numbers do not settle it (never set beside a
# measured F1 of either convention).
CONVENTIONS = ("depressed-class", "weighted", "unnamed")
# Protocols a published row may name: ours (asym.data.protocols) but a user's own split file, and
# the published protocols we do not run. Optimistic (the checkpoint chosen on the fold that is
# reported): ours that are, and `kfold10_select_on_test_vlog`, MDD-Net's and MMFformer's own:
# KFold(10, shuffle, random_state 42) over the pooled vlogs (not grouped by subject), training on
# the other nine folds whole (no validation part). Its tag never equals one of ours, so its numbers
# never stand beside ours.
PUBLISHED_ONLY = ("kfold10_select_on_test_vlog",)
PROTOCOLS = (*(p.name for p in protocols.PROTOCOLS.values() if not p.split_csv), *PUBLISHED_ONLY)
OPTIMISTIC_PROTOCOLS = (*protocols.optimistic(), *PUBLISHED_ONLY)


def published_results() -> pd.DataFrame:
    from asym.models import registry

    path = resources.files(__package__).joinpath("published_results.csv")
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype={"model": str}, keep_default_na=True)
    if list(df.columns) != COLUMNS:
        raise DataError(str(path), f"header {list(df.columns)} != {COLUMNS}")
    for col in ("source", "protocol", "confidence"):
        if df[col].isna().any() or (df[col].astype(str).str.strip() == "").any():
            raise DataError(str(path), f"every row must give its {col}")
    bad = sorted(set(df["metric_convention"]) - set(CONVENTIONS))
    if bad:
        raise DataError(str(path), f"unknown metric_convention {bad}, expected one of {list(CONVENTIONS)}")
    bad = sorted(set(df["protocol"]) - set(PROTOCOLS))
    if bad:
        raise DataError(str(path), f"unknown protocol {bad}, expected one of {list(PROTOCOLS)}")
    df["model"] = df["model"].fillna("")
    bad = sorted(set(df["model"]) - {"", *registry.names()})
    if bad:
        raise DataError(str(path), f"model {bad} is not a registry name")
    return df
