"""Train one (dataset, model, seed): best epoch chosen on validation only, then test predictions.

Outputs (all written atomically into the run folder): checkpoint.pt (tensors only),
predictions.parquet (valid + test), history.csv, train.json; plus one MLflow run.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from asym.data.parquet import FeatureTable, read_samples
from asym.data.sample import FOLDS
from asym.data.splits import match_split, read_split
from asym.evaluate import binary_metrics, selection_score
from asym.io import atomic_path, write_json
from asym.models import registry


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed every generator. On the CPU, our ops are deterministic at a fixed thread count; on
    CUDA, deterministic kernels are requested too (importing that switch costs ~1 s, so only
    there)."""
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


def load_fold_tables(data: Path, split: Path) -> dict[str, FeatureTable]:
    """The three folds, refused unless the split is leak-free and describes exactly this data."""
    table = read_samples(data)
    folds = match_split(table, read_split(split), split, data)
    return {f: table.select([i for i, g in enumerate(folds) if g == f]) for f in FOLDS}


def collate(items: list[tuple[np.ndarray, np.ndarray, int]], device: torch.device) -> tuple[torch.Tensor, ...]:
    lengths = torch.tensor([a.shape[0] for a, _, _ in items], dtype=torch.int64)
    t = int(lengths.max())
    audio = torch.zeros(len(items), t, items[0][0].shape[1])
    visual = torch.zeros(len(items), t, items[0][1].shape[1])
    for i, (a, v, _) in enumerate(items):
        audio[i, : a.shape[0]] = torch.from_numpy(a)
        visual[i, : v.shape[0]] = torch.from_numpy(v)
    labels = torch.tensor([y for _, _, y in items], dtype=torch.float32)
    return audio.to(device), visual.to(device), lengths.to(device), labels.to(device)


def random_crop(a: np.ndarray, v: np.ndarray, rng: np.random.Generator, max_frames: int, min_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Train-time augmentation after DepMamba: a random window, never shorter than min_frames."""
    n = a.shape[0]
    if n <= min_frames:
        return a, v
    length = int(rng.integers(min(min_frames, max_frames), min(n, max_frames) + 1))
    start = int(rng.integers(0, n - length + 1))
    return a[start: start + length], v[start: start + length]


@torch.no_grad()
def predict(model: nn.Module, table: FeatureTable, norm: Normalizer, batch_size: int, device: torch.device) -> np.ndarray:
    model.eval()
    probs = []
    order = np.argsort([a.shape[0] for a in table.audio])   # similar lengths together: less padding
    for i in range(0, len(order), batch_size):
        items = [(*norm(table.audio[j], table.visual[j]), 0) for j in order[i: i + batch_size]]
        audio, visual, lengths, _ = collate(items, device)
        probs.append(torch.sigmoid(model(audio, visual, lengths)).float().cpu().numpy())
    out = np.empty(len(order), dtype=np.float32)
    out[order] = np.concatenate(probs) if probs else np.empty(0)
    return out


def train_run(params: Any, dataset: str, model_name: str, seed: int, data: Path, split: Path, out: Path) -> dict[str, Any]:
    cfg = params.train
    torch.set_num_threads(int(cfg["threads"]))
    device = pick_device(str(cfg["device"]))
    seed_everything(seed, device)
    folds = load_fold_tables(data, split)
    train, valid, test = folds["train"], folds["valid"], folds["test"]
    norm = Normalizer.fit(train) if cfg["normalize_features"] else Normalizer.identity(train)
    meta = train.meta
    model = registry.build(model_name, meta["audio_dim"], meta["visual_dim"], params=params, dataset=dataset).to(device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    epochs = int(cfg["epochs"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if cfg["scheduler"] == "cosine" else None
    loss_fn = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    bs = int(cfg["batch_size"])
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    epoch_times = []
    bar = tqdm(range(1, epochs + 1), desc=f"{dataset}/{model_name}/seed{seed}", unit="epoch", leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(train))
        losses = []
        for i in range(0, len(order), bs):
            items = []
            for j in order[i: i + bs]:
                a, v = random_crop(train.audio[j], train.visual[j], rng, int(cfg["max_frames"]), int(cfg["min_crop_frames"]))
                items.append((*norm(a, v), int(train.label[j])))
            audio, visual, lengths, labels = collate(items, device)
            loss = loss_fn(model(audio, visual, lengths), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.get("grad_clip"):
                nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            opt.step()
            losses.append(float(loss.detach()))
        if sched is not None:
            sched.step()
        epoch_times.append(time.perf_counter() - t0)
        val = binary_metrics(valid.label, predict(model, valid, norm, bs, device) >= 0.5)
        score = selection_score(val, str(cfg["selection_metric"]))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "epoch_time_s": epoch_times[-1],
                        **{f"valid_{k}": v for k, v in val.items()}, "valid_selection": score})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_f1=f"{val['f1']:.3f}")
        if best is None or score > best[0]:
            best = (score, epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[2])
    rows = []
    for fold, table in (("valid", valid), ("test", test)):
        prob = predict(model, table, norm, bs, device)
        rows.append(pd.DataFrame({"sample_id": table.sample_id, "subject_id": table.subject_id, "fold": fold,
                                  "label": table.label.astype(np.int8), "prob": prob, "pred": (prob >= 0.5).astype(np.int8)}))
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "checkpoint.pt") as tmp:
        torch.save({"state_dict": best[2], "best_epoch": torch.tensor(best[1]),
                    "a_mean": torch.from_numpy(norm.a_mean), "a_std": torch.from_numpy(norm.a_std),
                    "v_mean": torch.from_numpy(norm.v_mean), "v_std": torch.from_numpy(norm.v_std)}, tmp)
    with atomic_path(out / "predictions.parquet") as tmp:
        pd.concat(rows, ignore_index=True).to_parquet(tmp, index=False)
    with atomic_path(out / "history.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    summary = {
        "dataset": dataset, "model": model_name, "seed": seed, "device": str(device), "n_params": n_params,
        "best_epoch": best[1], "best_valid_selection": best[0], "epochs": epochs,
        "epoch_time_s": float(np.mean(epoch_times)), "train_time_s": float(np.sum(epoch_times)),
        "n_train": len(train), "n_valid": len(valid), "n_test": len(test),
        "train_positive_rate": float(np.mean(train.label)), "scale": params.scale,
        "model_config": registry.resolve_config(model_name, params, dataset),
    }
    from asym import tracking

    summary["mlflow_run_id"] = tracking.log_run(
        params, run_name=f"{dataset}/{model_name}/seed{seed}",
        tags={"dataset": dataset, "model": model_name, "seed": str(seed), "kind": registry.get(model_name).kind,
              "asym.stage": "train"},
        run_params={"dataset": dataset, "model": model_name, "seed": seed, "n_params": n_params,
                    "train": cfg, "model_config": summary["model_config"]},
        history=history, artifacts=[out / "history.csv", out / "predictions.parquet"])
    write_json(out / "train.json", summary)
    return summary


def env_threads(threads: int) -> None:
    """Numba reads its thread count at import: set it before anything imports numba."""
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, threads)))
