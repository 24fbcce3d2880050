"""Mamba2 (the block of mamba-ssm's modules/mamba2_simple.py and mamba2.py), with explicit lengths.

in_proj -> (z, xBC, dt); depthwise causal conv (width d_conv) over xBC, SiLU; xBC -> (x, B, C)
with x in heads of `headdim` channels and B, C in `ngroups` groups of d_state; SSD
(asym.nn.ssd) with A = -exp(A_log), one scalar per head, dt = softplus(dt + dt_bias) and the D
skip; gated RMSNorm, norm(y * SiLU(z)) per group of d_inner / ngroups channels
(norm_before_gate=False, eps 1e-5, as mamba2.py); out_proj. No biases on the projections, a bias
on the conv.

Initialisation as in mamba-ssm: A uniform in A_INIT_RANGE stored as A_log = log(A); dt
log-uniform in [dt_min, dt_max] (floored at dt_init_floor) stored through an inverse softplus
in dt_bias; D = 1. A_log, D and dt_bias carry mamba-ssm's `_no_weight_decay` mark (and are
named in NO_WEIGHT_DECAY, which survives copy.deepcopy), honoured by
`asym.models.layers.param_groups`.

Lengths: padding sits at the end of each sample. Everything before the output projection is
causal, so padding never reaches a valid frame. `bidirectional` runs the same layer (the same
weights) a second time on each sample reversed over its valid frames (asym.nn.mamba.reverse_valid),
reverses that output back and averages the two directions, as LiteDSPS-Mamba shares one layer
across directions; both passes go through one call of the layer on a doubled batch. To share
the layer across modalities too, call the one module on each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from asym.nn.mamba import _fused_conv, reverse_valid
from asym.nn.ssd import BACKENDS, ssd

A_INIT_RANGE = (1.0, 16.0)   # mamba-ssm's A_init_range
NORM_EPS = 1e-5              # mamba2.py's RMSNormGated eps


class GatedRMSNorm(nn.Module):
    """RMSNorm of y * SiLU(z) over groups of `group_size` channels, times a weight
    (mamba-ssm's RMSNormGated with norm_before_gate=False), computed in float32."""

    def __init__(self, d: int, group_size: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.group_size, self.eps = group_size, eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = y.dtype
        y = y.float() * F.silu(z.float())
        groups = y.unflatten(-1, (-1, self.group_size))
        y = (groups * torch.rsqrt(groups.square().mean(-1, keepdim=True) + self.eps)).flatten(-2)
        return (y * self.weight.float()).to(dtype)


class Mamba2(nn.Module):
    NO_WEIGHT_DECAY = ("A_log", "D", "dt_bias")   # by name too: copy.deepcopy drops attributes set on a Parameter

    def __init__(self, d_model: int, d_state: int = 64, d_conv: int = 4, expand: int = 2, headdim: int = 64,
                 ngroups: int = 1, chunk_size: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_init_floor: float = 1e-4, bidirectional: bool = False, scan_backend: str = "auto") -> None:
        super().__init__()
        if scan_backend not in BACKENDS:
            raise ValueError(f"scan_backend must be one of {BACKENDS}, got {scan_backend!r}")
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"Mamba2: d_inner = expand * d_model = {self.d_inner} is not a multiple of headdim {headdim}")
        self.nheads = self.d_inner // headdim
        if self.nheads % ngroups:
            raise ValueError(f"Mamba2: heads ({self.nheads}) must be a multiple of ngroups ({ngroups})")
        self.d_state, self.headdim, self.ngroups = d_state, headdim, ngroups
        self.chunk_size, self.bidirectional, self.scan_backend = chunk_size, bidirectional, scan_backend
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, self.d_inner + conv_dim + self.nheads, bias=False)   # [z, xBC, dt]
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus
        A = torch.empty(self.nheads, dtype=torch.float32).uniform_(*A_INIT_RANGE)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        for name in self.NO_WEIGHT_DECAY:
            getattr(self, name)._no_weight_decay = True
        self.norm = GatedRMSNorm(self.d_inner, self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d_model); lengths: (B,) valid frames (padding at the end) -> (B, T, d_model)."""
        if lengths is not None and tuple(lengths.shape) != (x.shape[0],):
            raise ValueError(f"Mamba2: lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if not self.bidirectional:
            return self._one_direction(x)
        both = self._one_direction(torch.cat([x, reverse_valid(x, lengths)]))
        fwd, bwd = both.chunk(2)
        return 0.5 * (fwd + reverse_valid(bwd, lengths))

    def _one_direction(self, u: torch.Tensor) -> torch.Tensor:
        batch, T, _ = u.shape
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv1d.in_channels, self.nheads], dim=-1)
        xBC = xBC.transpose(1, 2)
        conv = _fused_conv(xBC)
        if conv is not None:
            xBC = conv(xBC.contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        else:
            xBC = F.silu(self.conv1d(xBC)[..., :T])
        xs, B, C = torch.split(xBC.transpose(1, 2), [self.d_inner, self.ngroups * self.d_state,
                                                     self.ngroups * self.d_state], dim=-1)
        y = ssd(xs.unflatten(-1, (self.nheads, self.headdim)), dt, -torch.exp(self.A_log.float()),
                B.unflatten(-1, (self.ngroups, self.d_state)), C.unflatten(-1, (self.ngroups, self.d_state)),
                D=self.D.float(), dt_bias=self.dt_bias.float(), dt_softplus=True, chunk_size=self.chunk_size,
                backend=self.scan_backend)
        return self.out_proj(self.norm(y.flatten(-2), z))
