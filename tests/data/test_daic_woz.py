"""DAIC-WOZ: the demo corpus read back (features, labels, folds, gender, subjects), per-second pooling
and failed face frames on hand-made files whose answer is known, and every malformed input refused
with a DataError naming the file, and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from asym.config import load_params
from asym.data import formats
from asym.data.convert import convert
from asym.data.daic_woz import LANDMARKS
from asym.data.daic_woz_demo import (
    PROSODY_DIMS,
    demo_participants,
    write_daic_woz,
)
from asym.data.parquet import read_samples
from asym.data.sample import UNLABELLED
from asym.errors import ConfigError, DataError
from asym.models import registry
from tests.conftest import ROOT
from tests.data.source import assert_refused, read_csv_rows, write_csv_rows

TRAIN, DEV = "train_split_Depression_AVEC2017.csv", "dev_split_Depression_AVEC2017.csv"
TEST_LABELS, TEST_IDS = "full_test_split.csv", "test_split_Depression_AVEC2017.csv"
FOLD_OF = {TRAIN: "train", DEV: "valid", TEST_LABELS: "test"}
SEED = 7
RECOVERY_RTOL = 1e-3    # of each column's largest value: the demo writes 4 significant digits of it
MIN_SEPARATION = 2.0    # Welch's t of the planted cue between the classes


def _settings(params, **over) -> dict:
    return {**formats.reader_settings("daic_woz", params.readers), **over}


def _read(root: Path, settings: dict, labels_required: bool = True) -> list:
    samples, layout = formats.get("daic_woz").read(root, settings, labels_required)
    assert layout == "release"
    return list(samples)


@pytest.fixture(scope="session")
def demo_cfg(params):
    return {**params.synth.daic_woz.model_dump(), "n_samples": 24, "seconds": [8, 12]}


@pytest.fixture(scope="session")
def daic_dir(tmp_path_factory, demo_cfg):
    out = tmp_path_factory.mktemp("daic") / "raw"
    write_daic_woz(out, demo_cfg, SEED)
    return out


@pytest.fixture(scope="session")
def tiny_daic(tmp_path_factory, demo_cfg):
    """Six short interviews: every fold holds one at least."""
    out = tmp_path_factory.mktemp("tiny_daic") / "raw"
    write_daic_woz(out, {**demo_cfg, "n_samples": 6, "seconds": [3, 5]}, SEED)
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    root = tmp_path / "daic"
    shutil.copytree(src, root)
    return root


# ---- the demo, read back ---------------------------------------------------------------------------

def test_demo_round_trips_with_the_csvs_labels_and_the_generators_features(daic_dir, demo_cfg, params):
    assert sorted(p.name for p in daic_dir.iterdir())[:2] == ["300_P", "301_P"]
    expected = {}
    for name, fold in FOLD_OF.items():
        for row in read_csv_rows(daic_dir / name):
            label = row["PHQ8_Binary"] if name != TEST_LABELS else row["PHQ_Binary"]
            expected[row["Participant_ID"]] = (int(label), fold, row["Gender"])
    assert {r["participant_ID"] for r in read_csv_rows(daic_dir / TEST_IDS)} == {
        p for p, (_, fold, _) in expected.items() if fold == "test"}
    assert {fold for _, fold, _ in expected.values()} == {"train", "valid", "test"}
    samples = _read(daic_dir, _settings(params))
    assert [s.sample_id for s in samples] == sorted(expected, key=int)
    generated = {p.pid: p for p in demo_participants(demo_cfg, SEED)[0]}
    for s in samples:
        assert (s.label, s.fold, s.extra["gender"]) == expected[s.sample_id]
        assert s.subject_id == s.sample_id
        want = generated[s.sample_id]
        assert s.n_frames == min(len(want.audio), len(want.visual)) and s.visual.shape[0] == s.n_frames
        assert s.audio.shape[1] == 74 and s.visual.shape[1] == 136 and s.audio.dtype == np.float32
        for got, made in ((s.audio, want.audio), (s.visual, want.visual)):
            np.testing.assert_allclose(got, made[: s.n_frames], rtol=0,
                                       atol=RECOVERY_RTOL * np.abs(made).max(), err_msg=s.sample_id)


def test_the_planted_cue_survives_the_files(daic_dir, params):
    """Depressed participants' prosodic dimensions vary less over time (asym.data.synthetic)."""
    samples = _read(daic_dir, _settings(params))
    labels = np.array([s.label for s in samples])
    flatness = np.array([np.log(s.audio[:, :PROSODY_DIMS].std(0)).mean() for s in samples])
    dep, norm = flatness[labels == 1], flatness[labels == 0]
    assert len(dep) >= 3 and len(norm) >= 3
    welch = (norm.mean() - dep.mean()) / np.sqrt(dep.var(ddof=1) / len(dep) + norm.var(ddof=1) / len(norm))
    assert welch > MIN_SEPARATION, welch


