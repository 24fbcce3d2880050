"""Reader of the DAIC-WOZ depression corpus (Gratch et al., LREC 2014) as AVEC 2016/2017 distribute it.

    train_split_Depression_AVEC2017.csv  Participant_ID,PHQ8_Binary,PHQ8_Score,Gender,PHQ8_<8 items>  -> fold train
    dev_split_Depression_AVEC2017.csv    the same columns                                             -> fold valid
    full_test_split.csv                  Participant_ID,PHQ_Binary,PHQ_Score,Gender                   -> fold test
    test_split_Depression_AVEC2017.csv   participant_ID,Gender (no labels; superseded by the file above)
    <id>_P/<id>_COVAREP.csv              no header, 74 COVAREP values per 10 ms row (COVAREP_RATE)
    <id>_P/<id>_CLNF_features.txt        "frame, timestamp, confidence, success, x0..x67, y0..y67", one row per
                                         video frame (CLNF_RATE), ", " between cells
    <id>_P/...                           FORMANT, CLNF_features3D / AUs / gaze / pose / hog, AUDIO.wav,
                                         TRANSCRIPT: not read, and may be absent
    util/, documents/, *.zip, ...        ignored (only `<digits>_P` folders are participants)

Each participant is one sample and its own subject (sample and subject id: the participant id, e.g. "300").
Both streams are pooled to one row per second, as D-Vlog's features are (asym.data.sample.per_second):

- audio: every COVAREP row is kept. On unvoiced rows (VUV, the second column, is 0) the voice-dependent
  features hold 0, and those zeros are averaged in as written: the pooled VUV column is then the
  voiced share of the second. -Inf cells are read as 0 (COVAREP_NEG_INF), as public code reading the
  corpus does; NaN and +Inf cells are refused, naming the line and column.
- visual: the 68 (x, y) landmarks as 136 columns x0..x67 then y0..y67 (`xy_blocks`, as the D-Vlog and
  LMVD readers give them), averaged over the frames of each second that CLNF tracked (success 1 and
  confidence >= readers.daic_woz.min_confidence). A second without such a frame repeats the last
  second that had one (the first such second, for a gap at the start): the face holds still rather
  than jumping to a mean. A participant without a tracked frame at all is refused.
- the two streams are then cut to the shorter (asym.data.sample.align): where the video stops early
  (the documentation says participant 402's stops about two minutes before the interview does), the
  audio is cut with it.

Labels: PHQ8_Binary (1 depressed: a PHQ-8 score of 10 or more; 0 normal) exactly as the CSVs give it
(0 or 1; 0.0 and 1.0 are read too, as a copy rewritten with floats spells them); the column is found
whatever its case, and is full_test_split.csv's PHQ_Binary there. Gender is kept as the corpus codes
it, "0" or "1" (see below). With `labels_required=False` (`asym predict`) participants without labels
are read too: those only test_split_Depression_AVEC2017.csv lists, folders no CSV lists, or a folder
of `<id>_P/` folders and no CSV at all (label UNLABELLED, no fold).

Sources (the corpus's documentation, DAICWOZDepression_Documentation_AVEC2017.pdf, was not itself
available; public pages quote it, in part in translation: 189 sessions 300-492 with 342, 394, 398 and
460 excluded, 402's short video, what each of the three AVEC 2017 CSVs holds, the session files):
- CSV names and columns, full_test_split.csv as the test labels (PHQ_Binary, PHQ_Score) and the test
  CSV's lower-case `participant_ID`: the ai-psychiatrist project's docs/data/daic-woz-schema.md;
  Bailey & Plumbley's daic_woz_process (EUSIPCO 2021), which reads the same files and notes
  participant 409's PHQ8_Binary of 0 with a PHQ-8 score of 10; cosmaadrian/multimodal-depression-
  from-video's split files (the same columns, the test labels' PHQ_Score).
- the feature files: code reading `<id>_COVAREP.csv` with no header (74 columns: F0, VUV, NAQ, QOQ,
  H1H2, PSP, MDQ, peakSlope, Rd, Rd_conf, creak, MCEP 0-24, HMPDM 0-24, HMPDD 0-12) and
  `<id>_CLNF_features.txt` with ", " separators and the frame, timestamp, confidence, success,
  x0.., y0.. header (cosmaadrian/multimodal-depression-from-video, which sets COVAREP's -Inf cells
  to 0, as CMU's MultimodalSDK maintainers advise for COVAREP features; ai-psychiatrist).

Not confirmed from the documentation:
- the gender coding. Third-party sources disagree: Bailey & Plumbley's code reads 0 as female and 1
  as male, ai-psychiatrist's schema says 0 male and 1 female. So the codes are kept as they are.
- that each `<id>_P.zip` holds its files at the top level (public code reads `<id>_AUDIO.wav` from
  it so): unzip each into its own `<id>_P/` folder.
- that the COVAREP files hold -Inf (public code replaces it) and never NaN; which columns are 0 on
  unvoiced rows.
- that CLNF writes one row for every video frame, failed ones included: rows are taken as consecutive
  frames at CLNF_RATE and the timestamp column is not read; what a failed frame's landmark cells
  hold (they are never read).
- participant 409's label is read as distributed (0), not corrected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from asym.config import DaicWozReaderConfig
from asym.data.formats import FORMATS
from asym.data.sample import UNLABELLED, Sample, align, per_second
from asym.data.validate import FIRST_ROW_LINE, check_matrix, check_unique, read_table
from asym.errors import ConfigError, DataError

AUDIO_DIM, VISUAL_DIM = FORMATS["daic_woz"].widths
COVAREP_RATE = 100           # COVAREP rows per second: one every 10 ms
CLNF_RATE = 30               # CLNF rows per second: one per video frame
LAYOUT = "release"
# The labelled split CSVs, in the order a participant's fold is looked up, and the fold each gives.
LABELLED_SPLITS = (("train_split_Depression_AVEC2017.csv", "train"),
                   ("dev_split_Depression_AVEC2017.csv", "valid"),
                   ("full_test_split.csv", "test"))
TEST_IDS_CSV = "test_split_Depression_AVEC2017.csv"       # test ids and gender only (no labels)
TEST_LABELS_CSV = LABELLED_SPLITS[-1][0]
SPLIT_CSVS = (*(name for name, _ in LABELLED_SPLITS), TEST_IDS_CSV)
# Column names, compared case-insensitively: the test CSV spells `participant_ID`, the test labels `PHQ_Binary`.
ID_COLUMN = "participant_id"
LABEL_COLUMNS = ("phq8_binary", "phq_binary")
GENDER_COLUMN = "gender"
LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}    # a float-written copy of a CSV spells them 0.0 / 1.0
FOLDER = re.compile(r"(\d+)_P")
COVAREP_NEG_INF = 0.0        # COVAREP's value for an absent measurement (unvoiced rows): what -Inf reads as
CLNF_META = ("confidence", "success")
LANDMARKS = [f"x{i}" for i in range(VISUAL_DIM // 2)] + [f"y{i}" for i in range(VISUAL_DIM // 2)]


@dataclass(frozen=True)
class Participant:
    pid: str
    label: int                 # UNLABELLED where no CSV gives one (prediction only)
    fold: str | None
    gender: str | None
    source: Path | None = None     # the split CSV that lists it


# --- where the corpus is ------------------------------------------------------------------------
def _participant_dirs(root: Path) -> dict[str, Path]:
    return {m.group(1): p for p in root.iterdir() if p.is_dir() and (m := FOLDER.fullmatch(p.name))}


def _zipped(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("*_P.zip") if FOLDER.fullmatch(p.name[: -len(".zip")]))


def _is_root(path: Path) -> bool:
    return any((path / name).is_file() for name in SPLIT_CSVS) or bool(_participant_dirs(path))


def detect(path: Path) -> Path:
    """The corpus root: `path` itself when it holds a split CSV or a `<id>_P/` folder, else its one
    sub-folder that does."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "not a DAIC-WOZ folder: not a directory")
    if _is_root(path):
        return path
    nested = [p for p in sorted(path.iterdir()) if p.is_dir() and _is_root(p)]
    if len(nested) == 1:
        return nested[0]
    if _zipped(path):
        raise DataError(path, f"DAIC-WOZ's participant archives are still zipped ({_zipped(path)[:3]}...): "
                        "unzip each <id>_P.zip into its own <id>_P/ folder")
    if nested:
        raise DataError(path, f"several DAIC-WOZ folders here ({[p.name for p in nested]}): name one")
    raise DataError(path, f"not a DAIC-WOZ corpus: no <id>_P/ participant folder and none of {list(SPLIT_CSVS)}, "
                    "here or in a sub-folder")


