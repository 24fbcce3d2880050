"""The feature table is written atomically: a failure in the middle of the write leaves the
previous complete file or nothing, never a partial table under the final name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from asym.data.convert import convert
from asym.data.parquet import read_samples, write_samples
from asym.data.sample import Sample


def _samples(n: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [Sample(f"{i:04d}", i % 2, rng.normal(size=(4 + i, 3)), rng.normal(size=(4 + i, 5)), fold="train",
                   subject_id=f"P{i}") for i in range(n)]


@pytest.fixture
def failing_writer(monkeypatch):
    """Replace pyarrow's write_table by one that writes two row groups, records what the
    folder holds at that moment, then fails as a full disk would."""
    real_writer = pq.ParquetWriter
    seen: list[list[str]] = []

    def write_some_row_groups_then_fail(table, where, **kwargs):
        with real_writer(str(where), table.schema) as writer:
            writer.write_table(table.slice(0, 2))
            writer.write_table(table.slice(2, 2))
            seen.append(sorted(p.name for p in Path(where).parent.iterdir()))
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", write_some_row_groups_then_fail)
    return seen


def test_a_failure_during_the_write_leaves_no_file(failing_writer, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "t.parquet"
    with pytest.raises(OSError, match="No space left"):
        write_samples(_samples(6, seed=0), out, {"dataset": "t"})
    assert len(failing_writer) == 1, "write_samples did not write through pyarrow.parquet.write_table"
    assert out.name not in failing_writer[0]           # a kill at that moment would leave no partial table
    assert list(out_dir.iterdir()) == []


def test_a_failure_during_the_write_keeps_the_previous_table(tmp_path, monkeypatch):
    out = tmp_path / "t.parquet"
    write_samples(_samples(3, seed=1), out, {"dataset": "old"})
    before = out.read_bytes()
    real_write_table = pq.write_table

    def fail_after_writing(table, where, **kwargs):
        real_write_table(table.slice(0, 2), where, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", fail_after_writing)
    with pytest.raises(OSError):
        write_samples(_samples(6, seed=2), out, {"dataset": "new"})
    monkeypatch.undo()
    assert out.read_bytes() == before and read_samples(out).meta["dataset"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_a_failed_conversion_leaves_no_table_card_or_temporary_file(failing_writer, tiny_dvlog, params, tmp_path):
    out_dir = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        convert("dvlog", tiny_dvlog, out_dir / "dvlog.parquet", params.readers)
    assert failing_writer and "dvlog.parquet" not in failing_writer[0]
    assert list(out_dir.iterdir()) == []


def test_round_trip_keeps_every_value(tmp_path):
    samples = _samples(5, seed=3)
    write_samples(samples, tmp_path / "t.parquet", {"dataset": "t"})
    back = read_samples(tmp_path / "t.parquet")
    assert back.sample_id == [s.sample_id for s in samples] and back.subject_id == [s.subject_id for s in samples]
    assert back.label.tolist() == [s.label for s in samples] and back.fold == ["train"] * 5
    for s, a, v in zip(samples, back.audio, back.visual, strict=True):
        np.testing.assert_array_equal(a, s.audio.astype(np.float32))
        np.testing.assert_array_equal(v, s.visual.astype(np.float32))
