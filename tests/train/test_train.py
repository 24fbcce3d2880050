"""Honesty of training: selection on validation only, checkpoints that are the chosen epoch,
train-fold statistics, the recipe in the loop, and determinism across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

import asym.train.job as train_mod
import asym.train.loop as loop_mod
from asym.config import load_params
from asym.data.convert import convert
from asym.data.parquet import read_samples
from asym.data.splits import load_partitions, make_split
from asym.data.synthetic import write_dvlog
from asym.grid import Run
from asym.io import read_json
from asym.layout import TRAIN_FILES, Layout
from asym.models import factory, registry
from asym.models.registry import Entry
from asym.train.feed import TrainFeed, offline_crops, predict, random_window
from asym.train.normalize import Normalizer
from asym.train.observe import TrainObserver
from asym.train.optimization import build_optimizer
from tests.project import ROOT, small_params

LONG = 18   # frames: EpochFlip's threshold


class EpochFlip(nn.Module):
    """A model whose validation and test behaviour differ by construction: after an odd number
    of epochs it calls long vlogs depressed, after an even number short ones. The epoch count is
    a buffer, so it is part of the weights a checkpoint saves."""

    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        long = (lengths > LONG).float()
        depressed = long if int(self.epoch) % 2 == 1 else 1 - long
        return 8 * (2 * depressed - 1) + 0 * self.bias


def _project(root: Path, models: list[str], epochs: int, **sections) -> object:
    raw = small_params(models, [0], epochs, **sections)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    lay = Layout.of(p)
    write_dvlog(Path(lay.raw_dir("dvlog")), {**p.synth.dvlog.model_dump(), "n_samples": 60, "seconds": [12, 24]}, seed=4)
    convert("dvlog", Path(lay.raw_dir("dvlog")), Path(lay.parquet("dvlog")), p.readers)
    Path(lay.splits).mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    p = _project(tmp_path_factory.mktemp("official"), ["mean-mlp", "asym", "depmamba"], epochs=3)
    lay = Layout.of(p)
    data = Path(lay.parquet("dvlog"))
    make_split(read_samples(data), "official", p.split, data).to_csv(lay.split_csv("dvlog"), index=False)
    return p


@pytest.fixture(scope="module")
def flip_project(tmp_path_factory):
    """Valid vlogs are depressed exactly when long, test vlogs exactly when short: selecting on
    validation picks an odd epoch, selecting on test would pick an even one."""
    p = _project(tmp_path_factory.mktemp("flip"), ["mean-mlp"], epochs=4)
    lay = Layout.of(p)
    table = read_samples(Path(lay.parquet("dvlog")))
    long = table.n_frames > LONG
    valid_like = (table.label == 1) == long
    folds, n_valid, n_test = [], 0, 0
    for v in valid_like:
        if v and n_valid < 12:
            folds.append("valid")
            n_valid += 1
        elif not v and n_test < 12:
            folds.append("test")
            n_test += 1
        else:
            folds.append("train")
    pd.DataFrame({"sample_id": table.sample_id, "subject_id": table.subject_id, "label": table.label,
                  "partition": 0, "fold": folds}).to_csv(lay.split_csv("dvlog"), index=False)
    return p


@pytest.fixture
def epoch_flip(monkeypatch):
    monkeypatch.setitem(registry._ENTRIES, "epoch-flip",
                        Entry("epoch-flip", "tests.train.test_train:EpochFlip", "mean_mlp", "baseline", "test model"))
    original = loop_mod.train_epoch

    def counting(model, *args, **kwargs):
        loss = original(model, *args, **kwargs)
        model.epoch += 1
        return loss
    monkeypatch.setattr(loop_mod, "train_epoch", counting)


def _score_on(p, fold: str, state: dict, norm) -> float:
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    model = EpochFlip(0, 0, 1, 0.0)
    model.load_state_dict(state)
    probs = predict(model, parts[0][fold], norm, p.train.eval_batch_size, torch.device("cpu"))
    return loop_mod.validation_score(parts[0][fold], probs, "mean4")[0]


def test_the_checkpoint_is_chosen_on_validation_never_on_test(flip_project, epoch_flip):
    p = flip_project
    [summary] = train_mod.train_job(p, "dvlog", "epoch-flip", [0])
    out = Path(Layout.of(p).run_dir("dvlog", "epoch-flip", 0))
    state, norm, best_epoch = train_mod.load_checkpoint(out / "checkpoint.pt")
    assert summary["best_epoch"] == [best_epoch] == [1]
    hist = pd.read_csv(out / "history.csv")
    # the saved weights are the chosen epoch's: recomputing the selection score gives the best in the history
    recomputed = _score_on(p, "valid", state, norm)
    assert recomputed == pytest.approx(hist["valid_selection"].max())
    assert (recomputed >= hist["valid_selection"] - 1e-12).all()
    # selecting on test would have chosen another epoch
    test_scores = {e: _score_on(p, "test", {**state, "epoch": torch.tensor(e)}, norm) for e in hist["epoch"]}
    assert max(test_scores, key=test_scores.get) != best_epoch


@pytest.mark.parametrize("model", ["mean-mlp", "asym"])
def test_reloaded_checkpoint_reproduces_the_best_validation_score(official, model):
    p = official
    train_mod.train_job(p, "dvlog", model, [0])
    out = Path(Layout.of(p).run_dir("dvlog", model, 0))
    state, norm, best_epoch = train_mod.load_checkpoint(out / "checkpoint.pt")
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    net = factory.from_params(model, p, "dvlog", widths=(25, 136))
    net.load_state_dict(state)
    probs = predict(net, parts[0]["valid"], norm, p.train.eval_batch_size, torch.device("cpu"))
    score, _ = loop_mod.validation_score(parts[0]["valid"], probs, "mean4")
    hist = pd.read_csv(out / "history.csv")
    assert score == pytest.approx(hist["valid_selection"].max(), abs=1e-12)
    assert best_epoch == int(hist.loc[hist["valid_selection"].idxmax(), "epoch"])   # first best
    preds = pd.read_parquet(out / "predictions.parquet")
    assert set(preds["fold"]) == {"valid", "test"} and preds["prob"].between(0, 1).all()
    assert {"gender", "n_frames", "subject_id"} <= set(preds.columns)
    assert not list(out.glob(".*.tmp"))
    # train.json: the checkpoint's meta, with the trainable parameters as the factory counts them
    summary, meta = read_json(out / "train.json"), torch.load(out / "checkpoint.pt", weights_only=True)["meta"]
    assert {k: summary[k] for k in meta} == meta and summary["n_params"] == factory.trainable_count(net)


def test_the_normaliser_sees_training_vlogs_only(official, monkeypatch, tmp_path):
    p = official
    seen: list[list[str]] = []
    fit = Normalizer.fit.__func__

    def spy(cls, table):
        seen.append(list(table.sample_id))
        return fit(cls, table)
    monkeypatch.setattr(Normalizer, "fit", classmethod(spy))
    monkeypatch.setattr(train_mod, "Layout", _elsewhere(tmp_path))
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    split = pd.read_csv(Layout.of(p).split_csv("dvlog"), dtype={"sample_id": str})
    assert seen == [split.loc[split["fold"] == "train", "sample_id"].tolist()]


def _elsewhere(tmp_path: Path):
    """A Layout whose run folders are fresh, so a test trains instead of finding a complete seed."""
    class Elsewhere(Layout):
        @classmethod
        def of(cls, params, absolute=True):
            lay = Layout.of(params, absolute)
            return Layout(**{**lay.__dict__, "runs": str(tmp_path / "runs")})
    return Elsewhere


def test_kfold_selects_inside_the_training_folds(tmp_path, monkeypatch):
    p = _project(tmp_path, ["mean-mlp"], epochs=2, split={"kfold": {"k": 3, "valid_fraction": 0.2}})
    lay = Layout.of(p)
    data = Path(lay.parquet("dvlog"))
    split = make_split(read_samples(data), "kfold", p.split, data)
    split.to_csv(lay.split_csv("dvlog"), index=False)
    seen: list[set[str]] = []
    original = loop_mod.validation_score

    def spy(valid, *args, **kwargs):
        seen.append(set(valid.sample_id))
        return original(valid, *args, **kwargs)
    monkeypatch.setattr(loop_mod, "validation_score", spy)
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    assert len(seen) == 3 * 2                                   # every partition, every epoch
    split["sample_id"] = split["sample_id"].astype(str)
    for q in range(3):
        part = split[split["partition"] == q]
        valid, test = set(part.loc[part["fold"] == "valid", "sample_id"]), set(part.loc[part["fold"] == "test", "sample_id"])
        for ids in seen[2 * q: 2 * q + 2]:
            assert ids == valid and not ids & test
    tests = [set(split[(split["partition"] == q) & (split["fold"] == "test")]["sample_id"]) for q in range(3)]
    assert set.union(*tests) == set(split["sample_id"]) and sum(map(len, tests)) == len(set(split["sample_id"]))
    preds = pd.read_parquet(Path(lay.run_dir("dvlog", "mean-mlp", 0)) / "predictions.parquet")
    assert sorted(preds.loc[preds["fold"] == "test", "sample_id"]) == sorted(set(split["sample_id"]))


def test_depmamba_trains_with_its_official_recipe(official, monkeypatch, tmp_path):
    p = official
    seen: dict[str, object] = {"clipped": 0, "fit": 0}
    build_opt = build_optimizer

    def spy_opt(model, recipe, dataset):
        seen["optimizer"] = build_opt(model, recipe, dataset)
        return seen["optimizer"]
    monkeypatch.setattr(loop_mod, "build_optimizer", spy_opt)
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda *a, **k: seen.__setitem__("clipped", 1))
    monkeypatch.setattr(Normalizer, "fit", classmethod(lambda cls, t: seen.__setitem__("fit", 1)))
    monkeypatch.setattr(loop_mod, "build_scheduler",
                        lambda opt, recipe, dataset: seen.setdefault("scheduler", recipe.scheduler) and None)
    monkeypatch.setattr(train_mod, "Layout", _elsewhere(tmp_path))
    [summary] = train_mod.train_job(p, "dvlog", "depmamba", [0])
    opt = seen["optimizer"]
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    assert all(g["weight_decay"] == 0.0 and g["lr"] == pytest.approx(p.recipe("depmamba").lr_for("dvlog")) for g in opt.param_groups)
    assert seen["scheduler"] == "none" and seen["clipped"] == 0 and seen["fit"] == 0   # no clipping, raw features
    assert summary["recipe_name"] == "depmamba"
    assert summary["recipe"]["normalize"] == "none" and summary["recipe"]["crop"]["kind"] == "offline"
    assert summary["recipe"]["grad_clip"] is None and summary["recipe"]["optimizer"] == "adam"


def test_asym_recipe_exempts_a_log_d_norms_and_biases_from_weight_decay(official):
    p = official
    model = factory.from_params("asym", p, "dvlog", widths=(25, 136))
    opt = build_optimizer(model, p.recipe("asym"), "dvlog")
    assert isinstance(opt, torch.optim.AdamW)
    decayed, exempt = opt.param_groups
    assert decayed["weight_decay"] == p.recipe("asym").weight_decay and exempt["weight_decay"] == 0.0
    names = {id(q): n for n, q in model.named_parameters()}
    exempt_names = {names[id(q)] for q in exempt["params"]}
    assert all(n.endswith(("A_log", "D", "bias")) or "norm" in n for n in exempt_names)
    assert any(n.endswith("A_log") for n in exempt_names) and any(n.endswith(".D") for n in exempt_names)
    assert all(q.ndim >= 2 for q in decayed["params"])
    assert len(decayed["params"]) + len(exempt["params"]) == len(list(model.parameters()))


def test_offline_crops_follow_the_published_augmentation():
    from asym.data.parquet import FeatureTable

    z = [np.zeros((n, 2), np.float32) for n in (3000, 300)]
    t = FeatureTable(["a", "b"], ["a", "b"], np.array([1, 0]), [None, None], z, z, {})
    views = offline_crops(t, np.random.default_rng(0), n_crops=5, min_frames=500)
    whole = [(0, 0, 3000), (1, 0, 300)]
    assert [v for v in views if v in whole] == whole                  # every vlog whole, once
    crops = [v for v in views if v not in whole]
    assert crops and len(crops) <= 5                                  # the 300-frame vlog is too short to crop
    assert all(i == 0 and e - s >= 500 and s >= 1 and e <= 3000 for i, s, e in crops)


def test_a_complete_seed_is_not_trained_again(official):
    p = official
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    assert train_mod.train_job(p, "dvlog", "mean-mlp", [0]) == []


class Events(TrainObserver):
    """Every event an observer is told, in order, with whether the seed's train.json exists at
    its on_seed_done."""

    def __init__(self, name: str, events: list[tuple]) -> None:
        self.name, self.events = name, events

    def on_seed_start(self, seed: int) -> None:
        self.events.append((self.name, "seed", seed))

    def on_step(self, seconds: float) -> None:
        assert seconds > 0
        self.events.append((self.name, "step"))

    def on_epoch(self, seed: int, partition: int, row) -> None:
        self.events.append((self.name, "epoch", seed, partition, row["epoch"]))

    def on_seed_done(self, seed: int, folder: Path) -> None:
        self.events.append((self.name, "done", seed, folder, (folder / "train.json").is_file()))


def test_every_observer_is_told_each_event_of_the_job_in_order(official, monkeypatch, tmp_path):
    p = official
    monkeypatch.setattr(train_mod, "Layout", _elsewhere(tmp_path))
    events: list[tuple] = []
    train_mod.train_job(p, "dvlog", "mean-mlp", [0, 1], observers=[Events("a", events), Events("b", events)])
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    recipe = p.recipe(registry.get("mean-mlp").recipe)
    steps = len(TrainFeed(parts[0]["train"], Normalizer.identity(parts[0]["train"]), recipe, "dvlog",
                          np.random.default_rng(0)))
    want = []
    for seed in (0, 1):
        folder = train_mod.Layout.of(p).run(Run("dvlog", "mean-mlp", seed)).folder
        want.append(("seed", seed))
        for epoch in range(1, recipe.epochs + 1):
            want += [("step",)] * steps + [("epoch", seed, 0, epoch)]
        want.append(("done", seed, folder, True))
    assert [e[1:] for e in events if e[0] == "a"] == want
    assert events[::2] == [("a", *e) for e in want] and events[1::2] == [("b", *e) for e in want]


def test_the_eta_warning_is_said_once_from_the_first_steps(capsys):
    from asym.train.observe import EtaWarning

    eta = EtaWarning(7200, "dvlog/asym")
    for seconds in (1.0, 3.0, 2.0, 50.0):
        eta.on_step(seconds)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "dvlog/asym runs at scale `paper` on the CPU" in err
    assert "from its first 3 steps one run will take about 4.0 h" in err


def test_two_processes_with_two_threads_give_identical_runs(tmp_path):
    """Determinism through the real CLI, in two separate processes, with threads > 1."""
    raw = small_params(["asym"], [0], 2, train={"threads": 2})
    data = tmp_path / "shared"
    runs = []
    for k in range(2):
        root = tmp_path / f"p{k}"
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(raw))
        p = load_params(root / "params.yaml")
        lay = Layout.of(p)
        if k == 0:
            write_dvlog(data, {**p.synth.dvlog.model_dump(), "n_samples": 48, "seconds": [12, 20]}, seed=9)
        convert("dvlog", data, Path(lay.parquet("dvlog")), p.readers)
        Path(lay.splits).mkdir(parents=True)
        make_split(read_samples(Path(lay.parquet("dvlog"))), "official", p.split, data).to_csv(lay.split_csv("dvlog"), index=False)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "asym", "--params", str(root / "params.yaml"), "train",
                               "--dataset", "dvlog", "--model", "asym"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(Path(lay.run_dir("dvlog", "asym", 0)))
    a, b = (pd.read_parquet(r / "predictions.parquet") for r in runs)
    pd.testing.assert_frame_equal(a, b)
    ha, hb = (pd.read_csv(r / "history.csv").drop(columns=["epoch_time_s"]) for r in runs)
    pd.testing.assert_frame_equal(ha, hb)
    assert read_json(runs[0] / "train.json")["best_epoch"] == read_json(runs[1] / "train.json")["best_epoch"]


def test_random_window_draws_aligned_windows_within_the_bounds():
    n, fa, fv = 50, 3, 2
    a = np.arange(n * fa).reshape(n, fa)
    v = np.arange(n * fv).reshape(n, fv) + 10_000
    rng = np.random.default_rng(0)
    lengths, starts = set(), set()
    for _ in range(2000):
        wa, wv = random_window(a, v, rng, max_frames=20, min_frames=8)
        length, start = len(wa), int(wa[0, 0]) // fa
        np.testing.assert_array_equal(wa, a[start: start + length])
        np.testing.assert_array_equal(wv, v[start: start + length])       # the same frames of both streams
        lengths.add(length)
        starts.add((start, length))
    assert lengths == set(range(8, 21))                                    # every length in [min, max]
    assert min(s for s, _ in starts) == 0 and (n - 8, 8) in starts and (n - 20, 20) in starts
    # a vlog shorter than max_frames: windows up to the whole vlog; one of min_frames or less: kept whole
    short = {len(random_window(a[:12], v[:12], rng, 20, 8)[0]) for _ in range(500)}
    assert short == set(range(8, 13))
    whole_a, whole_v = random_window(a[:8], v[:8], rng, 20, 8)
    np.testing.assert_array_equal(whole_a, a[:8])
    np.testing.assert_array_equal(whole_v, v[:8])
    # a vlog exactly min_frames long is kept whole, even when max_frames is shorter
    np.testing.assert_array_equal(random_window(a[:8], v[:8], rng, 5, 8)[0], a[:8])
    # max_frames below min_frames: every window is max_frames long
    assert {len(random_window(a, v, rng, 5, 8)[0]) for _ in range(50)} == {5}


def test_the_normaliser_is_the_per_feature_z_score_of_the_training_frames():
    from asym.data.parquet import FeatureTable

    rng = np.random.default_rng(0)
    audio = [rng.normal(3.0, 2.0, (n, 2)).astype(np.float32) for n in (5, 9)]
    visual = [np.c_[rng.normal(-1.0, 0.5, (n, 1)), np.full((n, 1), 7.0)].astype(np.float32) for n in (5, 9)]
    t = FeatureTable(["a", "b"], ["a", "b"], np.array([0, 1]), [None, None], audio, visual, {})
    norm = Normalizer.fit(t)
    frames_a, frames_v = np.concatenate(audio).astype(np.float64), np.concatenate(visual).astype(np.float64)
    np.testing.assert_allclose(norm.a_mean, frames_a.mean(0))
    np.testing.assert_allclose(norm.a_std, frames_a.std(0))
    np.testing.assert_allclose(norm.v_mean, frames_v.mean(0))
    assert norm.v_std[0] == pytest.approx(frames_v[:, 0].std()) and norm.v_std[1] == 1.0   # constant: left unscaled
    za, zv = norm(audio[1], visual[1])
    assert za.dtype == np.float32 and za.shape == (9, 2) and zv.dtype == np.float32
    np.testing.assert_allclose(zv[:, 0], (visual[1][:, 0] - frames_v[:, 0].mean()) / frames_v[:, 0].std(), rtol=1e-5)
    np.testing.assert_allclose(za, (audio[1] - frames_a.mean(0)) / frames_a.std(0), rtol=1e-5)
    np.testing.assert_allclose(zv[:, 1], 0.0)
    # a feature whose spread is at the 1e-8 floor counts as constant
    flat = FeatureTable(["a"], ["a"], np.array([0]), [None], [np.array([[0.0], [2e-8]])], [np.ones((2, 1))], {})
    assert Normalizer.fit(flat).a_std.tolist() == [1.0]
    ident = Normalizer.identity(t.select([0]))               # one vlog is enough to know the widths
    assert [x.tolist() for x in (ident.a_mean, ident.a_std, ident.v_mean, ident.v_std)] == [[0, 0], [1, 1], [0, 0], [1, 1]]


def test_a_checkpoint_holding_more_than_tensors_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"partitions": [{"state_dict": {}, "best_epoch": torch.tensor(1), "a_mean": torch.zeros(1),
                                "a_std": torch.ones(1), "v_mean": torch.zeros(1), "v_std": torch.ones(1),
                                "note": Path("anything pickled")}]}, path)
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
        train_mod.load_checkpoint(path)


def test_a_seed_left_incomplete_is_trained_again_over_its_folder(official, monkeypatch, tmp_path):
    p = official
    monkeypatch.setattr(train_mod, "Layout", _elsewhere(tmp_path))
    out = Path(train_mod.Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    out.mkdir(parents=True)
    (out / "history.csv").write_text("stale\n")                     # a crash after the first file
    [summary] = train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    assert train_mod.Layout.of(p).run(Run("dvlog", "mean-mlp", 0)).complete() and summary["seed"] == 0
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3]


# --- what an epoch feeds, and what a run writes ------------------------------------------------

def _numbered_table(n_vlogs: int = 37):
    """Vlog i: frames filled with i (so every item says which vlog it came from), 30-36 frames."""
    from asym.data.parquet import FeatureTable

    lengths = [30 + i % 7 for i in range(n_vlogs)]
    audio = [np.full((n, 3), i, np.float32) + np.arange(n, dtype=np.float32)[:, None] / 100 for i, n in enumerate(lengths)]
    visual = [a[:, :2] + 1000 for a in audio]
    labels = np.arange(n_vlogs) % 2
    return FeatureTable([f"v{i}" for i in range(n_vlogs)], [f"s{i}" for i in range(n_vlogs)], labels,
                        [None] * n_vlogs, audio, visual, {})


def _recipe(crop: dict, batch_size: int = 8):
    from types import SimpleNamespace

    from asym.config import CropConfig

    return SimpleNamespace(crop=CropConfig(**crop), batch_size=batch_size)


@pytest.mark.parametrize("crop", [{"kind": "none"}, {"kind": "random_window", "max_frames": 20, "min_frames": 10},
                                  {"kind": "offline", "n_crops": 3, "min_frames": 12}], ids=lambda c: c["kind"])
def test_an_epoch_feeds_every_training_view_once_in_batches_of_the_recipes_size(crop):
    t = _numbered_table()
    feed = TrainFeed(t, Normalizer.identity(t), _recipe(crop), "dvlog", np.random.default_rng(0))
    n_views = len(feed.views)
    if crop["kind"] == "offline":
        assert n_views > len(t)                                        # the crops are fed beside the whole vlogs
    else:
        assert feed.views == [(i, 0, len(a)) for i, a in enumerate(t.audio)]
    for _ in range(2):                                                 # two epochs: each a full pass
        batches = list(feed.batches())
        assert len(batches) == len(feed) == -(-n_views // 8)
        assert [len(b) for b in batches[:-1]] == [8] * (len(batches) - 1) and 1 <= len(batches[-1]) <= 8
        items = [item for b in batches for item in b]
        vlog = [int(a[0, 0]) for a, _, _ in items]
        assert sorted(vlog) == sorted(i for i, _, _ in feed.views)     # every view once, none twice
        for (a, v, y), i in zip(items, vlog, strict=True):
            assert y == t.label[i]
            start = int(round((a[0, 0] - i) * 100))                    # frames keep their place in the vlog
            np.testing.assert_allclose(a, t.audio[i][start: start + len(a)], rtol=0, atol=1e-6)
            np.testing.assert_allclose(v, t.visual[i][start: start + len(a)], rtol=0, atol=1e-6)
            if crop["kind"] == "none":
                assert start == 0 and len(a) == len(t.audio[i])
            elif crop["kind"] == "random_window":
                assert 10 <= len(a) <= 20
            else:
                assert len(a) == len(t.audio[i]) or (len(a) >= 12 and start >= 1)


def test_offline_crops_cover_every_allowed_length_and_position():
    from asym.data.parquet import FeatureTable

    n, vlogs = 10, 400
    z = [np.zeros((n, 1), np.float32)] * vlogs
    t = FeatureTable([str(i) for i in range(vlogs)], [str(i) for i in range(vlogs)], np.zeros(vlogs, int), [None] * vlogs, z, z, {})
    for min_frames, lengths in ((3, set(range(3, n))), (1, set(range(1, n)))):
        crops = [(s, e) for _, s, e in offline_crops(t, np.random.default_rng(0), 5, min_frames) if s > 0]
        assert {e - s for s, e in crops} == lengths                    # length int(u T): every value from min to T - 1
        assert min(s for s, _ in crops) == 1 and max(e for _, e in crops) == n and all(e <= n for _, e in crops)
        # each of the 5 draws is kept with probability P(int(u T) >= min): a rejected draw does not end the vlog's crops
        expected = vlogs * 5 * len(lengths) / n
        assert abs(len(crops) - expected) < 0.1 * expected, (len(crops), expected)


def test_a_run_writes_its_history_and_predictions_in_their_documented_shape(official):
    p = official
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    out = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns[:4]) == ["partition", "epoch", "train_loss", "epoch_time_s"]
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert len(set(header)) == len(header) and not any(c == "" or c.startswith("Unnamed") for c in header)
    assert hist["partition"].tolist() == [0] * 3 and hist["epoch"].tolist() == [1, 2, 3]
    assert np.isfinite(hist["train_loss"]).all() and (hist["train_loss"] > 0).all()
    summary = read_json(out / "train.json")
    assert (hist["epoch_time_s"] > 0).all() and hist["epoch_time_s"].sum() <= summary["train_time_s"]
    import pyarrow.parquet as pq

    assert not [c for c in pq.read_schema(out / "predictions.parquet").names if c.startswith("__index")]


def test_fit_clips_gradients_to_the_recipes_norm_and_reports_every_epoch(official, monkeypatch):
    p = official
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    folds = parts[0]
    recipe = p.recipe("asym")
    assert recipe.grad_clip
    clipped = []
    real_clip = nn.utils.clip_grad_norm_
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda params, max_norm, **kw: clipped.append(max_norm) or
                        real_clip(params, max_norm, **kw))
    rows = []
    net = factory.from_params("mean-mlp", p, "dvlog", widths=(25, 136))
    rt = loop_mod.Runtime(torch.device("cpu"), "fp32", False, p.train.eval_batch_size)
    loop = loop_mod.build_loop(net, folds["train"], Normalizer.fit(folds["train"]), recipe, "dvlog",
                               np.random.default_rng(0))
    result = loop_mod.fit(loop, folds, recipe, rt, on_epoch=rows.append)
    assert clipped and set(clipped) == {recipe.grad_clip}
    assert [r["epoch"] for r in rows] == list(range(1, recipe.epochs + 1)) and rows == result.history


@pytest.mark.parametrize("n_vlogs", [40, 41, 47])
def test_an_epoch_has_as_many_batches_as_it_says(n_vlogs):
    t = _numbered_table(n_vlogs)
    feed = TrainFeed(t, Normalizer.identity(t), _recipe({"kind": "none"}), "dvlog",
                               np.random.default_rng(0))
    assert len(feed) == len(list(feed.batches())) == -(-n_vlogs // 8)


def test_balanced_class_weighting_weighs_the_training_folds_positives(official, monkeypatch):
    p = official
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    folds = parts[0]
    recipe = p.recipe("asym").model_copy(update={"class_weighting": "balanced", "epochs": 1})
    weights = []
    real = nn.BCEWithLogitsLoss
    monkeypatch.setattr(nn, "BCEWithLogitsLoss", lambda **kw: weights.append(kw.get("pos_weight")) or real(**kw))
    net = factory.from_params("mean-mlp", p, "dvlog", widths=(25, 136))
    loop = loop_mod.build_loop(net, folds["train"], Normalizer.fit(folds["train"]), recipe, "dvlog",
                               np.random.default_rng(0))
    loop_mod.fit(loop, folds, recipe, loop_mod.Runtime(torch.device("cpu"), "fp32", False, p.train.eval_batch_size))
    pos = int(folds["train"].label.sum())
    [w] = weights
    assert float(w) == pytest.approx((len(folds["train"]) - pos) / pos)


def test_a_probability_of_one_half_counts_as_depressed_in_selection(official):
    p = official
    _, parts = load_partitions(Path(Layout.of(p).parquet("dvlog")), Path(Layout.of(p).split_csv("dvlog")))
    valid = parts[0]["valid"]

    class Undecided(nn.Module):
        def forward(self, audio, visual, lengths):
            return torch.zeros(audio.shape[0])

    probs = predict(Undecided(), valid, Normalizer.identity(valid), 16, torch.device("cpu"))
    _, m = loop_mod.validation_score(valid, probs, "mean4")
    assert m["recall"] == 1.0 and m["accuracy"] == pytest.approx(valid.label.mean())


# --- resuming inside a seed ----------------------------------------------------------------------

class Killed(Exception):
    """Stands for a SIGKILL: raised from an observer's on_epoch, before that epoch is saved."""