# --- the split CSVs ------------------------------------------------------------------------------
def _column(df: pd.DataFrame, path: Path, names: tuple[str, ...]) -> str:
    by_lower = {c.lower(): c for c in df.columns}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    raise DataError(path, f"wrong header: no column {' or '.join(names)} (any case; found {list(df.columns)})")


def _read_split(path: Path, labelled: bool) -> list[tuple[str, int, str | None]]:
    """(participant id, label, gender) of each row; UNLABELLED where the CSV has no label column."""
    df = read_table(path, [])
    id_col = _column(df, path, (ID_COLUMN,))
    gender_col = _column(df, path, (GENDER_COLUMN,))
    label_col = _column(df, path, LABEL_COLUMNS) if labelled else None
    ids = df[id_col].str.strip().tolist()
    check_unique(ids, path, "participant id")
    genders = df[gender_col].str.strip().tolist()
    labels = df[label_col].str.strip().tolist() if label_col else [None] * len(ids)
    rows = []
    for line, (pid, label, gender) in enumerate(zip(ids, labels, genders, strict=True), start=FIRST_ROW_LINE):
        if label_col and label not in LABELS:
            raise DataError(path, f"line {line}: participant {pid}: unknown {label_col} {label!r}, expected 0 or 1")
        rows.append((pid, LABELS[label] if label_col else UNLABELLED, gender or None))
    return rows


