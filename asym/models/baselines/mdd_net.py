"""MDD-Net (Haque et al., "MDD-Net: Multimodal Depression Detection through Mutual Transformer",
IEEE SMC 2025; arXiv 2508.08093), block by block as its public code builds it (github
rezwanh001/Multimodal-Depression-Detection, commit b85a8a0: models/depdet.py `DepDet(d=256, l=6)`,
models/gsabottlenecknet.py, models/hatnet.py, models/mutualtransformer.py; its recipe, loss and
per-vlog z-scoring are `recipes.*.mdd-net`, asym.train.losses and asym.train.normalize).

Acoustic branch (GSABottleneckNet):
- Global self-attention (GSA) over the audio features: bias-free 1x1 q/k/v of 8 heads x key dim
  64; keys softmaxed over time; content = (softmax(k) v^T)^T q per head; a relative-position
  term over offsets |r| <= 9 (`rel_pos_length` 10, `rel_positions` ~ N(0, 1)) that, as its
  einsums reduce, scales v at frame t by q_t . sum_r rel_r over the neighbours t + r inside the
  vlog, then BatchNorm over the key dim; content + relative term; a biased 1x1 back to the input
  width.
- The bottleneck: 1x1 to int(0.35 x width) + BN + ReLU, conv k3 stride 32 + BN + ReLU, 1x1 to 256
  + BN, plus a shortcut (1x1 stride 32 + BN), ReLU: 256 channels at 1/32 of the frame rate.
Visual branch (HATNet): a stem (conv k3 stride 2 to 16 + GroupNorm + SiLU, conv k3 stride 2 to
48), four stages of blocks (attention + inverted residual, widths 48/96/240/384, head dim 48,
expansions 8/8/4/4, depths 2/2/6/3) with a downsampling conv k3 stride 2 + GroupNorm between
stages: also 1/32 of the frame rate.
Then per branch a biased 1x1 to 256 + BN; the mutual transformer: a 6-layer encoder per modality
(d 256, 4 heads, ffn 256, PyTorch's post-norm layer), A->V and V->A cross-attention (4 heads)
after per-role Linear q/k/v maps, and attention over the concatenated pair through maps from 512
and the *V->A module again*, as its code calls `self.cross_va` twice; the three concatenated
(768); a 6-layer encoder (8 heads, ffn 1536); the mean over frames; dropout 0.35; Linear(768, 1).
Initialisation as its `DepDet.init_weights`: every Linear and Conv1d it reaches Kaiming-uniform
(ReLU gain, fan in) with zero biases; each encoder's layers are copies of one layer
(nn.TransformerEncoder), so their attention in-projections start equal.

Kept from the code although they look like slips:
- HATNet keeps its stage blocks in a Python list, never registered as submodules: they are not in
  `parameters()`, so the optimiser never updates them, the L2 term and weight decay never see
  them and the initialisation above never reaches them. They stay at PyTorch's default
  initialisation, frozen, for the whole training (`hat_frozen_blocks: true`; ours hold them as
  buffers, so a checkpoint restores them; `false` trains them).
- Its last stage applies each of its 3 blocks to the same input and keeps the last one's output:
  only that block is built here.
- The relative-position term scales v frame by frame (the einsum 'nit,net->net' sums over i).

Where we differ, and why:
- Masks from lengths, and padding exact: every softmax, mean, BatchNorm and GroupNorm sees valid
  frames only (its attention, GroupNorms, BatchNorms and final mean all count the zero padding
  of the batch), strided convolutions read zeros past a vlog's end exactly as it alone would,
  and the valid length after each stride-s step is ceil(n / s).
- Its bottleneck skips BatchNorm when a batch's downsampled length is 1 (a property of the batch,
  not of the vlog); ours always normalises.
- Not built, as its forward never lets them reach the prediction: the acoustic auxiliary head
  (two k3 convolutions + BN, pooling to 96 steps, an MLP from 24,576: 3.26 M parameters), whose
  output's loss is computed but never back-propagated, and HATNet's own classifier (385). Its
  parameter count (38,289,364 on D-Vlog) is ours (35,025,746) plus those 3,263,618.
- The code hard-codes the acoustic width 25 (D-Vlog's); ours takes the dataset's (128 on LMVD).
- Its temporal strides (32, and 2 x 2 x 2 x 2 x 2) are configurable (`bottleneck_stride`,
  `hat_strides`, whose product must equal it): the demo's vlogs are too short for 32.
"""

