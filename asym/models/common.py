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