def _splits(root: Path, labels_required: bool) -> dict[str, Participant]:
    """Every participant the split CSVs list, once, with its label and fold."""
    listed: dict[str, Participant] = {}
    for name, fold in LABELLED_SPLITS:
        path = root / name
        if not path.is_file():
            continue
        for pid, label, gender in _read_split(path, labelled=True):
            if pid in listed:
                raise DataError(path, f"participant {pid} is listed in {listed[pid].source.name} too")
            listed[pid] = Participant(pid, label, fold, gender, path)
    if not listed and labels_required:
        raise DataError(root, f"no labels: none of {[n for n, _ in LABELLED_SPLITS]} is here")
    test_ids = root / TEST_IDS_CSV
    if test_ids.is_file():
        rows = _read_split(test_ids, labelled=False)
        test_labels = root / TEST_LABELS_CSV
        if test_labels.is_file():      # the test labels supersede the ids-only file: both must name the same people
            labelled = {pid for pid, p in listed.items() if p.source == test_labels}
            differ = sorted({pid for pid, _, _ in rows} ^ labelled)
            if differ:
                raise DataError(test_ids, f"does not list the participants {TEST_LABELS_CSV} does: they differ in "
                                f"{differ[:5]}")
        elif labels_required:
            raise DataError(test_ids, f"lists {len(rows)} test participants without labels, and {TEST_LABELS_CSV} "
                            f"(their labels) is not in {root}: add it, or remove {TEST_IDS_CSV} and the test "
                            "participants' folders to read train and dev only")
        else:
            for pid, _, gender in rows:
                if pid in listed:
                    raise DataError(test_ids, f"participant {pid} is listed in {listed[pid].source.name} too")
                listed[pid] = Participant(pid, UNLABELLED, None, gender, test_ids)
    return listed


