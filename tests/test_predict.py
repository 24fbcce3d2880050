"""`asym predict`: a tiny trained run rebuilt from its checkpoint alone gives back the very
probabilities it saved for its test fold; wrong inputs are refused naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from asym import cli
from asym.data.dvlog import find_root
from asym.layout import Layout
from asym.predict import DISCLAIMER, load_run, read_predictions
from asym.train import train_job
from tests.project import prepared


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    p = prepared(root, ["mean-mlp"], epochs=2)
    train_job(p, "dvlog", "mean-mlp", [0, 1])
    return p


def _release_of(p, fold: str, dest: Path) -> Path:
    """The fold's vlogs copied into a D-Vlog release of their own."""
    raw = find_root(Path(Layout.of(p).raw_dir("dvlog")))
    labels = pd.read_csv(raw / "labels.csv", dtype=str, keep_default_na=False)
    part = labels[labels["fold"] == fold]
    dest.mkdir(parents=True)
    part.to_csv(dest / "labels.csv", index=False)
    for idx in part["index"]:
        shutil.copytree(raw / idx, dest / idx)
    return dest


def _predict(p, model: Path, inp: Path, out: Path) -> int:
    return cli.main(["--params", str(p.path), "predict", "--model", str(model), "--input", str(inp),
                     "--output", str(out)])


def test_predict_gives_back_the_test_probabilities_the_run_saved(trained, tmp_path):
    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    release = _release_of(p, "test", tmp_path / "test-fold")
    out = tmp_path / "predictions.csv"
    assert _predict(p, run, release, out) == 0
    assert out.read_text().splitlines()[0].startswith(f"# {DISCLAIMER}")
    got = read_predictions(out).set_index("id")
    saved = pd.read_parquet(run / "predictions.parquet").query("fold == 'test'").set_index("sample_id")
    assert list(got.columns) == ["probability", "label", "threshold"]
    assert sorted(got.index) == sorted(saved.index)
    np.testing.assert_array_equal(got.loc[saved.index, "probability"].to_numpy(np.float32), saved["prob"].to_numpy())
    np.testing.assert_array_equal(got.loc[saved.index, "label"].to_numpy(), saved["pred"].to_numpy())
    assert (got["threshold"] == 0.5).all()


def test_the_checkpoint_describes_itself_and_loads_with_weights_only(trained):
    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    meta = torch.load(run / "checkpoint.pt", weights_only=True)["meta"]
    assert (meta["model"], meta["format"], meta["audio_dim"], meta["visual_dim"]) == ("mean-mlp", "dvlog", 25, 136)
    assert meta["threshold"] == [0.5] and meta["recipe_name"] == "asym" and meta["model_config"]
    # without train.json the checkpoint alone still rebuilds the model, with the same threshold
    alone = run.parent / "alone"
    alone.mkdir()
    shutil.copy(run / "checkpoint.pt", alone / "checkpoint.pt")
    r = load_run(alone, torch.device("cpu"))
    assert r.thresholds == [0.5] and len(r.models) == 1


def test_several_seeds_are_averaged_with_their_spread(trained, tmp_path):
    p = trained
    lay = Layout.of(p)
    release = _release_of(p, "test", tmp_path / "test-fold")
    out = tmp_path / "mean.csv"
    assert _predict(p, Path(lay.run_dir("dvlog", "mean-mlp", 0)).parent, release, out) == 0
    got = read_predictions(out).set_index("id")
    per_seed = np.stack([pd.read_parquet(Path(lay.run_dir("dvlog", "mean-mlp", s)) / "predictions.parquet")
                         .query("fold == 'test'").set_index("sample_id").loc[got.index, "prob"].to_numpy(np.float64)
                         for s in (0, 1)])
    assert (got["n_seeds"] == 2).all()
    np.testing.assert_allclose(got["probability"], per_seed.mean(0), rtol=0, atol=1e-7)
    np.testing.assert_allclose(got["probability_std"], per_seed.std(0, ddof=1), rtol=0, atol=1e-7)
    assert got["probability_std"].gt(0).any()                  # two seeds really differ
    assert (got["label"] == (got["probability"] >= 0.5)).all()


def test_a_width_mismatch_is_refused_naming_the_file(trained, tmp_path, capsys):
    p = trained
    release = _release_of(p, "test", tmp_path / "bad")
    idx = pd.read_csv(release / "labels.csv", dtype=str)["index"].iloc[0]
    bad = release / idx / f"{idx}_acoustic.npy"
    np.save(bad, np.load(bad)[:, :24])
    out = tmp_path / "out.csv"
    assert _predict(p, Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0)), release, out) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "24 features per frame, expected 25" in err
    assert not out.exists()


def test_another_datasets_format_is_refused(trained, tmp_path, capsys):
    from asym.data.synthetic import write_lmvd

    p = trained
    lmvd = tmp_path / "lmvd"
    write_lmvd(lmvd, {**p.synth.lmvd.model_dump(), "n_samples": 4, "n_subjects": 4, "seconds": [6, 8]}, seed=3,
               layout="derived")
    assert _predict(p, Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0)), lmvd, tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert str(lmvd) in err and "LMVD input" in err and "trained on D-Vlog features (25 audio + 136 visual)" in err


def test_unlabelled_vlogs_are_predicted_but_not_trained_on(trained, tmp_path):
    from asym.data.dvlog import read_dvlog
    from asym.errors import DataError

    p = trained
    release = _release_of(p, "test", tmp_path / "unlabelled")
    labels = pd.read_csv(release / "labels.csv", dtype=str, keep_default_na=False)
    labels[["label", "fold", "duration"]] = ""
    labels.to_csv(release / "labels.csv", index=False)
    out = tmp_path / "u.csv"
    assert _predict(p, Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0)), release, out) == 0
    assert len(read_predictions(out)) == len(labels)
    with pytest.raises(DataError, match="unknown label ''"):
        list(read_dvlog(release))
