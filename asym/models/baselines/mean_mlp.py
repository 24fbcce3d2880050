"""Floor baseline: masked temporal mean of each modality, concatenated, then an MLP."""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class MeanMLPConfig(ModelConfig):
    hidden: PositiveInt
    dropout: Rate


register_model("mean-mlp", MeanMLPConfig, "MeanMLP",
               description="Masked temporal mean of both modalities + MLP (floor)")

import torch
from torch import nn

from asym.models.layers import Classifier, length_mask, masked_mean


class MeanMLP(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(audio_dim + visual_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.head = Classifier(hidden, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        pooled = torch.cat([masked_mean(audio, mask), masked_mean(visual, mask)], dim=-1)
        return self.head(self.mlp(pooled))
