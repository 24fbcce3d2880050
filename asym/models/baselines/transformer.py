"""Early-fusion Transformer: both modalities concatenated per frame, projected, positional
encoding added, a Transformer encoder (Vaswani et al., NeurIPS 2017), masked mean pooling."""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class TransformerConfig(ModelConfig):
    d_model: PositiveInt
    heads: PositiveInt
    layers: PositiveInt
    ffn: PositiveInt
    dropout: Rate


register_model("transformer", TransformerConfig, "TransformerBaseline", description="Early-fusion Transformer encoder")

import torch
from torch import nn

from asym.models.layers import (
    Classifier,
    TransformerStack,
    length_mask,
    masked_mean,
    sinusoidal_positions,
    zero_padding,
)


class TransformerBaseline(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, heads: int, layers: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(audio_dim + visual_dim, d_model)
        self.encoder = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.head = Classifier(d_model, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        x = self.proj(torch.cat([audio, visual], dim=-1)) + sinusoidal_positions(audio.shape[1], self.proj.out_features, audio.device)
        return self.head(masked_mean(self.encoder(zero_padding(x, mask), mask), mask))
