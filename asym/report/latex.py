"""The report's tables as LaTeX: cells escaped for pdflatex, bold marks turned into \\textbf."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _tex(value: Any) -> str:
    s = str(value).replace("◀", "").strip()
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    s = s.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")
    while s.count("**") >= 2:
        s = s.replace("**", r"\textbf{", 1).replace("**", "}", 1)
    return s


def to_latex(view: pd.DataFrame, caption: str) -> str:
    """pandas' Styler writes the LaTeX; cells are escaped and bold-marked here first."""
    tex = view.map(_tex)
    tex.columns = [_tex(c) for c in view.columns]
    return tex.style.hide(axis="index").to_latex(
        caption=_tex(caption), hrules=True, position="t", position_float="centering",
        column_format="l" + "r" * (len(view.columns) - 1))
