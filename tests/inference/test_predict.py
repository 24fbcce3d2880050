"""`asym predict`: a tiny trained run rebuilt from its checkpoint alone gives back the very
probabilities it saved for its test fold, at the checkpoint's own threshold; `kfold` runs average
their partitions for new vlogs; wrong inputs are refused naming the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from asym import cli
from asym.data.dvlog import find_root
from asym.errors import ConfigError, DataError
from asym.inference.predict import (
    DISCLAIMER,
    check_compatible,
    load_run,
    read_predictions,
    run_dirs,
)
from asym.io import read_json, write_json
from asym.layout import Layout
from asym.train.job import train_job
from tests.project import ROOT, prepared, small_params

CPU = torch.device("cpu")


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


def _saved(run: Path, fold: str = "test") -> pd.DataFrame:
    return pd.read_parquet(run / "predictions.parquet").query(f"fold == '{fold}'").set_index("sample_id")


def test_predict_gives_back_the_test_probabilities_the_run_saved(trained, tmp_path):
    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    release = _release_of(p, "test", tmp_path / "test-fold")
    out = tmp_path / "predictions.csv"
    assert _predict(p, run, release, out) == 0
    assert out.read_text().splitlines()[0].startswith(f"# {DISCLAIMER}")
    got = read_predictions(out).set_index("id")
    saved = _saved(run)
    assert list(got.columns) == ["probability", "label", "threshold"]
    assert sorted(got.index) == sorted(saved.index)
    np.testing.assert_array_equal(got.loc[saved.index, "probability"].to_numpy(np.float32), saved["prob"].to_numpy())
    np.testing.assert_array_equal(got.loc[saved.index, "label"].to_numpy(), saved["pred"].to_numpy())
    meta = torch.load(run / "checkpoint.pt", weights_only=True)["meta"]
    assert (got["threshold"] == meta["threshold"][0]).all()


def test_the_checkpoint_alone_rebuilds_the_model_and_its_threshold_is_the_one_used(trained, tmp_path):
    """A copy of the run whose checkpoint holds another threshold than 0.5 and whose train.json holds a
    third: the checkpoint's is used, and deleting train.json changes nothing."""
    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    meta = ckpt["meta"]
    assert (meta["model"], meta["format"], meta["audio_dim"], meta["visual_dim"]) == ("mean-mlp", "dvlog", 25, 136)
    assert meta["recipe_name"] == "asym" and meta["model_config"] and len(meta["threshold"]) == 1
    saved = _saved(run)
    prob = saved["prob"].to_numpy().astype(np.float64)
    # a threshold at which some test vlog is labelled otherwise than at 0.5
    threshold = next(float(q) for q in np.quantile(prob, [0.25, 0.75, 0.1, 0.9]) if ((prob >= q) != (prob >= 0.5)).any())
    copy = tmp_path / "seed0"
    copy.mkdir()
    ckpt["meta"] = {**meta, "threshold": [threshold]}
    torch.save(ckpt, copy / "checkpoint.pt")
    write_json(copy / "train.json", {**read_json(run / "train.json"), "threshold": [1 - threshold / 2]})
    release = _release_of(p, "test", tmp_path / "test-fold")
    outputs = []
    for name in ("with-summary", "alone"):
        if name == "alone":
            (copy / "train.json").unlink()
        out = tmp_path / f"{name}.csv"
        assert _predict(p, copy, release, out) == 0
        got = read_predictions(out).set_index("id").loc[saved.index]
        np.testing.assert_array_equal(got["probability"].to_numpy(np.float32), saved["prob"].to_numpy())
        np.testing.assert_allclose(got["threshold"], threshold, rtol=1e-9)
        np.testing.assert_array_equal(got["label"].to_numpy(), (prob >= threshold).astype(np.int8))
        outputs.append(got)
    pd.testing.assert_frame_equal(*outputs)