from __future__ import annotations

from pydantic import PositiveFloat, PositiveInt

from asym.models import ModelConfig, Rate, register_model


class MDDNetConfig(ModelConfig):
    gsa_heads: PositiveInt
    gsa_key_dim: PositiveInt
    gsa_rel_pos_length: PositiveInt
    bottleneck_ratio: PositiveFloat
    bottleneck_stride: PositiveInt
    audio_channels: PositiveInt
    hat_stem: PositiveInt
    hat_dims: list[PositiveInt]
    hat_head_dim: PositiveInt
    hat_expansions: list[PositiveInt]
    hat_depths: list[PositiveInt]
    hat_strides: list[PositiveInt]
    hat_frozen_blocks: bool
    d_model: PositiveInt
    layers: PositiveInt
    mutual_heads: PositiveInt
    mutual_ffn: PositiveInt
    fusion_heads: PositiveInt
    fusion_ffn: PositiveInt
    dropout: Rate
    head_dropout: Rate


register_model("mdd-net", MDDNetConfig, "MDDNet", recipe="mdd-net",
               description="MDD-Net: GSA + HATNet + mutual transformer (Haque et al., IEEE SMC 2025), as its public "
                           "code builds it")

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from asym.errors import ConfigError
from asym.models.layers import (
    Classifier,
    MaskedBatchNorm1d,
    key_padding,
    length_mask,
    masked_mean,
    zero_padding,
)

GROUP_NORM_EPS = 1e-6     # HATNet's GroupNorms


def strided_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid frames after a kernel-3 padding-1 (or kernel-1) convolution of stride `stride`."""
    return (lengths + stride - 1) // stride


def freeze(module: nn.Module) -> nn.Module:
    """Turn every parameter of `module` into a buffer of the same value: kept in the state dict,
    moved with the model, never trained (HATNet's unregistered stage blocks)."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            del sub._parameters[name]
            sub.register_buffer(name, p.detach().clone())
    return module


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm(1, C) of (B, T, C): per vlog, over its channels and valid frames only."""

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels, eps=GROUP_NORM_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        m = mask.unsqueeze(-1).to(x.dtype)
        n = (m.sum((1, 2)) * x.shape[-1]).clamp_min(1.0)[:, None, None]
        mean = (x * m).sum((1, 2), keepdim=True) / n
        var = (((x - mean) * m) ** 2).sum((1, 2), keepdim=True) / n
        return zero_padding((x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias, mask)


def conv(x: torch.Tensor, layer: nn.Conv1d, mask: torch.Tensor) -> torch.Tensor:
    """A Conv1d over (B, T, C), after zeroing the padding."""
    return layer(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)


# --- acoustic branch ------------------------------------------------------------------------------
class GlobalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, key_dim: int, rel_pos_length: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.reach = heads, key_dim, rel_pos_length - 1
        self.to_qkv = nn.Linear(dim, 3 * heads * key_dim, bias=False)
        self.to_out = nn.Linear(heads * key_dim, dim)
        self.rel_positions = nn.Parameter(torch.randn(2 * rel_pos_length - 1, key_dim))
        self.norm = MaskedBatchNorm1d(key_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (t.view(B, T, self.heads, self.key_dim) for t in self.to_qkv(zero_padding(x, mask)).chunk(3, -1))
        k = k.masked_fill(~mask[:, :, None, None], float("-inf")).softmax(dim=1)
        context = torch.einsum("bthd,bthe->bhde", k, v)
        content = torch.einsum("bhde,bthd->bthe", context, q)
        # sum of rel_r over the offsets r whose neighbour t + r is a valid frame
        near = F.conv1d(mask[:, None].to(x.dtype), self.rel_positions.t().unsqueeze(1), padding=self.reach)
        gate = torch.einsum("bthd,bdt->bth", q, near)
        rel = (gate.unsqueeze(-1) * v).transpose(1, 2).reshape(B * self.heads, T, self.key_dim)
        rel = self.norm(rel, mask.repeat_interleave(self.heads, dim=0)).view(B, self.heads, T, self.key_dim)
        out = self.to_out((content + rel.transpose(1, 2)).reshape(B, T, self.heads * self.key_dim))
        return zero_padding(out, mask)


class Bottleneck(nn.Module):
    """Its DynamicBottleneck: 1x1 down, strided k3, 1x1 up, each with BN, plus a strided shortcut."""

    def __init__(self, dim: int, out_dim: int, ratio: float, stride: int) -> None:
        super().__init__()
        inner = int(dim * ratio)
        self.stride = stride
        self.down, self.bn1 = nn.Linear(dim, inner, bias=False), MaskedBatchNorm1d(inner)
        self.mid = nn.Conv1d(inner, inner, 3, stride=stride, padding=1, bias=False)
        self.bn2 = MaskedBatchNorm1d(inner)
        self.up, self.bn3 = nn.Linear(inner, out_dim, bias=False), MaskedBatchNorm1d(out_dim)
        self.short, self.bn_short = nn.Linear(dim, out_dim, bias=False), MaskedBatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out_lengths = strided_lengths(lengths, self.stride)
        out_mask = length_mask(out_lengths, math.ceil(x.shape[1] / self.stride))
        h = torch.relu(self.bn1(self.down(x), mask))
        h = torch.relu(self.bn2(conv(h, self.mid, mask), out_mask))
        h = self.bn3(self.up(h), out_mask)
        short = self.bn_short(self.short(x[:, :: self.stride]), out_mask)
        return zero_padding(torch.relu(h + short), out_mask), out_mask, out_lengths


# --- visual branch ---------------------------------------------------------------------------------
class HATAttention(nn.Module):
    """GroupNorm, biased 1x1 q/k/v, softmax attention over valid frames, biased 1x1 projection."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        if dim % head_dim:
            raise ConfigError(f"mdd-net: HATNet width {dim} is not a multiple of its head dim {head_dim}")
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.norm = MaskedGroupNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm(x, mask)).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        attn = scores.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(dim=-1)
        return zero_padding(self.proj((attn @ v).transpose(1, 2).reshape(B, T, C)), mask)


