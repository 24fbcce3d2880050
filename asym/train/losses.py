"""The recipe's training loss: plain BCE on logits (optionally class-weighted), or MDD-Net's
combined loss.

`loss: combined` follows MDD-Net's `CombinedLoss` (github rezwanh001/Multimodal-Depression-
Detection @b85a8a0, models/loss.py, called from mainkfold.py with lambda_reg 1e-5,
focal_weight 0.5, l2_weight 0.5, its defaults alpha 1, gamma 2, smooth_eps 0.1), term by term:

    bce   = mean BCE(logits, y * (1 - eps) + eps / 2)          (label smoothing)
    focal = focal_weight * bce * mean_i(a_i * q_i ** gamma)     a_i = alpha if y_i = 1 else 1 - alpha,
                                                                q_i = 1 - p_i if y_i = 1 else p_i
    l2    = l2_weight * l2_lambda * sum over parameters of ||w||_2   (norms, not squared)
    loss  = bce + focal + l2

As written there: the focal factors multiply the batch's (smoothed) mean BCE, not each vlog's
own, and with alpha = 1 a normal vlog's factor is 0. The L2 term sums the model's trainable
parameters, as `model.parameters()` does there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asym.errors import ConfigError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CombinedLoss(nn.Module):
    """MDD-Net's loss; `parameters` gives the tensors of its L2 term at every call."""

    def __init__(self, cfg: Any, parameters: Callable[[], Iterable[torch.Tensor]]) -> None:
        super().__init__()
        self.cfg = cfg
        self.parameters_of = parameters

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        smooth = targets * (1 - c.smoothing) + 0.5 * c.smoothing
        bce = F.binary_cross_entropy_with_logits(logits, smooth)
        probs = torch.sigmoid(logits)
        positive = targets == 1
        alpha = torch.where(positive, torch.full_like(probs, c.focal_alpha), torch.full_like(probs, 1 - c.focal_alpha))
        factor = alpha * torch.where(positive, 1 - probs, probs) ** c.focal_gamma
        focal = (c.focal_weight * bce * factor).mean()
        l2 = c.l2_weight * c.l2_lambda * sum(p.norm(2) for p in self.parameters_of() if p.requires_grad)
        return bce + focal + l2


def build_loss(recipe: Any, train_labels: np.ndarray, device: torch.device, model: nn.Module | None = None) -> nn.Module:
    """The recipe's loss as `loss(logits, labels)`; `model` is needed by the combined loss's L2 term."""
    if recipe.loss == "combined":
        if model is None:
            raise ConfigError("the combined loss needs the model (its L2 term sums its parameters)")
        if recipe.class_weighting != "none":
            raise ConfigError("the combined loss takes no class weighting (MDD-Net weighs no class)")
        return CombinedLoss(recipe.combined_loss, model.parameters)
    if recipe.class_weighting == "balanced":
        pos = max(1, int(np.sum(train_labels)))
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train_labels) - pos) / pos, device=device))
    return nn.BCEWithLogitsLoss()