class EpochRows(TrainObserver):
    """An observer that records every row as (seed, partition, row) and, given `kill_at`, dies at
    that (seed, partition, epoch)."""

    def __init__(self, rows: list[tuple[int, int, dict]], kill_at: tuple[int, int, int] | None = None) -> None:
        self.rows, self.kill_at = rows, kill_at

    def on_epoch(self, seed: int, partition: int, row: dict) -> None:
        self.rows.append((seed, partition, row))
        if (seed, partition, row["epoch"]) == self.kill_at:
            raise Killed


@pytest.fixture(scope="module")
def resume_projects(tmp_path_factory):
    """Five epochs on D-Vlog's official folds and on two grouped outer folds (kfold)."""
    projects = {}
    for protocol, sections in (("official", {}), ("kfold", {"split": {"kfold": {"k": 2, "valid_fraction": 0.2}}})):
        p = _project(tmp_path_factory.mktemp(f"resume-{protocol}"), ["mean-mlp"], epochs=5, **sections)
        raw = yaml.safe_load(p.path.read_text())
        raw["recipes"]["demo"]["depmamba"]["crop"]["min_frames"]["dvlog"] = 8   # crops of these short vlogs
        p.path.write_text(yaml.safe_dump(raw))
        p = load_params(p.path)
        lay = Layout.of(p)
        data = Path(lay.parquet("dvlog"))
        make_split(read_samples(data), protocol, p.split, data).to_csv(lay.split_csv("dvlog"), index=False)
        projects[protocol] = p
    return projects


