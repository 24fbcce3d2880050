"""ASYM: Attentive Synergy Mamba (Hua, Li, Wen, Zhou; Front. Psychiatry 17:1704005, 2026).

Only the abstract is public. What each part rests on:

From the abstract:
- Cross-Modal Interactive Mamba (CMIM): each modality is "interactively enhanced" by a CNN and
  Bi-Mamba blocks; cross-modal information is then extracted by cross-attention (audio attends
  to visual, visual to audio).
- Multi-Scale Gated Parallel Fusion (MSGPF): a multi-scale path and a cross-modal path, combined
  by dynamic (input-dependent) weighting.
- Multimodal Enhanced Mamba (MEM): Bi-Mamba blocks refine the fused sequence, then pooling and a
  classifier to depressed / normal.

From DepMamba (Ye et al., ICASSP 2025; github Jiaxin-Ye/DepMamba), the public code ASYM descends
from, where the abstract is silent:
- the interaction inside CMIM: the audio and visual Bi-Mambas of each block share their
  state-transition matrices A (one for the forward scan, one for the backward scan), the same
  Parameter objects, as DepMamba's collaborative SSM (CoSSM) does; their in_proj, convolutions,
  x_proj, dt_proj, D and out_proj stay per modality (`use_mamba_interaction`);
- a bias-free projection of each modality to d_model (its 1x1 convolutions);
- the CNN layer: Conv1d(k=3) + norm + ReLU + dropout with a residual;
- Bi-Mamba "v2" (separate backward conv / x_proj / dt_proj / A / D, directions averaged, one
  out_proj), and the Mamba layer's residual x + LayerNorm(mamba(x)) without dropout;
- expand 4, d_conv 4 and d_state per dataset (12 D-Vlog, 16 LMVD); masked mean pooling over
  valid frames; one output logit for BCEWithLogitsLoss.

Ours (each an assumption, marked `# assumed` in params.yaml where it is a number):
- LayerNorm in the CNN where DepMamba uses BatchNorm, so a sample's output does not depend on
  its batch in training either;
- cross-attention as nn.MultiheadAttention with residual + LayerNorm per stream;
- MSGPF's inside: parallel Conv1d of several kernel sizes + GELU, concatenated and projected
  (multi-scale path); a projection of [a, v, a*v] (cross-modal path); a softmax gate over the two
  paths computed from their pooled features; residual + LayerNorm around the fusion;
- MEM at the joint width (2 x d_model); dropout before the classifier;
- every width, depth, kernel size and head count (params.yaml);
- exact padding: the backward scan reverses each sample's valid frames only.

The switches of AsymConfig turn each part off for the ablation variants declared below it. With
Transformer layers in place of Bi-Mamba, sinusoidal positions are added once to the projected
inputs, since attention alone is blind to order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from asym.models import ModelConfig, Rate, register_model

Modality = Literal["audio", "visual"]


class AsymConfig(ModelConfig):
    """model.<scale>.asym: the widths and depths (params.yaml), then the switches of the ablations."""

    d_model: PositiveInt
    cnn_kernel: PositiveInt
    cmim_blocks: PositiveInt
    heads: PositiveInt
    msgpf_kernels: list[PositiveInt]
    mem_blocks: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    dropout: Rate
    ffn: PositiveInt
    # What ASYM's ablations switch; the full model by default.
    sequence_block: Literal["bimamba", "mamba-matched", "transformer"] = "bimamba"
    modalities: list[Modality] = Field(default_factory=lambda: ["audio", "visual"], min_length=1)
    use_cmim: bool = True
    use_crossattn: bool = True
    use_msgpf: bool = True
    use_multiscale: bool = True
    use_gate: bool = True
    use_mem: bool = True
    use_mamba_interaction: bool = True


full = register_model("asym", AsymConfig, "ASYM", kind="asym", description="ASYM: CMIM + MSGPF + MEM (full model)")
# The ablations: each variant switches one thing off in the full model.
full.variant("asym-no-mamba-interaction",
             "CMIM's audio and visual Bi-Mambas without shared state matrices A (independent streams until "
             "cross-attention)", use_mamba_interaction=False)
full.variant("asym-no-cmim", "Without Cross-Modal Interactive Mamba (projection only)", use_cmim=False)
full.variant("asym-no-crossattn", "CMIM without its cross-attention", use_crossattn=False)
full.variant("asym-no-msgpf", "Plain concatenation instead of MSGPF", use_msgpf=False)
full.variant("asym-no-multiscale", "MSGPF with a single scale (kernel 1)", use_multiscale=False)
full.variant("asym-no-gate", "MSGPF paths mixed with fixed equal weights", use_gate=False)
full.variant("asym-no-mem", "Without Multimodal Enhanced Mamba", use_mem=False)
full.variant("asym-audio-only", "Audio stream only", modalities=["audio"])
full.variant("asym-visual-only", "Visual stream only", modalities=["visual"])
full.variant("asym-unidirectional",
             "Forward-only Mamba instead of Bi-Mamba, at the full model's parameter count: each block's inner width "
             "grows until it holds the parameters of the Bi-Mamba it replaces (d_state and d_conv unchanged, so only "
             "the backward scan is taken away)", sequence_block="mamba-matched")
full.variant("asym-transformer",
             "Transformer encoder layers instead of Bi-Mamba, sinusoidal positions added to the projected inputs",
             sequence_block="transformer")

import torch
from torch import nn

from asym.errors import ConfigError
from asym.models.layers import (
    Classifier,
    ConvBlock,
    SequenceBlock,
    key_padding,
    length_mask,
    masked_mean,
    sinusoidal_positions,
    zero_padding,
)

MODALITIES = ("audio", "visual")


class ModalityEncoder(nn.Module):
    """CMIM's per-modality part: projection, residual CNN, sequence blocks."""

    def __init__(self, in_dim: int, d_model: int, kernel: int, blocks: int, enhance: bool, seq_kwargs: dict) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model, bias=False)
        self.positions = seq_kwargs["kind"] == "transformer"
        self.cnn = ConvBlock(d_model, kernel, seq_kwargs["dropout"]) if enhance else None
        self.blocks = nn.ModuleList(SequenceBlock(dim=d_model, **seq_kwargs) for _ in range(blocks if enhance else 0))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if self.positions:
            h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device)
        h = zero_padding(h, mask)
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
                 ffn: int, sequence_block: str, modalities: list[str], use_cmim: bool, use_crossattn: bool,
                 use_msgpf: bool, use_multiscale: bool, use_gate: bool, use_mem: bool,
                 use_mamba_interaction: bool) -> None:
        super().__init__()
        unknown = set(modalities) - set(MODALITIES)
        if unknown or not modalities:
            raise ConfigError(f"ASYM: modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
        self.modalities = [m for m in MODALITIES if m in modalities]
        seq = {"kind": sequence_block, "d_state": d_state, "d_conv": d_conv, "expand": expand, "heads": heads,
               "ffn": ffn, "dropout": dropout}
        dims = {"audio": audio_dim, "visual": visual_dim}
        self.encoders = nn.ModuleDict({m: ModalityEncoder(dims[m], d_model, cnn_kernel, cmim_blocks, use_cmim, seq)
                                       for m in self.modalities})
        two = len(self.modalities) == 2
        if two and use_mamba_interaction:   # CoSSM-style: audio and visual blocks scan with one A
            audio, visual = (self.encoders[m].blocks for m in self.modalities)
            for blk_v, blk_a in zip(visual, audio, strict=True):
                blk_v.share_state_matrices(blk_a)
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
