"""Train one (dataset, model) for a list of seeds: the checkpoint is chosen on validation only
(on the test fold under a select-on-test protocol, for the optimism study: asym.data.splits).

One job trains every seed it is given (and, under `kfold`, every partition) so that start-up is
paid once: all of `run.seeds`, or one under `train.job: per_seed` (asym.dag.stages), where a
cluster runs the seeds side by side. Each seed keeps its own run folder (asym.layout.RunFiles):
checkpoint.pt (the weights with the meta a model is rebuilt from), predictions.parquet (valid + test, with gender and length), history.csv and train.json (the
checkpoint's meta, with what only the summary holds: sizes, times, chosen epochs), all written
atomically, train.json last. A seed whose folder is complete is not trained again; a seed
killed inside its epochs goes on after its last finished epoch, from its resume.pt (asym.train.resume).
Everything the trainer does besides the model comes from the model's recipe in params.yaml; each
partition goes through the epoch loop (asym.train.loop) on batches of the feed (asym.train.feed),
and the job reports its progress to observers (asym.train.observe).
The optimism study's runs also write epochs.parquet (asym.layout.OPTIMISM_TRAIN_FILES).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from asym import jobstats
from asym.dag.code import code_digest, training_values
from asym.data import formats, protocols
from asym.data.parquet import FeatureTable
from asym.data.splits import load_partitions, selection_fold
from asym.errors import DataError
from asym.grid import Run
from asym.io import atomic_path, write_json
from asym.layout import OPTIMISM_TRAIN_FILES, RESUME_FILE, Layout, RunFiles
from asym.models import factory, registry
from asym.train.feed import TrainFeed, predict
from asym.train.loop import EPOCH_RECORD, FitResult, Runtime, Start, build_loop, fit, public_row
from asym.train.normalize import AnyNormalizer, Normalizer, PerSampleNormalizer, fit_normalizer
from asym.train.observe import EtaWarning, Observers, Progress, TrainObserver
from asym.train.resume import Loop, Saved, SeedResume, fingerprint
from asym.train.thresholds import decision_threshold

if TYPE_CHECKING:
    from asym.config import Params
    from asym.models.families import ModelConfig

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


def env_threads(threads: int) -> None:
    """Numba reads its thread count at import: set it before anything imports numba."""
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, threads)))


# --- one job -----------------------------------------------------------------------------------
def train_job(params: Params, dataset: str, model_name: str, seeds: list[int],
              observers: Iterable[TrainObserver] = ()) -> list[dict[str, Any]]:
    """Train `model_name` on `dataset` for every seed whose run folder is not complete. Besides
    `observers`, the job's progress bar and, at paper scale on the CPU, its ETA warning follow it."""
    layout = Layout.of(params)
    entry = registry.get(model_name)
    recipe = params.recipe(entry.recipe)
    table, partitions = load_partitions(Path(layout.parquet(dataset)), Path(layout.split_csv(dataset)),
                                        subjects_disjoint=protocols.get(params.protocol(dataset)).subject_disjoint)
    device = pick_device(params.train.device)
    torch.set_num_threads(params.train.threads)
    runs = {s: layout.run(Run(dataset, model_name, s)) for s in seeds}
    todo = [s for s in seeds if not runs[s].complete()]
    steps = sum(len(TrainFeed(p["train"], Normalizer.identity(p["train"]), recipe, dataset,
                              np.random.default_rng(0))) for p in partitions) * int(recipe.epochs)
    inputs = inputs_digest(params, dataset, model_name, device, params.train.precision) if todo else ""
    label = f"{dataset}/{model_name}"
    eta = [EtaWarning(steps, label)] if params.scale == "paper" and device.type == "cpu" else []
    summaries = []
    with Progress(steps * len(todo), label) as progress:
        observer = Observers([*eta, progress, *observers])
        rt = Runtime(device, params.train.precision, params.train.pin_memory, params.train.eval_batch_size, observer)
        for seed in todo:
            observer.on_seed_start(seed)
            summaries.append(train_seed(params, runs[seed], partitions, table, rt, inputs))
            observer.on_seed_done(seed, runs[seed].folder)
    for files in runs.values():              # every seed complete: nothing left to resume
        files.resume.unlink(missing_ok=True)
    return summaries