@pytest.fixture
def offline_entry(monkeypatch):
    """mean-mlp under DepMamba's recipe: offline crops drawn once when the feed is built, Adam."""
    monkeypatch.setitem(registry._ENTRIES, "mean-mlp-offline",
                        Entry("mean-mlp-offline", "asym.models.baselines.mean_mlp:MeanMLP", "mean_mlp", "baseline",
                              "test model", {}, "depmamba"))


def _train_in(monkeypatch, where: Path, p, model: str, seeds: list[int], observer: TrainObserver | None = None) -> Path:
    """Train with run folders under `where`; return the folder of the runs."""
    monkeypatch.setattr(train_mod, "Layout", _elsewhere(where))
    try:
        train_mod.train_job(p, "dvlog", model, seeds, observers=[observer] if observer is not None else [])
    finally:
        runs = Path(train_mod.Layout.of(p).runs)
    return runs


def _same_run(a: Path, b: Path) -> None:
    """Bit-identical predictions, checkpoint and history (wall times aside)."""
    pd.testing.assert_frame_equal(pd.read_parquet(a / "predictions.parquet"), pd.read_parquet(b / "predictions.parquet"),
                                  check_exact=True)
    ha, hb = (pd.read_csv(d / "history.csv").drop(columns=["epoch_time_s"]) for d in (a, b))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    ca, cb = (torch.load(d / "checkpoint.pt", weights_only=True)["partitions"] for d in (a, b))
    assert len(ca) == len(cb)
    for pa, pb in zip(ca, cb, strict=True):
        assert pa.keys() == pb.keys() and pa["state_dict"].keys() == pb["state_dict"].keys()
        assert all(torch.equal(pa["state_dict"][k], pb["state_dict"][k]) for k in pa["state_dict"])
        assert all(torch.equal(pa[k], pb[k]) for k in pa if k != "state_dict")
    sa, sb = read_json(a / "train.json"), read_json(b / "train.json")
    assert (sa["best_epoch"], sa["best_valid_selection"]) == (sb["best_epoch"], sb["best_valid_selection"])