class InvertedResidual(nn.Module):
    def __init__(self, dim: int, expansion: int) -> None:
        super().__init__()
        hidden = dim * expansion
        self.norm_in = MaskedGroupNorm(dim)
        self.expand = nn.Linear(dim, hidden, bias=False)
        self.depthwise = nn.Conv1d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.reduce = nn.Linear(hidden, dim, bias=False)
        self.norm_out = MaskedGroupNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padding(F.silu(self.expand(self.norm_in(x, mask))), mask)
        h = F.silu(conv(h, self.depthwise, mask))
        return self.norm_out(self.reduce(h), mask)


class HATBlock(nn.Module):
    def __init__(self, dim: int, head_dim: int, expansion: int) -> None:
        super().__init__()
        self.attn = HATAttention(dim, head_dim)
        self.conv = InvertedResidual(dim, expansion)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, mask)
        return zero_padding(x + self.conv(x, mask), mask)


class StridedConv(nn.Module):
    """Conv1d k3 padding 1 of a stride, optionally followed by a GroupNorm (HATNet's Downsample)."""

    def __init__(self, dim: int, out_dim: int, stride: int, norm: bool) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(dim, out_dim, 3, stride=stride, padding=1)
        self.norm = MaskedGroupNorm(out_dim) if norm else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lengths = strided_lengths(lengths, self.stride)
        h = conv(x, self.conv, mask)
        mask = length_mask(lengths, h.shape[1])
        h = self.norm(h, mask) if self.norm is not None else zero_padding(h, mask)
        return h, mask, lengths


class HATNet(nn.Module):
    def __init__(self, dim: int, stem: int, dims: list[int], head_dim: int, expansions: list[int], depths: list[int],
                 strides: list[int]) -> None:
        super().__init__()
        if not len(dims) == len(expansions) == len(depths) == len(strides) - 1:
            raise ConfigError("mdd-net: hat_dims, hat_expansions and hat_depths need one entry per stage and "
                              "hat_strides one more (the stem's two convolutions, then each downsampling)")
        self.stem1 = StridedConv(dim, stem, strides[0], norm=True)
        self.stem2 = StridedConv(stem, dims[0], strides[1], norm=False)
        self.downs = nn.ModuleList(StridedConv(a, b, s, norm=True)
                                   for a, b, s in zip(dims[:-1], dims[1:], strides[2:], strict=True))
        # built after the model's initialisation pass, which never reached them (see the docstring)
        self.plan = [(d, n if i < len(dims) - 1 else 1, e) for i, (d, n, e) in enumerate(zip(dims, depths, expansions,
                                                                                             strict=True))]
        self.head_dim = head_dim
        self.stages = nn.ModuleList()

    def build_stages(self, frozen: bool) -> None:
        for dim, depth, expansion in self.plan:
            stage = nn.ModuleList(HATBlock(dim, self.head_dim, expansion) for _ in range(depth))
            self.stages.append(freeze(stage) if frozen else stage)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, mask, lengths = self.stem1(x, mask, lengths)
        x = F.silu(x)
        x, mask, lengths = self.stem2(x, mask, lengths)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x, mask, lengths = self.downs[i - 1](x, mask, lengths)
            for block in stage:
                x = block(x, mask)
        return x, mask, lengths


