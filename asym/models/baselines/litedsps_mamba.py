"""LiteDSPS-Mamba (Shang et al., "LiteDSPS-Mamba: Decoupling Behavioral Evidence from Temporal
Computation for Long-Form Audio-Visual Depression Detection", ICASSP 2027 manuscript), block by
block as its public code builds it (github shangmomo/LiteDSPS-Mamba: litedsps/model.py at
24d591e, litedsps/evidence.py at 016dffa, litedsps/metrics.py, litedsps/data.py, train.py,
compute_normalization.py, configs/dvlog.yaml and lmvd.yaml, README.md at a6cacae,
experiments/original/README.md). The repository states no licence (no LICENSE file; neither
README, pyproject.toml nor CITATION.cff names one), so all rights stay with its authors: nothing
of it is copied here, only its facts (formats, numbers, hyper-parameters) carry over.

- Behavioural evidence, parameter-free, per modality and per vlog over its valid frames only: the
  L frames become K_m = min(L, `tokens`) ordered regions, PyTorch's adaptive pooling regions
  [floor(rL/K_m), ceil((r+1)L/K_m)); per region and feature the mean and log1p(sqrt(var + eps))
  (var = E[x^2] - E[x]^2, floored at 0); the absolute first differences, a separate sequence of
  L - 1 values, pooled the same way to the same K_m regions for their mean and their max (zeros
  when L = 1). Token r is [mean, log1p std, mean |diff|, max |diff|] (4 d values); tokens past
  K_m are padding.
- Per modality LayerNorm(4d) -> Linear(4d, embed_dim) -> GELU -> dropout -> LayerNorm(embed_dim);
  the first embed_dim - bypass_dim channels are the dynamic path, the rest the bypass.
- The dynamic path: one Mamba2 layer (asym.nn.mamba2; d_state, d_conv, expand; headdim 64,
  mamba-ssm's default) shared by both modalities and both scan directions: the backward scan runs
  the same layer over the tokens reversed within each vlog's valid ones, its output reversed back,
  and the two directions averaged; then LayerNorm(x + delta), padding zeroed.
- Reunited [dynamic, bypass], one LayerNorm(embed_dim) for both modalities; per modality the mean
  and the max over valid tokens (mean-max pooling); late concatenation; LayerNorm -> dropout ->
  Linear(., 2), trained with CrossEntropyLoss and decided by argmax. We return the difference of
  its two logits (depressed - normal), whose BCE is that cross-entropy exactly, with the same
  parameters, gradients and weight decay.
- Its seven ablations are registry variants (kind `peer-ablation`): full width (no bypass),
  no direction sharing (a layer per direction), no modality sharing (a layer per modality),
  unidirectional (forward scan only), mean-only pooling, no differences (the difference slots
  zeroed), AvgPool-96 (every slot but the mean zeroed). The last two keep the projector's 4 d
  input, as its README says.

Where we differ, and why (every remaining difference):
- Evidence: its earlier evidence.py (a722b06), and the README revision beside it, prepended a
  zero difference at t = 0 and cut non-overlapping floor(linspace) regions; its current
  evidence.py (016dffa) and README follow the archived script of the paper's runs (separate L - 1
  differences, adaptive regions, eps 1e-8), and so do we.
- Its Mamba2 is mamba-ssm's (CUDA kernels, chunk size 256); ours is asym.nn.mamba2 (the same
  SSD recurrence in PyTorch; chunking changes no value). Its forward scan sees the zero tokens
  past K_m only after every valid one (causal), as ours does.
- Its ReduceLROnPlateau (factor 0.6, patience 5) steps on the validation Comp (mode max); ours
  steps on the validation loss (asym.train's plateau scheduler). The checkpoint is still the
  epoch of best validation (Acc + P + R + F1) / 4 of the depressed class (selection `mean4`).
- Its labels are argmax over two logits (ties go to `normal`); ours `P >= 0.5`, the same but for
  logits exactly equal.
- Its evidence replaces non-finite statistics by 0; our features are validated finite upstream.
- Its training-set normalisation pools every training frame; ours is the recipe's `zscore`
  (train-fold statistics, asym.train), the same definition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt

from asym.models import ModelConfig, Rate, register_model
from asym.models.registry import PEER_ABLATION_KIND as PEER_ABLATION


class LiteDSPSMambaConfig(ModelConfig):
    tokens: PositiveInt
    embed_dim: PositiveInt
    bypass_dim: NonNegativeInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    headdim: PositiveInt
    dropout: Rate
    std_eps: PositiveFloat
    # switches its ablations turn (the entries below)
    bypass: bool = True
    share_directions: bool = True
    share_modalities: bool = True
    bidirectional: bool = True
    pooling: Literal["mean_max", "mean"] = "mean_max"
    statistics: Literal["full", "no_differences", "mean_only"] = "full"


full = register_model("litedsps-mamba", LiteDSPSMambaConfig, "LiteDSPSMamba", recipe="litedsps-mamba",
                      description="LiteDSPS-Mamba: behavioural-evidence tokens, a shared bidirectional Mamba2 on a "
                                  "dynamic subspace beside a bypass (ICASSP 2027 ms.), as its public code builds it")
full.variant("litedsps-mamba-full-width", "LiteDSPS-Mamba, full width: Mamba2 on all channels, no bypass",
             kind=PEER_ABLATION, bypass=False)
full.variant("litedsps-mamba-no-direction-sharing", "LiteDSPS-Mamba, a Mamba2 layer per scan direction",
             kind=PEER_ABLATION, share_directions=False)
full.variant("litedsps-mamba-no-modality-sharing", "LiteDSPS-Mamba, a Mamba2 layer per modality",
             kind=PEER_ABLATION, share_modalities=False)
full.variant("litedsps-mamba-unidirectional", "LiteDSPS-Mamba, forward scan only",
             kind=PEER_ABLATION, bidirectional=False)
full.variant("litedsps-mamba-mean-pooling", "LiteDSPS-Mamba, mean-only pooling (no max)",
             kind=PEER_ABLATION, pooling="mean")
full.variant("litedsps-mamba-no-differences", "LiteDSPS-Mamba, without the first-difference statistics",
             kind=PEER_ABLATION, statistics="no_differences")
full.variant("litedsps-mamba-avgpool", "LiteDSPS-Mamba, AvgPool-96 control: regional means only",
             kind=PEER_ABLATION, statistics="mean_only")

import torch
import torch.nn.functional as F
from torch import nn

from asym.models.layers import length_mask, zero_padding
from asym.nn.mamba import reverse_valid
from asym.nn.mamba2 import Mamba2

N_STATISTICS = 4     # mean, log1p std, mean |diff|, max |diff|


def behavioural_evidence(x: torch.Tensor, lengths: torch.Tensor, tokens: int, eps: float) -> tuple[torch.Tensor,
                                                                                                      torch.Tensor]:
    """(B, T, d) frames, valid ones first -> ((B, tokens, 4 d) evidence, (B,) valid tokens).

    Each vlog is cut into min(L, tokens) ordered regions of its own L valid frames, so padding
    never enters a statistic."""
    B, _, d = x.shape
    out = x.new_zeros(B, tokens, N_STATISTICS * d)
    n_tokens = torch.clamp(lengths, max=tokens)
    for i, (n, k) in enumerate(zip(lengths.tolist(), n_tokens.tolist(), strict=True)):
        if n < 1:
            raise ValueError(f"behavioural evidence: sample {i} has no valid frame")
        frames = x[i, :n].t().unsqueeze(0)                                     # (1, d, L)
        mean = F.adaptive_avg_pool1d(frames, k)
        var = (F.adaptive_avg_pool1d(frames.square(), k) - mean.square()).clamp_min(0.0)
        stats = [mean, torch.log1p(torch.sqrt(var + eps))]
        if n > 1:
            diff = (frames[..., 1:] - frames[..., :-1]).abs()
            stats += [F.adaptive_avg_pool1d(diff, k), F.adaptive_max_pool1d(diff, k)]
        else:
            stats += [torch.zeros_like(mean)] * 2
        out[i, :k] = torch.cat(stats, dim=1)[0].t()
    return out, n_tokens


class Projector(nn.Module):
    """LayerNorm -> Linear -> GELU -> dropout -> LayerNorm (its ModalityProjector)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.LayerNorm(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def masked_mean_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, K, C) -> (B, 2C): mean and max over valid tokens."""
    m = mask.unsqueeze(-1)
    mean = (x * m.to(x.dtype)).sum(1) / m.sum(1).clamp_min(1).to(x.dtype)
    return torch.cat([mean, x.masked_fill(~m, torch.finfo(x.dtype).min).amax(1)], dim=-1)


class LiteDSPSMamba(nn.Module):
    MODALITIES = ("audio", "visual")

    def __init__(self, audio_dim: int, visual_dim: int, tokens: int, embed_dim: int, bypass_dim: int, d_state: int,
                 d_conv: int, expand: int, headdim: int, dropout: float, std_eps: float, bypass: bool,
                 share_directions: bool, share_modalities: bool, bidirectional: bool, pooling: str,
                 statistics: str) -> None:
        super().__init__()
        self.dynamic_dim = embed_dim - bypass_dim if bypass else embed_dim
        if not 0 < self.dynamic_dim <= embed_dim:
            raise ValueError(f"litedsps-mamba: bypass_dim {bypass_dim} leaves no dynamic channel of {embed_dim}")
        self.tokens, self.std_eps, self.statistics, self.pooling = tokens, std_eps, statistics, pooling
        self.bidirectional, self.share_directions = bidirectional, share_directions
        self.projectors = nn.ModuleDict({"audio": Projector(N_STATISTICS * audio_dim, embed_dim, dropout),
                                         "visual": Projector(N_STATISTICS * visual_dim, embed_dim, dropout)})
        layer = {"d_state": d_state, "d_conv": d_conv, "expand": expand, "headdim": headdim}
        # one layer does both directions where they share it; else one per direction
        directions = ("both",) if bidirectional and share_directions else ("fwd", "bwd") if bidirectional else ("fwd",)
        modalities = ("shared",) if share_modalities else self.MODALITIES
        self.temporal = nn.ModuleDict({
            f"{m}_{d}": Mamba2(self.dynamic_dim, bidirectional=d == "both", **layer)
            for m in modalities for d in directions})
        self.share_modalities = share_modalities
        self.post_temporal_norm = nn.LayerNorm(self.dynamic_dim)
        self.reunite_norm = nn.LayerNorm(embed_dim)
        pooled = 2 * embed_dim * (2 if pooling == "mean_max" else 1)
        self.head = nn.Sequential(nn.LayerNorm(pooled), nn.Dropout(dropout), nn.Linear(pooled, 2))

    def evidence(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ev, n_tokens = behavioural_evidence(x, lengths, self.tokens, self.std_eps)
        d = x.shape[-1]
        if self.statistics != "full":     # the slots its controls zero, keeping the 4 d input
            keep = d if self.statistics == "mean_only" else 2 * d
            ev = torch.cat([ev[..., :keep], torch.zeros_like(ev[..., keep:])], dim=-1)
        return ev, n_tokens

    def _layer(self, modality: str, direction: str) -> nn.Module:
        return self.temporal[f"{'shared' if self.share_modalities else modality}_{direction}"]

    def dynamic(self, x: torch.Tensor, n_tokens: torch.Tensor, mask: torch.Tensor, modality: str) -> torch.Tensor:
        x = zero_padding(x, mask)
        if self.bidirectional and self.share_directions:
            delta = self._layer(modality, "both")(x, n_tokens)
        else:
            delta = self._layer(modality, "fwd")(x, n_tokens)
            if self.bidirectional:
                back = self._layer(modality, "bwd")(reverse_valid(x, n_tokens), n_tokens)
                delta = 0.5 * (delta + reverse_valid(back, n_tokens))
        return zero_padding(self.post_temporal_norm(x + delta), mask)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, modality: str) -> torch.Tensor:
        ev, n_tokens = self.evidence(x, lengths)
        mask = length_mask(n_tokens, self.tokens)
        h = self.projectors[modality](ev)
        h = torch.cat([self.dynamic(h[..., :self.dynamic_dim], n_tokens, mask, modality), h[..., self.dynamic_dim:]],
                      dim=-1)
        pooled = masked_mean_max(self.reunite_norm(h), mask)
        return pooled if self.pooling == "mean_max" else pooled[:, :h.shape[-1]]

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = self.head(torch.cat([self.encode(visual, lengths, "visual"), self.encode(audio, lengths, "audio")],
                                     dim=-1))
        return logits[:, 1] - logits[:, 0]
