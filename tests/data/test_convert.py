"""Readers + Parquet, and bad input: a clear error naming the file, and nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from asym.data.convert import convert
from asym.data.lmvd import read_lmvd
from asym.data.parquet import read_samples
from asym.data.synthetic import write_lmvd
from asym.data.validate import check_matrix, check_no_extra, load_features, read_subjects
from asym.errors import ConfigError, DataError
from tests.data.source import assert_refused, read_csv_rows, write_csv_rows


def test_dvlog_to_parquet_schema_and_card(dvlog_dir, params, tmp_path):
    out = tmp_path / "dvlog.parquet"
    card = convert("dvlog", dvlog_dir, out, params.readers, dataset="dvlog")
    schema = pq.read_schema(out)
    assert str(schema.field("label").type) == "int8" and str(schema.field("n_frames").type) == "int32"
    assert str(schema.field("sample_id").type) == "string" and "gender" in schema.names and "duration" in schema.names
    table = read_samples(out)
    assert table.audio[0].dtype == np.float32 and table.audio[0].shape[1] == 25 and table.visual[0].shape[1] == 136
    for a, v in zip(table.audio, table.visual, strict=True):
        assert a.shape[0] == v.shape[0]                      # cut to the shorter modality
    assert card["n_samples"] == len(table) and set(card["per_fold"]) == {"train", "valid", "test"}
    assert out.with_suffix(".card.md").read_text().startswith("# Dataset card")


def test_lmvd_reader_keeps_one_frame_per_second_and_standardises_rows(lmvd_dir, params):
    samples = list(read_lmvd(lmvd_dir, params.readers.lmvd))
    s = samples[0]
    audio = np.load(lmvd_dir / "Audio_feature" / f"{s.sample_id}.npy")
    assert abs(s.n_frames - audio.shape[0]) <= 3
    np.testing.assert_allclose(s.visual.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(s.visual.std(1), 1, atol=1e-4)
    assert s.sample_id == "0001" and s.fold is None


def test_lmvd_npy_video_variant_and_subjects(tmp_path, small_synth, params, lmvd_dir):
    root = tmp_path / "npyvariant"
    shutil.copytree(lmvd_dir, root)
    csv = sorted((root / "Video_feature").glob("*.csv"))[0]
    rows = np.loadtxt(csv, delimiter=",", skiprows=1)
    landmarks = rows[:, 19:19 + 136][::6]                  # ~5 rows per second, as the .npy copies
    np.save(csv.with_suffix(".npy"), np.concatenate([landmarks, np.zeros((len(landmarks), 35))], 1))
    csv.unlink()
    out = tmp_path / "l.parquet"
    card = convert("lmvd", root, out, params.readers, subjects_csv=root / "subjects.csv")
    assert card["subjects_supplied"] and card["n_subjects"] < card["n_samples"]


def test_derived_lmvd_layout_is_detected(tmp_path, small_synth, params):
    write_lmvd(tmp_path / "d", small_synth["lmvd"], seed=2, layout="derived")
    card = convert("lmvd", tmp_path / "d", tmp_path / "d.parquet", params.readers)
    assert card["layout"] == "derived" and card["n_samples"] == small_synth["lmvd"]["n_samples"]


def _corrupt(kind: str, root: Path) -> tuple[str, Path]:
    """Break a copy of the D-Vlog demo in one way; return the text the error must contain and
    the file (or folder) it must name."""
    labels = root / "labels.csv"
    text = labels.read_text().splitlines()
    first = text[1].split(",")[0]
    npy = root / first / f"{first}_acoustic.npy"
    if kind == "header":
        labels.write_text("\n".join(["idx,label,duration,gender,fold", *text[1:]]) + "\n")
        return "wrong header", labels
    if kind == "label":
        parts = text[1].split(",")
        parts[1] = "sad"
        labels.write_text("\n".join([text[0], ",".join(parts), *text[2:]]) + "\n")
        return "unknown label", labels
    if kind == "duplicate":
        labels.write_text("\n".join([*text, text[1]]) + "\n")
        return "duplicate index", labels
    if kind == "missing":
        npy.unlink()
        return "missing acoustic", npy
    if kind == "extra":
        (root / "99999").mkdir()
        return "no row in labels.csv", root
    if kind == "truncated":
        data = npy.read_bytes()
        npy.write_bytes(data[: len(data) // 2])
        return "truncated", npy
    if kind == "width":
        np.save(npy, np.zeros((30, 24)))
        return "expected 25", npy
    if kind == "nan":
        a = np.load(npy)
        a[3, 2] = np.nan
        np.save(npy, a)
        return "NaN/Inf", npy
    if kind == "inf":
        a = np.load(npy)
        a[0, 0] = np.inf
        np.save(npy, a)
        return "NaN/Inf", npy
    if kind == "empty":
        np.save(npy, np.zeros((0, 25)))
        return "empty sequence", npy
    if kind == "pickle":
        np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return "object arrays are refused", npy
    if kind == "shape":
        np.save(npy, np.zeros((30, 25, 2)))
        return "expected 2-D", npy
    raise ValueError(kind)


BAD = ["header", "label", "duplicate", "missing", "extra", "truncated", "width", "nan", "inf", "empty", "pickle", "shape"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_refused_with_the_file_named_and_nothing_written(kind, dvlog_dir, tmp_path, params):
    root = tmp_path / "broken"
    shutil.copytree(dvlog_dir / "dvlog-dataset", root)
    expected, culprit = _corrupt(kind, root)
    out = tmp_path / "out" / "dvlog.parquet"
    with pytest.raises(DataError) as err:
        convert("dvlog", root, out, params.readers)
    assert expected in str(err.value)
    assert Path(err.value.path) == culprit
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_cli_exits_nonzero_with_a_clear_message(dvlog_dir, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(dvlog_dir / "dvlog-dataset", root)
    _, culprit = _corrupt("nan", root)
    out = tmp_path / "x.parquet"
    proc = subprocess.run([sys.executable, "-m", "asym", "--params", str(Path(__file__).parents[2] / "params.yaml"),
                           "convert", "--format", "dvlog", "--input", str(root), "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert str(culprit) in proc.stderr and "NaN/Inf" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.parquet*"))


def test_lmvd_unknown_label_cell_and_unlabelled_audio(lmvd_dir, tmp_path, params):
    root = tmp_path / "l"
    shutil.copytree(lmvd_dir, root)
    (root / "label" / "0002_Depression.csv").write_text("maybe\n")
    with pytest.raises(DataError, match="0002_Depression.csv.*unknown label"):
        convert("lmvd", root, tmp_path / "o.parquet", params.readers)
    (root / "label" / "0002_Depression.csv").write_text("1\n")
    np.save(root / "Audio_feature" / "9999.npy", np.zeros((3, 128)))
    with pytest.raises(DataError, match="no entry in the labels"):
        convert("lmvd", root, tmp_path / "o.parquet", params.readers)


def test_not_a_release_folder(tmp_path, params):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not an LMVD release"):
        convert("lmvd", tmp_path / "empty", tmp_path / "o.parquet", params.readers)
    with pytest.raises(DataError, match="not a D-Vlog release"):
        convert("dvlog", tmp_path / "empty", tmp_path / "o.parquet", params.readers)


SUBJECT_DEFECTS = ["missing_first", "missing_last", "duplicate", "duplicate_other_subject", "blank", "header", "no_file"]


@pytest.mark.parametrize("defect", SUBJECT_DEFECTS)
def test_bad_subjects_csv_is_refused(defect, tiny_lmvd, params, tmp_path):
    subjects = tmp_path / "subjects.csv"
    rows = read_csv_rows(tiny_lmvd / "subjects.csv")
    ids = sorted(r["sample"] for r in rows)
    assert len(rows) == len(ids) >= 3
    expected = {
        "missing_first": f"sample {ids[0]!r} has no subject",
        "missing_last": f"sample {ids[-1]!r} has no subject",
        "duplicate": f"duplicate sample {rows[-1]['sample']!r}",
        "duplicate_other_subject": f"duplicate sample {rows[-1]['sample']!r}",
        "blank": f"1 sample(s) have an empty subject, e.g. [{rows[-1]['sample']!r}]",
        "header": "wrong header",
        "no_file": "missing file",
    }[defect]
    if defect.startswith("missing"):
        gone = ids[0] if defect == "missing_first" else ids[-1]
        write_csv_rows(subjects, [r for r in rows if r["sample"] != gone])
    elif defect == "duplicate":
        write_csv_rows(subjects, [*rows, rows[-1]])
    elif defect == "duplicate_other_subject":
        write_csv_rows(subjects, [*rows, {**rows[-1], "subject": "P9999"}])
    elif defect == "blank":
        write_csv_rows(subjects, [*rows[:-1], {**rows[-1], "subject": ""}])
    elif defect == "header":
        write_csv_rows(subjects, [{"vlog": r["sample"], "person": r["subject"]} for r in rows])
    assert_refused("lmvd", tiny_lmvd, params.readers, expected, subjects, tmp_path / "out", subjects=subjects)


@pytest.mark.parametrize("card", [".card.json", ".card.md"])
def test_a_failure_while_writing_the_card_leaves_nothing(card, tiny_dvlog, params, tmp_path, monkeypatch):
    """The disk fills up half-way through a card. Had the process been killed there, no half
    card may stand under its final name; as it is, the error leaves no card, no temporary file
    and no table without its card."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "dvlog.parquet"
    target = out.with_suffix(card).name
    real_write_text = Path.write_text
    at_failure: list[list[str]] = []

    def write_half_then_fail(self: Path, data: str, *args, **kwargs) -> int:
        if target in self.name:
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            at_failure.append(sorted(p.name for p in out_dir.iterdir()))
            raise OSError(28, "No space left on device")
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        convert("dvlog", tiny_dvlog, out, params.readers)
    monkeypatch.undo()
    assert len(at_failure) == 1, "the card was not written through Path.write_text"
    assert target not in at_failure[0] and any(name.startswith(f".{target}.") for name in at_failure[0])
    assert list(out_dir.iterdir()) == []


