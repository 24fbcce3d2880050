"""The epoch loop of one partition: train an epoch, score it on the fold that selects, keep the
best epoch's weights (the first best on ties), and save the loop's state for a resume.

The selection score is computed at the 0.5 threshold on the validation fold, or on the test fold
under a select-on-test protocol (asym.data.splits.selection_fold). The optimiser, scheduler and
loss come from the recipe (asym.train.optimization, asym.train.losses). The loop's objects are
built by `build_loop`, beside the model, where a resumed partition gets them back (asym.train.job).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from asym.config import DEFAULT_THRESHOLD
from asym.data.parquet import FeatureTable
from asym.errors import ConfigError
from asym.metrics import label_metrics, selection_score
from asym.train.feed import TrainFeed, collate, outputs
from asym.train.losses import build_loss
from asym.train.normalize import AnyNormalizer
from asym.train.observe import TrainObserver
from asym.train.optimization import build_optimizer, build_scheduler, step_scheduler
from asym.train.resume import Loop
from asym.train.thresholds import decision_threshold

if TYPE_CHECKING:
    from asym.config import RecipeConfig

# The key of a history row holding the epoch's record (a study run's): kept with the history, so
# that a resumed seed has it for its earlier epochs too, but neither in history.csv nor logged.
EPOCH_RECORD = "_epoch_record"


@dataclass
class Runtime:
    """Where the loop computes, and the observer told of every step."""

    device: torch.device
    precision: str
    pin_memory: bool
    eval_batch_size: int
    observer: TrainObserver = field(default_factory=TrainObserver)


def validation_score(fold: FeatureTable, probs: np.ndarray, metric: str) -> tuple[float, dict[str, float]]:
    """The checkpoint-selection score of `probs`, one epoch's probabilities on the fold that
    chooses the checkpoint: the validation fold, the test fold only under a select-on-test
    protocol (asym.data.splits.selection_fold); with that fold's label metrics at threshold 0.5."""
    m = label_metrics(fold.label, probs >= DEFAULT_THRESHOLD)
    return selection_score(m, metric), m


def loss_of(logits: np.ndarray, fold: FeatureTable, loss_fn: nn.Module, device: torch.device) -> float:
    """The recipe's loss of a fold's logits (`outputs`)."""
    with torch.no_grad():
        return float(loss_fn(torch.from_numpy(logits).to(device),
                             torch.as_tensor(fold.label, dtype=torch.float32, device=device)))


class EpochOutputs:
    """One epoch's probabilities and logits of each fold it is scored on, from one pass over the
    fold however many of them the epoch needs (its selection score, a plateau scheduler's loss,
    a study run's record)."""

    def __init__(self, model: nn.Module, folds: dict[str, FeatureTable], norm: AnyNormalizer, rt: Runtime) -> None:
        self.model, self.folds, self.norm, self.rt = model, folds, norm, rt
        self.seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _of(self, fold: str) -> tuple[np.ndarray, np.ndarray]:
        if fold not in self.seen:
            self.seen[fold] = outputs(self.model, self.folds[fold], self.norm, self.rt.eval_batch_size, self.rt.device)
        return self.seen[fold]

    def probs(self, fold: str) -> np.ndarray:
        return self._of(fold)[0]

    def loss(self, fold: str, loss_fn: nn.Module) -> float:
        return loss_of(self._of(fold)[1], self.folds[fold], loss_fn, self.rt.device)


def train_epoch(model: nn.Module, feed: TrainFeed, opt: torch.optim.Optimizer, loss_fn: nn.Module,
                grad_clip: float | None, rt: Runtime) -> float:
    """One pass over the feed; the mean training loss of its batches."""
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
        rt.observer.on_step(time.perf_counter() - t0)
    return float(np.mean(losses))


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Start:
    """Where a partition's epoch loop starts: at its first epoch, or, resumed, after the last
    epoch its killed run saved, with the history and the best epoch so far."""

    epoch: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    best: FitResult | None = None


