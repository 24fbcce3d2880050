"""The manifest format: any dataset at any widths, read value for value, pooled to one row per
second, every malformed manifest or feature file refused naming the file, and nothing written;
`asym fetch`'s copy of the manifest and the files it names; the demo writer read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from asym.config import FrameRates
from asym.data import formats
from asym.data.convert import convert
from asym.data.fetch import _link_or_copy, write_demo
from asym.data.manifest import copy_source, detect
from asym.data.manifest_demo import write_manifest
from asym.data.parquet import read_samples
from asym.data.sample import UNLABELLED
from asym.errors import DataError
from tests.data.source import read_csv_rows, set_cell, write_csv_rows

A_DIM, V_DIM = 3, 7
HEADER = ["id", "label", "fold", "audio", "visual", "subject", "gender"]


def make_dataset(root: Path, n: int = 4, labels: tuple[str, str] = ("depression", "normal"), *,
                 columns: list[str] | None = None, csv_name: str = "manifest.csv", seed: int = 0) -> Path:
    """`n` vlogs at widths 3 and 7 (float64 .npy, audio a row longer than visual for odd vlogs),
    two vlogs a subject, subjects' folds train, valid, test, train; returns the CSV."""
    rng = np.random.default_rng(seed)
    (root / "feats" / "a").mkdir(parents=True, exist_ok=True)
    (root / "feats" / "v").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sid = f"{i:04d}"                                    # ids keep their leading zeros
        t = 5 + i
        np.save(root / "feats" / "a" / f"{sid}.npy", rng.normal(size=(t + i % 2, A_DIM)))
        np.save(root / "feats" / "v" / f"{sid}.npy", rng.normal(size=(t, V_DIM)))
        subject = i // 2
        rows.append({"id": sid, "label": labels[subject % 2], "fold": ("train", "valid", "test", "train")[subject % 4],
                     "audio": f"feats/a/{sid}.npy", "visual": f"./feats/v/{sid}.npy",
                     "subject": f"P{subject}", "gender": "fm"[i % 2]})
    cols = columns or HEADER
    csv = root / csv_name
    write_csv_rows(csv, [{c: r.get(c, "") for c in cols} for r in rows])
    return csv


def expected(csv: Path) -> dict[str, dict]:
    """What each vlog must read as, from the CSV and the .npy files, without the reader's code."""
    out = {}
    for row in read_csv_rows(csv):
        a, v = np.load(csv.parent / row["audio"]), np.load(csv.parent / row["visual"])
        n = min(len(a), len(v))
        out[row["id"]] = {"label": {"depression": 1, "normal": 0, "1": 1, "0": 0}[row["label"]],
                          "fold": row["fold"] or None, "subject": row.get("subject"), "gender": row.get("gender"),
                          "audio": a[:n].astype(np.float32), "visual": v[:n].astype(np.float32)}
    return out


def read_all(source: Path, settings: dict | None = None, labels_required: bool = True) -> dict:
    samples, layout = formats.get("manifest").read(source, settings or {}, labels_required)
    assert layout == "manifest"
    return {s.sample_id: s for s in samples}


# --- reading ------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [("depression", "normal"), ("1", "0")])
@pytest.mark.parametrize("as_folder", [True, False], ids=["folder", "csv"])
def test_a_manifest_reads_value_for_value_at_any_width(labels, as_folder, tmp_path):
    csv = make_dataset(tmp_path, labels=labels, csv_name="manifest.csv" if as_folder else "mine.csv")
    got = read_all(tmp_path if as_folder else csv)
    want = expected(csv)
    assert list(got) == list(want) == ["0000", "0001", "0002", "0003"]
    for sid, w in want.items():
        s = got[sid]
        assert (s.label, s.fold, s.subject_id, s.extra) == (w["label"], w["fold"], w["subject"], {"gender": w["gender"]})
        assert s.audio.dtype == np.float32 and s.audio.shape[1] == A_DIM and s.visual.shape[1] == V_DIM
        np.testing.assert_array_equal(s.audio, w["audio"])
        np.testing.assert_array_equal(s.visual, w["visual"])
    assert {s.label for s in got.values()} == {0, 1}
    assert any(len(np.load(csv.parent / r["audio"])) > len(np.load(csv.parent / r["visual"])) for r in read_csv_rows(csv))


