"""MDDformer, the LMVD paper's model (He et al., "LMVD: A Large-Scale Multimodal Vlog Dataset
for Depression Detection in the Wild", arXiv 2407.00024).

From the paper: temporal-convolution features of each modality feed Transformer encoders;
multimodal fusion by cross-modal multi-head attention; a classifier on the fused
representation. Ours: the Depression Detector's encoder / cross-attention / pooling
(asym.models.baselines.depression_detector) with a TCN front-end per modality in place of
its linear projection. Widths and depth are in params.yaml.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import register_model
from asym.models.baselines.depression_detector import DepressionDetectorConfig


class MDDformerConfig(DepressionDetectorConfig):
    tcn_kernel: PositiveInt
    tcn_levels: PositiveInt


register_model("mddformer", MDDformerConfig, "MDDformer", description="LMVD's MDDformer (He et al., 2024)")

import torch
from torch import nn

from asym.models.baselines.depression_detector import DepressionDetector
from asym.models.layers import TCN


class MDDformer(DepressionDetector):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, heads: int, layers: int, ffn: int, dropout: float,
                 tcn_kernel: int, tcn_levels: int) -> None:
        super().__init__(audio_dim, visual_dim, d_model, heads, layers, ffn, dropout)
        self.proj_a = TCN(audio_dim, d_model, tcn_kernel, tcn_levels, dropout)
        self.proj_v = TCN(visual_dim, d_model, tcn_kernel, tcn_levels, dropout)

    def embed(self, proj: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return proj(x, mask)
