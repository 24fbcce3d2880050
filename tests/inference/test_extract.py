"""`asym extract` on real media: a few seconds of video made from a photograph with a face
(scikit-image's astronaut), moved a little every frame, with a synthesised voiced audio track
(in the video or beside it); and the frame timing, rotation and output-folder rules on their own."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

av = pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

from asym import cli  # noqa: E402
from asym.config import load_extract  # noqa: E402
from asym.data.dvlog import read_dvlog  # noqa: E402
from asym.errors import DataError  # noqa: E402
from asym.inference.extract import frames_per_second, landmark_row, nearest_per_second  # noqa: E402
from asym.inference.predict import read_predictions  # noqa: E402
from asym.layout import Layout  # noqa: E402

FPS, SIDE, SR = 10, 320, 16000
CROP = (40, 100)                     # (row, column) of the frame's corner in the 512 x 512 photograph


def voiced(seconds: float) -> np.ndarray:
    """Harmonic tones whose pitch glides (100-200 Hz) and whose loudness rises and falls, with pauses."""
    t = np.arange(int(SR * seconds)) / SR
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    envelope = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)) ** 2 * (np.sin(2 * np.pi * 2 * t) > -0.5)
    return (envelope * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def _mux_audio(out, sound, seconds: float) -> None:
    signal, step = voiced(seconds), 1024
    for k in range(0, len(signal), step):
        chunk = av.AudioFrame.from_ndarray(signal[None, k: k + step], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = SR, k
        out.mux(sound.encode(chunk))
    out.mux(sound.encode())


def write_clip(path: Path, seconds: int, face: bool = True, audio: bool = True, blank_seconds: tuple[int, ...] = (),
               rotation: int = 0) -> Path:
    """`rotation`: the frames are stored turned by it clockwise, with a display matrix that turns
    them back (as phones record portrait video): a player, and asym extract, show them upright."""
    photo = skimage_data.astronaut()
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=SR) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(FPS * seconds):
            dy, dx = int(round(2 * np.cos(i / 4))), int(round(3 * np.sin(i / 3)))
            r, c = CROP[0] + dy, CROP[1] + dx
            frame = photo[r: r + SIDE, c: c + SIDE] if face and i // FPS not in blank_seconds else \
                np.full((SIDE, SIDE, 3), 128, np.uint8)
            frame = np.rot90(frame, k=-(rotation // 90))
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        out.mux(video.encode())
        if sound is not None:
            _mux_audio(out, sound, seconds)
    return path


def write_audio(path: Path, seconds: float) -> Path:
    """A WAV file of the voiced signal (an audio track given beside a silent video)."""
    with av.open(str(path), "w") as out:
        _mux_audio(out, out.add_stream("pcm_s16le", rate=SR, layout="mono"), seconds)
    return path


@pytest.fixture(scope="module")
def params():
    from asym.config import load_params
    from tests.project import ROOT

    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def extract_only(tmp_path_factory, params):
    """A params file with nothing but params.yaml's `extract` block: all `asym extract` reads."""
    import yaml

    path = tmp_path_factory.mktemp("extract-params") / "params.yaml"
    path.write_text(yaml.safe_dump({"extract": load_extract(params.path).model_dump()}))
    return path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, extract_only):
    """Through the command line: `vlog7` with its own audio track; `gap`, stored rotated, with a
    faceless second and no audio track, its audio a 3 s WAV beside it (--audio); labels by CSV."""
    root = tmp_path_factory.mktemp("extract")
    clips = [write_clip(root / "vlog7.mp4", 4), write_clip(root / "gap.mp4", 4, audio=False, blank_seconds=(2,),
                                                            rotation=90)]
    sounds = [clips[0], write_audio(root / "gap.wav", 3)]
    labels = root / "labels.csv"
    labels.write_text("index,label\nvlog7,1\ngap,normal\n")
    out = root / "release"
    assert cli.main(["--params", str(extract_only), "extract", "--video", *map(str, clips), "--audio",
                     *map(str, sounds), "--labels", str(labels), "--output", str(out)]) == 0
    return out, json.loads((out / "extract.json").read_text()), clips


