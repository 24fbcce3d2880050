from __future__ import annotations

import numpy as np
import pandas as pd

from asym.report import MACRO, _format, ablation_table, comparison_table, to_latex, to_markdown


def agg() -> pd.DataFrame:
    rows = []
    for ds in ("dvlog", "lmvd", MACRO):
        for model, kind, f1 in (("asym", "asym", 0.8), ("asym-no-mem", "ablation", 0.7), ("bilstm", "baseline", 0.75)):
            row = {"dataset": ds, "model": model, "kind": kind, "n_seeds": 3, "n_params": 1234,
                   "epoch_time_s": 0.5, "f1_ci_low": np.nan, "f1_ci_high": np.nan}
            for k in ("accuracy", "precision", "recall", "f1"):
                row[k], row[f"{k}_std"] = f1, 0.01
            rows.append(row)
    return pd.DataFrame(rows)


def test_best_is_bold_and_asym_highlighted():
    t = _format(agg()[agg()["dataset"] == "dvlog"].reset_index(drop=True))
    assert t.loc[0, "f1"] == "**80.00 ± 1.00**" and "**asym**" in t.loc[0, "model"]
    assert t.loc[1, "f1"] == "70.00 ± 1.00"
    md = to_markdown(t)
    assert md.splitlines()[1].startswith("|---|") and md.count("\n") == 5
    tex = to_latex(t, "Results (dvlog)")
    assert r"\textbf{80.00 $\pm$ 1.00}" in tex and r"\begin{tabular}" in tex and "**" not in tex


def test_ablation_deltas_against_the_full_model():
    t = ablation_table(agg(), "lmvd")
    assert list(t["model"].str.replace(r"\*\*| ◀", "", regex=True)) == ["asym", "asym-no-mem"]
    assert t.loc[1, "Δf1"] == "-10.00" and t.loc[0, "Δf1"] == "+0.00"


def test_comparison_lists_published_numbers_with_macro_average():
    t = comparison_table(agg(), MACRO)
    asym_row = t[t["model"].str.contains("asym")].iloc[0]
    assert asym_row["published F1"] == f"{(77.13 + 74.90) / 2:.2f}"
    assert asym_row["published acc"] == f"{(70.91 + 74.68) / 2:.2f}"
    assert t[t["model"] == "bilstm"].iloc[0]["published F1"] == "–"


def test_published_results_parse_and_name_sources():
    from asym.reference import published_results

    df = published_results()
    assert len(df) >= 4 and df["source"].str.len().min() > 10
    assert set(df["dataset"]) <= {"dvlog", "lmvd"}
