"""The demo datasets are in the exact on-disk layout of each release."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asym.data.synthetic import OPENFACE_COLUMNS, write_dvlog, write_lmvd


def test_dvlog_layout_matches_the_release(dvlog_dir, small_synth):
    root = dvlog_dir / "dvlog-dataset"
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    assert list(labels.columns) == ["index", "label", "duration", "gender", "fold"]
    assert set(labels["label"]) == {"depression", "normal"}
    assert set(labels["gender"]) <= {"m", "f"}
    assert set(labels["fold"]) == {"train", "valid", "test"}
    assert len(labels) == small_synth["dvlog"]["n_samples"]
    diffs = []
    for idx in labels["index"]:
        a = np.load(root / idx / f"{idx}_acoustic.npy", allow_pickle=False)
        v = np.load(root / idx / f"{idx}_visual.npy", allow_pickle=False)
        assert a.dtype == np.float64 and v.dtype == np.float64
        assert a.shape[1] == 25 and v.shape[1] == 136
        diffs.append(a.shape[0] - v.shape[0])
    assert any(diffs) and max(map(abs, diffs)) <= small_synth["dvlog"]["length_jitter"]
    assert sorted(p.name for p in root.iterdir()) == sorted([*labels["index"], "labels.csv"])


def test_dvlog_class_balance_and_folds_follow_the_release(tmp_path, params):
    write_dvlog(tmp_path / "d", {**params.synth.dvlog.model_dump(), "n_samples": 300}, seed=3)
    labels = pd.read_csv(tmp_path / "d" / "dvlog-dataset" / "labels.csv", dtype=str)
    assert abs((labels["label"] == "depression").mean() - 555 / 961) < 0.02
    fold_share = labels["fold"].value_counts(normalize=True)
    assert abs(fold_share["train"] - 647 / 961) < 0.03 and abs(fold_share["test"] - 212 / 961) < 0.03


def test_lmvd_authors_layout(lmvd_dir, small_synth):
    ids = sorted(p.name[: -len("_Depression.csv")] for p in (lmvd_dir / "label").iterdir())
    assert ids[0] == "0001" and all(len(i) == 4 for i in ids)
    assert (lmvd_dir / "label" / f"{ids[0]}_Depression.csv").read_text().strip() in {"0", "1"}
    audio = np.load(lmvd_dir / "Audio_feature" / f"{ids[0]}.npy", allow_pickle=False)
    assert audio.dtype == np.float64 and audio.shape[1] == 128
    video = pd.read_csv(lmvd_dir / "Video_feature" / f"{ids[0]}.csv", skipinitialspace=True)
    assert list(video.columns) == OPENFACE_COLUMNS
    assert video["frame"].iloc[0] == 1 and len(video) > 25 * audio.shape[0] // 2   # per video frame, 30 fps
    assert {"x_0", "y_67", "AU45_c", "pose_Rz", "gaze_angle_y"} <= set(video.columns)


def test_lmvd_derived_layout(tmp_path, small_synth):
    write_lmvd(tmp_path / "l", small_synth["lmvd"], seed=2, layout="derived")
    labels = pd.read_csv(tmp_path / "l" / "labels.csv", dtype=str, keep_default_na=False)
    assert list(labels.columns) == ["index", "label", "fold"]
    idx = labels["index"].iloc[0]
    assert idx.startswith("0")
    assert np.load(tmp_path / "l" / "visual" / f"{idx}_visual.npy").shape[1] == 136
    assert np.load(tmp_path / "l" / "audio" / f"{idx}.npy").shape[1] == 128


def test_generation_is_deterministic(tmp_path, small_synth):
    for k in ("a", "b"):
        write_dvlog(tmp_path / k, small_synth["dvlog"], seed=11)
    a = np.load(tmp_path / "a" / "dvlog-dataset" / "5" / "5_visual.npy")
    b = np.load(tmp_path / "b" / "dvlog-dataset" / "5" / "5_visual.npy")
    assert np.array_equal(a, b)
    assert (tmp_path / "a" / "dvlog-dataset" / "labels.csv").read_text() == (tmp_path / "b" / "dvlog-dataset" / "labels.csv").read_text()
