"""Published results of ASYM and its peers on D-Vlog and LMVD, each row with its metric
convention, evaluation protocol, source and how sure we are of them; and published splits."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from asym.errors import DataError

COLUMNS = ["method", "dataset", "accuracy", "precision", "recall", "f1", "metric_convention", "protocol", "source",
           "confidence"]
CONVENTIONS = ("depressed-class", "weighted")


def published_results() -> pd.DataFrame:
    path = resources.files(__package__).joinpath("published_results.csv")
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh)
    if list(df.columns) != COLUMNS:
        raise DataError(str(path), f"header {list(df.columns)} != {COLUMNS}")
    for col in ("source", "protocol", "confidence"):
        if df[col].isna().any() or (df[col].astype(str).str.strip() == "").any():
            raise DataError(str(path), f"every row must give its {col}")
    bad = sorted(set(df["metric_convention"]) - set(CONVENTIONS))
    if bad:
        raise DataError(str(path), f"unknown metric_convention {bad}, expected one of {list(CONVENTIONS)}")
    return df
