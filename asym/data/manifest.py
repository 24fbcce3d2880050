"""Reader of any dataset through a manifest: one CSV with a row per vlog (LiteDSPS-Mamba's
manifest, with `subject` and `gender` added).

    manifest.csv             id,label,fold,audio,visual[,subject,gender]
    <audio>                  (T_a, d_a) .npy, `frame_rates.audio` rows per second
    <visual>                 (T_v, d_v) .npy, `frame_rates.visual` rows per second

`audio` and `visual` are paths relative to the manifest's folder, never leaving it (no absolute
paths, no `..`): `asym fetch` copies the manifest and the files it names (`copy_source`).
`label` is depression/normal or 1/0; `fold` is train/valid/test, or empty where the split
protocol makes the folds. The widths are the data's (the first vlog's), the same for every vlog.
Each stream is pooled to one row per second (`settings["frame_rates"]`, default 1 and 1), then
both are cut to the shorter.

The whole CSV is checked when `read` is called; the feature files are loaded one vlog at a time
as the samples are consumed, so memory stays that of one vlog.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asym.data.formats import MANIFEST
from asym.data.sample import FOLDS, UNLABELLED, Sample, align, per_second
from asym.data.validate import FIRST_ROW_LINE, check_unique, load_features, read_table
from asym.errors import DataError

COLUMNS = ["id", "label", "fold", "audio", "visual"]
OPTIONAL = ["subject", "gender"]
DETECT_COLUMNS = ["id", "audio", "visual"]       # what makes a CSV a manifest at all
LABELS = {"depression": 1, "normal": 0, "1": 1, "0": 0}
MODALITIES = ("audio", "visual")


@dataclass(frozen=True)
class Row:
    line: int
    sample_id: str
    label: int
    fold: str | None
    audio: Path
    visual: Path
    subject: str | None
    gender: str | None


def manifest_csv(path: Path) -> Path:
    """The manifest CSV `path` names: the file itself, or `manifest.csv` in the folder."""
    path = Path(path)
    if path.is_dir():
        csv_path = path / MANIFEST
        if not csv_path.is_file():
            raise DataError(path, f"not a manifest dataset: no {MANIFEST} in this folder")
        return csv_path
    if not path.is_file():
        raise DataError(path, "manifest not found")
    if path.suffix.lower() != ".csv":
        raise DataError(path, "not a manifest: expected a .csv file or a folder holding manifest.csv")
    return path


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"unreadable CSV: {exc}") from None


def detect(path: Path) -> Path:
    """The manifest CSV for `path` (a CSV, or a folder holding manifest.csv) whose header has at
    least the id, audio and visual columns."""
    csv_path = manifest_csv(path)
    header = _header(csv_path)
    missing = [c for c in DETECT_COLUMNS if c not in header]
    if missing:
        raise DataError(csv_path, f"not a manifest: no column(s) {missing} in its header {header}")
    return csv_path


def relative_path(cell: str, manifest: Path, line: int, column: str) -> PurePosixPath:
    """A path cell as a path inside the manifest's folder; absolute paths, drive letters and `..`
    components are refused (the manifest is copied with the files it names)."""
    if not cell:
        raise DataError(manifest, f"line {line}: empty {column} path")
    unified = cell.replace("\\", "/")
    p = PurePosixPath(unified)
    if p.is_absolute() or (len(cell) > 1 and cell[1] == ":") or ".." in p.parts:
        raise DataError(manifest, f"line {line}: {column} path {cell!r} leaves the manifest's folder "
                                  "(absolute or `..` paths are refused: paths are relative to the manifest)")
    if not p.parts or p == PurePosixPath("."):
        raise DataError(manifest, f"line {line}: {column} path {cell!r} names no file")
    return p          # a Windows-written `audio\\v1.npy` is `audio/v1.npy`


def _label(cell: str, manifest: Path, line: int, labels_required: bool) -> int:
    if cell in LABELS:
        return LABELS[cell]
    if not cell and not labels_required:
        return UNLABELLED
    raise DataError(manifest, f"line {line}: unknown label {cell!r}, expected depression/normal or 1/0")


def _fold(cell: str, manifest: Path, line: int) -> str | None:
    if cell in FOLDS:
        return cell
    if not cell:
        return None
    raise DataError(manifest, f"line {line}: unknown fold {cell!r}, expected one of {list(FOLDS)} or empty")


def read_rows(manifest: Path, labels_required: bool = True) -> tuple[list[Row], list[str]]:
    """Every row of the manifest, checked (header, ids, labels, folds, path cells, subjects), and
    its columns. Without `labels_required` (prediction only), label cells may be empty and the
    label and fold columns absent."""
    required = COLUMNS if labels_required else ["id", "audio", "visual"]
    df = read_table(manifest, required)
    cols = list(df.columns)
    for col in ("label", "fold", *OPTIONAL):
        if col in cols and col not in required:
            df[col] = df[col].str.strip()
    root = manifest.parent
    ids = df["id"].tolist()
    labels = df["label"].tolist() if "label" in cols else [""] * len(df)
    folds = df["fold"].tolist() if "fold" in cols else [""] * len(df)
    subjects = df["subject"].tolist() if "subject" in cols else None
    genders = df["gender"].tolist() if "gender" in cols else None
    rows: list[Row] = []
    for i, (sid, audio, visual) in enumerate(zip(ids, df["audio"].tolist(), df["visual"].tolist(), strict=True)):
        line = FIRST_ROW_LINE + i
        if not sid:
            raise DataError(manifest, f"line {line}: empty id")
        rows.append(Row(
            line, sid, _label(labels[i], manifest, line, labels_required), _fold(folds[i], manifest, line),
            root / relative_path(audio, manifest, line, "audio"), root / relative_path(visual, manifest, line, "visual"),
            subjects[i] if subjects is not None else None, (genders[i] or None) if genders is not None else None,
        ))
    check_unique(ids, manifest, "id")
    _check_subjects(rows, manifest, subjects is not None)
    return rows, cols


def _check_subjects(rows: list[Row], manifest: Path, has_column: bool) -> None:
    """Subjects given on every row or on none; each subject's vlogs in one fold (where folds are given)."""
    if not has_column:
        return
    given = [r for r in rows if r.subject]
    if given and len(given) < len(rows):
        blank = [r.line for r in rows if not r.subject]
        raise DataError(manifest, f"{len(blank)} row(s) have an empty subject while others have one, e.g. line(s) "
                                  f"{blank[:5]}: give every vlog's subject, or none")
    seen: dict[str, tuple[str, int]] = {}
    for r in given:
        if r.fold is None:
            continue
        first = seen.setdefault(r.subject, (r.fold, r.line))
        if first[0] != r.fold:
            raise DataError(manifest, f"subject {r.subject!r} is in two folds, {first[0]!r} (line {first[1]}) and "
                                      f"{r.fold!r} (line {r.line}): a subject's vlogs must share a fold")


