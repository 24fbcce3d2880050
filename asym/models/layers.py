"""Layers every model shares: masks from lengths, pooling, the head, convolution, attention and
sequence blocks, and the optimiser's parameter groups.

Masks always come from explicit lengths, never from feature values (an all-zero frame is a
real frame). Every layer here keeps padded frames at zero and never lets them reach a valid
frame, so in eval mode a sample's prediction does not depend on what else is in its batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asym.nn.mamba import BiMamba, Mamba, matched_inner_width

SEQUENCE_BLOCKS = ("bimamba", "mamba-matched", "transformer")
NORM_LAYERS = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.RMSNorm)
MAMBA_NORM_EPS = 1e-6   # DepMamba's LayerNorm after each Mamba layer


# --- masks and pooling ---------------------------------------------------------------------
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


def key_padding(mask: torch.Tensor) -> torch.Tensor:
    """nn.MultiheadAttention's key_padding_mask: True where a key must be ignored."""
    return ~mask


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) fixed positional encoding (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class Classifier(nn.Module):
    """Dropout + linear to one logit (depressed vs normal)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled)).squeeze(-1)


# --- normalisation and convolution ----------------------------------------------------------
class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the valid frames of (B, T, C) only.

    In training, the mean and variance (and the running statistics' update) are taken over
    valid frames alone, so the amount of padding in a batch never shifts them; in eval mode the
    running statistics are used, so a sample's output does not depend on its batch. In training
    it does, as with any BatchNorm.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.training and self.running_mean is not None:
            mean, var = self.running_mean, self.running_var
        else:
            m = mask.unsqueeze(-1).to(x.dtype)
            n = m.sum().clamp_min(1.0)
            mean = (x * m).sum((0, 1)) / n
            var = (((x - mean) * m) ** 2).sum((0, 1)) / n
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                with torch.no_grad():
                    unbiased = var * n / (n - 1).clamp_min(1.0)
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                    self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return zero_padding(y, mask)


class ConvBlock(nn.Module):
    """x -> skip(x) + Dropout(ReLU(Norm(Conv1d(x)))) over (B, T, C), padding-safe.

    DepMamba's CNN layer. `batch_norm` selects its BatchNorm (masked to valid frames) with a
    bias-free convolution, as its code has it (BatchNorm's shift makes a conv bias redundant);
    otherwise LayerNorm and a biased convolution. `skip` is a bias-free 1x1 projection when the
    widths differ, identity otherwise.
    """

    def __init__(self, dim: int, kernel: int, dropout: float, dilation: int = 1, out_dim: int | None = None,
                 batch_norm: bool = False) -> None:
        super().__init__()
        out_dim = out_dim or dim
        self.conv = nn.Conv1d(dim, out_dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation,
                              bias=not batch_norm)
        self.norm = MaskedBatchNorm1d(out_dim) if batch_norm else nn.LayerNorm(out_dim)
        self.skip = nn.Linear(dim, out_dim, bias=False) if out_dim != dim else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)
        h = self.norm(h, mask) if isinstance(self.norm, MaskedBatchNorm1d) else self.norm(h)
        skip = x if self.skip is None else self.skip(x)
        return zero_padding(skip + self.drop(torch.relu(h)), mask)


class TCN(nn.Module):
    """Temporal convolutional network: projection, then residual convolutions of dilation 1, 2, 4..."""

    def __init__(self, in_dim: int, dim: int, kernel: int, levels: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(ConvBlock(dim, kernel, dropout, dilation=2**i) for i in range(levels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padding(self.proj(x), mask)
        for block in self.blocks:
            h = block(h, mask)
        return h


# --- attention ------------------------------------------------------------------------------
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


# --- sequence blocks ------------------------------------------------------------------------
class SequenceBlock(nn.Module):
    """One residual, padding-safe sequence layer: Bi-Mamba, Mamba or a Transformer encoder layer.

    Mamba kinds follow DepMamba's layer, x -> x + LayerNorm(mamba(x)), with no dropout.
    "mamba-matched" is a unidirectional Mamba whose inner width buys it the parameters of the
    Bi-Mamba it replaces (asym.nn.mamba.matched_inner_width). "transformer" is PyTorch's post-norm
    encoder layer, with its own residuals, LayerNorms and dropout.
    """

    def __init__(self, kind: str, dim: int, d_state: int, d_conv: int, expand: int, heads: int, ffn: int,
                 dropout: float) -> None:
        super().__init__()
        if kind not in SEQUENCE_BLOCKS:
            raise ValueError(f"sequence block must be one of {SEQUENCE_BLOCKS}, got {kind!r}")
        self.kind = kind
        self.block: nn.Module
        if kind == "transformer":
            self.block = nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=True)
            return
        if kind == "bimamba":
            self.block = BiMamba(dim, d_state=d_state, d_conv=d_conv, expand=expand)
        else:
            self.block = Mamba(dim, d_state=d_state, d_conv=d_conv,
                               d_inner=matched_inner_width(dim, d_state, d_conv, expand))
        self.norm = nn.LayerNorm(dim, eps=MAMBA_NORM_EPS)

    def share_state_matrices(self, other: SequenceBlock) -> None:
        """Share A with `other`'s Mamba (see Mamba.share_state_matrices); attention layers have none."""
        if isinstance(self.block, Mamba) and isinstance(other.block, Mamba):
            self.block.share_state_matrices(other.block)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "transformer":
            return zero_padding(self.block(x, src_key_padding_mask=key_padding(mask)), mask)
        return zero_padding(x + self.norm(self.block(x, lengths)), mask)


# --- optimisation ---------------------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The optimiser's groups: decayed weights, and the parameters exempt from weight decay.

    Exempt, as in mamba-ssm's training code: Mamba's A_log and D (marked `_no_weight_decay`, or
    named by their module's NO_WEIGHT_DECAY), every norm layer's weight and bias, and every
    bias. Each parameter appears exactly once, shared ones included; frozen ones not at all.
    """
    exempt: set[int] = set()
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        names = set(getattr(module, "NO_WEIGHT_DECAY", ()))
        for name, p in own.items():
            if (isinstance(module, NORM_LAYERS) or name in names or "bias" in name
                    or getattr(p, "_no_weight_decay", False)):
                exempt.add(id(p))
    decay = [p for p in model.parameters() if p.requires_grad and id(p) not in exempt]
    no_decay = [p for p in model.parameters() if p.requires_grad and id(p) in exempt]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
