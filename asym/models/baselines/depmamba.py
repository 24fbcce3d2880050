"""DepMamba (Ye, Zhang, Shan, "DepMamba: Progressive Fusion Mamba for Multimodal Depression
Detection", ICASSP 2025; arXiv 2409.15936), block by block as its public code builds it
(github Jiaxin-Ye/DepMamba, commit 6e96fd2: models/DepMamba.py, models/mamba/mm_bimamba.py).

- Per modality a bias-free 1x1 projection to `input_size` (Xavier-uniform initialised).
- CoSSM, one stage per entry of `output_sizes`: per modality a CNN layer, Conv1d(k=3, no bias,
  Xavier-uniform) + BatchNorm + ReLU + dropout, plus a residual (a bias-free 1x1 projection when
  the width changes); then the collaborative Bi-Mamba: an audio and a visual Bi-Mamba "v2" whose
  forward and backward state matrices A are shared (the same Parameter objects); each stream's
  residual is x + LayerNorm(mamba(x)) (eps 1e-6), with no dropout.
- EnSSM on the concatenated streams (2 x output_sizes[-1]): the same CNN layer, then a Bi-Mamba
  layer x + LayerNorm(bimamba(x)).
- Masked mean over valid frames, then Linear(2 x output_sizes[-1], 1), no dropout.
Dropout acts in the CNN layers only, as in the official code.
- Initialisation as there: the 1x1 projections and the CNN layers' convolutions Xavier-uniform;
  each forward branch's dt_proj as mamba-ssm's (weight U(+-dt_rank^-0.5), bias the inverse
  softplus of a log-uniform step in [0.001, 0.1]); the backward branch's dt_proj keeps PyTorch's
  default Linear initialisation, as its `dt_proj_b` / `a_dt_proj_b` / `v_dt_proj_b` are never
  re-initialised: bias U(+-dt_rank^-0.5), so its initial steps softplus(bias) lie in 0.58-0.83 at
  width 256 (dt_rank 16) and 0.61-0.78 at 512 (dt_rank 32), not in [0.001, 0.1]. Every other
  parameter is PyTorch's default, as there.

Where we differ, and why (every remaining difference):
- BatchNorm statistics are taken over valid frames only (layers.MaskedBatchNorm1d). The
  official BatchNorm also counts the zero padding of each batch, so its statistics (and the
  running ones used at test time) depend on how long the other vlogs in the batch are.
- Padding stays exact: padded frames are zeroed after every layer, and the backward scan
  reverses each sample's valid frames (the official code flips the whole padded batch, so the
  backward scan of a short vlog starts on padding). Valid frames come from lengths; the
  official mask is `features.sum(-1) != 0`, which drops real all-zero frames.
- The official MMMambaEncoderLayer builds an `a_downsample` Conv1d(k=16) + BatchNorm that its
  forward never calls (1.05 M parameters at width 256); we leave it out, so our parameter count
  is that much lower than a count of the official model's parameters.
- Its config's `d_ffn`, `num_layers` and `activation` reach no layer; we take none of them.
- Its selective scan runs in mamba-ssm's CUDA kernels; ours runs in asym.nn.ssm (the same
  recurrence; the CUDA kernels where installed).
- Its labels are `logit > 0`; ours `P >= threshold` (0.5 by default): they differ only for a
  logit of exactly 0.
- Its modalities of unequal length are cut to the shorter one by its readers; ours by the
  conversion step (asym.data), before any model sees them.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class DepMambaConfig(ModelConfig):
    input_size: PositiveInt
    output_sizes: list[PositiveInt]
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    cnn_kernel: PositiveInt
    dropout: Rate


register_model("depmamba", DepMambaConfig, "DepMamba", recipe="depmamba",
               description="DepMamba: progressive fusion Mamba (Ye et al., ICASSP 2025), as its public code builds it")

import torch
from torch import nn

from asym.models.layers import (
    Classifier,
    ConvBlock,
    SequenceBlock,
    length_mask,
    masked_mean,
    zero_padding,
)


def _cnn(dim: int, out_dim: int, kernel: int, dropout: float) -> ConvBlock:
    block = ConvBlock(dim, kernel, dropout, out_dim=out_dim, batch_norm=True)
    nn.init.xavier_uniform_(block.conv.weight)
    return block


class DepMamba(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, input_size: int, output_sizes: list[int], d_state: int,
                 d_conv: int, expand: int, cnn_kernel: int, dropout: float) -> None:
        super().__init__()
        seq = {"kind": "bimamba", "d_state": d_state, "d_conv": d_conv, "expand": expand, "heads": 1, "ffn": 1,
               "dropout": 0.0}
        self.proj_a = nn.Linear(audio_dim, input_size, bias=False)
        self.proj_v = nn.Linear(visual_dim, input_size, bias=False)
        for proj in (self.proj_a, self.proj_v):
            nn.init.xavier_uniform_(proj.weight)
        widths = [input_size, *output_sizes]
        self.cnn_a = nn.ModuleList(_cnn(i, o, cnn_kernel, dropout) for i, o in zip(widths, widths[1:], strict=False))
        self.cnn_v = nn.ModuleList(_cnn(i, o, cnn_kernel, dropout) for i, o in zip(widths, widths[1:], strict=False))
        self.ssm_a = nn.ModuleList(SequenceBlock(dim=o, **seq) for o in output_sizes)
        self.ssm_v = nn.ModuleList(SequenceBlock(dim=o, **seq) for o in output_sizes)
        for blk_v, blk_a in zip(self.ssm_v, self.ssm_a, strict=True):   # collaborative: one A per direction
            blk_v.share_state_matrices(blk_a)
        joint = 2 * output_sizes[-1]
        self.en_cnn = _cnn(joint, joint, cnn_kernel, dropout)
        self.en_ssm = SequenceBlock(dim=joint, **seq)
        self.head = Classifier(joint, dropout=0.0)
        for blk in (*self.ssm_a, *self.ssm_v, self.en_ssm):   # its backward dt_proj is never re-initialised
            blk.block.bwd.dt_proj.reset_parameters()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a, v = zero_padding(self.proj_a(audio), mask), zero_padding(self.proj_v(visual), mask)
        for ca, cv, sa, sv in zip(self.cnn_a, self.cnn_v, self.ssm_a, self.ssm_v, strict=True):
            a, v = sa(ca(a, mask), mask, lengths), sv(cv(v, mask), mask, lengths)
        h = self.en_ssm(self.en_cnn(torch.cat([a, v], dim=-1), mask), mask, lengths)
        return self.head(masked_mean(h, mask))