def train_seed(params: Params, files: RunFiles, partitions: list[dict[str, FeatureTable]], table: FeatureTable,
               rt: Runtime, inputs: str | None = None) -> dict[str, Any]:
    """One seed, every partition; `inputs`: the job's inputs_digest (computed here when not given).
    Its train.json is its checkpoint's meta and what only the summary holds."""
    dataset, model_name, seed = files.run.dataset, files.run.model, files.run.seed
    recipe = params.recipe(registry.get(model_name).recipe)
    config = params.model_config(model_name, dataset)
    widths = (int(table.meta["audio_dim"]), int(table.meta["visual_dim"]))
    if inputs is None:
        inputs = inputs_digest(params, dataset, model_name, rt.device, rt.precision)
    resume = SeedResume.open(files.resume, fingerprint({"inputs": inputs, "seed": seed}, []), time.time(), _warn)
    _say_resumed(resume, files.run.key, int(recipe.epochs), len(partitions))
    started, resumed_at = resume.started_at, time.time()
    seed_everything(seed, rt.device)
    rng = np.random.default_rng(seed)
    select = selection_fold(params.protocol(dataset))
    results, predictions, norms, thresholds = [], [], [], []
    for p, folds in enumerate(partitions):
        norm = fit_normalizer(recipe, folds["train"])
        model = factory.build(model_name, *widths, config).to(rt.device)

        def on_epoch(row: dict[str, Any], p: int = p) -> None:
            rt.observer.on_epoch(seed, p, public_row(row))
        if p < len(resume.finished):         # trained to its end before the kill
            res = FitResult(**resume.finished[p])
            for row in res.history:
                on_epoch(row)
        else:
            loop = build_loop(model, folds["train"], norm, recipe, dataset, rng)
            start = _restored(resume.saved(p), loop, on_epoch, rt.observer)
            res = fit(loop, folds, recipe, rt, on_epoch=on_epoch, start=start, save=partial(resume.save, p),
                      select=select, keep_epochs=files.layout.in_optimism)
            resume.finish(p, res.best_epoch, res.best_score, res.best_state, res.history)
        model.load_state_dict(res.best_state)
        thresholds.append(decision_threshold(recipe, folds["valid"].label, partial(
            predict, model, folds["valid"], norm, rt.eval_batch_size, rt.device)))
        predictions.append(_prediction_rows(model, folds, norm, p, rt.eval_batch_size, rt.device, thresholds[-1]))
        results.append(res)
        norms.append(norm)
    finished = time.time()
    meta = checkpoint_meta(params, dataset, model_name, seed, widths, config, thresholds)
    save_run(files, results, norms, predictions, meta,
             epochs=epoch_rows(results, partitions, select, files.folder) if files.layout.in_optimism else None)
    summary = {
        **meta,
        "protocol": params.protocol(dataset), "n_partitions": len(partitions), "device": str(rt.device),
        "precision": rt.precision,
        "n_params": factory.trainable_count(model),   # every partition builds the same model
        "selection_fold": select,            # the fold whose score chose each partition's checkpoint
        "best_epoch": [r.best_epoch for r in results], "best_valid_selection": [r.best_score for r in results],
        "epochs": int(recipe.epochs),
        "epoch_time_s": float(np.mean([h["epoch_time_s"] for r in results for h in r.history])),
        "train_time_s": finished - started, "started_at": started, "finished_at": finished,
        "n_train": [len(f["train"]) for f in partitions], "n_valid": [len(f["valid"]) for f in partitions],
        "n_test": [len(f["test"]) for f in partitions],
        "train_positive_rate": [float(np.mean(f["train"].label)) for f in partitions],
    }
    write_json(files.file("summary"), summary)   # last: marks the seed complete
    resume.complete()                            # removed when the job ends
    jobstats.add_work(finished - resumed_at)
    return summary


def _restored(saved: Saved | None, loop: Loop, on_epoch: Callable[[dict[str, Any]], None],
              observer: TrainObserver) -> Start:
    """Where a partition's epoch loop starts: its first epoch, or, where its killed run `saved`
    the loop, after that run's last epoch with the loop's objects, history and best epoch as they
    were then; the generators are restored last, so that nothing before the next epoch shifts them."""
    if saved is None:
        return Start()
    saved.restore(loop)
    for row in saved.history:
        on_epoch(row)                        # a live MLflow run of the killed job is replaced: whole curves
    observer.on_resume(len(loop.feed) * saved.epoch)
    saved.restore_rng(loop.feed.rng)
    best = None if saved.best is None else FitResult(int(saved.best["epoch"]), float(saved.best["score"]),
                                                     saved.best["state"])
    return Start(saved.epoch + 1, saved.history, best)


def inputs_digest(params: Params, dataset: str, model_name: str, device: torch.device, precision: str) -> str:
    """What a job's seeds are trained from: a resume.pt written for anything else is not resumed.
    The code counts as the DAG counts it (asym.dag.code): a comment or a docstring edit keeps a
    half-finished seed, a real edit of the code it runs starts it again."""
    entry = registry.get(model_name)
    layout = Layout.of(params)
    facts = {"dataset": dataset, "model": model_name, "entry": entry.digest(), "scale": params.scale,
             "protocol": params.protocol(dataset), "recipe": params.recipe(entry.recipe).model_dump(mode="json"),
             "model_config": params.model_config(model_name, dataset).kwargs(), "precision": precision,
             "device": device.type,
             "code": code_digest([__name__], model_name, resolved=training_values(params, dataset, model_name))}
    plugin = registry.plugin_of(model_name)
    if plugin is not None:              # a plug-in's file lies outside the package's code walk
        facts["plugin"] = plugin["sha256"]
    return fingerprint(facts, [layout.parquet(dataset), layout.split_csv(dataset)])


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


