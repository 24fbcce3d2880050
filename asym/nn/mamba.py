"""Mamba (the mamba_simple block) and Bi-Mamba, with explicit sequence lengths.

Mamba: in_proj -> depthwise causal conv (width d_conv) -> SiLU -> x_proj (dt, B, C) ->
dt_proj + softplus -> selective scan with D skip and SiLU(z) gate -> out_proj.
Initialisation as in mamba-ssm: dt log-uniform in [dt_min, dt_max] stored through an
inverse softplus in dt_proj's bias; A = -[1..d_state] per channel (S4D-real) stored as
log(-A); D = 1. A_log and D are float32 and exempt from weight decay by the trainer's choice.

BiMamba ("v2", as DepMamba): a second conv / x_proj / dt_proj / A / D runs on the
time-reversed sequence; both outputs are averaged before one shared out_proj. The reversal is
per sample over its valid frames only, so padding stays at the end in both directions, both
scans are causal over valid frames, and a sample's output does not depend on its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from asym.nn.ssm import selective_scan


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse (B, T, ...) along time within each sample's first `lengths` frames."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    idx = torch.where(t < lengths, lengths - 1 - t, t)
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


def _causal_conv1d_fn():
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        return None
    return causal_conv1d_fn


def _fused_kernels(x: torch.Tensor) -> tuple[Callable | None, str]:
    """(causal_conv1d's fused conv + SiLU, or None for PyTorch's, and the selective-scan backend)
    for tensors like x: the CUDA kernels serve CUDA tensors when they import."""
    return (_causal_conv1d_fn() if x.is_cuda else None), "auto"


class _ScanBranch(nn.Module):
    """Everything direction-specific in a Mamba block: conv, x_proj, dt_proj, A, D."""

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int, dt_min: float, dt_max: float,
                 dt_init_floor: float, dt_scale: float) -> None:
        super().__init__()
        self.d_state, self.dt_rank = d_state, dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        std = dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x, z: (B, d_inner, T) -> gated scan output (B, d_inner, T)."""
        T = x.shape[-1]
        conv, backend = _fused_kernels(x)
        if conv is not None:
            x = conv(x.contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        else:
            x = F.silu(self.conv1d(x)[..., :T])
        x_dbl = self.x_proj(x.transpose(1, 2))                          # (B, T, r + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)             # bias goes in as delta_bias
        A = -torch.exp(self.A_log.float())
        return selective_scan(x.contiguous(), dt.contiguous(), A, B.transpose(1, 2).contiguous(),
                              C.transpose(1, 2).contiguous(), self.D.float(), z.contiguous(),
                              delta_bias=self.dt_proj.bias.float(), delta_softplus=True, backend=backend)


class Mamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, bidirectional: bool = False) -> None:
        super().__init__()
        self.d_inner = expand * d_model
        dt_rank = dt_rank or math.ceil(d_model / 16)
        self.bidirectional = bidirectional
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        branch = (self.d_inner, d_state, d_conv, dt_rank, dt_min, dt_max, dt_init_floor, dt_scale)
        self.fwd = _ScanBranch(*branch)
        self.bwd = _ScanBranch(*branch) if bidirectional else None
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d_model); lengths: (B,) valid frames (padding at the end) -> (B, T, d_model)."""
        xz = self.in_proj(x)
        xs, zs = xz.chunk(2, dim=-1)
        y = self.fwd(xs.transpose(1, 2), zs.transpose(1, 2)).transpose(1, 2)
        if self.bwd is not None:
            xr, zr = reverse_valid(xs, lengths), reverse_valid(zs, lengths)
            yb = self.bwd(xr.transpose(1, 2), zr.transpose(1, 2)).transpose(1, 2)
            y = 0.5 * (y + reverse_valid(yb, lengths))
        return self.out_proj(y)


class BiMamba(Mamba):
    def __init__(self, d_model: int, **kwargs) -> None:
        super().__init__(d_model, bidirectional=True, **kwargs)