def test_convert_writes_the_datas_widths_and_the_rates_it_read_with(tmp_path, params):
    csv = make_dataset(tmp_path / "src", n=6)
    out = tmp_path / "out" / "mine.parquet"
    card = convert("manifest", tmp_path / "src", out, params.readers, dataset="mine",
                   frame_rates=FrameRates(audio=1, visual=1))
    table = read_samples(out)
    assert (table.meta["audio_dim"], table.meta["visual_dim"]) == (A_DIM, V_DIM) == (card["audio_dim"], card["visual_dim"])
    assert table.meta["layout"] == "manifest" and table.meta["readers"] == {"frame_rates": {"audio": 1.0, "visual": 1.0}}
    assert table.meta.get("subjects_supplied") and card["n_subjects"] == 3 and card["n_samples"] == 6
    want = expected(csv)
    assert table.sample_id == list(want)
    for i, sid in enumerate(table.sample_id):
        np.testing.assert_array_equal(table.audio[i], want[sid]["audio"])
        np.testing.assert_array_equal(table.visual[i], want[sid]["visual"])
        assert table.label[i] == want[sid]["label"] and table.fold[i] == want[sid]["fold"]
        assert table.subject_id[i] == want[sid]["subject"] and table.gender[i] == want[sid]["gender"]


def test_without_subject_and_gender_columns_each_vlog_is_its_own_subject(tmp_path, params):
    make_dataset(tmp_path / "src", columns=HEADER[:5])
    s = next(iter(read_all(tmp_path / "src").values()))
    assert s.subject_id is None and s.extra == {}
    card = convert("manifest", tmp_path / "src", tmp_path / "t.parquet", params.readers)
    assert card["n_subjects"] == card["n_samples"] == 4 and not card.get("subjects_supplied")
    assert read_samples(tmp_path / "t.parquet").gender is None


def test_each_stream_is_pooled_to_one_row_per_second(tmp_path, params):
    """Audio at 4 rows a second (10 rows: 2.5 s), visual at one row every 2 s (2 rows: 4 s):
    the means of each second's rows, each slow row repeated over its seconds, cut to 3 s."""
    (tmp_path / "a").mkdir()
    (tmp_path / "v").mkdir()
    audio = np.arange(20, dtype=np.float64).reshape(10, 2)
    visual = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]])
    np.save(tmp_path / "a" / "x.npy", audio)
    np.save(tmp_path / "v" / "x.npy", visual)
    write_csv_rows(tmp_path / "manifest.csv", [{"id": "x", "label": "1", "fold": "", "audio": "a/x.npy", "visual": "v/x.npy"}])
    [s] = read_all(tmp_path, {"frame_rates": {"audio": 4, "visual": 0.5}}).values()
    np.testing.assert_array_equal(s.audio, [[3, 4], [11, 12], [17, 18]])      # rows 0-3, 4-7, 8-9
    np.testing.assert_array_equal(s.visual, [[1, 10, 100], [1, 10, 100], [2, 20, 200]])
    [s1] = read_all(tmp_path).values()                                         # rates default to 1
    assert s1.n_frames == 2 and s.fold is None
    convert("manifest", tmp_path, tmp_path / "out" / "t.parquet", params.readers,
            frame_rates=FrameRates(audio=4, visual=0.5))
    t = read_samples(tmp_path / "out" / "t.parquet")
    np.testing.assert_array_equal(t.audio[0], s.audio)
    assert t.meta["readers"]["frame_rates"] == {"audio": 4.0, "visual": 0.5}


def test_for_prediction_labels_may_be_empty_and_folds_absent(tmp_path):
    csv = make_dataset(tmp_path, columns=["id", "label", "audio", "visual"])
    set_cell(csv, 0, "label", "")
    got = read_all(tmp_path, labels_required=False)
    assert got["0000"].label == UNLABELLED and got["0001"].label == 1 and got["0002"].label == 0 and got["0000"].fold is None
    with pytest.raises(DataError) as err:                  # for training, both are required
        read_all(tmp_path)
    assert Path(err.value.path) == csv and "missing columns ['fold']" in err.value.problem
    write_csv_rows(csv, [{**r, "fold": ""} for r in read_csv_rows(csv)])
    with pytest.raises(DataError) as err:
        read_all(tmp_path)
    assert Path(err.value.path) == csv and "line 2: unknown label ''" in err.value.problem


