"""Release folder -> validated Parquet + dataset card. Nothing is written unless every sample passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asym.config import LmvdReaderConfig, ReadersConfig
from asym.data.dvlog import read_dvlog
from asym.data.lmvd import detect_layout, read_lmvd
from asym.data.parquet import card_markdown, dataset_card, write_samples
from asym.data.sample import Sample
from asym.data.validate import read_subjects
from asym.errors import DataError
from asym.io import write_json, write_text


def read_release(fmt: str, src: Path, lmvd_reader: LmvdReaderConfig | None,
                 labels_required: bool = True) -> tuple[list[Sample], str]:
    """Every sample of a release folder and its layout, through the format's reader (what
    `asym convert` writes and `asym predict` reads, the latter with labels optional)."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, "dataset folder not found")
    if fmt == "dvlog":
        return list(read_dvlog(src, labels_required=labels_required)), "release"
    if fmt == "lmvd":
        if lmvd_reader is None:
            raise DataError(src, "an LMVD release needs the LMVD reader's settings (readers.lmvd)")
        layout = detect_layout(src)
        return list(read_lmvd(src, lmvd_reader, labels_required=labels_required)), layout
    raise DataError(src, f"unknown format {fmt!r}")


def convert(fmt: str, src: Path, out: Path, readers: ReadersConfig, subjects_csv: Path | None = None,
            provenance: dict[str, Any] | None = None, dataset: str | None = None) -> dict[str, Any]:
    src = Path(src)
    samples, layout = read_release(fmt, src, readers.lmvd)
    subjects = read_subjects(subjects_csv)
    if subjects is not None:
        missing = [s.sample_id for s in samples if s.sample_id not in subjects]
        if missing:
            raise DataError(subjects_csv, f"{len(missing)} sample(s) have no subject, e.g. {missing[:3]}")
        for s in samples:
            s.subject_id = subjects[s.sample_id]
    meta = {"dataset": dataset or fmt, "format": fmt, "layout": layout, "source": str(src),
            "subjects_supplied": subjects is not None, **(provenance or {})}
    table = write_samples(samples, out, meta)
    card = dataset_card(table, {**meta, "audio_dim": samples[0].audio.shape[1], "visual_dim": samples[0].visual.shape[1]})
    card_json, card_md = out.with_suffix(".card.json"), out.with_suffix(".card.md")
    try:
        write_json(card_json, card)
        write_text(card_md, card_markdown(card))
    except BaseException:   # all three outputs or none: a table without its card is not a finished conversion
        for path in (out, card_json, card_md):
            path.unlink(missing_ok=True)
        raise
    return card
