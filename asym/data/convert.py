"""Release folder -> validated Parquet + dataset card. Nothing is written unless every sample passes.

Samples stream from the format's reader into the Parquet file a row group at a time, so a dataset
of any size converts in the memory of one row group (asym.data.parquet.write_samples).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from asym.config import FrameRates, ReadersConfig
from asym.data import formats
from asym.data.parquet import META_KEY, card_markdown, dataset_card, write_samples
from asym.data.sample import Sample
from asym.data.validate import read_subjects
from asym.errors import DataError
from asym.io import write_json, write_text


def read_release(fmt: str, src: Path, settings: Mapping[str, Any],
                 labels_required: bool = True) -> tuple[Iterator[Sample], str]:
    """Every sample of a dataset and its layout, through the format's reader (what `asym convert`
    writes and `asym predict` reads, the latter with labels optional). `settings`: the reader's
    (asym.data.formats.reader_settings)."""
    src = Path(src)
    if not src.exists():
        raise DataError(src, "dataset folder not found")
    return formats.get(fmt).read(src, settings, labels_required=labels_required)


def _with_subjects(samples: Iterator[Sample], subjects: dict[str, str] | None, where: Path | None) -> Iterator[Sample]:
    for s in samples:
        if subjects is not None:
            if s.sample_id not in subjects:
                raise DataError(where, f"sample {s.sample_id!r} has no subject")
            s.subject_id = subjects[s.sample_id]
        yield s


def convert(fmt: str, src: Path, out: Path, readers: ReadersConfig, subjects_csv: Path | None = None,
            provenance: dict[str, Any] | None = None, dataset: str | None = None,
            frame_rates: FrameRates | None = None) -> dict[str, Any]:
    """`readers` and `frame_rates` (a manifest dataset's): what the format's reader reads."""
    src = Path(src)
    settings = formats.reader_settings(fmt, readers, frame_rates)
    samples, layout = read_release(fmt, src, settings)
    subjects = read_subjects(subjects_csv)
    meta = {"dataset": dataset or fmt, "format": fmt, "layout": layout, "source": str(src),
            "subjects_supplied": subjects is not None, "readers": dict(settings), **(provenance or {})}
    table = write_samples(_with_subjects(samples, subjects, subjects_csv), out, meta)
    card = dataset_card(table, json.loads(table.schema.metadata[META_KEY]))
    card_json, card_md = out.with_suffix(".card.json"), out.with_suffix(".card.md")
    try:
        write_json(card_json, card)
        write_text(card_md, card_markdown(card))
    except BaseException:   # all three outputs or none: a table without its card is not a finished conversion
        for path in (out, card_json, card_md):
            path.unlink(missing_ok=True)
        raise
    return card

