"""`asym extract`: D-Vlog's own features from videos, written as a D-Vlog release.

For each video (or video + separate audio file):
- acoustic: openSMILE's eGeMAPSv02 low-level descriptors (25, every 10 ms), averaged per second;
- visual: for each second, the decoded frame nearest that second's start (frame times measured
  from the stream's start time, so gaps and variable frame rates do not drift), turned upright by
  the stream's rotation metadata, and the 68 landmarks of the largest face dlib's HOG detector
  finds in it, in pixels of the upright frame, as `extract.landmark_order` lays them out
  (`xy_blocks`: x_0..x_67, y_0..y_67, as OpenFace, LMVD and asym's demo data; `interleaved`:
  x_0, y_0, x_1, ...). D-Vlog's documentation does not state its order: the setting must match
  the release a model was trained on. A second with no face takes the landmarks of the nearest
  earlier second with one (the first face's, for seconds before it) and is counted in the report,
  never filled with zeros; a video with no face at all is refused.
The output (labels.csv, <index>/<index>_acoustic.npy, <index>/<index>_visual.npy, extract.json) is
read back through the D-Vlog reader before it is put in place, so it passes the same checks as a
release. It goes to a new or empty folder, or replaces an earlier `asym extract` output; any
other folder is refused, so no file of the user's is ever deleted. Labels are empty unless a CSV
gives them: enough for `asym predict`, not for training.

dlib's 68-point model (face-recognition-models) is trained on iBUG 300-W, licensed for research
use only. Everything runs from installed packages (the `extract` extra): nothing is downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from asym.data import dvlog
from asym.errors import ConfigError, DataError
from asym.io import atomic_dir, write_json

N_LANDMARKS = 68
LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
LABEL_NAMES = {"1": "depression", "0": "normal", "depression": "depression", "normal": "normal"}
RECORD = "extract.json"          # what marks a folder as an `asym extract` output
FILL_RULE = ("each filled with the landmarks of the nearest earlier second with a face (the first face's, "
             "for seconds before it)")
# openSMILE's frame start times are float seconds (0.99999... for 1 s): this much below a whole
# second still counts as that second; far below the 10 ms frame step.
START_TOLERANCE_S = 1e-9
QUARTER_TURN_DEG = 90
T = TypeVar("T")


def _need(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"`asym extract` needs {module!r}: pip install -e '.[extract]'") from None


def landmark_model_path() -> Path:
    """dlib's 68-point predictor as face-recognition-models installs it (found without importing the
    package, whose __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("`asym extract` needs face-recognition-models: pip install -e '.[extract]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / LANDMARK_MODEL
    if not path.is_file():
        raise ConfigError(f"{path}: dlib's 68-point landmark model is missing from face-recognition-models")
    return path


def landmark_row(points: np.ndarray, order: str) -> np.ndarray:
    """(68, 2) points -> the 136 columns of one second, in `order` (extract.landmark_order)."""
    if points.shape != (N_LANDMARKS, 2):
        raise ValueError(f"expected ({N_LANDMARKS}, 2) landmarks, got {points.shape}")
    if order == "xy_blocks":
        return np.concatenate([points[:, 0], points[:, 1]])
    if order == "interleaved":
        return points.reshape(-1)
    raise ConfigError(f"extract.landmark_order: unknown order {order!r} (xy_blocks or interleaved)")


def nearest_per_second(timed: Iterable[tuple[Fraction | float, T]]) -> Iterator[tuple[int, T]]:
    """(time in seconds from the stream's start, item), in time order -> (s, the item nearest to s)
    for s = 0, 1, ... up to the last item's time; ties go to the earlier item."""
    prev: tuple[Fraction | float, T] | None = None
    second = 0
    for t, item in timed:
        while second <= t:
            if prev is not None and second - prev[0] <= t - second:
                yield second, prev[1]
            else:
                yield second, item
            second += 1
        prev = (t, item)


def upright(gray: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as a player shows it: PyAV's `rotation` is the counter-clockwise angle of the
    stream's display matrix, in multiples of a quarter turn in practice."""
    return np.ascontiguousarray(np.rot90(gray, k=int(round(rotation / QUARTER_TURN_DEG)) % 4))


def frames_per_second(path: Path) -> tuple[list[np.ndarray], int]:
    """For each whole second of the video, its nearest frame, upright and greyscale; and the
    rotation (degrees) that was undone."""
    av = _need("av")
    out: list[np.ndarray] = []
    rotation = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "no video track")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = stream.start_time or 0

            def timed() -> Iterator[tuple[Fraction, Any]]:
                for frame in container.decode(stream):
                    if frame.pts is not None:
                        yield (frame.pts - start) * stream.time_base, frame

            for _, frame in nearest_per_second(timed()):
                rotation = int(frame.rotation or 0)
                out.append(upright(frame.to_ndarray(format="gray"), rotation))
    except av.FFmpegError as exc:
        raise DataError(path, f"unreadable or corrupt media file: {exc}") from None
    if not out:
        raise DataError(path, "no decodable video frame")
    return out, rotation


@dataclass
class Extractor:
    """openSMILE and dlib set up once for every file."""

    sample_rate: int
    upsample: int
    landmark_order: str

    def __post_init__(self) -> None:
        opensmile = _need("opensmile")
        dlib = _need("dlib")
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmark_model_path()))

    # --- audio ------------------------------------------------------------------------------
    def audio_signal(self, path: Path) -> np.ndarray:
        """The first audio track, mono float32 at `sample_rate`."""
        av = _need("av")
        try:
            with av.open(str(path)) as container:
                if not container.streams.audio:
                    raise DataError(path, "no audio track (give the audio as a separate file with --audio)")
                resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
                chunks = [r.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                          for r in resampler.resample(frame)]
                chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
        except av.FFmpegError as exc:
            raise DataError(path, f"unreadable or corrupt media file: {exc}") from None
        signal = np.concatenate(chunks) if chunks else np.empty(0, np.float32)
        if len(signal) < self.sample_rate:
            raise DataError(path, f"audio track shorter than one second ({len(signal) / self.sample_rate:.2f} s)")
        return signal

    def acoustic(self, path: Path) -> np.ndarray:
        """(seconds, 25) eGeMAPSv02 LLDs, the mean of each whole second's 10 ms frames."""
        signal = self.audio_signal(path)
        lld = self.smile.process_signal(signal, self.sample_rate)
        starts = lld.index.get_level_values("start").total_seconds().to_numpy()
        seconds = np.floor(starts + START_TOLERANCE_S).astype(int)
        n = len(signal) // self.sample_rate
        values = lld.to_numpy(np.float64)
        rows = [values[seconds == s].mean(0) for s in range(n) if (seconds == s).any()]
        return np.stack(rows)

    # --- video ------------------------------------------------------------------------------
    def landmarks(self, gray: np.ndarray) -> np.ndarray | None:
        """(68, 2) points of the largest detected face, or None."""
        faces = list(self.detector(gray, self.upsample))
        if not faces:
            return None
        shape = self.predictor(gray, max(faces, key=lambda r: r.area()))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def visual(self, path: Path) -> tuple[np.ndarray, int, int]:
        """(seconds, 136) landmarks, how many seconds had no face (filled as FILL_RULE says), and
        the rotation undone."""
        frames, rotation = frames_per_second(path)
        found = [self.landmarks(g) for g in frames]
        first = next((i for i, f in enumerate(found) if f is not None), None)
        if first is None:
            raise DataError(path, f"no face found in any of its {len(found)} sampled frames (one per second)")
        missing = sum(f is None for f in found)
        last = found[first]
        rows = []
        for f in found:
            last = f if f is not None else last
            rows.append(landmark_row(last, self.landmark_order))
        return np.stack(rows), missing, rotation