# ---- checked loading of feature and label files (asym.data.validate) ---------------------------
def test_object_and_broken_npy_files_are_refused_with_their_path(tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"not a plain numeric \.npy \(object arrays are refused\)") as err:
        load_features(objects, 2, "audio features")
    assert err.value.path == str(objects)
    good = tmp_path / "good.npy"
    np.save(good, np.ones((4, 2)))
    for name, keep in (("empty.npy", 0), ("short.npy", len(good.read_bytes()) - 8)):
        broken = tmp_path / name
        broken.write_bytes(good.read_bytes()[:keep])
        with pytest.raises(DataError, match="truncated or") as err:
            load_features(broken, 2, "audio features")
        assert err.value.path == str(broken)
    np.testing.assert_array_equal(load_features(good, 2, "audio features"), np.ones((4, 2)))


@pytest.mark.parametrize("values", [np.array([["a", "b"]]), np.array([[True, False]])], ids=["text", "bool"])
def test_a_matrix_that_is_not_numbers_is_refused(values, tmp_path):
    with pytest.raises(DataError, match=f"visual features has dtype {values.dtype}, expected floating point") as err:
        check_matrix(values, tmp_path / "v.npy", 2, "visual features")
    assert err.value.path == str(tmp_path / "v.npy")
    assert check_matrix(np.ones((1, 2), np.int16), tmp_path / "v.npy", 2, "visual features").shape == (1, 2)