def _id_order(pid: str) -> tuple[int, int, str]:
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def participants(root: Path, labels_required: bool = True) -> list[Participant]:
    """Every participant to read, in id order: each listed one has a folder and, with labels
    required, each folder is listed (DataError otherwise, naming the file or folder)."""
    listed = _splits(root, labels_required)
    folders = _participant_dirs(root)
    zipped = set(_zipped(root))
    for pid in sorted(listed, key=_id_order):
        if pid not in folders:
            hint = f" ({pid}_P.zip is still zipped: unzip it into {pid}_P/)" if f"{pid}_P.zip" in zipped else ""
            raise DataError(listed[pid].source, f"participant {pid} has no folder {pid}_P/ in {root}{hint}")
    extra = sorted((pid for pid in folders if pid not in listed), key=_id_order)
    if extra and labels_required:
        raise DataError(root, f"{len(extra)} participant folder(s) are in no split CSV: "
                        f"{[f'{p}_P' for p in extra[:5]]}")
    everyone = {**{pid: Participant(pid, UNLABELLED, None, None) for pid in extra}, **listed}
    if not everyone:
        raise DataError(root, "no participant: no <id>_P/ folder and no split CSV lists one")
    return [everyone[pid] for pid in sorted(everyone, key=_id_order)]


# --- the feature files ---------------------------------------------------------------------------
def _truncated(path: Path) -> str:
    """A hint where the file's last line is incomplete (it does not end with a newline)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return ""
        fh.seek(-1, 2)
        return "" if fh.read(1) == b"\n" else " (its last line is incomplete: a truncated file?)"


def _read_numbers(path: Path, what: str, **options: object) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, f"missing {what} file")
    try:
        return pd.read_csv(path, dtype=np.float64, engine="c", **options)
    except pd.errors.EmptyDataError:
        raise DataError(path, f"empty {what} file") from None
    except pd.errors.ParserError as exc:
        raise DataError(path, f"unreadable {what} file{_truncated(path)}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"non-numeric value in the {what} file{_truncated(path)}: {exc}") from None


def _refuse_nan(values: np.ndarray, path: Path, what: str, first_line: int, columns: list[str]) -> None:
    """A NaN or infinite cell, named by its line and column (a truncated last line reads as NaN)."""
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, col = bad[0]
        cell = "empty or NaN" if np.isnan(values[row, col]) else "infinite"
        hint = _truncated(path) if row == len(values) - 1 else ""
        raise DataError(path, f"line {row + first_line}, column {columns[col]}: {cell} {what} value "
                        f"({len(bad)} such cell(s) in all){hint}")


def read_covarep(path: Path) -> np.ndarray:
    """(rows, 74) COVAREP values as written, -Inf read as COVAREP_NEG_INF."""
    values = _read_numbers(path, "COVAREP", header=None).to_numpy()
    if values.ndim == 2 and values.shape[1] != AUDIO_DIM:
        raise DataError(path, f"COVAREP rows have {values.shape[1]} values, expected {AUDIO_DIM}")
    values[np.isneginf(values)] = COVAREP_NEG_INF
    _refuse_nan(values, path, "COVAREP", 1, [str(c + 1) for c in range(AUDIO_DIM)])
    return check_matrix(values, path, AUDIO_DIM, "COVAREP features")


def read_clnf(path: Path, rate: float, min_confidence: float) -> np.ndarray:
    """(seconds, 136) landmarks averaged over each second's tracked frames (module docstring)."""
    df = _read_numbers(path, "CLNF features", skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in (*CLNF_META, *LANDMARKS) if c not in df.columns]
    if missing:
        raise DataError(path, f"wrong header: missing CLNF columns {missing[:6]}{'...' if len(missing) > 6 else ''}")
    if df.empty:
        raise DataError(path, "CLNF features file has no frame")
    if df.iloc[-1].isna().any() and _truncated(path):     # even a failed frame's cells, were it one
        raise DataError(path, f"line {len(df) + 1}: empty or NaN CLNF value{_truncated(path)}")
    meta = df[list(CLNF_META)].to_numpy()
    _refuse_nan(meta, path, "CLNF", FIRST_ROW_LINE, list(CLNF_META))
    confidence, success = meta[:, 0], meta[:, 1]
    odd = np.flatnonzero((success != 0) & (success != 1))
    if len(odd):
        raise DataError(path, f"line {odd[0] + FIRST_ROW_LINE}: success {success[odd[0]]:g}, expected 0 or 1")
    tracked = (success == 1) & (confidence >= min_confidence)
    if not tracked.any():
        raise DataError(path, f"no tracked face in any of its {len(df)} frames (success 1 and confidence >= "
                        f"{min_confidence:g}, readers.daic_woz.min_confidence)")
    landmarks = df[LANDMARKS].to_numpy()
    kept = np.where(tracked[:, None], landmarks, 0.0)   # what failed frames hold is never read
    _refuse_nan(kept, path, "landmark", FIRST_ROW_LINE, LANDMARKS)
    return pool_tracked(kept, tracked, rate)