def test_convert_writes_a_table_at_daic_woz_widths(daic_dir, params, tmp_path):
    out = tmp_path / "daic_woz.parquet"
    card = convert("daic_woz", daic_dir, out, params.readers, dataset="daic_woz")
    assert (card["audio_dim"], card["visual_dim"]) == (74, 136) and card["layout"] == "release"
    assert card["n_samples"] == card["n_subjects"] == 24 and card["subjects_supplied"]
    table = read_samples(out)
    assert {a.shape[1] for a in table.audio} == {74} and {v.shape[1] for v in table.visual} == {136}
    assert set(table.gender) <= {"0", "1"} and set(table.fold) == {"train", "valid", "test"}
    assert table.meta["readers"] == _settings(params)


def test_the_demo_refuses_an_unknown_mechanism_and_writes_nothing(demo_cfg, tmp_path):
    with pytest.raises(ConfigError, match="unknown synth mechanism"):
        write_daic_woz(tmp_path / "out", {**demo_cfg, "mechanism": "bogus"}, SEED)
    assert not (tmp_path / "out").exists()


def test_the_demo_params_file_runs_daic_woz():
    p = load_params(ROOT / "workflow" / "demos" / "daic_woz.yaml")
    assert p.datasets == ["daic_woz"] and p.dataset("daic_woz").format == "daic_woz"
    assert p.protocol("daic_woz") == "official" and p.optimism_models == []
    for model in p.models:
        assert p.recipe(registry.get(model).recipe).lr_for("daic_woz") > 0
    assert p.path_of("raw") != load_params(ROOT / "params.yaml").path_of("raw")


# ---- hand-made files: pooling, failed frames, -Inf -----------------------------------------------

def _covarep(path: Path, rows: np.ndarray, neg_inf: tuple[int, int] | None = None) -> None:
    cells = [[f"{v:g}" for v in row] for row in rows]
    if neg_inf:
        cells[neg_inf[0]][neg_inf[1]] = "-Inf"
    path.write_text("".join(",".join(r) + "\n" for r in cells))


def _clnf(path: Path, landmarks: np.ndarray, confidence: np.ndarray, success: np.ndarray) -> None:
    lines = [", ".join(["frame", "timestamp", "confidence", "success", *LANDMARKS])]
    for k, (row, conf, ok) in enumerate(zip(landmarks, confidence, success, strict=True)):
        lines.append(", ".join([str(k + 1), f"{k / 30:.3f}", f"{conf:g}", str(int(ok)), *(f"{v:g}" for v in row)]))
    path.write_text("\n".join(lines) + "\n")


def _participant(root: Path, pid: str, audio_rows: int, tracked: np.ndarray, confidence: np.ndarray,
                 neg_inf: tuple[int, int] | None = None) -> None:
    """COVAREP row i holds i + column; CLNF frame k holds k + column, except where untracked (-1)."""
    folder = root / f"{pid}_P"
    folder.mkdir(parents=True)
    _covarep(folder / f"{pid}_COVAREP.csv", np.arange(audio_rows)[:, None] + np.arange(74.0), neg_inf)
    frames = np.arange(len(tracked))[:, None] + np.arange(136.0)
    frames[~tracked] = -1.0
    _clnf(folder / f"{pid}_CLNF_features.txt", frames, confidence, tracked)


def _split(path: Path, rows: list[tuple[str, str, str]], test: bool = False) -> None:
    head = ["Participant_ID", "PHQ_Binary", "PHQ_Score", "Gender"] if test else \
        ["Participant_ID", "PHQ8_Binary", "PHQ8_Score", "Gender", "PHQ8_NoInterest"]
    body = [[pid, label, "12" if label == "1" else "3", gender, *([] if test else ["1"])]
            for pid, label, gender in rows]
    path.write_text("\n".join(",".join(r) for r in [head, *body]) + "\n")


