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

import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asym.models.layers import param_groups

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
# Where torch.optim marks its methods and update functions not to be compiled (`torch._disable_dynamo`).
OPTIM_MODULES = ("optimizer", "adam", "adamw", "lr_scheduler")


# --- eager optimisers ------------------------------------------------------------------------------------
# torch.optim imports torch._dynamo on an optimiser's first step: its step runs between two
# `torch._dynamo.graph_break()` calls, and its methods are wrapped by `torch._disable_dynamo`, which
# imports torch._dynamo when first called to mark them not to be compiled. That import takes 1.1 s,
# a fifth of a demo training job, for graph breaks and marks that do nothing when nothing is
# compiled, and asym compiles nothing. So the step runs as torch's own, unwrapped, under no_grad (what
# the wrapper does when `differentiable` is off), and the marks are set to the functions themselves.
# The updates are torch's bit for bit (tests/train/test_optimization.py); where torch._dynamo is
# already imported, torch's path is taken unchanged. The marks stay for the rest of the process:
# code that imports torch._dynamo later in it and compiles a function calling an optimiser's
# methods would trace into them (torch would have skipped them); asym's commands never compile.
def _mark_not_compiled(obj: Any, disable_code: types.CodeType, seen: set[int]) -> None:
    """Give each `torch._disable_dynamo` wrapper reachable from `obj` (through closures) the mark it
    would import torch._dynamo to compute."""
    if id(obj) in seen or not isinstance(obj, types.FunctionType):
        return
    seen.add(id(obj))
    if obj.__code__ is disable_code:
        fn = obj.__closure__[obj.__code__.co_freevars.index("fn")].cell_contents
        if getattr(fn, "__dynamo_disable", None) is None:
            fn.__dynamo_disable = fn
    for cell in obj.__closure__ or ():
        try:
            _mark_not_compiled(cell.cell_contents, disable_code, seen)
        except ValueError:            # an empty cell
            continue


def _eager_torch_optim() -> bool:
    """Mark torch.optim's not-to-be-compiled functions without importing torch._dynamo; False (and
    nothing done) where torch._dynamo is imported already."""
    import sys

    if "torch._dynamo" in sys.modules:
        return False
    disable_code = torch._disable_dynamo(lambda: None).__code__
    seen: set[int] = set()
    for name in OPTIM_MODULES:
        for value in vars(importlib.import_module(f"torch.optim.{name}")).values():
            for obj in (value, *(vars(value).values() if isinstance(value, type) else ())):
                _mark_not_compiled(obj, disable_code, seen)
    return True


# Adam's own step (AdamW's too), under the graph-break wrapper, and under the hooks wrapper torch.optim
# puts on a class once an instance of it exists: found once, whichever of them is there.
ADAM_STEP = inspect.unwrap(torch.optim.Adam.step)


class _EagerStep:
    """torch's step without its graph breaks (see above): the same update, with gradients on only
    for a `differentiable` optimiser, as torch's wrapper sets them."""

    defaults: dict[str, Any]

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return ADAM_STEP(self, closure)


class EagerAdam(_EagerStep, torch.optim.Adam):
    pass


class EagerAdamW(_EagerStep, torch.optim.AdamW):
    pass


def build_optimizer(model: nn.Module, recipe: Any, dataset: str) -> torch.optim.Optimizer:
    wd = float(recipe.weight_decay)
    if recipe.weight_decay_on == "all":
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": wd}]
    else:
        groups = param_groups(model, wd)
    if _eager_torch_optim():
        cls: type[torch.optim.Optimizer] = EagerAdamW if recipe.optimizer == "adamw" else EagerAdam
    else:
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
