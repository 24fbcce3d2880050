"""TAMFN, the Time-Aware Attention Multimodal Fusion Network (Zhou et al., "TAMFN: Time-aware
Attention Multimodal Fusion Network for Depression Detection", IEEE TNSRE 31, 2023).

From the paper: temporal convolutional networks (TCN) extract intra-modal temporal features of
each modality; time-aware attention weighs time steps by their content and position; an
inter-modal fusion combines the attended modalities with attention across modalities before
the classifier. Ours: per-modality TCN (dilated convolutions, residual, padding-safe),
attention pooling whose scores see the frame and a learned function of its relative position,
then a softmax attention over the two modality vectors. Widths are in params.yaml.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class TAMFNConfig(ModelConfig):
    d_model: PositiveInt
    tcn_kernel: PositiveInt
    tcn_levels: PositiveInt
    heads: PositiveInt
    dropout: Rate


register_model("tamfn", TAMFNConfig, "TAMFN", description="Time-aware attention multimodal fusion (Zhou et al., 2023)")

import torch
from torch import nn

from asym.models.layers import TCN, Classifier, length_mask


class TimeAwarePooling(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.time = nn.Sequential(nn.Linear(1, dim), nn.Tanh())
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[None, :, None]
        rel = t / lengths.to(x.dtype).clamp_min(1)[:, None, None]
        scores = self.score(x + self.time(rel)).squeeze(-1).masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=1).unsqueeze(-1) * x).sum(1)


class TAMFN(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, tcn_kernel: int, tcn_levels: int, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.tcn_a = TCN(audio_dim, d_model, tcn_kernel, tcn_levels, dropout)
        self.tcn_v = TCN(visual_dim, d_model, tcn_kernel, tcn_levels, dropout)
        self.pool_a, self.pool_v = TimeAwarePooling(d_model), TimeAwarePooling(d_model)
        self.fuse = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.head = Classifier(2 * d_model, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a = self.pool_a(self.tcn_a(audio, mask), mask, lengths)
        v = self.pool_v(self.tcn_v(visual, mask), mask, lengths)
        tokens = torch.stack([a, v], dim=1)                      # (B, 2, d): one token per modality
        fused, _ = self.fuse(tokens, tokens, tokens, need_weights=False)
        return self.head((tokens + fused).flatten(1))
