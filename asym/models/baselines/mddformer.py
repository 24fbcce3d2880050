"""MDDformer, the LMVD paper's model (He et al., "LMVD: A Large-Scale Multimodal Vlog Dataset
for Depression Detection in the Wild", arXiv 2407.00024).

From the paper: temporal-convolution features of each modality feed Transformer encoders;
multimodal fusion by cross-modal multi-head attention; a classifier on the fused
representation. Ours: per-modality TCN front-end, a Transformer encoder per modality,
bidirectional cross-attention, concatenation of the pooled streams. Details the paper leaves
open (widths, depth, pooling) are in params.yaml or follow our other baselines.
"""

from __future__ import annotations

import torch
from torch import nn

from asym.models.baselines.tamfn import TCN
from asym.models.common import (
    Classifier,
    CrossModalBlock,
    TransformerStack,
    length_mask,
    masked_mean,
    sinusoidal_positions,
)


class MDDformer(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, heads: int, layers: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.tcn_a = TCN(audio_dim, d_model, 3, 2, dropout)
        self.tcn_v = TCN(visual_dim, d_model, 3, 2, dropout)
        self.enc_a = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.enc_v = TransformerStack(d_model, heads, layers, ffn, dropout)
        self.a_from_v = CrossModalBlock(d_model, heads, ffn, dropout)
        self.v_from_a = CrossModalBlock(d_model, heads, ffn, dropout)
        self.head = Classifier(2 * d_model, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        pe = sinusoidal_positions(audio.shape[1], self.d_model, audio.device)
        a = self.enc_a(self.tcn_a(audio, mask) + pe * mask[..., None], mask)
        v = self.enc_v(self.tcn_v(visual, mask) + pe * mask[..., None], mask)
        a2, v2 = self.a_from_v(a, v, mask), self.v_from_a(v, a, mask)
        return self.head(torch.cat([masked_mean(a2, mask), masked_mean(v2, mask)], dim=-1))