def test_a_checkpoint_without_its_meta_block_is_refused_with_a_way_out(trained, tmp_path, capsys):
    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    old = tmp_path / "old"
    old.mkdir()
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    del ckpt["meta"]
    torch.save(ckpt, old / "checkpoint.pt")
    shutil.copy(run / "train.json", old / "train.json")
    assert _predict(p, old, _release_of(p, "test", tmp_path / "t"), tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert str(old / "checkpoint.pt") in err and "no `meta`" in err and "train this run again" in err


def test_several_seeds_are_averaged_with_their_spread(trained, tmp_path):
    p = trained
    lay = Layout.of(p)
    release = _release_of(p, "test", tmp_path / "test-fold")
    out = tmp_path / "mean.csv"
    assert _predict(p, Path(lay.run_dir("dvlog", "mean-mlp", 0)).parent, release, out) == 0
    got = read_predictions(out).set_index("id")
    per_seed = np.stack([_saved(Path(lay.run_dir("dvlog", "mean-mlp", s))).loc[got.index, "prob"].to_numpy(np.float64)
                         for s in (0, 1)])
    assert (got["n_seeds"] == 2).all()
    np.testing.assert_allclose(got["probability"], per_seed.mean(0), rtol=0, atol=1e-7)
    np.testing.assert_allclose(got["probability_std"], per_seed.std(0, ddof=1), rtol=0, atol=1e-7)
    assert got["probability_std"].gt(0).any()                  # two seeds really differ
    assert (got["label"] == (got["probability"] >= got["threshold"])).all()


def test_only_seed_folders_are_seeds_and_unlike_seeds_are_not_averaged(trained, tmp_path, capsys):
    p = trained
    model_dir = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0)).parent
    for odd in ("seed-old", "seedling", "seed1.bak"):     # complete-looking, but not seed<k>
        shutil.copytree(model_dir / "seed1", model_dir / odd, dirs_exist_ok=True)
    try:
        assert [d.name for d in run_dirs(model_dir)] == ["seed0", "seed1"]
    finally:
        for odd in ("seed-old", "seedling", "seed1.bak"):
            shutil.rmtree(model_dir / odd)
    runs = [load_run(model_dir / f"seed{s}", CPU) for s in (0, 1)]
    check_compatible(runs)
    for key, value in (("scale", "paper"), ("model_config", {**runs[1].meta["model_config"], "hidden": 1})):
        runs[1].meta = {**runs[1].meta, key: value}
        with pytest.raises(ConfigError, match=f"'{key}'"):
            check_compatible(runs)
        runs[1].meta = dict(runs[0].meta, seed=1)
    runs[1].meta = {**runs[1].meta, "entry_digest": "0" * 16}
    check_compatible(runs)                                      # another version of the entry: a warning
    assert "different versions of the registry entry" in capsys.readouterr().err


def test_a_width_mismatch_in_a_release_is_refused_naming_the_file(trained, tmp_path, capsys):
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


def test_a_parquet_table_is_predicted_and_checked_by_predict_itself(trained, tmp_path, capsys):
    """The dataset's own Parquet scores as the run saved; a table of other widths or of the other
    format meets predict's own checks (the readers never see a Parquet input)."""
    from asym.data.parquet import read_samples, write_samples
    from asym.data.sample import Sample

    p = trained
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    out = tmp_path / "table.csv"
    assert _predict(p, run, Path(Layout.of(p).parquet("dvlog")), out) == 0
    saved = _saved(run)
    got = read_predictions(out).set_index("id").loc[saved.index]
    # the same float32 network on the same frames: equal up to the last bit of float32, which the
    # order of a reduction may move (the batch a vlog is scored in differs)
    np.testing.assert_allclose(got["probability"].to_numpy(np.float32), saved["prob"].to_numpy(), rtol=2e-7, atol=0)
    table = read_samples(Path(Layout.of(p).parquet("dvlog")))
    narrow = [Sample(table.sample_id[i], -1, table.audio[i][:, :24], table.visual[i]) for i in range(3)]
    for name, meta, want in (("narrow", {"format": "dvlog"}, "24 audio + 136 visual features per frame, but the "
                              "model was trained on D-Vlog features (25 audio + 136 visual)"),
                             ("other", {"format": "lmvd"}, "a table of LMVD features, but the model was trained on D-Vlog")):
        path = tmp_path / f"{name}.parquet"
        write_samples(narrow, path, meta)
        assert _predict(p, run, path, tmp_path / f"{name}.csv") == 2
        err = capsys.readouterr().err
        assert str(path) in err and want in err
        assert not (tmp_path / f"{name}.csv").exists()


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


