"""SSD (Mamba2's scan) in plain PyTorch, for any device: the chunked form of Dao & Gu (2024).

The sequence is cut into chunks of `chunk_size` steps. Inside a chunk the output is the
quadratic (attention-like) form

    y_l = sum_{s <= l} (C_l . B_s) exp(cum_l - cum_s) dt_s x_s,   cum = cumsum(dt A) in the chunk,

and the chunks are joined by passing one state (heads, headdim, d_state) from chunk to chunk:
each chunk adds exp(cum_l) C_l h_start to its outputs and hands on
exp(cum_last) h_start + sum_s exp(cum_last - cum_s) dt_s x_s B_s^T. Only differences cum_l - cum_s
with l >= s are exponentiated (the others are masked to -inf first), so every decay is in (0, 1]
and nothing overflows. Steps past the end are padded with dt = 0 (after the bias and softplus):
decay 1 and no input, so the final state is that of the last real step.

Gradients are PyTorch's autograd through these operations; memory is O(batch * heads *
length * chunk_size) for the intra-chunk matrices, which is what a chunked form costs.

Precision as asym.nn.ssm documents for the selective scan: everything is computed in float32
(float64 for float64 inputs), bf16 inputs are read as they are; the output comes back in x's
dtype, the final state in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64


def work_dtype(x: torch.Tensor) -> torch.dtype:
    """The accumulation dtype for inputs like x: float64 for float64, else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def step_sizes(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool,
               work: torch.dtype) -> torch.Tensor:
    """dt (+ dt_bias, then softplus when asked) in the accumulation dtype, as mamba-ssm."""
    dt = dt.to(work)
    if dt_bias is not None:
        dt = dt + dt_bias.to(work)
    return F.softplus(dt) if dt_softplus else dt


def skip_and_gate(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor | None,
                  z: torch.Tensor | None) -> torch.Tensor:
    """y + D x, times SiLU(z) when z is given (mamba_chunk_scan_combined's order); y in work dtype."""
    work = y.dtype
    if D is not None:
        Dw = D.to(work)
        y = y + x.to(work) * (Dw[:, None] if Dw.dim() == 1 else Dw)
    if z is not None:
        y = y * F.silu(z.to(work))
    return y


def ssd_core_torch(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   initial_state: torch.Tensor | None, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scan alone, all in the work dtype: x (b, l, h, p), dt (b, l, h) final step sizes,
    A (h,), B, C (b, l, g, n) -> y (b, l, h, p) without skip or gate, final state (b, h, p, n)."""
    b, L, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    r = h // g
    Q = chunk_size
    pad = (-L) % Q
    if pad:
        x, dt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, dt, B, C))
    c = (L + pad) // Q
    xc = x.reshape(b, c, Q, g, r, p)
    Bc, Cc = B.reshape(b, c, Q, g, n), C.reshape(b, c, Q, g, n)
    dtc = dt.reshape(b, c, Q, g, r).permute(0, 1, 3, 4, 2)             # (b, c, g, r, Q)
    cum = torch.cumsum(dtc * A.reshape(g, r, 1), dim=-1)               # (b, c, g, r, Q)
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    seg = (cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf"))
    CB = torch.einsum("bclgn,bcsgn->bcgls", Cc, Bc)                     # (b, c, g, Q, Q)
    M = CB[:, :, :, None] * torch.exp(seg) * dtc[..., None, :]          # (b, c, g, r, Q, Q)
    y = torch.einsum("bcgrls,bcsgrp->bclgrp", M, xc)
    w = torch.exp(cum[..., -1:] - cum) * dtc                            # (b, c, g, r, Q)
    states = torch.einsum("bcsgn,bcgrs,bcsgrp->bcgrpn", Bc, w, xc)
    decay = torch.exp(cum[..., -1])                                     # (b, c, g, r)
    state = (x.new_zeros(b, g, r, p, n) if initial_state is None
             else initial_state.to(x.dtype).reshape(b, g, r, p, n))
    starts = []
    for k in range(c):
        starts.append(state)
        state = decay[:, k, :, :, None, None] * state + states[:, k]
    hs = torch.stack(starts, dim=1)                                     # (b, c, g, r, p, n)
    y = y + torch.einsum("bclgn,bcgrpn,bcgrl->bclgrp", Cc, hs, torch.exp(cum))
    return y.reshape(b, c * Q, h, p)[:, :L], state.reshape(b, h, p, n)


def ssd_torch(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None,
              return_final_state=False, chunk_size: int = CHUNK):
    """mamba_chunk_scan_combined's semantics in PyTorch (shapes: asym.nn.ssd)."""
    work = work_dtype(x)
    steps = step_sizes(dt, dt_bias, dt_softplus, work)
    y, last = ssd_core_torch(x.to(work), steps, A.to(work), B.to(work), C.to(work), initial_state, chunk_size)
    out = skip_and_gate(y, x, D, z).to(x.dtype)
    return (out, last) if return_final_state else out