def _rates(settings: dict) -> tuple[float, float]:
    rates = settings.get("frame_rates") or {}
    return float(rates.get("audio", 1.0)), float(rates.get("visual", 1.0))


def read(path: Path, settings: dict, labels_required: bool = True) -> tuple[Iterator[Sample], str]:
    """The format's reader (asym.data.formats). The manifest is read and checked now; the
    samples are loaded as the iterator is consumed."""
    manifest = manifest_csv(Path(path))
    rows, cols = read_rows(manifest, labels_required)
    for r in rows:   # a missing file stops the run before any vlog is converted
        for modality in MODALITIES:
            f = getattr(r, modality)
            if not f.is_file():
                raise DataError(f, f"missing {modality} file (line {r.line} of {manifest.name}, id {r.sample_id!r})")
    if not rows:
        raise DataError(manifest, "no vlogs: the manifest has a header but no rows")
    return _samples(rows, _rates(settings), "gender" in cols), "manifest"


def _samples(rows: list[Row], rates: tuple[float, float], has_gender: bool) -> Iterator[Sample]:
    widths: list[int] | None = None
    first = ""
    for r in rows:
        streams = []
        for k, modality in enumerate(MODALITIES):
            f = getattr(r, modality)
            x = load_features(f, None, f"{modality} features")
            if widths is not None and x.shape[1] != widths[k]:
                raise DataError(f, f"{modality} features have {x.shape[1]} features per frame, but the first vlog's "
                                   f"({first!r}) have {widths[k]}: every vlog must have the same widths")
            streams.append(per_second(x, rates[k]))
        if widths is None:
            widths, first = [streams[0].shape[1], streams[1].shape[1]], r.sample_id
        audio, visual = align(streams[0], streams[1])
        yield Sample(r.sample_id, r.label, audio, visual, fold=r.fold, subject_id=r.subject or None,
                     extra={"gender": r.gender} if has_gender else {})


def copy_source(manifest: Path, dest: Path, link: Callable[[str, str], None]) -> None:
    """`dest/manifest.csv` (a byte copy of the manifest) and every file it names at the same
    relative path under `dest` (`link(src, dst)` hard-links or copies). Paths that leave the
    manifest's folder, and missing files, are refused before anything is copied."""
    csv_path = manifest_csv(Path(manifest))
    df = read_table(csv_path, ["id", "audio", "visual"])
    root = csv_path.parent
    files: dict[PurePosixPath, Path] = {}
    for i, row in enumerate(df[["audio", "visual"]].itertuples(index=False)):
        line = FIRST_ROW_LINE + i
        for column, cell in zip(MODALITIES, row, strict=True):
            rel = relative_path(cell, csv_path, line, column)
            src = root / rel
            if not src.is_file():
                raise DataError(src, f"missing {column} file (line {line} of {csv_path.name})")
            files.setdefault(rel, src)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(csv_path, dest / MANIFEST)
    for rel, src in files.items():
        dst = dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        link(str(src), str(dst))