def _rows(rows: list[tuple[int, int, dict]]) -> list[tuple[int, int, dict]]:
    return [(s, q, {k: v for k, v in r.items() if k != "epoch_time_s"}) for s, q, r in rows]


@pytest.fixture
def epochs_trained(monkeypatch) -> list[int]:
    """One entry per epoch trained from here on."""
    trained: list[int] = []
    original = loop_mod.train_epoch

    def counting(*args, **kwargs):
        trained.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(loop_mod, "train_epoch", counting)
    return trained


@pytest.mark.parametrize(("protocol", "model", "killed_at", "left"), [
    # random windows, cosine schedule, AdamW, dropout; killed in seed 0: 2 + 5 epochs left
    ("official", "mean-mlp", (0, 0, 4), 7),
    # offline crops, Adam; seed 0 complete, seed 1 killed in its second partition: 3 epochs left
    ("kfold", "mean-mlp-offline", (1, 1, 3), 3),
])
def test_a_seed_killed_inside_its_epochs_resumes_after_its_last_epoch_and_ends_bit_identical(
        resume_projects, offline_entry, monkeypatch, tmp_path, capsys, epochs_trained, protocol, model, killed_at,
        left):
    p = resume_projects[protocol]
    want_rows: list = []
    ref = _train_in(monkeypatch, tmp_path / "ref", p, model, [0, 1], observer=EpochRows(want_rows))
    rows: list = []
    with pytest.raises(Killed):
        _train_in(monkeypatch, tmp_path / "killed", p, model, [0, 1], observer=EpochRows(rows, killed_at))
    seed, partition, epoch = killed_at[0], killed_at[1], killed_at[2] - 1
    lay = train_mod.Layout.of(p)
    resume = lay.run(Run("dvlog", model, seed)).resume
    record = torch.load(resume, weights_only=True)                  # tensors and plain containers only
    current = record["current"]
    assert (current["partition"], current["epoch"], len(record["finished"])) == (partition, epoch, partition)
    assert [r["epoch"] for r in current["history"]] == list(range(1, epoch + 1))
    views = current["loop"]["views"]
    assert (len(views) > len(set(views[:, 0].tolist()))) == (model == "mean-mlp-offline")   # crops beside vlogs
    for done in range(seed):                                        # complete: rebuilds its files, no more
        record = torch.load(lay.run(Run("dvlog", model, done)).resume, weights_only=True)
        assert record["current"] is None and len(record["finished"]) == 2
    for s in (0, 1):                                                # as Snakemake and DVC do before a rerun
        for key in TRAIN_FILES:
            Path(lay.run_file("dvlog", model, s, key)).unlink(missing_ok=True)
    (resume.parent / "history.csv").write_text("stale\n")           # a file of an incomplete seed: trained over
    half_saved = resume.parent / ".resume.pt.k1ll3d.tmp"            # a kill in the middle of a save
    half_saved.write_bytes(b"half")
    capsys.readouterr()
    epochs_trained.clear()

    rows.clear()
    runs = _train_in(monkeypatch, tmp_path / "killed", p, model, [0, 1], observer=EpochRows(rows))
    assert len(epochs_trained) == left
    where = " of partition 2/2" if protocol == "kfold" else ""
    said = capsys.readouterr().out
    assert f"dvlog/{model}/seed{seed}: resumed after epoch {epoch}/5{where} from {resume}" in said
    assert ("seed0: complete before the kill: its files are written again" in said) == (seed == 1)
    for s in (0, 1):
        _same_run(Path(train_mod.Layout.of(p).run_dir("dvlog", model, s)), ref / "dvlog" / model / f"seed{s}")
        assert not (runs / "dvlog" / model / f"seed{s}" / "resume.pt").exists()
    assert not half_saved.exists()
    assert _rows(rows) == _rows(want_rows)      # a live MLflow run gets every epoch again, in order


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a torch file")


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickled(path: Path) -> None:
    record = torch.load(path, weights_only=True)
    torch.save({**record, "note": Path("a pickled object")}, path)


