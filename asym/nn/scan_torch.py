"""Selective scan in plain PyTorch for devices with neither mamba-ssm nor the CPU kernel.

The sequence is cut into chunks of `chunk` steps; inside a chunk the linear recurrence
h_t = a_t h_{t-1} + x_t is solved with a Hillis-Steele parallel scan (log2(chunk) in-place
tensor steps), and the state is carried from chunk to chunk. Only products of decays in
(0, 1] are formed, never their inverses, so it is stable for decays near 0 and near 1.

The core scan is a custom autograd Function: the forward keeps only each chunk's starting
state; the backward recomputes a chunk's states from it and solves the adjoint recurrence
g_t = dy_t C_t + a_{t+1} g_{t+1} with the same scan run backwards in time. Memory is
O(batch * d_inner * chunk * d_state) whatever L is. Bias, softplus, D and the z gate are
outside the Function and differentiated by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64


def linear_scan_(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """In place: x becomes h with h_t = a_t h_{t-1} + x_t along dim -2, h_{-1} = h0.
    `a` is overwritten too; both must be tensors the caller owns."""
    x[..., 0, :].addcmul_(a[..., 0, :], h0)
    k, step = x.shape[-2], 1
    while step < k:
        x[..., step:, :].addcmul_(a[..., step:, :], x[..., :-step, :].clone())
        if 2 * step < k:
            a[..., step:, :].mul_(a[..., :-step, :].clone())
        step *= 2
    return x


def _chunk_inputs(u, delta, A, Bt, s, e, rep):
    """Decays a and inputs x of one chunk, each (b, d, k, n); Bt is (b, g, L, n)."""
    b, d, _ = u.shape
    k, n = e - s, A.shape[1]
    dt = delta[:, :, s:e, None]
    a = torch.exp(dt * A[None, :, None, :])
    Bexp = Bt[:, :, None, s:e].expand(b, Bt.shape[1], rep, k, n).reshape(b, d, k, n)
    return a, (dt * u[:, :, s:e, None]) * Bexp, Bexp


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk):
        b, d, L = u.shape
        g, n = B.shape[1], A.shape[1]
        rep = d // g
        Bt, Ct = B.transpose(-1, -2), C.transpose(-1, -2)
        h = u.new_zeros(b, d, n)
        starts, y = [], u.new_empty(b, d, L)
        for s in range(0, L, chunk):
            e = min(L, s + chunk)
            starts.append(h)
            a, x, _ = _chunk_inputs(u, delta, A, Bt, s, e, rep)
            hs = linear_scan_(a, x, h)
            y[:, :, s:e] = (hs.view(b, g, rep, e - s, n) * Ct[:, :, None, s:e]).sum(-1).view(b, d, e - s)
            h = hs[:, :, -1].clone()
        ctx.save_for_backward(u, delta, A, B, C, torch.stack(starts, 2))
        ctx.chunk = chunk
        ctx.mark_non_differentiable(h)
        return y, h

    @staticmethod
    def backward(ctx, dy, _dlast):
        u, delta, A, B, C, starts = ctx.saved_tensors
        b, d, L = u.shape
        g, n = B.shape[1], A.shape[1]
        rep = d // g
        Bt, Ct = B.transpose(-1, -2), C.transpose(-1, -2)
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dA = torch.zeros_like(A)
        dBt, dCt = torch.empty_like(Bt), torch.empty_like(Ct)
        carry = u.new_zeros(b, d, n)                       # a_{t+1} g_{t+1} from the next chunk
        chunks = list(range(0, L, ctx.chunk))
        for c in reversed(range(len(chunks))):
            s = chunks[c]
            e, h0 = min(L, s + ctx.chunk), starts[:, :, c]
            k = e - s
            a, x, Bexp = _chunk_inputs(u, delta, A, Bt, s, e, rep)
            hs = linear_scan_(a.clone(), x, h0)
            dyc = dy[:, :, s:e, None]
            dCt[:, :, s:e] = (dyc * hs).view(b, g, rep, k, n).sum(2)
            Cexp = Ct[:, :, None, s:e].expand(b, g, rep, k, n).reshape(b, d, k, n)
            a_next = torch.cat([a[:, :, 1:], torch.ones_like(a[:, :, :1])], 2).flip(2)
            adj = linear_scan_(a_next, (dyc * Cexp).flip(2), carry).flip(2)
            carry = a[:, :, 0] * adj[:, :, 0]
            h_prev = torch.cat([h0[:, :, None], hs[:, :, :-1]], 2)
            gh = adj * a * h_prev
            gB = (adj * Bexp).sum(-1)
            dt, ut = delta[:, :, s:e], u[:, :, s:e]
            ddelta[:, :, s:e] = (gh * A[None, :, None, :]).sum(-1) + gB * ut
            dA += (gh * dt[..., None]).sum((0, 2))
            dBt[:, :, s:e] = (adj * (dt * ut)[..., None]).view(b, g, rep, k, n).sum(2)
            du[:, :, s:e] = gB * dt
        return du, ddelta, dA, dBt.transpose(-1, -2), dCt.transpose(-1, -2), None


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, chunk: int = CHUNK):
    dtype_in = u.dtype
    work = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta = u.to(work), delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(work)
    if delta_softplus:
        delta = F.softplus(delta)
    B = (B if B.dim() == 4 else B.unsqueeze(1)).to(work)
    C = (C if C.dim() == 4 else C.unsqueeze(1)).to(work)
    y, last = _ChunkedScan.apply(u.contiguous(), delta.contiguous(), A.to(work), B.contiguous(), C.contiguous(), chunk)
    if D is not None:
        y = y + u * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y
