"""Train one (dataset, model) for a list of seeds: the checkpoint is chosen on validation only
(on the test fold under a select-on-test protocol, for the optimism study: asym.data.splits).

One job trains every seed (and, under `kfold`, every partition) so that start-up is paid once;
each seed keeps its own run folder (see asym.layout): checkpoint.pt (tensors only),
predictions.parquet (valid + test, with gender and length), history.csv and train.json, all
written atomically, train.json last. A seed whose folder is complete is not trained again; a seed
killed inside its epochs goes on after its last finished epoch, from its resume.pt (asym.train.resume).
Everything the trainer does besides the model comes from the model's recipe in params.yaml.
The optimism study's runs also write epochs.parquet (asym.layout.STUDY_TRAIN_FILES).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from asym.config import DEFAULT_THRESHOLD
from asym.data.parquet import FeatureTable
from asym.data.splits import load_partitions, selection_fold
from asym.errors import ConfigError, DataError
from asym.io import atomic_path, read_json, write_json
from asym.layout import PACKAGE, STUDY_TRAIN_FILES, TRAIN_FILES, Layout, code_deps
from asym.metrics import label_metrics, selection_score
from asym.models import factory, registry
from asym.train.losses import build_loss
from asym.train.normalize import PerSampleNormalizer
from asym.train.optimization import build_optimizer, build_scheduler, step_scheduler
from asym.train.resume import Loop, SeedResume, fingerprint
from asym.train.thresholds import decision_threshold

EpochObserver = Callable[[int, int, dict[str, float]], None]   # (seed, partition, history row)
CHECKPOINT_VERSION = 1          # of the checkpoint's `meta` block


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed every generator. On the CPU our ops are deterministic at a fixed thread count; on
    CUDA deterministic kernels are requested too (importing that switch costs ~1 s, so only there)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@dataclass
class Normalizer:
    """Per-feature z-score from train-fold frames only (no statistics leak from valid/test)."""

    a_mean: np.ndarray
    a_std: np.ndarray
    v_mean: np.ndarray
    v_std: np.ndarray

    @classmethod
    def fit(cls, table: FeatureTable) -> Normalizer:
        a = np.concatenate(table.audio).astype(np.float64)
        v = np.concatenate(table.visual).astype(np.float64)

        def safe(s: np.ndarray) -> np.ndarray:
            return np.where(s > 1e-8, s, 1.0)
        return cls(a.mean(0), safe(a.std(0)), v.mean(0), safe(v.std(0)))

    @classmethod
    def identity(cls, table: FeatureTable) -> Normalizer:
        fa, fv = table.audio[0].shape[1], table.visual[0].shape[1]
        return cls(np.zeros(fa), np.ones(fa), np.zeros(fv), np.ones(fv))

    def __call__(self, a: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((a - self.a_mean) / self.a_std).astype(np.float32), ((v - self.v_mean) / self.v_std).astype(np.float32)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(getattr(self, k))) for k in ("a_mean", "a_std", "v_mean", "v_std")}


def fit_normalizer(recipe: Any, train: FeatureTable) -> Normalizer | PerSampleNormalizer:
    """The recipe's normalisation: fitted on the training fold only, or none to fit (per_sample)."""
    if recipe.normalize == "per_sample":
        return PerSampleNormalizer(float(recipe.std_floor))
    return Normalizer.fit(train) if recipe.normalize == "zscore" else Normalizer.identity(train)


# --- data feeding --------------------------------------------------------------------------
Item = tuple[np.ndarray, np.ndarray, int]


def collate(items: list[Item], device: torch.device, pin: bool = False) -> tuple[torch.Tensor, ...]:
    lengths = torch.tensor([a.shape[0] for a, _, _ in items], dtype=torch.int64)
    t = int(lengths.max())
    audio = torch.zeros(len(items), t, items[0][0].shape[1])
    visual = torch.zeros(len(items), t, items[0][1].shape[1])
    for i, (a, v, _) in enumerate(items):
        audio[i, : a.shape[0]] = torch.from_numpy(a)
        visual[i, : v.shape[0]] = torch.from_numpy(v)
    labels = torch.tensor([y for _, _, y in items], dtype=torch.float32)
    tensors = (audio, visual, lengths, labels)
    if pin and device.type == "cuda":
        tensors = tuple(x.pin_memory() for x in tensors)
    return tuple(x.to(device, non_blocking=pin) for x in tensors)