def _other_inputs(path: Path) -> None:
    torch.save({**torch.load(path, weights_only=True), "fingerprint": "0" * 64}, path)


@pytest.mark.parametrize(("damage", "reason"), [(_garbage, "cannot be resumed from"),
                                                 (_truncated, "cannot be resumed from"),
                                                 (_pickled, "cannot be resumed from (UnpicklingError"),
                                                 (_other_inputs, "written for other inputs")])
def test_an_unusable_resume_file_is_named_in_a_warning_and_the_seed_starts_again(
        resume_projects, monkeypatch, tmp_path, capsys, damage, reason):
    p = resume_projects["official"]
    ref = _train_in(monkeypatch, tmp_path / "ref", p, "mean-mlp", [0])
    with pytest.raises(Killed):
        _train_in(monkeypatch, tmp_path / "killed", p, "mean-mlp", [0], observer=EpochRows([], (0, 0, 3)))
    resume = train_mod.Layout.of(p).run(Run("dvlog", "mean-mlp", 0)).resume
    damage(resume)
    capsys.readouterr()
    rows: list = []
    _train_in(monkeypatch, tmp_path / "killed", p, "mean-mlp", [0], observer=EpochRows(rows))
    captured = capsys.readouterr()
    assert f"warning: {resume}: {reason}" in captured.err and "starts again from its first epoch" in captured.err
    assert "resumed" not in captured.out
    assert [r["epoch"] for _, _, r in rows] == [1, 2, 3, 4, 5]
    _same_run(resume.parent, ref / "dvlog" / "mean-mlp" / "seed0")
    assert not resume.exists()


