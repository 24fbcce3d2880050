"""The D-Vlog paper's "Depression Detector" (Yoon et al., "D-vlog: Multimodal Vlog Dataset for
Depression Detection", AAAI 2022).

From the paper: each modality (acoustic eGeMAPS, visual landmarks) is encoded by its own
Transformer encoder; a cross-attention layer lets each modality attend to the other; the two
attended sequences are pooled, concatenated and classified by a fully connected layer.
Widths / depths are ours (params.yaml); pooling is a masked mean over valid frames.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class DepressionDetectorConfig(ModelConfig):
    d_model: PositiveInt
    heads: PositiveInt
    layers: PositiveInt
    ffn: PositiveInt
    dropout: Rate


register_model("depression-detector", DepressionDetectorConfig, "DepressionDetector",
               description="D-Vlog's Depression Detector (Yoon et al., AAAI 2022)")

import torch
from torch import nn

from asym.models.layers import (
    Classifier,
    CrossModalBlock,
    TransformerStack,
    length_mask,
    masked_mean,
    sinusoidal_positions,
    zero_padding,
)


class DepressionDetector(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, heads: int, layers: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.proj_a, self.proj_v = nn.Linear(audio_dim, d_model), nn.Linear(visual_dim, d_model)
        self.enc_a = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.enc_v = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.a_from_v = CrossModalBlock(d_model, heads, ffn, dropout)
        self.v_from_a = CrossModalBlock(d_model, heads, ffn, dropout)
        self.head = Classifier(2 * d_model, dropout)

    def embed(self, proj: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return proj(x)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        pe = sinusoidal_positions(audio.shape[1], self.d_model, audio.device)
        a = self.enc_a(zero_padding(self.embed(self.proj_a, audio, mask) + pe, mask), mask)
        v = self.enc_v(zero_padding(self.embed(self.proj_v, visual, mask) + pe, mask), mask)
        a2, v2 = self.a_from_v(a, v, mask), self.v_from_a(v, a, mask)
        return self.head(torch.cat([masked_mean(a2, mask), masked_mean(v2, mask)], dim=-1))
