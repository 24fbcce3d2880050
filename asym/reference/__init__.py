"""Published results of ASYM and its peers on D-Vlog and LMVD, each row with its source."""

from __future__ import annotations

from importlib import resources

import pandas as pd

COLUMNS = ["method", "dataset", "accuracy", "precision", "recall", "f1", "source"]


def published_results() -> pd.DataFrame:
    with resources.files(__package__).joinpath("published_results.csv").open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh)
    if list(df.columns) != COLUMNS:
        raise ValueError(f"published_results.csv: header {list(df.columns)} != {COLUMNS}")
    if df["source"].isna().any() or (df["source"].astype(str).str.strip() == "").any():
        raise ValueError("published_results.csv: every row must name its source")
    return df
