"""What the model is fed: training batches per the recipe's cropping, and batched inference.

A batch is padded to its longest vlog and carries every vlog's length, so a model never sees
padding as frames. Training draws from its own numpy Generator (the epoch's order, the random
windows, the offline crops), which a resumed seed gets back from its resume.pt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from asym.data.parquet import FeatureTable
from asym.train.normalize import AnyNormalizer

if TYPE_CHECKING:
    from asym.config import RecipeConfig

Item = tuple[np.ndarray, np.ndarray, int]      # (audio frames, visual frames, label) of one view


def collate(items: list[Item], device: torch.device, pin: bool = False) -> tuple[torch.Tensor, ...]:
    """(audio, visual, lengths, labels) on `device`, zero-padded to the longest item."""
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

    def __init__(self, table: FeatureTable, norm: AnyNormalizer, recipe: RecipeConfig, dataset: str,
                 rng: np.random.Generator) -> None:
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
def outputs(model: nn.Module, table: FeatureTable, norm: AnyNormalizer, batch_size: int,
            device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """P(depressed) and the model's raw outputs (logits) of every vlog of `table`, in its order,
    from one pass over it."""
    model.eval()
    probs, logits = [], []
    order = np.argsort(table.n_frames, kind="stable")   # similar lengths together: less padding
    for i in range(0, len(order), batch_size):
        items = [(*norm(table.audio[j], table.visual[j]), 0) for j in order[i: i + batch_size]]
        audio, visual, lengths, _ = collate(items, device)
        out = model(audio, visual, lengths)
        probs.append(torch.sigmoid(out).float().cpu().numpy())
        logits.append(out.float().cpu().numpy())
    result = []
    for parts in (probs, logits):
        column = np.empty(len(order), dtype=np.float32)
        column[order] = np.concatenate(parts) if parts else np.empty(0)
        result.append(column)
    return result[0], result[1]


def predict(model: nn.Module, table: FeatureTable, norm: AnyNormalizer, batch_size: int,
            device: torch.device) -> np.ndarray:
    """P(depressed) of every vlog of `table`, in its order."""
    return outputs(model, table, norm, batch_size, device)[0]
