"""MDD-Net's combined loss against a hand computation, element by element."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asym.config import CombinedLossConfig, load_params
from asym.errors import ConfigError
from asym.train.losses import CombinedLoss, build_loss
from tests.project import ROOT

CFG = CombinedLossConfig(smoothing=0.1, focal_weight=0.5, focal_alpha=1.0, focal_gamma=2.0, l2_weight=0.5,
                         l2_lambda=1e-5)


def hand_combined(logits: list[float], labels: list[int], tensors: list[list[float]], cfg=CFG) -> float:
    n = len(logits)
    sig = [1 / (1 + math.exp(-z)) for z in logits]
    smooth = [y * (1 - cfg.smoothing) + 0.5 * cfg.smoothing for y in labels]
    bce = -sum(t * math.log(p) + (1 - t) * math.log(1 - p) for t, p in zip(smooth, sig, strict=True)) / n
    factors = [(cfg.focal_alpha if y == 1 else 1 - cfg.focal_alpha) * ((1 - p) if y == 1 else p) ** cfg.focal_gamma
               for y, p in zip(labels, sig, strict=True)]
    focal = sum(cfg.focal_weight * bce * f for f in factors) / n
    l2 = cfg.l2_weight * cfg.l2_lambda * sum(math.sqrt(sum(w * w for w in t)) for t in tensors)
    return bce + focal + l2


def test_the_combined_loss_is_smoothed_bce_plus_its_focal_and_l2_terms():
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.3, -1.2, 2.0]]))
        model.bias.fill_(0.0)                               # a zero tensor: norm 0, gradient 0 (as MDD-Net's zero biases)
    logits, labels = [1.5, -0.4, 0.2, -2.0], [1, 0, 1, 0]
    loss = CombinedLoss(CFG, model.parameters)(torch.tensor(logits), torch.tensor(labels, dtype=torch.float32))
    assert loss.item() == pytest.approx(hand_combined(logits, labels, [[0.3, -1.2, 2.0], [0.0]]), rel=1e-6)
    loss.backward()
    assert torch.isfinite(model.weight.grad).all() and float(model.bias.grad.abs().sum()) == 0
    # alpha = 1 gives normal vlogs no focal factor: their loss is the smoothed BCE alone
    normal_only = CombinedLoss(CFG.model_copy(update={"l2_weight": 0.0}), model.parameters)
    z = torch.tensor([0.7, -1.1])
    assert normal_only(z, torch.zeros(2)).item() == pytest.approx(hand_combined([0.7, -1.1], [0, 0], [], CFG), rel=1e-6)
    assert normal_only(z, torch.zeros(2)).item() == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(z, torch.full((2,), 0.05))), rel=1e-6)


def test_other_settings_change_the_loss_as_written():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 4.0]]))      # norm 5
    cfg = CombinedLossConfig(smoothing=0.0, focal_weight=2.0, focal_alpha=0.25, focal_gamma=1.0, l2_weight=1.0,
                             l2_lambda=0.01)
    logits, labels = [0.5, -0.3, 1.0], [1, 0, 0]
    loss = CombinedLoss(cfg, model.parameters)(torch.tensor(logits), torch.tensor(labels, dtype=torch.float32))
    assert loss.item() == pytest.approx(hand_combined(logits, labels, [[3.0, 4.0]], cfg), rel=1e-6)


def test_the_recipe_builds_its_loss():
    p = load_params(ROOT / "params.yaml")
    model = torch.nn.Linear(2, 1)
    loss = build_loss(p.recipe("mdd-net"), np.array([1, 0, 1]), torch.device("cpu"), model)
    assert isinstance(loss, CombinedLoss) and loss.cfg == p.recipe("mdd-net").combined_loss
    assert loss.cfg.l2_lambda == 1e-5 and loss.cfg.focal_weight == 0.5 and loss.cfg.l2_weight == 0.5
    balanced = build_loss(p.recipe("asym").model_copy(update={"class_weighting": "balanced"}), np.array([1, 0, 0, 0]),
                          torch.device("cpu"))
    assert float(balanced.pos_weight) == 3.0
    with pytest.raises(ConfigError, match="needs the model"):
        build_loss(p.recipe("mdd-net"), np.array([1, 0]), torch.device("cpu"))
    with pytest.raises(ConfigError, match="no class weighting"):
        build_loss(p.recipe("mdd-net").model_copy(update={"class_weighting": "balanced"}), np.array([1, 0]),
                   torch.device("cpu"), model)