def random_window(a: np.ndarray, v: np.ndarray, rng: np.random.Generator, max_frames: int, min_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A random window, never shorter than min_frames (vlogs that short are kept whole)."""
    n = a.shape[0]
    if n <= min_frames:
        return a, v
    length = int(rng.integers(min(min_frames, max_frames), min(n, max_frames) + 1))
    start = int(rng.integers(0, n - length + 1))
    return a[start: start + length], v[start: start + length]


def offline_crops(table: FeatureTable, rng: np.random.Generator, n_crops: int, min_frames: int) -> list[tuple[int, int, int]]:
    """DepMamba's augmentation, drawn once before training: every training vlog whole, plus
    `n_crops` draws of a sub-sequence of uniform random length in [0, T), each kept only if at
    least `min_frames` long, starting uniformly in [1, T - length] as published. (index, start, end)."""
    views = []
    for i, a in enumerate(table.audio):
        n = a.shape[0]
        views.append((i, 0, n))
        for _ in range(n_crops):
            length = int(rng.random() * n)
            if length < min_frames or length < 1:
                continue
            start = int(rng.integers(1, n - length + 1))
            views.append((i, start, start + length))
    return views


class TrainFeed:
    """What one epoch feeds the model, per the recipe's normalisation and cropping."""

    def __init__(self, table: FeatureTable, norm: Normalizer, recipe: Any, dataset: str, rng: np.random.Generator) -> None:
        self.table, self.norm, self.crop, self.rng = table, norm, recipe.crop, rng
        self.batch_size = int(recipe.batch_size)
        self.min_frames = recipe.crop.min_frames_for(dataset) if recipe.crop.kind != "none" else 0
        if recipe.crop.kind == "offline":
            self.views = offline_crops(table, rng, int(recipe.crop.n_crops), self.min_frames)
        else:
            self.views = [(i, 0, a.shape[0]) for i, a in enumerate(table.audio)]

    def __len__(self) -> int:
        return (len(self.views) + self.batch_size - 1) // self.batch_size

    def batches(self) -> Iterator[list[Item]]:
        order = self.rng.permutation(len(self.views))
        for k in range(0, len(order), self.batch_size):
            items = []
            for j in order[k: k + self.batch_size]:
                i, s, e = self.views[j]
                a, v = self.table.audio[i][s:e], self.table.visual[i][s:e]
                if self.crop.kind == "random_window":
                    a, v = random_window(a, v, self.rng, int(self.crop.max_frames), self.min_frames)
                items.append((*self.norm(a, v), int(self.table.label[i])))
            yield items


@torch.no_grad()
def predict(model: nn.Module, table: FeatureTable, norm: Normalizer, batch_size: int, device: torch.device,
            logits: bool = False) -> np.ndarray:
    """P(depressed) of every vlog of `table`, in its order (`logits`: the model's raw outputs)."""
    model.eval()
    probs = []
    order = np.argsort(table.n_frames, kind="stable")   # similar lengths together: less padding
    for i in range(0, len(order), batch_size):
        items = [(*norm(table.audio[j], table.visual[j]), 0) for j in order[i: i + batch_size]]
        audio, visual, lengths, _ = collate(items, device)
        out = model(audio, visual, lengths)
        probs.append((out if logits else torch.sigmoid(out)).float().cpu().numpy())
    out = np.empty(len(order), dtype=np.float32)
    out[order] = np.concatenate(probs) if probs else np.empty(0)
    return out


def validation_score(model: nn.Module, valid: FeatureTable, norm: Normalizer, batch_size: int, device: torch.device,
                     metric: str, probs: np.ndarray | None = None) -> tuple[float, dict[str, float]]:
    """The checkpoint-selection score, on the fold that chooses the checkpoint: the validation
    fold, the test fold only under a select-on-test protocol (asym.data.splits.selection_fold).
    `probs`: that fold's probabilities, when the caller has them already."""
    prob = predict(model, valid, norm, batch_size, device) if probs is None else probs
    m = label_metrics(valid.label, prob >= DEFAULT_THRESHOLD)
    return selection_score(m, metric), m


def validation_loss(model: nn.Module, valid: FeatureTable, norm: Normalizer, batch_size: int, device: torch.device,
                    loss_fn: nn.Module) -> float:
    """The recipe's loss over the whole validation fold (what a plateau scheduler steps on)."""
    logits = torch.from_numpy(predict(model, valid, norm, batch_size, device, logits=True)).to(device)
    with torch.no_grad():
        return float(loss_fn(logits, torch.as_tensor(valid.label, dtype=torch.float32, device=device)))


# The optimiser, scheduler and loss of a recipe: asym.train.optimization and asym.train.losses.


@dataclass
class Runtime:
    device: torch.device
    precision: str
    pin_memory: bool
    eval_batch_size: int
    bar: Any = None
    warn_eta: Callable[[float], None] | None = None


def train_epoch(model: nn.Module, feed: TrainFeed, opt: torch.optim.Optimizer, loss_fn: nn.Module,
                grad_clip: float | None, rt: Runtime) -> float:
    model.train()
    losses = []
    autocast = rt.precision == "bf16" and rt.device.type == "cuda"
    for items in feed.batches():
        t0 = time.perf_counter()
        audio, visual, lengths, labels = collate(items, rt.device, rt.pin_memory)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(audio, visual, lengths)
        loss = loss_fn(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
        opt.step()
        losses.append(float(loss.detach()))
        if rt.warn_eta is not None:
            rt.warn_eta(time.perf_counter() - t0)
        if rt.bar is not None:
            rt.bar.update(1)
    return float(np.mean(losses))


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Resumable:
    """Where a partition's epoch loop saves its progress, and what a killed run left of it."""

    seed: SeedResume
    partition: int


def fit(model: nn.Module, folds: dict[str, FeatureTable], norm: Normalizer, recipe: Any, dataset: str,
        rng: np.random.Generator, rt: Runtime, on_epoch: Callable[[dict[str, float]], None] | None = None,
        resume: Resumable | None = None, select: str = "valid", keep_epochs: bool = False) -> FitResult:
    """The epoch loop; the best epoch by the selection score on fold `select` (first best on ties),
    whose history columns are named after it. A plateau scheduler steps on the validation fold's
    loss whatever `select` is. With `resume`, the loop goes on after the partition's last saved
    epoch, and saves after each; `keep_epochs` keeps each epoch's record (`epoch_record`)."""
    feed = TrainFeed(folds["train"], norm, recipe, dataset, rng)
    opt = build_optimizer(model, recipe, dataset)
    sched = build_scheduler(opt, recipe, dataset)
    loss_fn = build_loss(recipe, folds["train"].label, rt.device, model)
    loop = Loop(model, opt, sched, feed)
    best: FitResult | None = None
    history: list[dict[str, float]] = []
    first = 1
    saved = resume.seed.saved(resume.partition) if resume is not None else None
    if saved is not None:
        saved.restore(loop)
        history, first = saved.history, saved.epoch + 1
        if saved.best is not None:
            best = FitResult(int(saved.best["epoch"]), float(saved.best["score"]), saved.best["state"])
        for row in history if on_epoch is not None else []:
            on_epoch(row)                    # a live MLflow run of the killed job is replaced: whole curves
        if rt.bar is not None:
            rt.bar.update(len(feed) * saved.epoch)
        saved.restore_rng(feed.rng)          # last, so that nothing above shifts a generator
    for epoch in range(first, int(recipe.epochs) + 1):
        t0 = time.perf_counter()
        lr = float(opt.param_groups[0]["lr"])        # this epoch's, before the scheduler moves it
        loss = train_epoch(model, feed, opt, loss_fn, recipe.grad_clip, rt)
        seconds = time.perf_counter() - t0
        probs = predict(model, folds[select], norm, rt.eval_batch_size, rt.device) if keep_epochs else None
        score, val = validation_score(model, folds[select], norm, rt.eval_batch_size, rt.device,
                                      recipe.selection_metric, probs=probs)
        stepped_on = None if sched is None else step_scheduler(sched, lambda: validation_loss(
            model, folds["valid"], norm, rt.eval_batch_size, rt.device, loss_fn))
        row = {"epoch": epoch, "train_loss": loss, "epoch_time_s": seconds,
               **{f"{select}_{k}": v for k, v in val.items()}, f"{select}_selection": score, "lr": lr,
               **({"valid_loss": stepped_on} if stepped_on is not None else {})}
        if probs is not None:
            row[EPOCH_RECORD] = epoch_record(model, folds, select, probs, norm, recipe, rt)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if best is None or score > best.best_score:
            # A copy, never a view of the live weights: later epochs must not change "best".
            best = FitResult(epoch, score, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        if resume is not None:
            resume.seed.save(resume.partition, epoch, loop, _best(best), history)
    if best is None:
        raise ConfigError(f"recipe trains for {recipe.epochs} epochs: nothing to select")
    best.history = history
    return best


def _best(best: FitResult | None) -> dict[str, Any] | None:
    return None if best is None else {"epoch": best.best_epoch, "score": best.best_score, "state": best.best_state}


# The key of a history row holding the epoch's record (a study run's): kept with the history, so
# that a resumed seed has it for its earlier epochs too, but neither in history.csv nor logged.
EPOCH_RECORD = "_epoch_record"


def epoch_record(model: nn.Module, folds: dict[str, FeatureTable], select: str, probs: np.ndarray,
                 norm: Normalizer, recipe: Any, rt: Runtime) -> dict[str, Any]:
    """One epoch's probabilities on the selection fold and the threshold this epoch's weights
    would label at (tuned on the validation fold, as at the chosen checkpoint): what choosing
    the epoch again needs (asym.report.optimism)."""
    def valid_probs() -> np.ndarray:
        return probs if select == "valid" else predict(model, folds["valid"], norm, rt.eval_batch_size, rt.device)
    threshold = decision_threshold(recipe, folds["valid"].label, valid_probs)
    return {"prob": np.asarray(probs, np.float32).tolist(), "threshold": float(threshold)}


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A history row as history.csv and MLflow see it (without the epoch's record)."""
    return {k: v for k, v in row.items() if k != EPOCH_RECORD}


def epoch_rows(results: list[FitResult], partitions: list[dict[str, FeatureTable]], select: str,
               where: Path) -> pd.DataFrame:
    """epochs.parquet: per partition and epoch, the selection fold's vlogs with their probability
    and the epoch's threshold."""
    frames = []
    for p, (res, folds) in enumerate(zip(results, partitions, strict=True)):
        t = folds[select]
        for row in res.history:
            if EPOCH_RECORD not in row:
                raise DataError(where, f"partition {p}, epoch {row['epoch']}: no epoch record to write "
                                       f"{STUDY_TRAIN_FILES['epochs']} from; delete its resume.pt and train it again")
            rec = row[EPOCH_RECORD]
            frames.append(pd.DataFrame({
                "partition": np.int16(p), "epoch": np.int16(row["epoch"]), "fold": select, "sample_id": t.sample_id,
                "label": t.label.astype(np.int8), "prob": np.asarray(rec["prob"], np.float32),
                "threshold": float(rec["threshold"])}))
    return pd.concat(frames, ignore_index=True)


# --- one job -----------------------------------------------------------------------------------
def run_complete(out: Path, names: Iterable[str] | None = None) -> bool:
    """train.json is written last: its presence with every other file (`names`, default the
    main runs' TRAIN_FILES) means the seed is done."""
    return all((out / name).is_file() for name in (TRAIN_FILES.values() if names is None else names))


def _prediction_rows(model: nn.Module, folds: dict[str, FeatureTable], norm: Normalizer, partition: int,
                     batch_size: int, device: torch.device, threshold: float) -> pd.DataFrame:
    rows = []
    for fold in ("valid", "test"):
        t = folds[fold]
        prob = predict(model, t, norm, batch_size, device)
        rows.append(pd.DataFrame({
            "sample_id": t.sample_id, "subject_id": t.subject_id, "partition": np.int16(partition), "fold": fold,
            "label": t.label.astype(np.int8), "prob": prob, "pred": (prob >= threshold).astype(np.int8),
            "gender": t.gender if t.gender is not None else [None] * len(t), "n_frames": t.n_frames.astype(np.int32)}))
    return pd.concat(rows, ignore_index=True)


class EtaWarning:
    """At `scale: paper` without a GPU, warn once with the projected wall time per run."""

    def __init__(self, steps_per_run: int, label: str, after: int = 3) -> None:
        self.steps_per_run, self.label, self.after = steps_per_run, label, after
        self.times: list[float] = []
        self.done = False

    def __call__(self, step_seconds: float) -> None:
        if self.done:
            return
        self.times.append(step_seconds)
        if len(self.times) >= self.after:
            self.done = True
            hours = float(np.median(self.times)) * self.steps_per_run / 3600
            tqdm.write(f"asym train: warning: {self.label} runs at scale `paper` on the CPU; from its first "
                       f"{self.after} steps one run will take about {hours:.1f} h. Paper scale needs a CUDA GPU "
                       "(see benchmarks/train_step.py for the projected cost of the whole grid).", file=sys.stderr)


def train_job(params: Any, dataset: str, model_name: str, seeds: list[int], observer: EpochObserver | None = None,
              on_seed_done: Callable[[int, Path], None] | None = None) -> list[dict[str, Any]]:
    """Train `model_name` on `dataset` for every seed whose run folder is not complete."""
    layout = Layout.of(params)
    entry = registry.get(model_name)
    recipe = params.recipe(entry.recipe)
    table, partitions = load_partitions(Path(layout.parquet(dataset)), Path(layout.split_csv(dataset)),
                                        subjects_disjoint=params.protocol(dataset) != "depmamba")
    device = pick_device(params.train.device)
    torch.set_num_threads(params.train.threads)
    todo = [s for s in seeds if not run_complete(Path(layout.run_dir(dataset, model_name, s)),
                                                 layout.train_files().values())]
    steps = sum(len(TrainFeed(p["train"], Normalizer.identity(p["train"]), recipe, dataset,
                              np.random.default_rng(0))) for p in partitions) * int(recipe.epochs)
    rt = Runtime(device, params.train.precision, params.train.pin_memory, params.train.eval_batch_size)
    inputs = inputs_digest(params, dataset, model_name, device, params.train.precision) if todo else ""
    if params.scale == "paper" and device.type == "cpu":
        rt.warn_eta = EtaWarning(steps, f"{dataset}/{model_name}")
    summaries = []
    with tqdm(total=steps * len(todo), desc=f"{dataset}/{model_name}", unit="step", leave=False,
              disable=None) as bar:
        rt.bar = bar
        for seed in todo:
            bar.set_postfix(seed=seed)
            summaries.append(train_seed(params, dataset, model_name, seed, partitions, table, rt, observer, inputs))
            if on_seed_done is not None:
                on_seed_done(seed, Path(layout.run_dir(dataset, model_name, seed)))
    for seed in seeds:                       # every seed complete: nothing left to resume
        Path(layout.resume_file(dataset, model_name, seed)).unlink(missing_ok=True)
    return summaries


def train_seed(params: Any, dataset: str, model_name: str, seed: int, partitions: list[dict[str, FeatureTable]],
               table: FeatureTable, rt: Runtime, observer: EpochObserver | None = None,
               inputs: str | None = None) -> dict[str, Any]:
    """One seed, every partition; `inputs`: the job's inputs_digest (computed here when not given)."""
    entry = registry.get(model_name)
    recipe = params.recipe(entry.recipe)
    layout = Layout.of(params)
    out = Path(layout.run_dir(dataset, model_name, seed))
    if inputs is None:
        inputs = inputs_digest(params, dataset, model_name, rt.device, rt.precision)
    resume = SeedResume.open(Path(layout.resume_file(dataset, model_name, seed)),
                             fingerprint({"inputs": inputs, "seed": seed}, []), time.time(), _warn)
    _say_resumed(resume, f"{dataset}/{model_name}/seed{seed}", int(recipe.epochs), len(partitions))
    started = resume.started_at
    seed_everything(seed, rt.device)
    rng = np.random.default_rng(seed)
    meta = table.meta
    select = selection_fold(params.protocol(dataset))
    results, predictions, norms, thresholds = [], [], [], []
    for p, folds in enumerate(partitions):
        norm = fit_normalizer(recipe, folds["train"])
        model = factory.from_params(model_name, params, dataset, widths=(meta["audio_dim"], meta["visual_dim"]))
        model = model.to(rt.device)
        on_epoch = None if observer is None else (lambda row, p=p: observer(seed, p, public_row(row)))
        if p < len(resume.finished):         # trained to its end before the kill
            res = FitResult(**resume.finished[p])
            for row in res.history if on_epoch is not None else []:
                on_epoch(row)
        else:
            res = fit(model, folds, norm, recipe, dataset, rng, rt, on_epoch=on_epoch, resume=Resumable(resume, p),
                      select=select, keep_epochs=layout.study)
            resume.finish(p, res.best_epoch, res.best_score, res.best_state, res.history)
        model.load_state_dict(res.best_state)
        thresholds.append(decision_threshold(recipe, folds["valid"].label, partial(
            predict, model, folds["valid"], norm, rt.eval_batch_size, rt.device)))
        predictions.append(_prediction_rows(model, folds, norm, p, rt.eval_batch_size, rt.device, thresholds[-1]))
        results.append(res)
        norms.append(norm)
    n_params = sum(q.numel() for q in model.parameters() if q.requires_grad)
    finished = time.time()
    save_run(out, results, norms, predictions, checkpoint_meta(params, dataset, model_name, seed, meta, thresholds),
             epochs=epoch_rows(results, partitions, select, out) if layout.study else None)
    summary = {
        "dataset": dataset, "model": model_name, "seed": seed, "kind": entry.kind, "scale": params.scale,
        "protocol": params.protocol(dataset), "n_partitions": len(partitions), "device": str(rt.device),
        "precision": rt.precision, "n_params": n_params,
        "recipe_name": entry.recipe, "recipe": recipe.model_dump(mode="json"),
        "model_config": params.model_config(model_name, dataset).kwargs(),
        "selection_fold": select,            # the fold whose score chose each partition's checkpoint
        "best_epoch": [r.best_epoch for r in results], "best_valid_selection": [r.best_score for r in results],
        "threshold": thresholds,
        "epochs": int(recipe.epochs),
        "epoch_time_s": float(np.mean([h["epoch_time_s"] for r in results for h in r.history])),
        "train_time_s": finished - started, "started_at": started, "finished_at": finished,
        "n_train": [len(f["train"]) for f in partitions], "n_valid": [len(f["valid"]) for f in partitions],
        "n_test": [len(f["test"]) for f in partitions],
        "train_positive_rate": [float(np.mean(f["train"].label)) for f in partitions],
    }
    write_json(out / TRAIN_FILES["summary"], summary)   # last: marks the seed complete
    resume.complete()                                   # removed when the job ends
    return summary


def inputs_digest(params: Any, dataset: str, model_name: str, device: torch.device, precision: str) -> str:
    """What a job's seeds are trained from: a resume.pt written for anything else is not resumed."""
    entry = registry.get(model_name)
    layout = Layout.of(params)
    facts = {"dataset": dataset, "model": model_name, "entry": entry.digest(), "scale": params.scale,
             "protocol": params.protocol(dataset), "recipe": params.recipe(entry.recipe).model_dump(mode="json"),
             "model_config": params.model_config(model_name, dataset).kwargs(), "precision": precision,
             "device": device.type}
    files = [layout.parquet(dataset), layout.split_csv(dataset),
             *(PACKAGE.parent / f for f in code_deps("train", model_name))]
    return fingerprint(facts, files)


def _warn(message: str) -> None:
    tqdm.write(f"asym train: warning: {message}", file=sys.stderr)


def _say_resumed(resume: SeedResume, label: str, epochs: int, n_partitions: int) -> None:
    if not resume.resumed:
        return
    if (at := resume.resumed_from) is None:
        said = f"complete before the kill: its files are written again from {resume.path}, without training"
    else:
        partition, epoch = at
        where = f" of partition {partition + 1}/{n_partitions}" if n_partitions > 1 else ""
        said = f"resumed after epoch {epoch}/{epochs}{where} from {resume.path}"
    tqdm.write(f"{label}: {said}", file=sys.stdout)
    sys.stdout.flush()


def checkpoint_meta(params: Any, dataset: str, model_name: str, seed: int, table_meta: dict[str, Any],
                    thresholds: list[float]) -> dict[str, Any]:
    """What rebuilding the model needs without params.yaml (`asym predict`, MLflow Models), in
    plain containers so that `torch.load(weights_only=True)` reads it."""
    entry = registry.get(model_name)
    fmt = params.dataset(dataset).format
    readers = getattr(params.readers, fmt, None)
    return {"version": CHECKPOINT_VERSION, "dataset": dataset, "format": fmt, "model": model_name,
            "entry_digest": entry.digest(), "kind": entry.kind, "seed": int(seed), "scale": params.scale,
            "model_config": params.model_config(model_name, dataset).kwargs(),
            "audio_dim": int(table_meta["audio_dim"]), "visual_dim": int(table_meta["visual_dim"]),
            "readers": readers.model_dump(mode="json") if readers is not None else {},
            "recipe_name": entry.recipe, "recipe": params.recipe(entry.recipe).model_dump(mode="json"),
            "threshold": [float(t) for t in thresholds], "eval_batch_size": int(params.train.eval_batch_size)}


def save_run(out: Path, results: list[FitResult], norms: list[Normalizer], predictions: list[pd.DataFrame],
             meta: dict[str, Any] | None = None, epochs: pd.DataFrame | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAIN_FILES["summary"]).unlink(missing_ok=True)   # an old summary must not vouch for new files
    ckpt = {"partitions": [{"state_dict": r.best_state, "best_epoch": torch.tensor(r.best_epoch), **n.tensors()}
                           for r, n in zip(results, norms, strict=True)], **({"meta": meta} if meta else {})}
    with atomic_path(out / TRAIN_FILES["checkpoint"]) as tmp:
        torch.save(ckpt, tmp)
    with atomic_path(out / TRAIN_FILES["predictions"]) as tmp:
        pd.concat(predictions, ignore_index=True).to_parquet(tmp, index=False)
    history = pd.concat([pd.DataFrame([public_row(h) for h in r.history]).assign(partition=p)
                         for p, r in enumerate(results)], ignore_index=True)
    with atomic_path(out / TRAIN_FILES["history"]) as tmp:
        history[["partition", *[c for c in history.columns if c != "partition"]]].to_csv(tmp, index=False)
    if epochs is not None:
        with atomic_path(out / STUDY_TRAIN_FILES["epochs"]) as tmp:
            epochs.to_parquet(tmp, index=False)


def load_checkpoint(path: Path, partition: int = 0) -> tuple[dict[str, torch.Tensor], Normalizer | PerSampleNormalizer, int]:
    """The chosen weights, normaliser and epoch of one partition of a saved run (on the CPU,
    wherever it was trained)."""
    return unpack_partition(torch.load(path, map_location="cpu", weights_only=True)["partitions"][partition])


def unpack_partition(part: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Normalizer | PerSampleNormalizer, int]:
    """One partition of a loaded checkpoint: its weights, normaliser and chosen epoch."""
    if "std_floor" in part:
        norm: Normalizer | PerSampleNormalizer = PerSampleNormalizer(float(part["std_floor"]))
    else:
        norm = Normalizer(*(part[k].numpy() for k in ("a_mean", "a_std", "v_mean", "v_std")))
    return part["state_dict"], norm, int(part["best_epoch"])


def env_threads(threads: int) -> None:
    """Numba reads its thread count at import: set it before anything imports numba."""
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, threads)))


def read_summary(out: Path) -> dict[str, Any]:
    return read_json(out / TRAIN_FILES["summary"])
