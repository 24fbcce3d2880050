"""`asym extract`: D-Vlog's own features from videos, written as a D-Vlog release.

For each video (or video + separate audio file):
- acoustic: openSMILE's eGeMAPSv02 low-level descriptors (25, every 10 ms), averaged per second;
- visual: one frame per second, the 68 landmarks of the largest face dlib's HOG detector finds,
  as x_0..x_67 then y_0..y_67 (the order asym's D-Vlog files use). A second with no face takes
  the nearest earlier second's landmarks (the first face's, before any) and is counted in the
  report, never filled with zeros; a video with no face at all is refused.
The output (labels.csv, <index>/<index>_acoustic.npy, <index>/<index>_visual.npy, extract.json) is
read back through the D-Vlog reader before it replaces anything, so it passes the same checks as
a release. Labels are empty unless a CSV gives them: enough for `asym predict`, not for training.

dlib's 68-point model (face-recognition-models) is trained on iBUG 300-W, licensed for research
use only. Everything runs from installed packages (the `extract` extra): nothing is downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asym.data import dvlog
from asym.errors import ConfigError, DataError
from asym.io import atomic_dir, write_json

N_LANDMARKS = 68
LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
LABEL_NAMES = {"1": "depression", "0": "normal", "depression": "depression", "normal": "normal"}


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


@dataclass
class Extractor:
    """openSMILE and dlib set up once for every file."""

    sample_rate: int
    upsample: int

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
        seconds = np.floor(lld.index.get_level_values("start").total_seconds().to_numpy() + 1e-9).astype(int)
        n = len(signal) // self.sample_rate
        values = lld.to_numpy(np.float64)
        rows = [values[seconds == s].mean(0) for s in range(n) if (seconds == s).any()]
        return np.stack(rows)

    # --- video ------------------------------------------------------------------------------
    def frames_per_second(self, path: Path) -> list[np.ndarray]:
        """The first decoded frame at or after each whole second, as greyscale."""
        av = _need("av")
        out: list[np.ndarray] = []
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise DataError(path, "no video track")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    if frame.time is not None and frame.time + 1e-6 >= len(out):
                        out.append(frame.to_ndarray(format="gray"))
        except av.FFmpegError as exc:
            raise DataError(path, f"unreadable or corrupt media file: {exc}") from None
        if not out:
            raise DataError(path, "no decodable video frame")
        return out

    def landmarks(self, gray: np.ndarray) -> np.ndarray | None:
        """(68, 2) points of the largest detected face, or None."""
        faces = list(self.detector(gray, self.upsample))
        if not faces:
            return None
        shape = self.predictor(gray, max(faces, key=lambda r: r.area()))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def visual(self, path: Path) -> tuple[np.ndarray, int]:
        """(seconds, 136) landmarks and how many seconds had no face (filled from a neighbour)."""
        found = [self.landmarks(g) for g in self.frames_per_second(path)]
        first = next((i for i, f in enumerate(found) if f is not None), None)
        if first is None:
            raise DataError(path, f"no face found in any of its {len(found)} sampled frames (one per second)")
        missing = sum(f is None for f in found)
        last = found[first]
        rows = []
        for f in found:
            last = f if f is not None else last
            rows.append(np.concatenate([last[:, 0], last[:, 1]]))
        return np.stack(rows), missing


def read_label_csv(path: Path | None) -> dict[str, dict[str, str]]:
    """A user's `index,label[,gender,fold]` CSV; label is depression/normal (or 1/0)."""
    from asym.data.validate import check_unique, read_table

    if path is None:
        return {}
    df = read_table(path, ["index", "label"])
    check_unique(df["index"].tolist(), path)
    out = {}
    for row_no, row in enumerate(df.to_dict("records"), start=2):
        if row["label"] and row["label"] not in LABEL_NAMES:
            raise DataError(path, f"line {row_no}: unknown label {row['label']!r}, expected depression/normal or 1/0")
        out[row["index"]] = {"label": LABEL_NAMES.get(row["label"], ""), "gender": row.get("gender", "") or "",
                             "fold": row.get("fold", "") or ""}
    return out


def extract(videos: list[Path], output: Path, cfg: Any, audio: list[Path] | None = None,
            labels: Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Write a D-Vlog release of `videos` to `output`; returns the per-vlog report (extract.json)."""
    import pandas as pd
    from tqdm import tqdm

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
    ex = Extractor(int(cfg.sample_rate), int(cfg.upsample))
    report: dict[str, Any] = {"landmark_model": LANDMARK_MODEL + " (dlib, iBUG 300-W: research use only)",
                              "feature_set": "eGeMAPSv02 LowLevelDescriptors, mean per second", "vlogs": {}}
    rows = []
    with atomic_dir(output) as tmp:
        for idx, video, sound in tqdm(list(zip(ids, videos, audio, strict=True)), desc="extract", unit="file",
                                      disable=None if progress is None else not progress):
            acoustic = ex.acoustic(sound or video)
            visual, missing = ex.visual(video)
            (tmp / idx).mkdir()
            np.save(tmp / idx / f"{idx}_acoustic.npy", acoustic)
            np.save(tmp / idx / f"{idx}_visual.npy", visual)
            meta = given.get(idx, {"label": "", "gender": "", "fold": ""})
            seconds = min(len(acoustic), len(visual))
            rows.append({"index": idx, "label": meta["label"], "duration": float(seconds), "gender": meta["gender"],
                         "fold": meta["fold"]})
            report["vlogs"][idx] = {"video": str(video), "audio": str(sound or video), "seconds": seconds,
                                    "acoustic_rows": len(acoustic), "visual_rows": len(visual),
                                    "seconds_without_face": missing}
            if missing:
                tqdm.write(f"asym extract: {video}: no face in {missing} of {len(visual)} second(s), "
                           "each filled with the nearest earlier second's landmarks")
        pd.DataFrame(rows, columns=dvlog.HEADER).to_csv(tmp / "labels.csv", index=False)
        write_json(tmp / "extract.json", report)
        for _ in dvlog.read_dvlog(tmp, labels_required=False):     # the release's own checks, before replacing
            pass
    return report
