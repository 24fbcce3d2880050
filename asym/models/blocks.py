"""Sequence blocks shared by ASYM, its variants and DepMamba: one residual, normalised,
padding-safe wrapper around Bi-Mamba, Mamba or a Transformer encoder layer."""

from __future__ import annotations

import torch
from torch import nn

from asym.models.common import key_padding, zero_padding
from asym.nn.mamba import BiMamba, Mamba

SEQUENCE_BLOCKS = ("bimamba", "mamba", "transformer")


class SequenceBlock(nn.Module):
    """x -> LayerNorm(x + Dropout(block(x))) on valid frames; padding stays zero."""

    def __init__(self, kind: str, dim: int, d_state: int, d_conv: int, expand: int, heads: int, ffn: int,
                 dropout: float) -> None:
        super().__init__()
        if kind not in SEQUENCE_BLOCKS:
            raise ValueError(f"sequence block must be one of {SEQUENCE_BLOCKS}, got {kind!r}")
        self.kind = kind
        if kind == "transformer":   # the encoder layer has its own residuals and LayerNorms
            self.block = nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=True)
            return
        cls = BiMamba if kind == "bimamba" else Mamba
        self.block = cls(dim, d_state=d_state, d_conv=d_conv, expand=expand)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "transformer":
            return zero_padding(self.block(x, src_key_padding_mask=key_padding(mask)), mask)
        return zero_padding(self.norm(x + self.drop(self.block(x, lengths))), mask)
