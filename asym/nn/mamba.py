"""Mamba (the mamba_simple block) and Bi-Mamba, with explicit sequence lengths.

Mamba: in_proj -> depthwise causal conv (width d_conv) -> SiLU -> x_proj (dt, B, C) ->
dt_proj + softplus -> selective scan with D skip and SiLU(z) gate -> out_proj.
Initialisation as in mamba-ssm: dt log-uniform in [dt_min, dt_max] stored through an
inverse softplus in dt_proj's bias; A = -[1..d_state] per channel (S4D-real) stored as
log(-A); D = 1. A_log and D are float32 and carry mamba-ssm's `_no_weight_decay` mark, which
`asym.models.layers.param_groups` honours (decaying A towards zero would slow every mode).

BiMamba ("v2", as DepMamba): a second conv / x_proj / dt_proj / A / D runs on the
time-reversed sequence; both outputs are averaged before one shared out_proj. The reversal is
per sample over its valid frames only, so padding stays at the end in both directions, both
scans are causal over valid frames, and a sample's output does not depend on its batch.

Collaborative blocks (DepMamba's CoSSM, ASYM's CMIM): `share_state_matrices` makes two blocks
use one A per direction, the same Parameter objects; everything else stays per block.

`scan_backend` names the selective scan's backend (asym.nn.ssm.BACKENDS); "auto" picks per call
from the tensors' device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from asym.nn.ssm import BACKENDS, selective_scan


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse (B, T, ...) along time within each sample's first `lengths` frames."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    idx = torch.where(t < lengths, lengths - 1 - t, t)
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


@functools.cache
def _causal_conv1d_fn():
    """causal_conv1d's kernel, imported once: where it does not import (no CUDA build), None is
    kept rather than the import tried again on every forward pass."""
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        return None
    return causal_conv1d_fn


def _fused_conv(x: torch.Tensor) -> Callable | None:
    """causal_conv1d's fused conv + SiLU for tensors like x, or None for PyTorch's: the CUDA
    kernel serves CUDA tensors when it imports."""
    return _causal_conv1d_fn() if x.is_cuda else None


class _ScanBranch(nn.Module):
    """Everything direction-specific in a Mamba block: conv, x_proj, dt_proj, A, D."""

    NO_WEIGHT_DECAY = ("A_log", "D")   # by name too: copy.deepcopy drops attributes set on a Parameter

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int, dt_min: float, dt_max: float,
                 dt_init_floor: float, dt_scale: float, scan_backend: str = "auto") -> None:
        super().__init__()
        self.d_state, self.dt_rank = d_state, dt_rank
        self.scan_backend = scan_backend
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
        for name in self.NO_WEIGHT_DECAY:
            getattr(self, name)._no_weight_decay = True

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x, z: (B, d_inner, T) -> gated scan output (B, d_inner, T)."""
        T = x.shape[-1]
        conv = _fused_conv(x)
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
                              delta_bias=self.dt_proj.bias.float(), delta_softplus=True, backend=self.scan_backend)


class Mamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, bidirectional: bool = False,
                 d_inner: int | None = None, scan_backend: str = "auto") -> None:
        super().__init__()
        if scan_backend not in BACKENDS:
            raise ValueError(f"scan_backend must be one of {BACKENDS}, got {scan_backend!r}")
        self.d_inner = d_inner or expand * d_model   # an explicit inner width overrides expand
        dt_rank = dt_rank or math.ceil(d_model / 16)
        self.bidirectional = bidirectional
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        branch = (self.d_inner, d_state, d_conv, dt_rank, dt_min, dt_max, dt_init_floor, dt_scale,
                  scan_backend)
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

    def share_state_matrices(self, other: Mamba) -> None:
        """Use `other`'s state matrices A (forward, and backward when both blocks have one).

        The Parameter objects become one, so `model.parameters()` holds each shared A once and
        both blocks' gradients reach it. This is all that DepMamba's collaborative Bi-Mamba
        shares: in_proj, conv, x_proj, dt_proj, D and out_proj stay per modality.
        """
        pairs = [(self.fwd, other.fwd)]
        if self.bwd is not None and other.bwd is not None:
            pairs.append((self.bwd, other.bwd))
        for mine, theirs in pairs:
            if mine.A_log.shape != theirs.A_log.shape:
                raise ValueError(f"cannot share state matrices of shapes {tuple(mine.A_log.shape)} "
                                 f"and {tuple(theirs.A_log.shape)}")
            mine.A_log = theirs.A_log


class BiMamba(Mamba):
    def __init__(self, d_model: int, **kwargs) -> None:
        super().__init__(d_model, bidirectional=True, **kwargs)


def parameter_count(d_model: int, d_state: int, d_conv: int, d_inner: int, dt_rank: int | None = None,
                    bidirectional: bool = False) -> int:
    """Parameters of a Mamba block, without building it (in_proj, out_proj, one or two branches)."""
    dt_rank = dt_rank or math.ceil(d_model / 16)
    branch = d_inner * (d_conv + 1) + d_inner * (dt_rank + 2 * d_state) + dt_rank * d_inner + d_inner \
        + d_inner * d_state + d_inner
    return 3 * d_model * d_inner + branch * (2 if bidirectional else 1)


def matched_inner_width(d_model: int, d_state: int, d_conv: int, expand: int) -> int:
    """Inner width at which a unidirectional Mamba has the parameters of a Bi-Mamba of `expand`.

    Bi-Mamba's second branch (conv, x_proj, dt_proj, A, D) is spent instead on a wider single
    direction; d_state, d_conv and dt_rank stay as they are, so the scan's dynamics match.
    """
    target = parameter_count(d_model, d_state, d_conv, expand * d_model, bidirectional=True)
    per_channel = parameter_count(d_model, d_state, d_conv, 1)   # the count is linear in d_inner
    return round(target / per_channel)