def test_the_manifest_is_checked_when_read_is_called_and_vlogs_load_lazily(tmp_path):
    csv = make_dataset(tmp_path)
    good = csv.read_bytes()
    set_cell(csv, -1, "fold", "holdout")
    with pytest.raises(DataError, match="line 5: unknown fold 'holdout'"):
        formats.get("manifest").read(tmp_path, {})       # before a single sample is asked for
    csv.write_bytes(good)
    last = tmp_path / read_csv_rows(csv)[-1]["visual"]
    last.write_bytes(last.read_bytes()[:60])             # truncated: found only when it is loaded
    samples, _ = formats.get("manifest").read(tmp_path, {})
    assert next(samples).sample_id == "0000"
    with pytest.raises(DataError) as err:
        list(samples)
    assert Path(err.value.path) == last and "truncated" in err.value.problem


def test_detect_names_the_csv_and_refuses_what_is_not_a_manifest(tmp_path, dvlog_dir):
    csv = make_dataset(tmp_path / "m", csv_name="mine.csv")
    assert detect(csv) == csv
    shutil.copy(csv, tmp_path / "m" / "manifest.csv")
    assert detect(tmp_path / "m") == tmp_path / "m" / "manifest.csv"
    with pytest.raises(DataError) as err:
        detect(dvlog_dir / "dvlog-dataset")
    assert "no manifest.csv" in err.value.problem
    with pytest.raises(DataError) as err:
        detect(dvlog_dir / "dvlog-dataset" / "labels.csv")
    assert "not a manifest: no column(s) ['id', 'audio', 'visual']" in err.value.problem
    with pytest.raises(DataError, match="not a manifest"):
        detect(tmp_path / "m" / "feats" / "a" / "0000.npy")


# --- refusals ------------------------------------------------------------------------------------
def assert_refused(src: Path, culprit: Path, expected: str, params, tmp_path: Path, rates: FrameRates | None = None) -> None:
    """convert fails naming `culprit` and `expected`, and leaves its output folder empty."""
    out_dir = tmp_path / "out"
    with pytest.raises(DataError) as err:
        convert("manifest", src, out_dir / "t.parquet", params.readers, frame_rates=rates)
    assert Path(err.value.path) == culprit, str(err.value)
    assert expected in err.value.problem, str(err.value)
    assert not out_dir.exists() or not list(out_dir.iterdir())


def _npy(csv: Path, position: int, column: str) -> Path:
    return csv.parent / read_csv_rows(csv)[position][column]


@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
@pytest.mark.parametrize("column", ["audio", "visual"])
@pytest.mark.parametrize("defect", ["missing", "truncated", "nan", "inf", "ndim", "object", "empty"])
def test_a_bad_feature_file_is_refused_naming_it(defect, column, position, tmp_path, params):
    csv = make_dataset(tmp_path / "src")
    npy = _npy(csv, position, column)
    width = A_DIM if column == "audio" else V_DIM
    a = np.load(npy)
    if defect == "missing":
        npy.unlink()
        problem = f"missing {column} file"
    elif defect == "truncated":
        npy.write_bytes(npy.read_bytes()[:-8])
        problem = "truncated"
    elif defect in ("nan", "inf"):
        a[2, width - 1] = np.nan if defect == "nan" else -np.inf
        np.save(npy, a)
        problem = f"NaN/Inf values (first at frame 2, feature {width - 1})"
    elif defect == "ndim":
        np.save(npy, a[:, :, None])
        problem = "expected 2-D"
    elif defect == "object":
        np.save(npy, np.array([a, None], dtype=object), allow_pickle=True)
        problem = "object arrays are refused"
    else:
        np.save(npy, a[:0])
        problem = "empty sequence"
    assert_refused(tmp_path / "src", npy, problem, params, tmp_path)


@pytest.mark.parametrize("column", ["audio", "visual"])
@pytest.mark.parametrize("delta", [-1, 1], ids=["narrower", "wider"])
def test_a_width_unlike_the_first_vlogs_names_the_file_and_both_widths(column, delta, tmp_path, params):
    csv = make_dataset(tmp_path / "src")
    npy = _npy(csv, 2, column)
    width = A_DIM if column == "audio" else V_DIM
    a = np.load(npy)
    np.save(npy, a[:, :-1] if delta < 0 else np.c_[a, a[:, :1]])
    assert_refused(tmp_path / "src", npy, f"have {width + delta} features per frame, but the first vlog's ('0000') "
                   f"have {width}", params, tmp_path)