def test_unlabelled_files_are_listed_five_at_most(tmp_path):
    for i in range(6):
        np.save(tmp_path / f"{i}.npy", np.ones((1, 1)))
    with pytest.raises(DataError) as err:
        check_no_extra(tmp_path, {"0.npy"}, "*.npy", "audio")
    assert err.value.problem == "5 audio file(s) have no entry in the labels: ['1.npy', '2.npy', '3.npy', '4.npy', '5.npy']"
    (tmp_path / "6.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"6 audio file\(s\) .*'5\.npy'\]$"):
        check_no_extra(tmp_path, {"0.npy"}, "*.npy", "audio")


def test_blank_subjects_are_counted_and_three_shown(tmp_path):
    csv = tmp_path / "subjects.csv"
    csv.write_text("sample,subject\na,\nb,\nc,\nd,\ne,P1\n")
    with pytest.raises(DataError) as err:
        read_subjects(csv)
    assert err.value.problem == "4 sample(s) have an empty subject, e.g. ['a', 'b', 'c']"
    csv.write_text("sample,subject\n0831,P1\n0832, P1 \n")
    assert read_subjects(csv) == {"0831": "P1", "0832": "P1"}
    assert read_subjects(None) is None


def test_conversion_refusals_name_the_folder(params, tmp_path):
    with pytest.raises(DataError) as err:
        convert("dvlog", tmp_path / "nowhere", tmp_path / "o.parquet", params.readers)
    assert (err.value.path, err.value.problem) == (str(tmp_path / "nowhere"), "dataset folder not found")
    with pytest.raises(ConfigError, match="unknown dataset format 'daic'; known: .*'dvlog'"):
        convert("daic", tmp_path, tmp_path / "o.parquet", params.readers)