# --- an LMVD model trained under `kfold` ---------------------------------------------------------
K = 3


@pytest.fixture(scope="module")
def lmvd_kfold(tmp_path_factory):
    """mean-mlp on a small LMVD demo release (authors' layout), one model per outer fold."""
    from asym.config import load_params
    from asym.data.convert import convert
    from asym.data.parquet import read_samples
    from asym.data.splits import make_split
    from asym.data.synthetic import write_lmvd

    root = tmp_path_factory.mktemp("predict-lmvd")
    raw = small_params(["mean-mlp"], [0], 1, split={"kfold": {"k": K, "valid_fraction": 0.2}})
    raw["run"]["datasets"] = ["lmvd"]
    raw["datasets"]["lmvd"]["protocol"]["demo"] = "kfold"
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    lay = Layout.of(p)
    release = Path(lay.raw_dir("lmvd"))
    write_lmvd(release, {**p.synth.lmvd.model_dump(), "n_samples": 36, "n_subjects": 30, "seconds": [8, 12]}, seed=5)
    data = Path(lay.parquet("lmvd"))
    convert("lmvd", release, data, p.readers, p.resolve(p.dataset("lmvd").subjects))
    Path(lay.splits).mkdir(parents=True, exist_ok=True)
    make_split(read_samples(data), "kfold", p.split, data).to_csv(lay.split_csv("lmvd"), index=False)
    train_job(p, "lmvd", "mean-mlp", [0])
    return p, release, Path(lay.run_dir("lmvd", "mean-mlp", 0))


def test_a_kfold_lmvd_model_holds_each_partitions_test_scores_and_averages_them_for_new_vlogs(lmvd_kfold, tmp_path):
    from asym.config import LmvdReaderConfig
    from asym.inference.predict import read_release_table

    p, release, run = lmvd_kfold
    r = load_run(run, CPU)
    assert len(r.models) == K and r.meta["format"] == "lmvd" and (r.meta["audio_dim"], r.meta["visual_dim"]) == (128, 136)
    assert LmvdReaderConfig(**r.meta["readers"]) == p.readers.lmvd
    table = read_release_table(release, r.meta)          # the authors' layout, through the LMVD reader
    each = pd.DataFrame(r.per_partition(table, CPU).T, index=table.sample_id)
    saved = pd.read_parquet(run / "predictions.parquet").query("fold == 'test'")
    assert saved["partition"].nunique() == K
    position = {v: i for i, v in enumerate(table.sample_id)}
    for part, rows in saved.groupby("partition"):      # held out: partition p's own model, as saved ...
        fold = table.select(position[v] for v in rows["sample_id"])
        np.testing.assert_array_equal(r.per_partition(fold, CPU)[part], rows["prob"].to_numpy())
        # ... and within float32 rounding when other vlogs share its padded batches
        np.testing.assert_allclose(each.loc[rows["sample_id"], part], rows["prob"], rtol=0, atol=1e-6)
    out = tmp_path / "lmvd.csv"
    assert _predict(p, run, release, out) == 0
    got = read_predictions(out).set_index("id").loc[table.sample_id]
    np.testing.assert_allclose(got["probability"], each.mean(axis=1).to_numpy(np.float64), rtol=0, atol=1e-7)
    assert got["threshold"].iloc[0] == pytest.approx(np.mean(r.thresholds))
    spread = each.max(axis=1) - each.min(axis=1)
    assert (spread > 0).all()                          # the partitions' models really differ


def test_a_file_that_is_no_checkpoint_is_refused_naming_it_without_advice_to_unpickle(tmp_path):
    run = tmp_path / "runs" / "dvlog" / "mean-mlp" / "seed0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_text("not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "asym", "--params", str(ROOT / "params.yaml"), "predict", "--model",
                           str(run), "--input", str(tmp_path), "--output", str(tmp_path / "out.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"{run / 'checkpoint.pt'}: not a checkpoint written by `asym train`" in proc.stderr
    assert "weights_only` set to `False`" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.csv").exists()
