"""The one on-disk format every downstream step reads: a Parquet table of whole vlogs.

Columns: sample_id (str, as in the release), subject_id (str), label (int8, 1 = depressed),
fold (str or null), n_frames (int32), audio / visual (per-frame float32 lists), and gender /
duration where the release has them. Widths and provenance go into the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from asym.data.sample import Sample
from asym.errors import DataError
from asym.io import atomic_path

META_KEY = b"asym"


def _sequence_column(arrays: list[np.ndarray], width: int) -> pa.Array:
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32, copy=False)
    frames = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width)
    offsets = np.r_[0, np.cumsum([a.shape[0] for a in arrays])].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), frames)


EXTRA_COLUMNS = (("gender", pa.string()), ("duration", pa.float64()))
# A row group holds whole vlogs up to about this many bytes of features: the memory a
# conversion needs, whatever the size of the dataset.
ROW_GROUP_BYTES = 64 << 20


def _columns(samples: list[Sample], widths: tuple[int, int], extras: list[str]) -> dict[str, pa.Array]:
    cols: dict[str, pa.Array] = {
        "sample_id": pa.array([s.sample_id for s in samples], pa.string()),
        "subject_id": pa.array([s.subject_id or s.sample_id for s in samples], pa.string()),
        "label": pa.array([s.label for s in samples], pa.int8()),
        "fold": pa.array([s.fold for s in samples], pa.string()),
        "n_frames": pa.array([s.n_frames for s in samples], pa.int32()),
        "audio": _sequence_column([s.audio for s in samples], widths[0]),
        "visual": _sequence_column([s.visual for s in samples], widths[1]),
    }
    for key, typ in EXTRA_COLUMNS:
        if key in extras:
            cols[key] = pa.array([s.extra.get(key) for s in samples], typ)
    return cols


def _with_meta(table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def _check_widths(samples: list[Sample], widths: tuple[int, int], where: Path) -> None:
    for s in samples:
        if (s.audio.shape[1], s.visual.shape[1]) != widths:
            raise DataError(where, f"sample {s.sample_id!r} has {s.audio.shape[1]} audio + {s.visual.shape[1]} visual "
                                   f"features per frame, the first had {widths[0]} + {widths[1]}")


def table_meta(samples: list[Sample], meta: dict[str, Any], subjects_read: bool) -> dict[str, Any]:
    """The table's metadata: the caller's, the widths, and whether subject ids were supplied
    (by a subjects CSV, or by the reader for every vlog)."""
    return {**meta, "audio_dim": int(samples[0].audio.shape[1]), "visual_dim": int(samples[0].visual.shape[1]),
            **({"subjects_supplied": True} if subjects_read else {})}


def _batches(samples: Iterable[Sample]) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    size = 0
    for s in samples:
        batch.append(s)
        size += s.audio.nbytes + s.visual.nbytes
        if size >= ROW_GROUP_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _row_groups(samples: Iterable[Sample], meta: dict[str, Any], where: Path) -> Iterator[pa.Table]:
    """`samples` as Arrow tables of about ROW_GROUP_BYTES each, all of the first one's schema and
    metadata: the widths, the extra columns (gender, duration) and whether the reader gave subject
    ids are the first row group's, and a later vlog that differs is refused."""
    schema: pa.Schema | None = None
    extra_keys = dict(EXTRA_COLUMNS)
    for batch in _batches(samples):
        if schema is None:
            widths = (batch[0].audio.shape[1], batch[0].visual.shape[1])
            extras = [k for k in extra_keys if any(k in s.extra for s in batch)]
            subjects_read = all(s.subject_id is not None for s in batch)
            full_meta = table_meta(batch, meta, subjects_read and not meta.get("subjects_supplied"))
            schema = _with_meta(pa.table(_columns(batch[:1], widths, extras)), full_meta).schema
        _check_widths(batch, widths, where)
        for s in batch:
            late = sorted(k for k in s.extra if k not in extras and k in extra_keys)
            if late:
                raise DataError(where, f"sample {s.sample_id!r} has {late}, which the first vlogs lack")
            if subjects_read and s.subject_id is None:   # the table says subjects were supplied
                raise DataError(where, f"sample {s.sample_id!r} has no subject id, unlike the first vlogs")
        yield pa.table(_columns(batch, widths, extras)).cast(schema)
    if schema is None:
        raise DataError(where, "no samples to write")


def samples_table(samples: Iterable[Sample], meta: dict[str, Any], where: Path) -> pa.Table:
    """The Arrow table of `samples` (read from `where`), with its metadata: what a Parquet file
    holds, in memory, by the same rules as `write_samples`."""
    return pa.concat_tables(list(_row_groups(samples, meta, where)))