def test_the_card_records_the_layout(tiny_dvlog, tiny_derived, params, tmp_path):
    assert convert("dvlog", tiny_dvlog, tmp_path / "d.parquet", params.readers)["layout"] == "release"
    assert convert("lmvd", tiny_derived, tmp_path / "l.parquet", params.readers)["layout"] == "derived"
    assert read_samples(tmp_path / "d.parquet").meta["layout"] == "release"


def test_a_subjects_csv_that_knows_none_of_the_samples_names_the_first(tiny_lmvd, params, tmp_path):
    subjects = tmp_path / "subjects.csv"
    rows = sorted(read_csv_rows(tiny_lmvd / "subjects.csv"), key=lambda r: r["sample"])
    assert len(rows) == 4
    write_csv_rows(subjects, [{"sample": "other", "subject": "P0"}])
    ids = [r["sample"] for r in rows]
    assert_refused("lmvd", tiny_lmvd, params.readers, f"sample {ids[0]!r} has no subject", subjects,
                   tmp_path / "out", subjects=subjects)


def test_the_card_names_its_dataset_source_and_widths(tiny_dvlog, params, tmp_path):
    import json

    card = convert("dvlog", tiny_dvlog, tmp_path / "d.parquet", params.readers, dataset="dvlog-real")
    assert (card["dataset"], card["format"], card["source"]) == ("dvlog-real", "dvlog", str(tiny_dvlog))
    assert (card["audio_dim"], card["visual_dim"], card["n_samples"]) == (25, 136, 4)
    assert json.loads((tmp_path / "d.card.json").read_text()) == card
    assert convert("dvlog", tiny_dvlog, tmp_path / "e.parquet", params.readers)["dataset"] == "dvlog"


def test_a_release_of_one_vlog_converts(tiny_dvlog, params, tmp_path):
    root = tmp_path / "dvlog-dataset"
    shutil.copytree(tiny_dvlog, root)
    rows = read_csv_rows(root / "labels.csv")
    write_csv_rows(root / "labels.csv", rows[:1])
    for r in rows[1:]:
        shutil.rmtree(root / r["index"])
    card = convert("dvlog", root, tmp_path / "one.parquet", params.readers)
    assert (card["n_samples"], card["audio_dim"], card["visual_dim"]) == (1, 25, 136)


def test_an_unreadable_or_absent_csv_is_named(tmp_path):
    from asym.data.validate import read_table

    empty = tmp_path / "labels.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="unreadable CSV") as err:
        read_table(empty, ["index"])
    assert err.value.path == str(empty)
    with pytest.raises(DataError) as err:
        read_table(tmp_path / "none.csv", ["index"])
    assert (err.value.path, err.value.problem) == (str(tmp_path / "none.csv"), "missing file")
