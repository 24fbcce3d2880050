"""Selective scan in plain PyTorch for devices with neither mamba-ssm nor the CPU kernel.

The sequence is cut into chunks of `chunk` steps; inside a chunk the linear recurrence
h_t = a_t h_{t-1} + x_t is solved with a Hillis-Steele parallel scan (log2(chunk) tensor
steps), and the state is carried from chunk to chunk. Only products of decays in (0, 1] are
formed, never their inverses, so it is stable for decays near 0 and near 1. Memory is
O(batch * d_inner * chunk * d_state) per chunk; autograd provides the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_scan(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + x_t along dim -2 (time), h_{-1} = h0; a, x: (..., K, N)."""
    x = torch.cat([x[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2), x[..., 1:, :]], dim=-2)
    k = x.shape[-2]
    step = 1
    while step < k:
        x = torch.cat([x[..., :step, :], x[..., step:, :] + a[..., step:, :] * x[..., :-step, :]], dim=-2)
        a = torch.cat([a[..., :step, :], a[..., step:, :] * a[..., :-step, :]], dim=-2)
        step *= 2
    return x


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, chunk: int = 64):
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    n_b, n_d, L = u.shape
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    # (b, g, n, l) -> (b, d, l, n), repeating each group over its channels
    B = B.float().repeat_interleave(n_d // B.shape[1], dim=1).transpose(-1, -2)
    C = C.float().repeat_interleave(n_d // C.shape[1], dim=1).transpose(-1, -2)
    A = A.float()
    h = u.new_zeros(n_b, n_d, A.shape[1])
    ys = []
    for s in range(0, L, chunk):
        e = min(L, s + chunk)
        dt = delta[:, :, s:e, None]                       # (b, d, k, 1)
        a = torch.exp(dt * A[None, :, None, :])           # (b, d, k, n)
        x = dt * u[:, :, s:e, None] * B[:, :, s:e]
        hs = linear_scan(a, x, h)
        ys.append((hs * C[:, :, s:e]).sum(-1))
        h = hs[:, :, -1]
    y = torch.cat(ys, dim=-1)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype_in)
    return (y, h) if return_last_state else y
