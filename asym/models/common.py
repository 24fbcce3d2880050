"""Pieces every model shares: masks from lengths, masked pooling, the classifier head.

Masks always come from explicit lengths, never from feature values (an all-zero frame is a
real frame), so a sample's prediction does not depend on what else is in its batch.
"""

from __future__ import annotations

import torch
from torch import nn


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of (B, T, C) -> (B, C)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero padded frames so convolutions see the same zeros a sample sees alone."""
    return x * mask.unsqueeze(-1).to(x.dtype)


class Classifier(nn.Module):
    """Dropout + linear to one logit (depressed vs normal), as DepMamba's head."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled)).squeeze(-1)


class ConvBlock(nn.Module):
    """Residual Conv1d + LayerNorm + ReLU over (B, T, C), padding-safe.

    DepMamba uses BatchNorm here; LayerNorm keeps a sample's output independent of its batch.
    """

    def __init__(self, dim: int, kernel: int, dropout: float, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)
        return zero_padding(x + self.drop(torch.relu(self.norm(h))), mask)


def key_padding(mask: torch.Tensor) -> torch.Tensor:
    """nn.MultiheadAttention's key_padding_mask: True where a key must be ignored."""
    return ~mask


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) fixed positional encoding (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-torch.log(torch.tensor(1e4)) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TransformerStack(nn.Module):
    """Self-attention encoder layers with key-padding masks; padded frames stay zero."""

    def __init__(self, dim: int, heads: int, layers: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=True)
                                    for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=key_padding(mask))
        return zero_padding(x, mask)


class CrossModalBlock(nn.Module):
    """Pre-norm cross-attention (target queries source) + feed-forward, both residual (MulT's block)."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(source)
        ctx, _ = self.attn(self.norm_q(target), kv, kv, key_padding_mask=key_padding(mask), need_weights=False)
        x = target + self.drop(ctx)
        return zero_padding(x + self.drop(self.ff(self.norm_ff(x))), mask)
