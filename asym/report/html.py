"""The report's tables and model cards as HTML pages, which Snakemake's report shows inline
(it only offers Markdown for download)."""

from __future__ import annotations

from pathlib import Path

from asym.config import Params


def write_pages(params: Params, outputs: dict[str, Path]) -> None:
    """Each Markdown table of `outputs`, and the model cards, beside it as HTML."""
