"""The demo datasets are in the exact on-disk layout of each release, and each mechanism puts
the label where it says: in the marginals, only in the audio-visual coupling, or nowhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from asym.data.dvlog import read_dvlog
from asym.data.lmvd import read_lmvd
from asym.data.synthetic import MOUTH, OPENFACE_COLUMNS, write_dvlog, write_lmvd
from asym.errors import ConfigError
from asym.report.stats import holm


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


# --- mechanisms --------------------------------------------------------------------------------------
def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


# Written by the generator as it was before mechanisms existed, from `small_synth` and these
# seeds; `marginal` must keep writing exactly these bytes (NumPy's streams are stable across its
# releases; if an upgrade ever changed them, regenerate with the old generator and compare).
BEFORE_MECHANISMS = {
    "dvlog": "9d71e53d57d4ff31c3e5e6f30a3646da72bfeef595fe7b9b3b60c0f40cb8518c",
    "lmvd-authors": "9b68e7a44b869b08aae698d04f3a5132dcaa8477cca5c87b142b06dc3a094d8b",
    "lmvd-derived": "fc9871c3e9638cb1cabab0f77e72c544d96b705d981b4873826624d3fd8b9917",
}


def test_marginal_is_the_default_and_writes_what_it_wrote_before_mechanisms(tmp_path, small_synth, params):
    assert params.synth.dvlog.mechanism == "marginal" and params.synth.lmvd.mechanism == "marginal"
    for name, cfg in (("given", small_synth), ("unset", {k: {**v, "mechanism": None} for k, v in small_synth.items()})):
        if name == "unset":
            for v in cfg.values():
                del v["mechanism"]
        write_dvlog(tmp_path / name / "d", cfg["dvlog"], seed=1)
        write_lmvd(tmp_path / name / "a", cfg["lmvd"], seed=2, layout="authors")
        write_lmvd(tmp_path / name / "r", cfg["lmvd"], seed=2, layout="derived")
        assert _digest(tmp_path / name / "d") == BEFORE_MECHANISMS["dvlog"]
        assert _digest(tmp_path / name / "a") == BEFORE_MECHANISMS["lmvd-authors"]
        assert _digest(tmp_path / name / "r") == BEFORE_MECHANISMS["lmvd-derived"]


def _per_vlog(samples: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels, and per modality one row per vlog of marginal statistics of each feature: mean,
    std, 10/50/90% quantiles, lag-1 autocorrelation, and one frame's value (the middle one)."""
    def stats(x: np.ndarray) -> np.ndarray:
        centred = x - x.mean(0)
        lag1 = (centred[1:] * centred[:-1]).mean(0) / np.maximum(centred.var(0), 1e-12)
        return np.concatenate([x.mean(0), x.std(0), *np.quantile(x, [0.1, 0.5, 0.9], axis=0), lag1,
                               x[len(x) // 2]])
    y = np.array([s.label for s in samples])
    return y, {"audio": np.stack([stats(s.audio.astype(float)) for s in samples]),
               "visual": np.stack([stats(s.visual.astype(float)) for s in samples])}


def _class_ks(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Holm-adjusted p of a two-sample KS test between the classes, per column."""
    return np.array(holm([ks_2samp(col[y == 1], col[y == 0]).pvalue for col in table.T]))


PROSODY = {"dvlog": 6, "lmvd": 16}        # the acoustic dimensions the vocal energy drives


def _coupling(samples: list, lag: int, dataset: str) -> np.ndarray:
    """Per vlog: correlation of the vocal energy with the mouth's vertical position (relative to
    the rest of the face) `lag` frames later."""
    out = []
    for s in samples:
        energy = s.audio[:, : PROSODY[dataset]].mean(1)
        ys = s.visual[:, 68:]
        rest = np.setdiff1d(np.arange(68), MOUTH)
        mouth = ys[:, MOUTH].mean(1) - ys[:, rest].mean(1)
        out.append(np.corrcoef(energy[: len(energy) - lag], mouth[lag:])[0, 1])
    return np.array(out)


@pytest.fixture(scope="module")
def mechanisms(tmp_path_factory, params):
    """The same D-Vlog and LMVD (derived layout) configuration under each mechanism, read back by
    the release readers."""
    root = tmp_path_factory.mktemp("mechanisms")
    out = {}
    for mechanism in ("marginal", "synchrony", "null"):
        dv = {**params.synth.dvlog.model_dump(), "n_samples": 240, "seconds": [24, 40], "mechanism": mechanism}
        lm = {**params.synth.lmvd.model_dump(), "n_samples": 240, "n_subjects": 200, "seconds": [24, 40],
              "mechanism": mechanism}
        write_dvlog(root / mechanism / "dvlog", dv, seed=21)
        write_lmvd(root / mechanism / "lmvd", lm, seed=22, layout="derived")
        out[mechanism] = {"dvlog": list(read_dvlog(root / mechanism / "dvlog")),
                          "lmvd": list(read_lmvd(root / mechanism / "lmvd", params.readers.lmvd))}
    return out


@pytest.mark.parametrize("dataset", ["dvlog", "lmvd"])
def test_under_synchrony_each_modality_alone_is_the_same_in_both_classes(mechanisms, params, dataset):
    samples = mechanisms["synchrony"][dataset]
    y, tables = _per_vlog(samples)
    assert 0.3 < y.mean() < 0.7
    for modality, table in tables.items():
        p = _class_ks(y, table)
        assert p.min() > 0.05, f"{dataset} {modality}: a marginal statistic differs between classes (p {p.min():.2g})"
    # ... while the coupling between them differs strongly
    lag = params.synth.dvlog.synchrony.lag
    corr = _coupling(samples, lag, dataset)
    assert ks_2samp(corr[y == 0], corr[y == 1]).pvalue < 1e-10
    assert corr[y == 0].mean() - corr[y == 1].mean() > 0.4
    # the same check does see a marginal cue: under `marginal` the statistics differ
    y_m, tables_m = _per_vlog(mechanisms["marginal"][dataset])
    assert min(_class_ks(y_m, t).min() for t in tables_m.values()) < 1e-3


@pytest.mark.parametrize("dataset", ["dvlog", "lmvd"])
def test_under_null_the_labels_are_independent_of_the_features(mechanisms, params, dataset):
    y, tables = _per_vlog(mechanisms["null"][dataset])
    y_m, tables_m = _per_vlog(mechanisms["marginal"][dataset])
    assert np.array_equal(y, y_m)                       # the same labels (and folds) as under `marginal`
    for modality, table in tables.items():
        assert _class_ks(y, table).min() > 0.05, f"{dataset} {modality}"
    # the features still carry the planted cue, for a hidden labelling: their spread across vlogs
    # is the marginal mechanism's, not that of a dataset without any cue
    spread = {m: np.std(t["audio"], axis=0).mean() for m, t in (("null", tables), ("marginal", tables_m))}
    assert spread["null"] == pytest.approx(spread["marginal"], rel=0.2)
    corr = _coupling(mechanisms["null"][dataset], params.synth.dvlog.synchrony.lag, dataset)
    assert ks_2samp(corr[y == 0], corr[y == 1]).pvalue > 0.05


def test_every_mechanism_keeps_both_release_layouts(tmp_path, small_synth, params):
    for mechanism in ("synchrony", "null"):
        dv = {**small_synth["dvlog"], "mechanism": mechanism}
        lm = {**small_synth["lmvd"], "mechanism": mechanism}
        write_dvlog(tmp_path / mechanism / "d", dv, seed=1)
        write_lmvd(tmp_path / mechanism / "a", lm, seed=2, layout="authors")
        write_lmvd(tmp_path / mechanism / "r", lm, seed=2, layout="derived")
        samples = list(read_dvlog(tmp_path / mechanism / "d"))
        assert len(samples) == dv["n_samples"] and samples[0].audio.shape[1] == 25 and samples[0].visual.shape[1] == 136
        for layout in ("a", "r"):
            samples = list(read_lmvd(tmp_path / mechanism / layout, params.readers.lmvd))
            assert len(samples) == lm["n_samples"] and samples[0].audio.shape[1] == 128
            assert samples[0].visual.shape[1] == 136
        video = pd.read_csv(next((tmp_path / mechanism / "a" / "Video_feature").iterdir()), skipinitialspace=True)
        assert list(video.columns) == OPENFACE_COLUMNS


def test_an_unknown_mechanism_is_refused(tmp_path, small_synth, params):
    with pytest.raises(ConfigError, match="unknown synth mechanism 'joint'"):
        write_dvlog(tmp_path / "d", {**small_synth["dvlog"], "mechanism": "joint"}, seed=1)
    with pytest.raises(ConfigError, match="needs its `synchrony` block"):
        write_lmvd(tmp_path / "l", {**small_synth["lmvd"], "mechanism": "synchrony", "synchrony": None}, seed=1)
    import yaml

    from asym.config import load_params
    from tests.conftest import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["synth"]["dvlog"]["mechanism"] = "joint"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="synth.dvlog.mechanism"):
        load_params(tmp_path / "params.yaml")
