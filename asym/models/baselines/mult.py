"""MulT, the Multimodal Transformer (Tsai et al., "Multimodal Transformer for Unaligned
Multimodal Language Sequences", ACL 2019), for two modalities.

From the paper: temporal 1-D convolutions project each modality to a common width; positional
embeddings are added; crossmodal transformers (stacks of crossmodal attention blocks) adapt
each target modality from the other source (V->A and A->V); a self-attention transformer runs
over each target's crossmodal output; the last elements are concatenated and passed to a
residual two-layer MLP. We pool with a masked mean instead of taking the last frame, since
sequences have different lengths.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class MulTConfig(ModelConfig):
    d_model: PositiveInt
    heads: PositiveInt
    layers: PositiveInt
    ffn: PositiveInt
    dropout: Rate


register_model("mult", MulTConfig, "MulT", description="Multimodal Transformer (Tsai et al., ACL 2019)")

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


class MulT(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, heads: int, layers: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.conv_a = nn.Conv1d(audio_dim, d_model, 1, bias=False)
        self.conv_v = nn.Conv1d(visual_dim, d_model, 1, bias=False)
        self.v_to_a = nn.ModuleList(CrossModalBlock(d_model, heads, ffn, dropout) for _ in range(layers))
        self.a_to_v = nn.ModuleList(CrossModalBlock(d_model, heads, ffn, dropout) for _ in range(layers))
        self.self_a = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.self_v = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.mlp = nn.Sequential(nn.Linear(2 * d_model, 2 * d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d_model, 2 * d_model))
        self.head = Classifier(2 * d_model, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        pe = sinusoidal_positions(audio.shape[1], self.d_model, audio.device)
        a = zero_padding(self.conv_a(zero_padding(audio, mask).transpose(1, 2)).transpose(1, 2) + pe, mask)
        v = zero_padding(self.conv_v(zero_padding(visual, mask).transpose(1, 2)).transpose(1, 2) + pe, mask)
        ha, hv = a, v
        for blk_a, blk_v in zip(self.v_to_a, self.a_to_v, strict=True):
            ha, hv = blk_a(ha, v, mask), blk_v(hv, a, mask)
        ha, hv = self.self_a(ha, mask), self.self_v(hv, mask)
        h = torch.cat([masked_mean(ha, mask), masked_mean(hv, mask)], dim=-1)
        return self.head(h + self.mlp(h))