# --- what a seed writes --------------------------------------------------------------------------
def _prediction_rows(model: nn.Module, folds: dict[str, FeatureTable], norm: AnyNormalizer, partition: int,
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
                                       f"{OPTIMISM_TRAIN_FILES['epochs']} from; delete its {RESUME_FILE} and train it again")
            rec = row[EPOCH_RECORD]
            frames.append(pd.DataFrame({
                "partition": np.int16(p), "epoch": np.int16(row["epoch"]), "fold": select, "sample_id": t.sample_id,
                "label": t.label.astype(np.int8), "prob": np.asarray(rec["prob"], np.float32),
                "threshold": float(rec["threshold"])}))
    return pd.concat(frames, ignore_index=True)


def checkpoint_meta(params: Params, dataset: str, model_name: str, seed: int, widths: tuple[int, int],
                    config: ModelConfig, thresholds: list[float]) -> dict[str, Any]:
    """What rebuilding the model needs without params.yaml (`asym predict`, MLflow Models), in
    plain containers so that `torch.load(weights_only=True)` reads it: the model as built from
    `config` on input `widths`, and each partition's decision threshold."""
    entry = registry.get(model_name)
    ds = params.dataset(dataset)
    return {"version": CHECKPOINT_VERSION, "dataset": dataset, "format": ds.format, "model": model_name,
            "entry_digest": entry.digest(), "kind": entry.kind, "seed": int(seed), "scale": params.scale,
            "model_config": config.kwargs(), "audio_dim": int(widths[0]), "visual_dim": int(widths[1]),
            "readers": formats.dataset_settings(ds, params.readers),
            "recipe_name": entry.recipe, "recipe": params.recipe(entry.recipe).model_dump(mode="json"),
            "threshold": [float(t) for t in thresholds], "eval_batch_size": int(params.train.eval_batch_size),
            # a plug-in model's module, file and sha256 (asym.inference.predict finds and checks it)
            **({"plugin": plugin} if (plugin := registry.plugin_of(model_name)) is not None else {})}


def save_run(files: RunFiles, results: list[FitResult], norms: list[AnyNormalizer], predictions: list[pd.DataFrame],
             meta: dict[str, Any] | None = None, epochs: pd.DataFrame | None = None) -> None:
    """Every file of the seed but train.json, each written atomically (the old train.json removed first)."""
    files.folder.mkdir(parents=True, exist_ok=True)
    files.file("summary").unlink(missing_ok=True)   # an old summary must not vouch for new files
    ckpt = {"partitions": [{"state_dict": r.best_state, "best_epoch": torch.tensor(r.best_epoch), **n.tensors()}
                           for r, n in zip(results, norms, strict=True)], **({"meta": meta} if meta else {})}
    with atomic_path(files.file("checkpoint")) as tmp:
        torch.save(ckpt, tmp)
    with atomic_path(files.file("predictions")) as tmp:
        pd.concat(predictions, ignore_index=True).to_parquet(tmp, index=False)
    history = pd.concat([pd.DataFrame([public_row(h) for h in r.history]).assign(partition=p)
                         for p, r in enumerate(results)], ignore_index=True)
    with atomic_path(files.file("history")) as tmp:
        history[["partition", *[c for c in history.columns if c != "partition"]]].to_csv(tmp, index=False)
    if epochs is not None:
        with atomic_path(files.file("epochs")) as tmp:
            epochs.to_parquet(tmp, index=False)


def load_checkpoint(path: Path, partition: int = 0) -> tuple[dict[str, torch.Tensor], AnyNormalizer, int]:
    """The chosen weights, normaliser and epoch of one partition of a saved run (on the CPU,
    wherever it was trained)."""
    return unpack_partition(torch.load(path, map_location="cpu", weights_only=True)["partitions"][partition])


def unpack_partition(part: dict[str, Any]) -> tuple[dict[str, torch.Tensor], AnyNormalizer, int]:
    """One partition of a loaded checkpoint: its weights, normaliser and chosen epoch."""
    if "std_floor" in part:
        norm: AnyNormalizer = PerSampleNormalizer(float(part["std_floor"]))
    else:
        norm = Normalizer(*(part[k].numpy() for k in ("a_mean", "a_std", "v_mean", "v_std")))
    return part["state_dict"], norm, int(part["best_epoch"])