def test_features_have_dvlogs_widths_one_row_per_second_and_pass_the_readers_checks(extracted):
    out, report, _ = extracted
    a = np.load(out / "vlog7" / "vlog7_acoustic.npy")
    v = np.load(out / "vlog7" / "vlog7_visual.npy")
    assert a.shape[1] == 25 and v.shape[1] == 136
    assert 3 <= a.shape[0] <= 4 and v.shape[0] == 4                  # a 4 s clip: one row per second
    assert np.isfinite(a).all() and a.std(0).max() > 0               # loudness, pitch ... really vary
    samples = {s.sample_id: s for s in read_dvlog(out, labels_required=False)}
    assert set(samples) == {"vlog7", "gap"} and (samples["vlog7"].label, samples["gap"].label) == (1, 0)
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False).set_index("index")
    assert list(labels.columns) == ["label", "duration", "gender", "fold"]
    assert dict(labels["label"]) == {"vlog7": "depression", "gap": "normal"}      # 1 / normal as D-Vlog spells them
    assert report["vlogs"]["vlog7"]["seconds_without_face"] == 0 and report["landmark_order"] == "xy_blocks"
    with pytest.raises(DataError, match="unknown fold ''"):        # training needs folds too
        list(read_dvlog(out))


def test_a_separate_audio_file_gives_the_acoustic_rows(extracted):
    out, report, clips = extracted
    gap = report["vlogs"]["gap"]
    assert gap["audio"].endswith("gap.wav") and gap["video"] == str(clips[1])
    assert gap["acoustic_rows"] == 3 and gap["visual_rows"] == 4 and gap["seconds"] == 3   # the WAV lasts 3 s
    a = np.load(out / "gap" / "gap_acoustic.npy")
    assert a.shape == (3, 25) and a.std(0).max() > 0


def test_landmarks_are_dlibs_68_points_on_the_face(extracted):
    out, _, _ = extracted
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
    out, report, _ = extracted
    v = np.load(out / "gap" / "gap_visual.npy")
    assert report["vlogs"]["gap"]["seconds_without_face"] == 1
    np.testing.assert_array_equal(v[2], v[1])
    assert not (v == 0).all(axis=1).any()


def test_a_rotated_video_is_read_upright(extracted):
    """`gap` is stored a quarter turn clockwise with a display matrix undoing it: its faces are
    found, and where they are, as in the upright `vlog7` (the same moves, frame by frame)."""
    out, report, _ = extracted
    assert report["vlogs"]["gap"]["rotation_deg"] == 90 and report["vlogs"]["vlog7"]["rotation_deg"] == 0
    gap, upright = np.load(out / "gap" / "gap_visual.npy"), np.load(out / "vlog7" / "vlog7_visual.npy")
    for s in (0, 1, 3):                                                 # second 2 has no face
        assert np.abs(gap[s] - upright[s]).max() < 4, s