# After each epoch: (epoch, the loop, its best epoch so far, the history so far), as SeedResume.save takes them.
Save = Callable[[int, Loop, dict[str, Any] | None, list[dict[str, Any]]], None]


def build_loop(model: nn.Module, train: FeatureTable, norm: AnyNormalizer, recipe: RecipeConfig, dataset: str,
               rng: np.random.Generator) -> Loop:
    """A partition's loop objects, in this order: the feed (its offline crops drawn from `rng`
    now), the recipe's optimiser and scheduler."""
    feed = TrainFeed(train, norm, recipe, dataset, rng)
    opt = build_optimizer(model, recipe, dataset)
    return Loop(model, opt, build_scheduler(opt, recipe, dataset), feed)


def fit(loop: Loop, folds: dict[str, FeatureTable], recipe: RecipeConfig, rt: Runtime,
        on_epoch: Callable[[dict[str, float]], None] | None = None, start: Start | None = None,
        save: Save | None = None, select: str = "valid", keep_epochs: bool = False) -> FitResult:
    """The epoch loop on `loop`'s objects, from `start` (the first epoch when not given); the best
    epoch by the selection score on fold `select` (first best on ties), whose history columns are
    named after it. A plateau scheduler steps on the validation fold's loss whatever `select` is.
    `save` is given the loop after each epoch; `keep_epochs` keeps each epoch's record
    (`epoch_record`)."""
    start = Start() if start is None else start
    model, opt, sched, feed = loop.model, loop.optimizer, loop.scheduler, loop.feed
    loss_fn = build_loss(recipe, folds["train"].label, rt.device, model)
    best, history = start.best, start.history
    for epoch in range(start.epoch, int(recipe.epochs) + 1):
        t0 = time.perf_counter()
        lr = float(opt.param_groups[0]["lr"])        # this epoch's, before the scheduler moves it
        loss = train_epoch(model, feed, opt, loss_fn, recipe.grad_clip, rt)
        seconds = time.perf_counter() - t0
        scored = EpochOutputs(model, folds, feed.norm, rt)
        probs = scored.probs(select)
        score, val = validation_score(folds[select], probs, recipe.selection_metric)
        stepped_on = None if sched is None else step_scheduler(sched, partial(scored.loss, "valid", loss_fn))
        row = {"epoch": epoch, "train_loss": loss, "epoch_time_s": seconds,
               **{f"{select}_{k}": v for k, v in val.items()}, f"{select}_selection": score, "lr": lr,
               **({"valid_loss": stepped_on} if stepped_on is not None else {})}
        if keep_epochs:
            row[EPOCH_RECORD] = epoch_record(folds, probs, partial(scored.probs, "valid"), recipe)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if best is None or score > best.best_score:
            # A copy, never a view of the live weights: later epochs must not change "best".
            best = FitResult(epoch, score, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        if save is not None:
            save(epoch, loop, _best(best), history)
    if best is None:
        raise ConfigError(f"recipe trains for {recipe.epochs} epochs: nothing to select")
    best.history = history
    return best


def _best(best: FitResult | None) -> dict[str, Any] | None:
    return None if best is None else {"epoch": best.best_epoch, "score": best.best_score, "state": best.best_state}


def epoch_record(folds: dict[str, FeatureTable], probs: np.ndarray, valid_probs: Callable[[], np.ndarray],
                 recipe: RecipeConfig) -> dict[str, Any]:
    """One epoch's probabilities on the selection fold and the threshold this epoch's weights
    would label at (tuned on the validation fold, as at the chosen checkpoint): what choosing
    the epoch again needs (asym.report.optimism)."""
    threshold = decision_threshold(recipe, folds["valid"].label, valid_probs)
    return {"prob": np.asarray(probs, np.float32).tolist(), "threshold": float(threshold)}


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A history row as history.csv and the observers see it (without the epoch's record)."""
    return {k: v for k, v in row.items() if k != EPOCH_RECORD}
