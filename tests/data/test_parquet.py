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
    """Make pyarrow's Parquet writer write two row groups of its first batch, record what the
    folder holds at that moment, then fail as a full disk would."""
    real_write = pq.ParquetWriter.write_table
    seen: list[list[str]] = []

    def write_some_row_groups_then_fail(self, table, *args, **kwargs):
        real_write(self, table.slice(0, 2))
        real_write(self, table.slice(2, 2))
        seen.append(sorted(p.name for p in Path(self.where).parent.iterdir()))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_some_row_groups_then_fail)
    return seen


def test_a_failure_during_the_write_leaves_no_file(failing_writer, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "t.parquet"
    with pytest.raises(OSError, match="No space left"):
        write_samples(_samples(6, seed=0), out, {"dataset": "t"})
    assert len(failing_writer) == 1, "write_samples did not write through pyarrow.parquet.ParquetWriter"
    assert out.name not in failing_writer[0]           # a kill at that moment would leave no partial table
    assert list(out_dir.iterdir()) == []


def test_a_failure_during_the_write_keeps_the_previous_table(tmp_path, monkeypatch):
    out = tmp_path / "t.parquet"
    write_samples(_samples(3, seed=1), out, {"dataset": "old"})
    before = out.read_bytes()
    real_write = pq.ParquetWriter.write_table

    def fail_after_writing(self, table, *args, **kwargs):
        real_write(self, table.slice(0, 2))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_after_writing)
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


def _mixed_samples() -> list[Sample]:
    rng = np.random.default_rng(1)
    return [Sample("0831", 1, rng.normal(size=(3, 2)), rng.normal(size=(3, 4)), extra={"gender": "f", "duration": 3.5}),
            Sample("0900", 0, rng.normal(size=(5, 2)), rng.normal(size=(5, 4)), subject_id="P1", extra={"gender": None}),
            Sample("0901", 1, rng.normal(size=(2, 2)), rng.normal(size=(2, 4)), fold="test")]


def test_the_schema_holds_whatever_the_release_leaves_out(tmp_path):
    import pyarrow as pa

    path = tmp_path / "t.parquet"
    lone = [Sample("0001", 0, np.zeros((2, 2)), np.zeros((2, 3)), extra={"gender": None, "duration": None})]
    write_samples(lone, path, {"dataset": "t"})                                 # one sample, no fold, no gender
    schema = pq.read_schema(path)
    assert schema.field("fold").type == pa.string() and schema.field("sample_id").type == pa.string()
    assert schema.field("gender").type == pa.string() and schema.field("duration").type == pa.float64()
    write_samples(_mixed_samples(), path, {"dataset": "t"})
    schema = pq.read_schema(path)
    expected = {"sample_id": pa.string(), "subject_id": pa.string(), "label": pa.int8(), "fold": pa.string(),
                "n_frames": pa.int32(), "audio": pa.list_(pa.list_(pa.float32(), 2)),
                "visual": pa.list_(pa.list_(pa.float32(), 4)), "gender": pa.string(), "duration": pa.float64()}
    assert {f.name: f.type for f in schema} == expected
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    back = read_samples(path)
    assert back.gender == ["f", None, None] and back.fold == [None, None, "test"]
    assert back.subject_id == ["0831", "P1", "0901"]                             # own subject when none is given
    assert back.meta == {"dataset": "t", "audio_dim": 2, "visual_dim": 4} and back.label.dtype == np.int64
    assert pq.read_table(path)["duration"].to_pylist() == [3.5, None, None]
    assert back.n_frames.tolist() == [3, 5, 2]


def test_select_keeps_every_column_of_the_chosen_samples(tmp_path):
    path = tmp_path / "t.parquet"
    write_samples(_mixed_samples(), path, {"dataset": "t"})
    t = read_samples(path)
    sub = t.select([2, 0])
    assert (sub.sample_id, sub.subject_id, sub.label.tolist(), sub.fold, sub.gender) == \
        (["0901", "0831"], ["0901", "0831"], [1, 1], ["test", None], [None, "f"])
    np.testing.assert_array_equal(sub.audio[0], t.audio[2])
    np.testing.assert_array_equal(sub.visual[1], t.visual[0])
    assert sub.meta == t.meta and len(sub) == 2
    write_samples(_samples(3, 0), path, {"dataset": "t"})
    no_gender = read_samples(path)
    assert no_gender.gender is None and no_gender.select([1]).gender is None


def test_reading_what_is_not_an_asym_table_names_the_file(tmp_path):
    import pyarrow as pa

    from asym.errors import DataError

    with pytest.raises(DataError, match="missing Parquet file") as err:
        read_samples(tmp_path / "none.parquet")
    assert err.value.path == str(tmp_path / "none.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match="not an asym feature table") as err:
        read_samples(tmp_path / "other.parquet")
    assert err.value.path == str(tmp_path / "other.parquet")
    with pytest.raises(DataError, match="no samples to write") as err:
        write_samples([], tmp_path / "empty.parquet", {})
    assert err.value.path == str(tmp_path / "empty.parquet")


def test_the_dataset_card_counts_the_same_from_the_file_and_from_memory(tmp_path):
    from asym.data.parquet import dataset_card

    path = tmp_path / "t.parquet"
    table = write_samples(_mixed_samples(), path, {"dataset": "t"})
    for source in (table, read_samples(path)):
        card = dataset_card(source, {"dataset": "t"})
        assert card["per_fold"] == {"unassigned": {"depressed": 1, "normal": 1}, "test": {"depressed": 1, "normal": 0}}
        assert (card["n_samples"], card["n_subjects"], card["n_depressed"], card["n_normal"]) == (3, 3, 2, 1)
        assert card["frames"] == {"min": 2, "median": 3.0, "mean": pytest.approx(10 / 3), "max": 5, "total": 10}
        assert card["dataset"] == "t"

    write_samples(_samples(5, 0), path, {"dataset": "t"})
    card = dataset_card(read_samples(path), {"dataset": "t"})
    assert card["per_fold"] == {"train": {"depressed": 2, "normal": 3}}
