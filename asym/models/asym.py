"""ASYM: Attentive Synergy Mamba (Hua, Li, Wen, Zhou; Front. Psychiatry 17:1704005, 2026).

Three modules on per-frame audio and visual features:

1. Cross-Modal Interactive Mamba (CMIM): per modality a projection, a residual normalised
   1-D CNN and Bi-Mamba blocks; then bidirectional cross-attention (audio queries visual,
   visual queries audio) with key-padding masks, residual and LayerNorm.
2. Multi-Scale Gated Parallel Fusion (MSGPF): two parallel paths over the CMIM outputs:
   (a) multi-scale temporal convolutions (several kernel sizes) over the joint sequence,
   (b) cross-modal integration (a projection of [a, v, a*v]); a gate computed from the pooled
   paths weighs them per sample (softmax over the two paths).
3. Multimodal Enhanced Mamba (MEM): Bi-Mamba blocks refine the fused sequence; masked mean
   pooling over valid frames; a linear classifier to one logit.

Only the abstract is public. Where it is silent we follow DepMamba (Ye et al., ICASSP 2025),
the public code ASYM descends from: 1x1 projection to d_model, Conv(k=3) + norm + ReLU +
dropout with a residual, Bi-Mamba "v2" (separate backward A / conv / x_proj / dt_proj),
expand / d_conv / d_state as in its configs, masked mean pooling and one output logit. We
use LayerNorm where DepMamba uses BatchNorm, so a sample's output never depends on its batch.
The flags below switch each module off for the ablation variants (see the registry).
"""

from __future__ import annotations

import torch
from torch import nn

from asym.models.blocks import SequenceBlock
from asym.models.common import (
    Classifier,
    ConvBlock,
    key_padding,
    length_mask,
    masked_mean,
    zero_padding,
)

MODALITIES = ("audio", "visual")


class ModalityEncoder(nn.Module):
    """CMIM's per-modality part: projection, residual CNN, sequence blocks."""

    def __init__(self, in_dim: int, d_model: int, kernel: int, blocks: int, enhance: bool, seq_kwargs: dict) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.cnn = ConvBlock(d_model, kernel, seq_kwargs["dropout"]) if enhance else None
        self.blocks = nn.ModuleList(SequenceBlock(dim=d_model, **seq_kwargs) for _ in range(blocks if enhance else 0))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = zero_padding(self.proj(x), mask)
        if self.cnn is not None:
            h = self.cnn(h, mask)
        for block in self.blocks:
            h = block(h, mask, lengths)
        return h


class CrossAttention(nn.Module):
    """Audio attends to visual and visual to audio; residual + LayerNorm on each stream."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.a2v = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.v2a = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm_a, self.norm_v = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, a: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = key_padding(mask)
        a_ctx, _ = self.a2v(a, v, v, key_padding_mask=pad, need_weights=False)
        v_ctx, _ = self.v2a(v, a, a, key_padding_mask=pad, need_weights=False)
        return zero_padding(self.norm_a(a + a_ctx), mask), zero_padding(self.norm_v(v + v_ctx), mask)


class MultiScalePath(nn.Module):
    """Parallel temporal convolutions of several kernel sizes, concatenated and projected."""

    def __init__(self, dim: int, kernels: list[int], dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, k, padding=k // 2) for k in kernels)
        self.proj = nn.Linear(dim * len(kernels), dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        xt = zero_padding(x, mask).transpose(1, 2)
        scales = [torch.nn.functional.gelu(conv(xt)).transpose(1, 2) for conv in self.convs]
        return zero_padding(self.drop(self.proj(torch.cat(scales, dim=-1))), mask)


class GatedParallelFusion(nn.Module):
    """MSGPF: multi-scale path and cross-modal path, mixed by an input-dependent gate."""

    def __init__(self, d_model: int, n_modalities: int, kernels: list[int], multiscale: bool, gate: bool,
                 dropout: float) -> None:
        super().__init__()
        self.dim = d_model * n_modalities
        self.multiscale = MultiScalePath(self.dim, kernels if multiscale else [1], dropout)
        self.cross = nn.Sequential(nn.Linear(3 * d_model, self.dim), nn.GELU(), nn.Dropout(dropout)) if n_modalities == 2 else None
        self.gate = nn.Linear(2 * self.dim, 2) if gate and self.cross is not None else None
        self.norm = nn.LayerNorm(self.dim)

    def forward(self, streams: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        joint = torch.cat(streams, dim=-1)
        ms = self.multiscale(joint, mask)
        if self.cross is None:
            return zero_padding(self.norm(joint + ms), mask)
        a, v = streams
        cm = zero_padding(self.cross(torch.cat([a, v, a * v], dim=-1)), mask)
        if self.gate is None:
            w = torch.full((joint.shape[0], 2), 0.5, device=joint.device, dtype=joint.dtype)
        else:
            w = torch.softmax(self.gate(torch.cat([masked_mean(ms, mask), masked_mean(cm, mask)], dim=-1)), dim=-1)
        fused = w[:, 0, None, None] * ms + w[:, 1, None, None] * cm
        return zero_padding(self.norm(joint + fused), mask)


class ASYM(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, cnn_kernel: int, cmim_blocks: int, heads: int,
                 msgpf_kernels: list[int], mem_blocks: int, d_state: int, d_conv: int, expand: int, dropout: float,
                 ffn: int, sequence_block: str = "bimamba", modalities: list[str] | tuple[str, ...] = MODALITIES,
                 use_cmim: bool = True, use_crossattn: bool = True, use_msgpf: bool = True,
                 use_multiscale: bool = True, use_gate: bool = True, use_mem: bool = True) -> None:
        super().__init__()
        unknown = set(modalities) - set(MODALITIES)
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}")
        self.modalities = [m for m in MODALITIES if m in modalities]
        seq = {"kind": sequence_block, "d_state": d_state, "d_conv": d_conv, "expand": expand, "heads": heads,
               "ffn": ffn, "dropout": dropout}
        dims = {"audio": audio_dim, "visual": visual_dim}
        self.encoders = nn.ModuleDict({m: ModalityEncoder(dims[m], d_model, cnn_kernel, cmim_blocks, use_cmim, seq)
                                       for m in self.modalities})
        two = len(self.modalities) == 2
        self.cross_attention = CrossAttention(d_model, heads, dropout) if (two and use_cmim and use_crossattn) else None
        self.fusion = GatedParallelFusion(d_model, len(self.modalities), msgpf_kernels, use_multiscale, use_gate, dropout) \
            if use_msgpf else None
        width = d_model * len(self.modalities)
        self.mem = nn.ModuleList(SequenceBlock(dim=width, **{**seq, "ffn": 2 * ffn}) for _ in range(mem_blocks if use_mem else 0))
        self.head = Classifier(width, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        inputs = {"audio": audio, "visual": visual}
        streams = [self.encoders[m](inputs[m], mask, lengths) for m in self.modalities]
        if self.cross_attention is not None:
            streams = list(self.cross_attention(*streams, mask))
        h = self.fusion(streams, mask) if self.fusion is not None else torch.cat(streams, dim=-1)
        for block in self.mem:
            h = block(h, mask, lengths)
        return self.head(masked_mean(h, mask))
