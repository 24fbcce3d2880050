"""`asym extract` on real media: a few seconds of video made from a photograph with a face
(scikit-image's astronaut), moved a little every frame, with a synthesised voiced audio track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

av = pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

from asym import cli  # noqa: E402
from asym.data.dvlog import read_dvlog  # noqa: E402
from asym.errors import DataError  # noqa: E402
from asym.extract import extract  # noqa: E402
from asym.layout import Layout  # noqa: E402
from asym.predict import read_predictions  # noqa: E402

FPS, SIDE, SR = 10, 320, 16000
CROP = (40, 100)                     # (row, column) of the frame's corner in the 512 x 512 photograph


def voiced(seconds: float) -> np.ndarray:
    """Harmonic tones whose pitch glides (100-200 Hz) and whose loudness rises and falls, with pauses."""
    t = np.arange(int(SR * seconds)) / SR
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    envelope = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)) ** 2 * (np.sin(2 * np.pi * 2 * t) > -0.5)
    return (envelope * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def write_clip(path: Path, seconds: int, face: bool = True, audio: bool = True, blank_seconds: tuple[int, ...] = ()) -> Path:
    photo = skimage_data.astronaut()
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=SR) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(FPS * seconds):
            dy, dx = int(round(2 * np.cos(i / 4))), int(round(3 * np.sin(i / 3)))
            r, c = CROP[0] + dy, CROP[1] + dx
            frame = photo[r: r + SIDE, c: c + SIDE] if face and i // FPS not in blank_seconds else \
                np.full((SIDE, SIDE, 3), 128, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        out.mux(video.encode())
        if sound is not None:
            signal, step = voiced(seconds), 1024
            for k in range(0, len(signal), step):
                chunk = av.AudioFrame.from_ndarray(signal[None, k: k + step], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SR, k
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def params():
    from asym.config import load_params
    from tests.project import ROOT

    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, params):
    root = tmp_path_factory.mktemp("extract")
    clips = [write_clip(root / "vlog7.mp4", 4), write_clip(root / "gap.mp4", 4, blank_seconds=(2,))]
    out = root / "release"
    report = extract(clips, out, params.extract, progress=False)
    return out, report


def test_features_have_dvlogs_widths_one_row_per_second_and_pass_the_readers_checks(extracted):
    out, report = extracted
    a = np.load(out / "vlog7" / "vlog7_acoustic.npy")
    v = np.load(out / "vlog7" / "vlog7_visual.npy")
    assert a.shape[1] == 25 and v.shape[1] == 136
    assert 3 <= a.shape[0] <= 4 and v.shape[0] == 4                  # a 4 s clip: one row per second
    assert np.isfinite(a).all() and a.std(0).max() > 0               # loudness, pitch ... really vary
    samples = {s.sample_id: s for s in read_dvlog(out, labels_required=False)}
    assert set(samples) == {"vlog7", "gap"} and samples["vlog7"].label == -1
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    assert list(labels.columns) == ["index", "label", "duration", "gender", "fold"] and (labels["label"] == "").all()
    assert report["vlogs"]["vlog7"]["seconds_without_face"] == 0
    with pytest.raises(DataError, match="unknown label ''"):       # training needs labels
        list(read_dvlog(out))


def test_landmarks_are_dlibs_68_points_on_the_face(extracted):
    out, _ = extracted
    v = np.load(out / "vlog7" / "vlog7_visual.npy")
    pts = np.stack([v[:, :68], v[:, 68:]], axis=-1)                  # (seconds, 68, (x, y))
    # the astronaut's face lies in x 150-290, y 50-200 of the photograph
    x, y = pts[..., 0] + CROP[1], pts[..., 1] + CROP[0]
    assert x.min() > 150 and x.max() < 290 and y.min() > 50 and y.max() < 200
    jaw, brows, nose, eyes, mouth = pts[:, :17], pts[:, 17:27], pts[:, 27:36], pts[:, 36:48], pts[:, 48:]
    eye_y, chin_y = eyes[..., 1].mean(1), pts[:, 8, 1]
    assert (brows[..., 1].mean(1) < eye_y).all()                     # brows above the eyes
    assert (jaw[:, 6:11, 1].mean(1) > eye_y).all()                   # the lower jaw below them
    assert ((nose[..., 1].mean(1) > eye_y) & (nose[..., 1].mean(1) < chin_y)).all()
    assert (mouth[..., 1].mean(1) > pts[:, 33, 1]).all()             # the mouth below the nose
    assert (pts[:, 36:42, 0].mean(1) < pts[:, 42:48, 0].mean(1)).all()   # 36-41 is the eye on the left
    assert (pts[:, 0, 0] < pts[:, 16, 0]).all()                      # the jaw runs left to right
    # the frames move by a few pixels: so do the points, by about as much
    assert 0 < np.abs(np.diff(pts.mean(1), axis=0)).max() < 8


def test_a_second_without_a_face_is_carried_forward_and_counted(extracted):
    out, report = extracted
    v = np.load(out / "gap" / "gap_visual.npy")
    assert report["vlogs"]["gap"]["seconds_without_face"] == 1
    np.testing.assert_array_equal(v[2], v[1])
    assert not (v == 0).all(axis=1).any()


def test_an_extract_output_is_predicted_by_a_trained_model(extracted, tmp_path):
    from asym.train import train_job
    from tests.project import prepared

    out, _ = extracted
    p = prepared(tmp_path, ["mean-mlp"], epochs=1, n_samples=30)
    train_job(p, "dvlog", "mean-mlp", [0])
    preds = tmp_path / "predictions.csv"
    assert cli.main(["--params", str(p.path), "predict", "--model", Layout.of(p).run_dir("dvlog", "mean-mlp", 0),
                     "--input", str(out), "--output", str(preds)]) == 0
    got = read_predictions(preds)
    assert sorted(got["id"]) == ["gap", "vlog7"] and got["probability"].between(0, 1).all()


@pytest.mark.parametrize("case", ["no face", "no audio", "corrupt"])
def test_bad_media_is_refused_naming_the_file(case, params, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    if case == "corrupt":
        write_clip(clip, 2)
        clip.write_bytes(clip.read_bytes()[:200] + bytes(range(256)) * 8)
    else:
        write_clip(clip, 2, face=case != "no face", audio=case != "no audio")
    out = tmp_path / "release"
    assert cli.main(["--params", str(params.path), "extract", "--video", str(clip), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(clip) in err and {"no face": "no face found", "no audio": "no audio track",
                                 "corrupt": "corrupt"}[case] in err
    assert not out.exists()