ROW_DEFECTS = {   # column, value, the problem stated (the last row is line 5)
    "label": ("label", "sad", "line 5: unknown label 'sad'"),
    "label_case": ("label", "Depression", "line 5: unknown label 'Depression'"),
    "fold": ("fold", "holdout", "line 5: unknown fold 'holdout'"),
    "empty_id": ("id", "", "line 5: empty id"),
    "empty_audio": ("audio", "", "line 5: empty audio path"),
    "empty_visual": ("visual", "  ", "line 5: empty visual path"),
    "dotdot": ("audio", "../outside.npy", "line 5: audio path '../outside.npy' leaves the manifest's folder"),
    "nested_dotdot": ("visual", "feats/../../x.npy", "line 5: visual path 'feats/../../x.npy' leaves"),
    "absolute": ("audio", "/etc/passwd", "line 5: audio path '/etc/passwd' leaves"),
    "windows": ("visual", "C:\\feats\\x.npy", "leaves the manifest's folder"),
    "duplicate": ("id", "0000", "duplicate id '0000'"),
    "subject_fold": ("subject", "P0", "subject 'P0' is in two folds, 'train' (line 2) and 'valid' (line 5)"),
    "subject_blank": ("subject", "", "1 row(s) have an empty subject while others have one, e.g. line(s) [5]"),
}


@pytest.mark.parametrize("defect", ROW_DEFECTS)
def test_a_bad_manifest_row_is_refused_naming_its_line(defect, tmp_path, params):
    csv = make_dataset(tmp_path / "src")
    if defect == "subject_fold":
        set_cell(csv, -1, "fold", "valid")
    column, value, problem = ROW_DEFECTS[defect]
    set_cell(csv, -1, column, value)
    assert_refused(tmp_path / "src", csv, problem, params, tmp_path)


@pytest.mark.parametrize("column", ["id", "label", "fold", "audio", "visual"])
def test_a_missing_column_is_refused(column, tmp_path, params):
    csv = make_dataset(tmp_path / "src", columns=[c for c in HEADER if c != column])
    assert_refused(csv, csv, f"missing columns ['{column}']", params, tmp_path)


def test_a_subject_without_folds_may_span_them_and_an_empty_manifest_is_refused(tmp_path, params):
    csv = make_dataset(tmp_path / "src")
    write_csv_rows(csv, [{**r, "fold": "", "subject": "P0"} for r in read_csv_rows(csv)])
    assert {s.subject_id for s in read_all(tmp_path / "src").values()} == {"P0"}
    csv.write_text(",".join(HEADER) + "\n")
    assert_refused(tmp_path / "src", csv, "no vlogs", params, tmp_path)


# --- asym fetch's copy ---------------------------------------------------------------------------
def test_copy_source_copies_the_manifest_and_exactly_the_files_it_names(tmp_path, params):
    csv = make_dataset(tmp_path / "src", csv_name="mine.csv")
    (tmp_path / "src" / "feats" / "a" / "stray.npy").write_bytes(b"not named")
    (tmp_path / "src" / "notes.txt").write_text("not named")
    dest = tmp_path / "raw"
    copy_source(csv, dest, _link_or_copy)
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    named = sorted({Path(r[c]).as_posix() for r in read_csv_rows(csv) for c in ("audio", "visual")})
    assert copied == sorted(["manifest.csv", *named]) and len(named) == 8
    assert (dest / "manifest.csv").read_bytes() == csv.read_bytes()
    card = convert("manifest", dest, tmp_path / "t.parquet", params.readers)
    assert card["n_samples"] == 4                          # the copy reads as the source does
    calls = []
    copy_source(tmp_path / "src" / "mine.csv", tmp_path / "raw2", lambda s, d: calls.append((s, d)))
    assert len(calls) == 8 and all(Path(s).is_file() for s, _ in calls)


@pytest.mark.parametrize("value", ["../x.npy", "/tmp/x.npy", "feats/../../x.npy"])
def test_copy_source_refuses_paths_that_leave_the_folder(value, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"x")
    csv = make_dataset(tmp_path / "src")
    set_cell(csv, 1, "visual", value)
    calls = []
    with pytest.raises(DataError) as err:
        copy_source(tmp_path / "src", tmp_path / "raw", lambda s, d: calls.append((s, d)))
    assert Path(err.value.path) == csv and f"line 3: visual path {value!r} leaves" in err.value.problem
    assert calls == [] and not (tmp_path / "raw").exists()


