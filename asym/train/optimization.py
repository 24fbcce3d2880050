"""The recipe's optimiser and learning-rate scheduler.

- Optimiser: Adam or AdamW at the dataset's learning rate, with the recipe's betas (PyTorch's
  when null). `weight_decay_on: weights` exempts Mamba's A_log and D, norms and biases
  (asym.models.layers.param_groups); `all` decays every parameter, as `torch.optim.Adam(
  net.parameters(), weight_decay=...)` does in MDD-Net's code.
- Scheduler: `cosine` steps once per epoch over the recipe's epochs; `plateau` is CAF-Mamba's
  ReduceLROnPlateau (github zbw-zhou/CAF-Mamba @15ca7fc, main.py: mode min, the dataset's
  factor, patience 5, PyTorch's other defaults), stepped once per epoch on the validation loss,
  after the validation pass, as its loop calls `scheduler.step(val_results["loss"])`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asym.models.layers import param_groups

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_optimizer(model: nn.Module, recipe: Any, dataset: str) -> torch.optim.Optimizer:
    wd = float(recipe.weight_decay)
    if recipe.weight_decay_on == "all":
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": wd}]
    else:
        groups = param_groups(model, wd)
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    extra = {"betas": tuple(float(b) for b in recipe.betas)} if recipe.betas is not None else {}
    return cls(groups, lr=recipe.lr_for(dataset), **extra)


def build_scheduler(opt: torch.optim.Optimizer, recipe: Any, dataset: str) -> Scheduler | None:
    if recipe.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(recipe.epochs))
    if recipe.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=recipe.plateau.factor_for(dataset),
                                                          patience=int(recipe.plateau.patience))
    return None


def step_scheduler(sched: Scheduler, valid_loss: Callable[[], float]) -> float | None:
    """One epoch's step; the validation loss is computed only for a scheduler that reads it, and
    returned (None otherwise) so that the epoch's history records what the step saw."""
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        loss = valid_loss()
        sched.step(loss)
        return loss
    sched.step()
    return None