# --- inputs and output --------------------------------------------------------------------------
def read_label_csv(path: Path | None) -> dict[str, dict[str, str]]:
    """A user's `index,label[,gender,fold]` CSV; label is depression/normal (or 1/0)."""
    from asym.data.validate import read_labels

    if path is None:
        return {}
    rows = read_labels(path, ["index", "label"], LABEL_NAMES, "depression/normal or 1/0", labels_required=False,
                       folds_required=False)
    return {row["index"]: {"label": LABEL_NAMES.get(row["label"], ""), "gender": row.get("gender", "") or "",
                           "fold": (row.get("fold") or "").strip()} for row in rows}


def _written_by_extract(entry: Path) -> bool:
    if entry.name in ("labels.csv", RECORD):
        return entry.is_file()
    return entry.is_dir() and not entry.is_symlink() and all(
        f.is_file() and f.name in (f"{entry.name}_acoustic.npy", f"{entry.name}_visual.npy") for f in entry.iterdir())


def check_output(output: Path) -> None:
    """Refuse a target that holds anything but an earlier extract output (its files only)."""
    if not output.exists() and not output.is_symlink():
        return
    if not output.is_dir() or output.is_symlink():
        raise DataError(output, "exists and is not a folder: give a new folder for `asym extract --output`")
    entries = list(output.iterdir())
    if not entries:
        return
    if not (output / RECORD).is_file():
        raise DataError(output, f"exists, is not empty and is not an earlier `asym extract` output (no {RECORD}): "
                        "refusing to replace it; give a new or empty folder")
    foreign = sorted(e.name for e in entries if not _written_by_extract(e))
    if foreign:
        raise DataError(output, f"an earlier `asym extract` output, but {foreign[:5]} in it were not written by "
                        "`asym extract`: refusing to replace it; move them or give a new folder")