@pytest.fixture
def handmade(tmp_path) -> Path:
    """300: 2.5 s of audio; 75 frames: frames 0-4 failed, second 1 below confidence 0.5, second 2 fine.
    301: 2 s; its first second untracked. -Inf at 300's row 10, column 5."""
    root = tmp_path / "daic"
    tracked = np.ones(75, bool)
    tracked[:5] = False
    confidence = np.full(75, 0.9)
    confidence[30:60] = 0.3
    _participant(root, "300", 250, tracked, confidence, neg_inf=(10, 5))
    tracked = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    _participant(root, "301", 200, tracked, np.full(60, 0.9))
    _split(root / TRAIN, [("300", "1", "1")])
    _split(root / DEV, [("301", "0", "0")])
    return root


def test_per_second_pooling_and_failed_frames_known_answer(handmade, params):
    s300, s301 = _read(handmade, _settings(params, min_confidence=0.5))
    audio_col = np.arange(74.0)
    want = np.stack([49.5 + audio_col, 149.5 + audio_col, 224.5 + audio_col])   # means of rows 0-99, 100-199, 200-249
    want[0, 5] -= 15 / 100                     # row 10's -Inf (10 + 5) reads as 0
    np.testing.assert_allclose(s300.audio, want, rtol=1e-6)
    col = np.arange(136.0)
    # second 0: frames 5-29 (mean 17); second 1: none above 0.5, so second 0 again; second 2: frames 60-74
    np.testing.assert_allclose(s300.visual, np.stack([17 + col, 17 + col, 67 + col]), rtol=1e-6)
    # a first second without a face takes the next tracked one's
    np.testing.assert_allclose(s301.visual, np.stack([44.5 + col, 44.5 + col]), rtol=1e-6)
    assert (s300.sample_id, s300.subject_id, s300.label, s300.fold) == ("300", "300", 1, "train")
    assert s300.extra == {"gender": "1"}
    assert (s301.label, s301.fold, s301.extra["gender"]) == (0, "valid", "0")


def test_min_confidence_zero_keeps_every_successful_frame(handmade, params):
    s300 = _read(handmade, _settings(params, min_confidence=0.0))[0]
    np.testing.assert_allclose(s300.visual[1], 44.5 + np.arange(136.0), rtol=1e-6)


def test_column_names_are_read_whatever_their_case_and_spaces(handmade, params):
    (handmade / TRAIN).write_text(" participant_id , phq8_binary ,PHQ8_Score, gender \n 300 , 1 ,12, 1 \n")
    s300 = _read(handmade, _settings(params))[0]
    assert (s300.label, s300.extra["gender"]) == (1, "1")


def test_nan_in_a_failed_frame_is_never_read(handmade, params):
    clnf = handmade / "300_P" / "300_CLNF_features.txt"
    lines = clnf.read_text().splitlines()
    cells = lines[1].split(", ")          # frame 0: success 0
    cells[10] = "nan"
    lines[1] = ", ".join(cells)
    clnf.write_text("\n".join(lines) + "\n")
    assert np.isfinite(_read(handmade, _settings(params))[0].visual).all()


# ---- prediction: participants without labels ------------------------------------------------------

def test_folders_without_csvs_are_read_unlabelled_for_prediction_only(handmade, params, tmp_path):
    for name in (TRAIN, DEV):
        (handmade / name).unlink()
    samples = _read(handmade, _settings(params), labels_required=False)
    assert [(s.sample_id, s.label, s.fold, s.extra["gender"]) for s in samples] == [
        ("300", UNLABELLED, None, None), ("301", UNLABELLED, None, None)]
    assert_refused("daic_woz", handmade, params.readers, "no labels", handmade, tmp_path / "out")


