"""DynMultiDep (Dynamic Multi-modal Dependency for depression detection; J. Imaging 12(1):29, 2026),
block by block as its public code builds it (github 3166074787/DynMultiDep, commit 5fd29e3, MIT
licence per its README; the repository's later commits delete every file: models/dyn_multi_dep.py,
models/encoders/encoder_models.py (CrossModalSSM), models/layers/encoder_layers.py
(MMMambaEncoderLayer), models/mamba_ssm/mm_bimamba.py, utils/activations.py (diff_softmax),
config/config.yaml (`mmmamba`, `mmmamba_lmvd`), main.py, datasets/dvlog.py, datasets/lmvd.py).

- Per modality a Linear(input, d_model) with bias, Xavier-uniform weights (an identity where the
  input already has d_model channels, as there).
- `layers` cross-modal Mamba layers (its MMMambaEncoderLayer): per modality a Bi-Mamba "v2" whose
  state matrices A are one per direction for both modalities (mm_bimamba.py, DepMamba's
  collaborative Bi-Mamba), each stream's residual x + LayerNorm(mamba(x)), eps 1e-6. Its backward
  dt_proj keeps PyTorch's default initialisation (`a_dt_proj_b` / `v_dt_proj_b` are never
  re-initialised), as in asym.models.baselines.depmamba.
- Per modality the mean over valid frames.
- DynMM fusion: a gate Linear(2 d_model, gate_hidden) + ReLU + dropout + Linear(gate_hidden, 2)
  on the two pooled vectors; the weights are diff_softmax(logits, tau=`temp`, hard=`hard_gate`):
  softmax(logits / temp), and with hard_gate the straight-through one-hot of its argmax
  (one_hot - soft.detach() + soft). That is the same in training and in evaluation: the forward
  value always picks one modality per vlog (the gate's dropout is the only train / eval
  difference); the soft weights carry the gradient. The fused vector is w_audio a + w_visual v.
- Head: Linear(d_model, head_hidden) + ReLU + dropout + Linear(head_hidden, 1), trained with
  BCEWithLogitsLoss (its recipe: `recipes.*.dynmultidep`).
- Initialisation as its reset_weights: Xavier-uniform for every matrix outside the Mamba layers
  (projections, gate, head); the Mamba layers as mamba-ssm's.

Where we differ, and why (every remaining difference):
- Its feature_extractor splits the concatenated [visual | audio] frame at half its width
  (161 // 2 on D-Vlog) and feeds the first half to the audio projection, whose input width is the
  audio's (25): at its own config that is a shape error, on D-Vlog and LMVD alike. We route each
  modality to its own projection, which is what the widths in its config say it means.
- Its README calls the per-modality encoders "Mamba-Transformer experts"; the code builds the
  Transformer layers (encoder_layers.py) but DynMultiDep never uses them, and `d_ffn`,
  `activation` and `causal` reach no layer; we build none of them.
- Its MMMambaEncoderLayer builds an `a_downsample` Conv1d(k=16) + BatchNorm that its forward never
  calls (1.05 M parameters at width 256); we leave it out.
- Padding stays exact: padded frames are zeroed after every layer and the backward scan reverses
  each sample's valid frames (its bimamba flips the whole padded batch, so a short vlog's backward
  scan starts on padding). Valid frames come from lengths; its mask is `features.sum(-1) != 0`.
- Its selective scan runs in mamba-ssm's CUDA kernels; ours in asym.nn.ssm (the same recurrence).
- Its labels are `logit > 0`; ours `P >= threshold` (0.5 by default): they differ only at 0.
- Its readers cut the modalities to the shorter one; ours do the same at conversion (asym.data).
"""

from __future__ import annotations

from pydantic import PositiveFloat, PositiveInt

from asym.models import ModelConfig, Rate, register_model


class DynMultiDepConfig(ModelConfig):
    d_model: PositiveInt
    layers: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    gate_hidden: PositiveInt
    head_hidden: PositiveInt
    dropout: Rate
    temp: PositiveFloat
    hard_gate: bool


register_model("dynmultidep", DynMultiDepConfig, "DynMultiDep", recipe="dynmultidep",
               description="DynMultiDep: collaborative Bi-Mamba experts with DynMM dynamic modality gating "
                           "(J. Imaging 2026), as its public code builds it")

import torch
from torch import nn

from asym.models.layers import SequenceBlock, length_mask, masked_mean, zero_padding


def straight_through_softmax(logits: torch.Tensor, temp: float, hard: bool) -> torch.Tensor:
    """softmax(logits / temp); with `hard`, the one-hot of its argmax forward and the soft
    weights' gradient backward (its diff_softmax)."""
    soft = (logits / temp).softmax(-1)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


class DynMultiDep(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, d_model: int, layers: int, d_state: int, d_conv: int,
                 expand: int, gate_hidden: int, head_hidden: int, dropout: float, temp: float,
                 hard_gate: bool) -> None:
        super().__init__()
        self.temp, self.hard_gate = temp, hard_gate
        self.proj_a = nn.Linear(audio_dim, d_model) if audio_dim != d_model else nn.Identity()
        self.proj_v = nn.Linear(visual_dim, d_model) if visual_dim != d_model else nn.Identity()
        seq = {"kind": "bimamba", "dim": d_model, "d_state": d_state, "d_conv": d_conv, "expand": expand,
               "heads": 1, "ffn": 1, "dropout": 0.0}
        self.ssm_a = nn.ModuleList(SequenceBlock(**seq) for _ in range(layers))
        self.ssm_v = nn.ModuleList(SequenceBlock(**seq) for _ in range(layers))
        for blk_v, blk_a in zip(self.ssm_v, self.ssm_a, strict=True):   # one A per direction, both streams
            blk_v.share_state_matrices(blk_a)
        for blk in (*self.ssm_a, *self.ssm_v):                         # its backward dt_proj is never re-initialised
            blk.block.bwd.dt_proj.reset_parameters()
        self.gate = nn.Sequential(nn.Linear(2 * d_model, gate_hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(gate_hidden, 2))
        self.head = nn.Sequential(nn.Linear(d_model, head_hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, 1))
        for module in (self.proj_a, self.proj_v, *self.gate, *self.head):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)

    def modality_weights(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, 2) weights of the pooled audio and visual vectors (DynMM's gate)."""
        return straight_through_softmax(self.gate(torch.cat([a, v], dim=-1)), self.temp, self.hard_gate)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a, v = zero_padding(self.proj_a(audio), mask), zero_padding(self.proj_v(visual), mask)
        for sa, sv in zip(self.ssm_a, self.ssm_v, strict=True):
            a, v = sa(a, mask, lengths), sv(v, mask, lengths)
        a, v = masked_mean(a, mask), masked_mean(v, mask)
        w = self.modality_weights(a, v)
        return self.head(w[:, :1] * a + w[:, 1:] * v).squeeze(-1)
