"""Training: same seed on the CPU gives identical metrics; selection uses validation only."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from asym.config import load_params
from asym.data.convert import convert
from asym.data.parquet import read_samples
from asym.data.splits import make_split
from asym.data.synthetic import write_dvlog
from asym.train import train_run
from tests.project import make_project


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("train"), ["mean-mlp", "asym"], [0], epochs=3)
    p = load_params(root / "params.yaml")
    write_dvlog(root / "raw", {**p.raw["synth"]["dvlog"], "n_samples": 60, "seconds": [12, 24]}, seed=4)
    data = root / "dvlog.parquet"
    convert("dvlog", root / "raw", data, p.raw["readers"])
    split = make_split(read_samples(data), p.dataset("dvlog"), p.raw["split"], data)
    split.to_csv(root / "split.csv", index=False)
    return p, data, root / "split.csv", root


@pytest.mark.parametrize("model", ["mean-mlp", "asym"])
def test_same_seed_gives_identical_results(prepared, model):
    p, data, split, root = prepared
    runs = [train_run(p, "dvlog", model, 0, data, split, root / f"run{k}-{model}") for k in range(2)]
    preds = [pd.read_parquet(root / f"run{k}-{model}" / "predictions.parquet") for k in range(2)]
    pd.testing.assert_frame_equal(preds[0], preds[1])
    assert runs[0]["best_epoch"] == runs[1]["best_epoch"]
    hist = [pd.read_csv(root / f"run{k}-{model}" / "history.csv").drop(columns=["epoch_time_s"]) for k in range(2)]
    pd.testing.assert_frame_equal(hist[0], hist[1])


def test_outputs_and_checkpoint_selection(prepared):
    import torch

    p, data, split, root = prepared
    out = root / "sel"
    s = train_run(p, "dvlog", "mean-mlp", 1, data, split, out)
    hist = pd.read_csv(out / "history.csv")
    assert s["best_epoch"] == int(hist.loc[hist["valid_selection"].idxmax(), "epoch"])   # first best on validation
    preds = pd.read_parquet(out / "predictions.parquet")
    assert set(preds["fold"]) == {"valid", "test"} and preds["prob"].between(0, 1).all()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert int(ckpt["best_epoch"]) == s["best_epoch"]
    assert json.loads((out / "train.json").read_text())["mlflow_run_id"] == s["mlflow_run_id"]
    assert not list(out.glob(".*.tmp"))
