"""DepMamba (Ye, Zhang, Shan, "DepMamba: Progressive Fusion Mamba for Multimodal Depression
Detection", ICASSP 2025; arXiv 2409.15936), per the published description and settings.

Per modality a 1x1 projection to d_model; per stage a residual CNN layer (Conv k=3 + norm +
ReLU + dropout) and a *collaborative* Bi-Mamba layer: the audio and visual streams' Bi-Mamba
blocks share their state-transition matrices A (forward and backward), each with residual +
LayerNorm. The streams are then concatenated and refined by a CNN + Bi-Mamba "EnSSM" layer;
masked mean over valid frames; one linear logit. LayerNorm replaces BatchNorm in the CNN so
predictions do not depend on the batch (see asym.models.common.ConvBlock).
"""

from __future__ import annotations

import torch
from torch import nn

from asym.models.blocks import SequenceBlock
from asym.models.common import Classifier, ConvBlock, length_mask, masked_mean, zero_padding


class DepMamba(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, d_state: int, d_conv: int, expand: int,
                 cnn_kernel: int, stages: int, dropout: float) -> None:
        super().__init__()
        seq = {"kind": "bimamba", "d_state": d_state, "d_conv": d_conv, "expand": expand, "heads": 1, "ffn": 1,
               "dropout": dropout}
        self.proj_a, self.proj_v = nn.Linear(audio_dim, d_model), nn.Linear(visual_dim, d_model)
        self.cnn_a = nn.ModuleList(ConvBlock(d_model, cnn_kernel, dropout) for _ in range(stages))
        self.cnn_v = nn.ModuleList(ConvBlock(d_model, cnn_kernel, dropout) for _ in range(stages))
        self.ssm_a = nn.ModuleList(SequenceBlock(dim=d_model, **seq) for _ in range(stages))
        self.ssm_v = nn.ModuleList(SequenceBlock(dim=d_model, **seq) for _ in range(stages))
        for blk_a, blk_v in zip(self.ssm_a, self.ssm_v, strict=True):   # collaborative: one A per direction
            blk_v.block.fwd.A_log = blk_a.block.fwd.A_log
            blk_v.block.bwd.A_log = blk_a.block.bwd.A_log
        self.en_cnn = ConvBlock(2 * d_model, cnn_kernel, dropout)
        self.en_ssm = SequenceBlock(dim=2 * d_model, **seq)
        self.head = Classifier(2 * d_model, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a, v = zero_padding(self.proj_a(audio), mask), zero_padding(self.proj_v(visual), mask)
        for ca, cv, sa, sv in zip(self.cnn_a, self.cnn_v, self.ssm_a, self.ssm_v, strict=True):
            a, v = sa(ca(a, mask), mask, lengths), sv(cv(v, mask), mask, lengths)
        h = self.en_ssm(self.en_cnn(torch.cat([a, v], dim=-1), mask), mask, lengths)
        return self.head(masked_mean(h, mask))