def write_samples(samples: Iterable[Sample], path: Path, meta: dict[str, Any]) -> pa.Table:
    """Stream `samples` into a Parquet file, a row group at a time, atomically: a failure leaves
    the previous file or none. Returns the table's metadata columns (no features), with the
    file's metadata."""
    path = Path(path)
    writer: pq.ParquetWriter | None = None
    index: list[pa.Table] = []
    with atomic_path(path) as tmp:
        try:
            for table in _row_groups(samples, meta, path):
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                index.append(table.drop_columns(["audio", "visual"]))
        finally:
            if writer is not None:
                writer.close()
    return pa.concat_tables(index)


@dataclass
class FeatureTable:
    """Samples in memory: per-sample float32 arrays plus their metadata columns."""

    sample_id: list[str]
    subject_id: list[str]
    label: np.ndarray
    fold: list[str | None]
    audio: list[np.ndarray]
    visual: list[np.ndarray]
    meta: dict[str, Any]
    gender: list[str | None] | None = None     # where the release has it (D-Vlog)

    def __len__(self) -> int:
        return len(self.sample_id)

    def select(self, idx: Iterable[int]) -> FeatureTable:
        idx = list(idx)
        return FeatureTable(
            [self.sample_id[i] for i in idx], [self.subject_id[i] for i in idx], self.label[idx],
            [self.fold[i] for i in idx], [self.audio[i] for i in idx], [self.visual[i] for i in idx], self.meta,
            None if self.gender is None else [self.gender[i] for i in idx],
        )

    @property
    def n_frames(self) -> np.ndarray:
        return np.array([a.shape[0] for a in self.audio], dtype=np.int64)


def _unpack(col: pa.ChunkedArray, width: int) -> list[np.ndarray]:
    arr = col.combine_chunks()
    offsets = arr.offsets.to_numpy()
    flat = arr.values.values.to_numpy(zero_copy_only=False).reshape(-1, width)
    return [flat[offsets[i]: offsets[i + 1]] for i in range(len(arr))]


def read_samples(path: Path) -> FeatureTable:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing Parquet file (run `asym convert` first)")
    return feature_table(pq.read_table(path), path)


def feature_table(table: pa.Table, where: Path) -> FeatureTable:
    """An asym Arrow table (from a Parquet file at `where`, or `samples_table`) as a FeatureTable."""
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    if raw_meta is None:
        raise DataError(where, "not an asym feature table (no asym metadata)")
    meta = json.loads(raw_meta)
    return FeatureTable(
        table["sample_id"].to_pylist(), table["subject_id"].to_pylist(),
        table["label"].to_numpy().astype(np.int64), table["fold"].to_pylist(),
        _unpack(table["audio"], meta["audio_dim"]), _unpack(table["visual"], meta["visual_dim"]), meta,
        table["gender"].to_pylist() if "gender" in table.column_names else None,
    )


def dataset_card(table: pa.Table | FeatureTable, meta: dict[str, Any]) -> dict[str, Any]:
    if isinstance(table, pa.Table):
        labels = table["label"].to_numpy()
        folds = table["fold"].to_pylist()
        lengths = table["n_frames"].to_numpy()
        subjects = table["subject_id"].to_pylist()
    else:
        labels, folds, subjects = table.label, table.fold, table.subject_id
        lengths = np.array([a.shape[0] for a in table.audio])
    counts: dict[str, dict[str, int]] = {}
    for fold, lab in zip(folds, labels, strict=True):
        entry = counts.setdefault(fold or "unassigned", {"depressed": 0, "normal": 0})
        entry["depressed" if lab == 1 else "normal"] += 1
    return {
        **meta,
        "n_samples": int(len(labels)),
        "n_subjects": len(set(subjects)),
        "n_depressed": int((labels == 1).sum()),
        "n_normal": int((labels == 0).sum()),
        "per_fold": counts,
        "frames": {
            "min": int(lengths.min()), "median": float(np.median(lengths)),
            "mean": float(lengths.mean()), "max": int(lengths.max()), "total": int(lengths.sum()),
        },
    }


def card_markdown(card: dict[str, Any]) -> str:
    lines = [
        f"# Dataset card: {card['dataset']} ({card['format']}, {card.get('layout', 'release')} layout)",
        "",
        f"Source: `{card['source']}`{' (synthetic demo)' if card.get('synthetic') else ''}",
        "",
        f"{card['n_samples']} vlogs, {card['n_subjects']} subjects, {card['n_depressed']} depressed / {card['n_normal']} normal;"
        f" audio {card['audio_dim']} + visual {card['visual_dim']} features per frame.",
        f"Subject ids: {'supplied' if card.get('subjects_supplied') else 'not supplied (each vlog counted as its own subject)'}.",
        "",
        "| fold | depressed | normal |",
        "|---|---:|---:|",
    ]
    for fold, c in sorted(card["per_fold"].items()):
        lines.append(f"| {fold} | {c['depressed']} | {c['normal']} |")
    f = card["frames"]
    lines += ["", f"Frames per vlog: min {f['min']}, median {f['median']:.0f}, mean {f['mean']:.1f}, max {f['max']}."]
    return "\n".join(lines) + "\n"