def pool_tracked(x: np.ndarray, tracked: np.ndarray, rate: float) -> np.ndarray:
    """Per-second means over the tracked rows only: the mean of all rows with the untracked ones
    as 0, over the tracked share of the second. An untracked second repeats the last tracked one
    (the first tracked one, before it)."""
    share = per_second(tracked.astype(np.float64)[:, None], rate)[:, 0]
    means = per_second(np.where(tracked[:, None], x, 0.0), rate)
    seen = share > 0
    pooled = np.zeros_like(means)
    pooled[seen] = means[seen] / share[seen, None]
    last = np.maximum.accumulate(np.where(seen, np.arange(len(seen)), -1))
    return pooled[np.where(last < 0, int(np.argmax(seen)), last)]


def read_participant(root: Path, pid: str, reader: DaicWozReaderConfig) -> tuple[np.ndarray, np.ndarray]:
    folder = root / f"{pid}_P"
    audio = per_second(read_covarep(folder / f"{pid}_COVAREP.csv"), COVAREP_RATE)
    visual = read_clnf(folder / f"{pid}_CLNF_features.txt", CLNF_RATE, reader.min_confidence)
    return align(audio, visual)


# --- the format's entry points ------------------------------------------------------------------------
def reader_config(root: Path, settings: dict) -> DaicWozReaderConfig:
    if not settings:
        raise DataError(root, "reading DAIC-WOZ needs the DAIC-WOZ reader's settings (readers.daic_woz)")
    try:
        return DaicWozReaderConfig(**settings)
    except ValidationError as exc:
        raise ConfigError(f"readers.daic_woz: {exc}") from None


def read(path: Path, settings: dict, labels_required: bool = True) -> tuple[Iterator[Sample], str]:
    """The format's reader (asym.data.formats): `settings` is readers.daic_woz. The root, the split
    CSVs and the participant folders are checked here; each participant's files as it is read."""
    root = detect(Path(path))
    reader = reader_config(root, settings)
    return _samples(root, participants(root, labels_required), reader), LAYOUT


def _samples(root: Path, people: list[Participant], reader: DaicWozReaderConfig) -> Iterator[Sample]:
    for p in people:
        audio, visual = read_participant(root, p.pid, reader)
        yield Sample(p.pid, p.label, audio, visual, fold=p.fold, subject_id=p.pid, extra={"gender": p.gender})