def test_test_ids_without_test_labels(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    test_ids = {r["participant_ID"]: r["Gender"] for r in read_csv_rows(root / TEST_IDS)}
    assert test_ids
    (root / TEST_LABELS).unlink()
    assert_refused("daic_woz", root, params.readers, "without labels", root / TEST_IDS, tmp_path / "out")
    unlabelled = [s for s in _read(root, _settings(params), labels_required=False) if s.label == UNLABELLED]
    assert {s.sample_id: s.extra["gender"] for s in unlabelled} == test_ids
    assert {s.fold for s in unlabelled} == {None}


def test_a_folder_in_no_csv_is_read_for_prediction_but_refused_for_training(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    shutil.copytree(root / "300_P", root / "999_P")
    for name in ("COVAREP.csv", "CLNF_features.txt"):
        (root / "999_P" / f"300_{name}").rename(root / "999_P" / f"999_{name}")
    assert_refused("daic_woz", root, params.readers, "in no split CSV: ['999_P']", root, tmp_path / "out")
    last = _read(root, _settings(params), labels_required=False)[-1]
    assert (last.sample_id, last.label, last.fold, last.extra["gender"]) == ("999", UNLABELLED, None, None)


# ---- where the corpus is --------------------------------------------------------------------------

def test_detect_accepts_the_folder_or_one_level_up_and_no_other_release(tiny_daic, tmp_path, dvlog_dir):
    fmt = formats.get("daic_woz")
    assert fmt.detect(tiny_daic) == tiny_daic and fmt.detect(tiny_daic.parent) == tiny_daic
    with pytest.raises(DataError, match="not a DAIC-WOZ corpus"):
        fmt.detect(dvlog_dir)
    for other in ("dvlog", "lmvd"):
        with pytest.raises(DataError):
            formats.get(other).detect(tiny_daic)


def test_zipped_participants_are_named(tmp_path, tiny_daic, params):
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "300_P.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"unzip each <id>_P.zip") as err:
        formats.get("daic_woz").detect(zipped)
    assert Path(err.value.path) == zipped
    root = _copy(tiny_daic, tmp_path)
    shutil.rmtree(root / "300_P")
    (root / "300_P.zip").write_bytes(b"PK")
    csv = next(n for n in FOLD_OF if "300" in {r["Participant_ID"] for r in read_csv_rows(root / n)})
    assert_refused("daic_woz", root, params.readers, "300_P.zip is still zipped", root / csv, tmp_path / "out")


def test_csv_errors_surface_when_read_is_called(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    (root / DEV).write_text("")
    with pytest.raises(DataError) as err:
        formats.get("daic_woz").read(root, _settings(params))      # not iterated
    assert Path(err.value.path) == root / DEV


def test_missing_reader_settings_are_refused(tiny_daic):
    with pytest.raises(DataError, match="readers.daic_woz"):
        formats.get("daic_woz").read(tiny_daic, {})


# ---- bad split CSVs -------------------------------------------------------------------------------

def _first_row_csv(root: Path) -> str:
    return next(n for n in (TRAIN, DEV) if read_csv_rows(root / n))


def test_a_participant_in_two_csvs_is_refused(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    train, dev = read_csv_rows(root / TRAIN), read_csv_rows(root / DEV)
    write_csv_rows(root / DEV, [*dev, train[0]])
    assert_refused("daic_woz", root, params.readers, f"participant {train[0]['Participant_ID']} is listed in {TRAIN}",
                   root / DEV, tmp_path / "out")


def test_a_participant_twice_in_one_csv_is_refused(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    rows = read_csv_rows(root / TRAIN)
    write_csv_rows(root / TRAIN, [*rows, rows[-1]])
    assert_refused("daic_woz", root, params.readers, f"duplicate participant id {rows[-1]['Participant_ID']!r}",
                   root / TRAIN, tmp_path / "out")


@pytest.mark.parametrize("name, column, value", [(TRAIN, "PHQ8_Binary", "2"), (DEV, "PHQ8_Binary", "yes"),
                                                 (TEST_LABELS, "PHQ_Binary", ""), (TRAIN, "PHQ8_Binary", "-1")])
def test_an_unknown_label_is_refused(name, column, value, tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    rows = read_csv_rows(root / name)
    rows[-1][column] = value
    write_csv_rows(root / name, rows)
    assert_refused("daic_woz", root, params.readers, f"line {len(rows) + 1}: participant {rows[-1]['Participant_ID']}: "
                   f"unknown {column} {value!r}", root / name, tmp_path / "out")


@pytest.mark.parametrize("column", ["Participant_ID", "PHQ8_Binary", "Gender"])
def test_a_missing_csv_column_is_refused(column, tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    rows = [{k: v for k, v in r.items() if k != column} for r in read_csv_rows(root / TRAIN)]
    write_csv_rows(root / TRAIN, rows)
    assert_refused("daic_woz", root, params.readers, "wrong header: no column", root / TRAIN, tmp_path / "out")


def test_an_unreadable_csv_is_refused(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    (root / TRAIN).write_bytes(b"Participant_ID,PHQ8_Binary,Gender\n300,1,0\n301,\xff\xfe,0,9\n")
    assert_refused("daic_woz", root, params.readers, "unreadable CSV", root / TRAIN, tmp_path / "out")


def test_a_listed_participant_without_folder_is_refused(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    pid = read_csv_rows(root / TRAIN)[-1]["Participant_ID"]
    shutil.rmtree(root / f"{pid}_P")
    assert_refused("daic_woz", root, params.readers, f"participant {pid} has no folder {pid}_P/", root / TRAIN,
                   tmp_path / "out")


def test_test_ids_disagreeing_with_test_labels_are_refused(tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    (root / TEST_IDS).write_text((root / TEST_IDS).read_text() + "999,1\n")
    assert_refused("daic_woz", root, params.readers, "they differ in ['999']", root / TEST_IDS, tmp_path / "out")


# ---- bad feature files ----------------------------------------------------------------------------

def _edit_line(path: Path, line: int, edit) -> None:
    lines = path.read_text().splitlines()
    lines[line] = edit(lines[line])
    path.write_text("\n".join(lines) + "\n")


def _set_cell(line: str, column: int, value: str, sep: str = ",") -> str:
    cells = line.split(sep)
    cells[column] = value
    return sep.join(cells)


COVAREP_DEFECTS = {
    "missing": (lambda p: p.unlink(), "missing COVAREP file"),
    "empty": (lambda p: p.write_text(""), "empty COVAREP file"),
    "narrow": (lambda p: p.write_text("".join(",".join(ln.split(",")[:73]) + "\n"
                                              for ln in p.read_text().splitlines())), "have 73 values, expected 74"),
    "extra_cell": (lambda p: _edit_line(p, 3, lambda ln: ln + ",1"), "unreadable COVAREP file"),
    "truncated": (lambda p: p.write_text(p.read_text()[:-40]), "its last line is incomplete: a truncated file?"),
    "nan": (lambda p: _edit_line(p, 7, lambda ln: _set_cell(ln, 20, "NaN")), "line 8, column 21: empty or NaN"),
    "inf": (lambda p: _edit_line(p, 7, lambda ln: _set_cell(ln, 20, "Inf")), "line 8, column 21: infinite"),
    "text": (lambda p: _edit_line(p, 7, lambda ln: _set_cell(ln, 20, "abc")), "non-numeric value"),
}


@pytest.mark.parametrize("defect", COVAREP_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_a_bad_covarep_file_is_refused(defect, position, tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    pid = sorted(p.name[:-2] for p in root.glob("*_P"))[position]
    path = root / f"{pid}_P" / f"{pid}_COVAREP.csv"
    damage, expected = COVAREP_DEFECTS[defect]
    damage(path)
    assert_refused("daic_woz", root, params.readers, expected, path, tmp_path / "out")


def _tracked_line(path: Path) -> int:
    """The line (header = 0) of the last frame with success 1."""
    lines = path.read_text().splitlines()
    return max(k for k, ln in enumerate(lines) if k and ln.split(", ")[3] == "1")


def _no_face(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(_set_cell(ln, 3, "0", ", ") for ln in lines[1:])]) + "\n")


CLNF_DEFECTS = {
    "missing": (lambda p: p.unlink(), "missing CLNF features file"),
    "header": (lambda p: _edit_line(p, 0, lambda ln: ln.replace(", x3,", ", x_3,")),
               "wrong header: missing CLNF columns ['x3']"),
    "no_success": (lambda p: _edit_line(p, 0, lambda ln: ln.replace("success", "succ")),
                   "missing CLNF columns ['success']"),
    "nan": (lambda p: _edit_line(p, _tracked_line(p), lambda ln: _set_cell(ln, 9, "nan", ", ")),
            "empty or NaN landmark"),
    "success": (lambda p: _edit_line(p, 2, lambda ln: _set_cell(ln, 3, "2", ", ")),
                "line 3: success 2, expected 0 or 1"),
    "truncated": (lambda p: p.write_text(p.read_text()[:-300]), "its last line is incomplete: a truncated file?"),
    "no_face": (_no_face, "no tracked face in any of its"),
    "header_only": (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"), "has no frame"),
}


@pytest.mark.parametrize("defect", CLNF_DEFECTS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_a_bad_clnf_file_is_refused(defect, position, tiny_daic, params, tmp_path):
    root = _copy(tiny_daic, tmp_path)
    pid = sorted(p.name[:-2] for p in root.glob("*_P"))[position]
    path = root / f"{pid}_P" / f"{pid}_CLNF_features.txt"
    damage, expected = CLNF_DEFECTS[defect]
    damage(path)
    assert_refused("daic_woz", root, params.readers, expected, path, tmp_path / "out")