# --- fusion -------------------------------------------------------------------------------------------
def encoder(dim: int, heads: int, ffn: int, layers: int, dropout: float) -> nn.ModuleList:
    """nn.TransformerEncoder's layers: `layers` copies of one post-norm layer."""
    layer = nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=True)
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(layers))


def encode(layers: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x, src_key_padding_mask=key_padding(mask))
    return zero_padding(x, mask)


class MutualTransformer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.v_encoder = encoder(dim, heads, ffn, layers, dropout)
        self.a_encoder = encoder(dim, heads, ffn, layers, dropout)
        self.qa, self.ka, self.va = (nn.Linear(dim, dim) for _ in range(3))
        self.qv, self.kv, self.vv = (nn.Linear(dim, dim) for _ in range(3))
        self.qf, self.kf, self.vf = (nn.Linear(2 * dim, dim) for _ in range(3))
        self.cross_av = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_va = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, v: torch.Tensor, a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        v, a = encode(self.v_encoder, v, mask), encode(self.a_encoder, a, mask)
        pad = key_padding(mask)
        fav = self.cross_av(self.qa(a), self.ka(v), self.va(v), key_padding_mask=pad, need_weights=False)[0]
        fva = self.cross_va(self.qv(v), self.kv(a), self.vv(a), key_padding_mask=pad, need_weights=False)[0]
        f = torch.cat([v, a], dim=-1)
        fused = self.cross_va(self.qf(f), self.kf(f), self.vf(f), key_padding_mask=pad, need_weights=False)[0]
        return zero_padding(torch.cat([fav, fva, fused], dim=-1), mask)


class MDDNet(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, gsa_heads: int, gsa_key_dim: int, gsa_rel_pos_length: int,
                 bottleneck_ratio: float, bottleneck_stride: int, audio_channels: int, hat_stem: int,
                 hat_dims: list[int], hat_head_dim: int, hat_expansions: list[int], hat_depths: list[int],
                 hat_strides: list[int], hat_frozen_blocks: bool, d_model: int, layers: int, mutual_heads: int,
                 mutual_ffn: int, fusion_heads: int, fusion_ffn: int, dropout: float, head_dropout: float) -> None:
        super().__init__()
        if math.prod(hat_strides) != bottleneck_stride:
            raise ConfigError(f"mdd-net: the visual strides {hat_strides} (product {math.prod(hat_strides)}) must "
                              f"downsample as the acoustic bottleneck does ({bottleneck_stride}), or the streams misalign")
        self.gsa = GlobalSelfAttention(audio_dim, gsa_heads, gsa_key_dim, gsa_rel_pos_length)
        self.bottleneck = Bottleneck(audio_dim, audio_channels, bottleneck_ratio, bottleneck_stride)
        self.hatnet = HATNet(visual_dim, hat_stem, hat_dims, hat_head_dim, hat_expansions, hat_depths, hat_strides)
        self.a_down, self.a_bn = nn.Linear(audio_channels, d_model), MaskedBatchNorm1d(d_model)
        self.v_down, self.v_bn = nn.Linear(hat_dims[-1], d_model), MaskedBatchNorm1d(d_model)
        self.mutual = MutualTransformer(d_model, mutual_heads, mutual_ffn, layers, dropout)
        self.fusion = encoder(3 * d_model, fusion_heads, fusion_ffn, layers, dropout)
        self.head = Classifier(3 * d_model, dropout=head_dropout)
        for m in self.modules():                       # DepDet.init_weights
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.hatnet.build_stages(frozen=hat_frozen_blocks)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, audio.shape[1])
        a, a_mask, _ = self.bottleneck(self.gsa(audio, mask), mask, lengths)
        v, v_mask, _ = self.hatnet(zero_padding(visual, mask), mask, lengths)
        a = self.a_bn(self.a_down(a), a_mask)
        v = self.v_bn(self.v_down(v), v_mask)
        h = encode(self.fusion, self.mutual(v, a, a_mask), a_mask)
        return self.head(masked_mean(h, a_mask))