def test_copy_source_refuses_a_missing_file_naming_it(tmp_path):
    csv = make_dataset(tmp_path / "src")
    npy = _npy(csv, 3, "audio")
    npy.unlink()
    with pytest.raises(DataError) as err:
        copy_source(csv, tmp_path / "raw", _link_or_copy)
    assert Path(err.value.path) == npy and "missing audio file (line 5" in err.value.problem


def test_fetch_of_a_manifest_source(tmp_path, params):
    from asym.config import DatasetConfig
    from asym.data.fetch import fetch_dataset

    csv = make_dataset(tmp_path / "src", csv_name="mine.csv")
    ds = DatasetConfig(format="manifest", source=str(csv), protocol={"demo": "official", "paper": "official"})
    prov = fetch_dataset("mine", ds, params.synth, tmp_path / "raw" / "mine", tmp_path / "cache")
    assert prov == {"source": str(csv), "synthetic": False}
    assert (tmp_path / "raw" / "mine" / "manifest.csv").read_bytes() == csv.read_bytes()
    assert len(read_all(tmp_path / "raw" / "mine")) == 4


# --- the demo writer ------------------------------------------------------------------------------
@pytest.fixture()
def demo_cfg(params):
    return {**params.synth.manifest.model_dump(), "n_samples": 120, "n_subjects": 60, "signal": 1.5}


@pytest.mark.parametrize(("a_dim", "v_dim", "rates"), [(1, 2, {"audio": 1, "visual": 1}), (5, 3, {"audio": 10, "visual": 0.5})])
def test_the_demo_reads_back_with_its_signal_subjects_and_rates(a_dim, v_dim, rates, demo_cfg, tmp_path, params):
    cfg = {**demo_cfg, "audio_dim": a_dim, "visual_dim": v_dim, "frame_rates": rates}
    write_manifest(tmp_path / "demo", cfg, seed=3)
    rows = read_csv_rows(tmp_path / "demo" / "manifest.csv")
    assert list(rows[0]) == HEADER and {r["label"] for r in rows} == {"depression", "normal"}
    assert all(not Path(r["audio"]).is_absolute() for r in rows)
    raw = np.load(tmp_path / "demo" / rows[0]["audio"])
    seconds = np.load(tmp_path / "demo" / rows[0]["visual"]).shape[0] / rates["visual"]
    assert raw.shape[1] == a_dim and abs(raw.shape[0] / rates["audio"] - seconds) <= cfg["length_jitter"] + 1
    samples = list(read_all(tmp_path / "demo", {"frame_rates": rates}).values())
    assert len(samples) == 120 and {s.fold for s in samples} == {"train", "valid", "test"}
    lo, hi = cfg["seconds"]
    assert all(lo - cfg["length_jitter"] - 1 <= s.n_frames <= hi + 1 for s in samples)
    assert all((s.audio.shape[1], s.visual.shape[1]) == (a_dim, v_dim) for s in samples)
    by_subject: dict[str, set] = {}
    for s in samples:
        by_subject.setdefault(s.subject_id, set()).add((s.label, s.fold))
    assert len(by_subject) == 60 and all(len(v) == 1 for v in by_subject.values())   # one label, one fold
    y = np.array([s.label for s in samples])
    assert 0.4 < y.mean() < 0.6
    # the planted cue: depressed vlogs vary less over time, whatever the widths
    motion = np.array([np.log(s.audio.std(0)).mean() + np.log(s.visual.std(0)).mean() for s in samples])
    assert motion[y == 1].mean() < motion[y == 0].mean() - 0.3
    no_signal = tmp_path / "flat"
    write_manifest(no_signal, {**cfg, "signal": 0.0}, seed=3)
    flat = list(read_all(no_signal, {"frame_rates": rates}).values())
    flat_motion = np.array([np.log(s.audio.std(0)).mean() + np.log(s.visual.std(0)).mean() for s in flat])
    assert abs(flat_motion[y == 1].mean() - flat_motion[y == 0].mean()) < 0.3


def test_the_demo_is_deterministic_and_what_fetch_writes(demo_cfg, tmp_path):
    write_demo("manifest", tmp_path / "a", demo_cfg, seed=4)
    write_manifest(tmp_path / "b", demo_cfg, seed=4)
    write_manifest(tmp_path / "c", demo_cfg, seed=5)
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()
    first = read_csv_rows(tmp_path / "a" / "manifest.csv")[0]["audio"]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    assert (tmp_path / "a" / first).read_bytes() != (tmp_path / "c" / first).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]   # no temporary folder left