def test_a_resume_file_left_beside_a_complete_seed_is_removed(official):
    p = official
    train_mod.train_job(p, "dvlog", "mean-mlp", [0])
    leftover = Layout.of(p).run(Run("dvlog", "mean-mlp", 0)).resume   # a kill after train.json
    leftover.write_bytes(b"left over")
    assert train_mod.train_job(p, "dvlog", "mean-mlp", [0]) == [] and not leftover.exists()


def _draws(feed_rng: np.random.Generator) -> list:
    import random

    return [torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), random.random(), random.gauss(0, 1),
            feed_rng.integers(0, 1 << 62, 3).tolist(), feed_rng.permutation(10).tolist()]


def test_every_generator_comes_back_from_a_weights_only_file(tmp_path):
    from asym.train.resume import capture_rng, restore_rng

    feed_rng = np.random.default_rng(7)
    np.random.randn()                                    # a cached gaussian in numpy's global state
    import random
    random.gauss(0, 1)                                   # and python's gauss_next
    path = tmp_path / "rng.pt"
    torch.save(capture_rng(feed_rng), path)
    want = _draws(feed_rng)
    other = np.random.default_rng(99)
    _draws(other)                                        # every generator moved on, elsewhere
    restore_rng(torch.load(path, weights_only=True), other)
    assert _draws(other) == want