def extract(videos: list[Path], output: Path, cfg: Any, audio: list[Path] | None = None,
            labels: Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Write a D-Vlog release of `videos` to `output`; returns the per-vlog report (extract.json)."""
    import pandas as pd
    from tqdm import tqdm

    output = Path(output)
    videos = [Path(v) for v in videos]
    audio = [Path(a) for a in audio] if audio else [None] * len(videos)
    if len(audio) != len(videos):
        raise ConfigError(f"{len(audio)} audio file(s) for {len(videos)} video(s): give one per video, in order")
    ids = [v.stem for v in videos]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DataError(videos[ids.index(dupes[0])], f"two inputs share the index {dupes[0]!r} (the file name)")
    for v in [*videos, *(a for a in audio if a is not None)]:
        if not v.is_file():
            raise DataError(v, "input file not found")
    given = read_label_csv(labels)
    unknown = sorted(set(given) - set(ids))
    if unknown:
        raise DataError(labels, f"{len(unknown)} index(es) match no input file: {unknown[:5]}")
    check_output(output)
    ex = Extractor(int(cfg.sample_rate), int(cfg.upsample), cfg.landmark_order)
    report: dict[str, Any] = {"landmark_model": LANDMARK_MODEL + " (dlib, iBUG 300-W: research use only)",
                              "feature_set": "eGeMAPSv02 LowLevelDescriptors, mean per second",
                              "landmark_order": cfg.landmark_order,
                              "frames": "per second, the frame nearest its start (from the stream's start time), "
                                        "turned upright by the stream's rotation", "vlogs": {}}
    rows = []
    with atomic_dir(output) as tmp:
        for idx, video, sound in tqdm(list(zip(ids, videos, audio, strict=True)), desc="extract", unit="file",
                                      disable=None if progress is None else not progress):
            acoustic = ex.acoustic(sound or video)
            visual, missing, rotation = ex.visual(video)
            (tmp / idx).mkdir()
            np.save(tmp / idx / f"{idx}_acoustic.npy", acoustic)
            np.save(tmp / idx / f"{idx}_visual.npy", visual)
            meta = given.get(idx, {"label": "", "gender": "", "fold": ""})
            seconds = min(len(acoustic), len(visual))
            rows.append({"index": idx, "label": meta["label"], "duration": float(seconds), "gender": meta["gender"],
                         "fold": meta["fold"]})
            report["vlogs"][idx] = {"video": str(video), "audio": str(sound or video), "seconds": seconds,
                                    "acoustic_rows": len(acoustic), "visual_rows": len(visual),
                                    "seconds_without_face": missing, "rotation_deg": rotation}
            if missing:
                tqdm.write(f"asym extract: {video}: no face in {missing} of {len(visual)} second(s), {FILL_RULE}")
        pd.DataFrame(rows, columns=dvlog.HEADER).to_csv(tmp / "labels.csv", index=False)
        write_json(tmp / RECORD, report)
        for _ in dvlog.read_dvlog(tmp, labels_required=False):     # the release's own checks, before replacing
            pass
        check_output(output)                                        # nothing of the user's appeared meanwhile
    return report