def write_timed(path: Path, pts: list[int], rotation: int = 0, side: int = 32) -> Path:
    """Frames at the given presentation times (in 1/FPS s, from a non-zero start), frame k grey
    level 8k, with a white band along its stored top edge."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width = video.height = side
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, FPS)
        if rotation:
            video.set_display_rotation(rotation)
        for k, t in enumerate(pts):
            img = np.full((side, side, 3), 8 * k, np.uint8)
            img[: side // 4] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        out.mux(video.encode())
    return path


def test_each_second_takes_its_nearest_frame_from_the_streams_start(tmp_path):
    # from its start (0.3 s): frames at 0, .1 ... .5, a gap, 1.7 ... 2.3, a gap, 3.2 s
    pts = [3, 4, 5, 6, 7, 8, 20, 21, 22, 23, 24, 25, 26, 35]
    times = [Fraction(t - pts[0], FPS) for t in pts]
    assert [k for _, k in nearest_per_second((t, k) for k, t in enumerate(times))] == [0, 5, 9, 13]
    assert [s for s, _ in nearest_per_second([(0.0, "a"), (0.5, "b"), (1.5, "c")])] == [0, 1]
    assert [k for _, k in nearest_per_second([(0.0, "a"), (0.5, "b"), (1.5, "c")])] == ["a", "b"]   # a tie: the earlier
    frames, rotation = frames_per_second(write_timed(tmp_path / "gaps.mp4", pts, rotation=90))
    assert rotation == 90 and len(frames) == 4
    band = slice(0, 8)
    levels = [int(round(float(np.median(f[:, 16:])) / 8)) for f in frames]
    assert levels == [0, 5, 9, 13]
    # turned upright: a counter-clockwise quarter turn takes the stored top edge to the left
    assert all(f[:, band].mean() > 200 > f[band, 16:].mean() for f in frames)


def test_landmark_columns_follow_the_configured_order():
    points = np.stack([np.arange(68.0), 100 + np.arange(68.0)], axis=1)       # x_i = i, y_i = 100 + i
    blocks, interleaved = landmark_row(points, "xy_blocks"), landmark_row(points, "interleaved")
    np.testing.assert_array_equal(blocks[:68], points[:, 0])
    np.testing.assert_array_equal(blocks[68:], points[:, 1])
    np.testing.assert_array_equal(interleaved[:4], [0, 100, 1, 101])


def test_an_extract_output_is_predicted_by_a_trained_model(extracted, tmp_path):
    from asym.train.job import train_job
    from tests.project import prepared

    out, _, _ = extracted
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


@pytest.mark.parametrize("case", ["audio count", "unknown index", "duplicate index", "unknown label", "unknown fold"])
def test_bad_arguments_and_label_csvs_are_refused_before_any_extraction(case, extracted, extract_only, tmp_path,
                                                                        capsys):
    _, _, clips = extracted
    labels = tmp_path / "labels.csv"
    labels.write_text({"unknown index": "index,label\nvlog7,1\nvlog8,0\n",
                       "duplicate index": "index,label\nvlog7,1\nvlog7,0\n",
                       "unknown label": "index,label\nvlog7,sad\n",
                       "unknown fold": "index,label,fold\nvlog7,1,dev\n"}.get(case, "index,label\n"))
    out = tmp_path / "release"
    args = ["--params", str(extract_only), "extract", "--video", *map(str, clips), "--labels", str(labels),
            "--output", str(out)]
    if case == "audio count":
        args += ["--audio", str(clips[0])]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert {"audio count": "1 audio file(s) for 2 video(s)", "unknown index": "match no input file: ['vlog8']",
            "duplicate index": "duplicate index 'vlog7'", "unknown label": "unknown label 'sad'",
            "unknown fold": "unknown fold 'dev'"}[case] in err
    assert case == "audio count" or str(labels) in err
    assert not out.exists()


def test_an_existing_folder_is_never_replaced_unless_it_is_an_earlier_output(extracted, extract_only, tmp_path,
                                                                             capsys):
    out, _, clips = extracted

    def run(target: Path, video: Path) -> int:
        return cli.main(["--params", str(extract_only), "extract", "--video", str(video), "--output", str(target)])

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert run(mine, clips[0]) == 2
    assert "not an earlier `asym extract` output" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    earlier = tmp_path / "earlier"
    shutil.copytree(out, earlier)
    (earlier / "vlog7" / "notes.txt").write_text("mine too")
    assert run(earlier, clips[0]) == 2
    assert "['vlog7'] in it were not written by `asym extract`" in capsys.readouterr().err
    (earlier / "vlog7" / "notes.txt").unlink()
    before = sorted(p.relative_to(earlier) for p in earlier.rglob("*"))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(clips[0].read_bytes()[:200] + bytes(range(256)) * 8)
    assert run(earlier, corrupt) == 2                                  # a failed run leaves it as it was
    assert sorted(p.relative_to(earlier) for p in earlier.rglob("*")) == before
    short = write_clip(tmp_path / "short.mp4", 2)
    assert run(earlier, short) == 0                                    # an earlier output is replaced
    assert sorted(p.name for p in earlier.iterdir()) == ["extract.json", "labels.csv", "short"]