def test_a_grad_scaler_is_saved_and_a_loop_that_does_not_fit_its_file_is_refused(tmp_path):
    from asym.errors import DataError
    from asym.train.resume import Loop, SeedResume

    def loop(scaler):
        model = nn.Linear(3, 1)
        opt = torch.optim.AdamW(model.parameters())
        feed = type("Feed", (), {"views": [(0, 0, 5), (0, 1, 4)], "rng": np.random.default_rng(0)})()
        return Loop(model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, 4), feed, scaler)

    path = tmp_path / "resume.pt"
    saved = loop(torch.amp.GradScaler("cpu", init_scale=64.0))
    saved.scaler.scale(torch.ones(1))
    saved.scaler.update(new_scale=8.0)                  # as after overflowing steps
    SeedResume(path, "f", 0.0).save(0, 2, saved, None, [{"epoch": 1, "score": np.float64(0.5)}])
    record = torch.load(path, weights_only=True)
    assert record["current"]["history"] == [{"epoch": 1, "score": 0.5}]
    resumed = SeedResume(path, "f", 0.0, record).saved(0)
    live = loop(torch.amp.GradScaler("cpu", init_scale=64.0))
    resumed.restore(live)
    assert live.scaler.get_scale() == 8.0 and live.feed.views == [(0, 0, 5), (0, 1, 4)]
    want = saved.model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in live.model.state_dict().items())
    with pytest.raises(DataError, match=f"{path}: does not fit the model and recipe being trained"):
        resumed.restore(loop(None))                      # saved with a scaler, resumed without one
