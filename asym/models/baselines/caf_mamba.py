"""CAF-Mamba (Zhou et al., "CAF-Mamba: Mamba-Based Cross-Modal Adaptive Attention Fusion for
Multimodal Depression Detection", ICASSP 2026; arXiv 2601.21648), its bimodal variant, block by
block as its public code builds it (github zbw-zhou/CAF-Mamba, commit 15ca7fc:
models/CafMambaBimodal.py; widths from config/config.yaml, `cafmambabi_dvlog` / `cafmambabi_lmvd`).

- Per modality a bias-free 1x1 projection to `d_model` (Xavier-uniform), then a ResMamba block:
  x + LayerNorm(Mamba(x)), LayerNorm eps 1e-6, one unidirectional mamba-ssm Mamba (d_state 12 on
  D-Vlog, 16 on LMVD; expand 4; d_conv 4; mamba-ssm's initialisation).
- CIME: one ResMamba over the sum of the streams. The code starts the inter-modal stream at
  zeros and adds it (`xi = CIME(xi + xa + xv)`), so with its one CIME block this is CIME(a + v).
- Modality-wise attention over the K = 3 streams (audio, visual, inter-modal): at each frame each
  stream's mean over its channels, Linear(K, K), softmax over the streams, each stream weighted
  by its own weight; the weighted streams concatenated (K x d_model), then two bias-free 1x1
  convolutions, to 2 x d_model and to d_model, with nothing between them.
- The tail (its "MME"): one ResMamba; the mean over valid frames; dropout 0.5; Linear(d_model, 1),
  trained with BCEWithLogitsLoss (its recipe: `recipes.*.caf-mamba`).

Where we differ, and why:
- Valid frames come from lengths; its mask is `features.sum(-1) != 0`, which drops a real
  all-zero frame from the mean. Its unidirectional, causal Mamba never lets the padding at the
  end of a vlog reach a valid frame, so nothing else needs a change for padding exactness;
  padded frames are zeroed after every block here all the same.
- Its config's `dropout: 0.1` reaches only an nn.Dropout that its ResMamba layer builds and never
  calls; we build none (no parameters either way).
- Its selective scan runs in mamba-ssm's CUDA kernels; ours in asym.nn.ssm (the same recurrence).
- Its labels are `logit > 0`; ours `P >= threshold` (0.5 by default): the same but for a logit of 0.
- Its best LMVD model adds two OpenFace streams (eye-gaze-head, landmarks + action units) that
  the released D-Vlog / LMVD features we read do not hold; only the bimodal variant is built.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class CafMambaConfig(ModelConfig):
    d_model: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    head_dropout: Rate


register_model("caf-mamba", CafMambaConfig, "CAFMamba", recipe="caf-mamba",
               description="CAF-Mamba, bimodal: cross-modal adaptive attention fusion Mamba (Zhou et al., ICASSP "
                           "2026), as its public code builds it")

import torch
from torch import nn

from asym.models.layers import MAMBA_NORM_EPS, Classifier, length_mask, masked_mean, zero_padding
from asym.nn.mamba import Mamba


class ResMamba(nn.Module):
    """x -> x + LayerNorm(Mamba(x)) over (B, T, C), padded frames zeroed (its ResidualMambaLayer)."""

    def __init__(self, dim: int, d_state: int, d_conv: int, expand: int) -> None:
        super().__init__()
        self.mamba = Mamba(dim, d_state=d_state, d_conv=d_conv, expand=expand)
        self.norm = nn.LayerNorm(dim, eps=MAMBA_NORM_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return zero_padding(x + self.norm(self.mamba(x, lengths)), mask)


class ModalityAttention(nn.Module):
    """Per-frame softmax weights over the streams from their channel means, then 1x1 fusion."""

    def __init__(self, dim: int, n_streams: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_streams, n_streams)
        self.fuse_in = nn.Linear(n_streams * dim, 2 * dim, bias=False)    # Conv1d(3d, 2d, 1, bias=False)
        self.fuse_out = nn.Linear(2 * dim, dim, bias=False)               # Conv1d(2d, d, 1, bias=False)

    def forward(self, streams: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        means = torch.stack([s.mean(-1) for s in streams], dim=-1)        # (B, T, K)
        weights = torch.softmax(self.proj(means), dim=-1)
        x = torch.cat([weights[..., k: k + 1] * s for k, s in enumerate(streams)], dim=-1)
        return zero_padding(self.fuse_out(self.fuse_in(x)), mask)


class CAFMamba(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, d_state: int, d_conv: int, expand: int,
                 head_dropout: float) -> None:
        super().__init__()
        block = {"dim": d_model, "d_state": d_state, "d_conv": d_conv, "expand": expand}
        self.proj_a = nn.Linear(audio_dim, d_model, bias=False)
        self.proj_v = nn.Linear(visual_dim, d_model, bias=False)
        for proj in (self.proj_a, self.proj_v):
            nn.init.xavier_uniform_(proj.weight)
        self.ufe_a, self.ufe_v = ResMamba(**block), ResMamba(**block)
        self.cime = ResMamba(**block)
        self.attention = ModalityAttention(d_model, n_streams=3)
        self.mme = ResMamba(**block)
        self.head = Classifier(d_model, dropout=head_dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a, v = zero_padding(self.proj_a(audio), mask), zero_padding(self.proj_v(visual), mask)
        a, v = self.ufe_a(a, mask, lengths), self.ufe_v(v, mask, lengths)
        inter = self.cime(a + v, mask, lengths)
        x = self.mme(self.attention([a, v, inter], mask), mask, lengths)
        return self.head(masked_mean(x, mask))
