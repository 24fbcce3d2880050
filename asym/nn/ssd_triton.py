"""SSD (Mamba2's scan) as Triton kernels: our own, for CUDA tensors where mamba-ssm's do not import.

Layout and parallelism as asym.nn.scan_triton, with what SSD changes: one program per (batch,
head, block of BLOCK_P of the head's channels), holding their states as a (BLOCK_P, BLOCK_N) tile
(BLOCK_N: d_state rounded up to a power of two, the extra lanes masked). The program walks the
sequence in chunks of CHUNK steps; inside a chunk the recurrence S_t = a_t S_{t-1} + dt_t x_t B_t^T
is solved as a parallel scan over the chunk's steps (`tl.associative_scan` on a
(BLOCK_P, BLOCK_N, CHUNK) tile), the decay a_t = exp(dt_t A) being one number per step and head.
Inputs are read in their (batch, L, heads, headdim) and (batch, L, groups, d_state) layouts.

Forward: y_t = S_t C_t (without the D skip and z gate, which asym.nn.ssd_torch's helpers apply
around the kernel with dt's bias and softplus, differentiated by autograd), each chunk's starting
state saved, and the final state. Backward: chunks last to first, the states recomputed from the
saved one (with S_{t-1} beside S_t, `_combine_pre`), the adjoint G_t = dy_t C_t^T + a_{t+1} G_{t+1}
solved by a reverse scan starting from the final state's gradient, and from them dx, dt, A, B,
C and the initial state's gradient. Partial sums (dB, dC over the heads of a group and the
channel blocks of a head; dt over channel blocks; dA) are written per program and summed
afterwards in a fixed order: deterministic, no atomics.

Precision: inputs are read in their dtype and converted to float32 (float64 for float64 inputs)
in registers; the state, the adjoint and every sum stay in it. Two modes, chosen per call as
asym.nn.scan_triton: compiled for CUDA tensors, Triton's interpreter (TRITON_INTERPRET=1) on CPU
tensors, which is how the tests run it. CHUNK and TILE are first choices, not yet timed on a GPU.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from asym.nn.scan_triton import _add, _check_device, _combine, _combine_pre, _launch, _on_device
from asym.nn.ssd_torch import skip_and_gate, step_sizes, work_dtype

CHUNK = 16          # steps between saved states, and the scan's length inside a program
TILE = 4096         # channel x state x step elements of a program's tile


def _ssd_fwd(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, init_ptr, y_ptr, ckpt_ptr, last_ptr,
             L, H, P, N, G, N_PB, N_CHUNKS,
             HAS_INIT: tl.constexpr, SAVE: tl.constexpr, ACC: tl.constexpr,
             BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    h = pid // N_PB
    g = h // (H // G)
    p = (pid % N_PB) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = p < P
    n = tl.arange(0, BLOCK_N)
    n_mask = n < N
    s = tl.arange(0, CHUNK)
    pn_mask = p_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + h).to(ACC)
    state_off = ((b * H + h) * P + p[:, None]) * N + n[None, :]              # (b, h, p, n)
    ck_off = (((b * H + h) * N_CHUNKS) * P + p[:, None]) * N + n[None, :]     # (b, h, c, p, n)
    first = (s == 0)[None, None, :]
    last_step = (s == CHUNK - 1)[None, None, :]
    zeros = tl.full([BLOCK_P, BLOCK_N, CHUNK], 0.0, ACC)
    if HAS_INIT:
        S = tl.load(init_ptr + state_off, mask=pn_mask, other=0.0).to(ACC)
    else:
        S = tl.full([BLOCK_P, BLOCK_N], 0.0, ACC)
    for c in range(N_CHUNKS):
        t = c * CHUNK + s
        t_mask = t < L
        if SAVE:
            tl.store(ckpt_ptr + ck_off + c * P * N, S, mask=pn_mask)
        x_off = ((b * L + t[None, :]) * H + h) * P + p[:, None]               # (BLOCK_P, CHUNK)
        bc_off = ((b * L + t[None, :]) * G + g) * N + n[:, None]              # (BLOCK_N, CHUNK)
        m_x = p_mask[:, None] & t_mask[None, :]
        m_bc = n_mask[:, None] & t_mask[None, :]
        xv = tl.load(x_ptr + x_off, mask=m_x, other=0.0).to(ACC)
        dt = tl.load(dt_ptr + (b * L + t) * H + h, mask=t_mask, other=0.0).to(ACC)
        Bv = tl.load(B_ptr + bc_off, mask=m_bc, other=0.0).to(ACC)
        Cv = tl.load(C_ptr + bc_off, mask=m_bc, other=0.0).to(ACC)
        a = zeros + tl.exp(dt * A)[None, None, :]
        u = (xv * dt[None, :])[:, None, :] * Bv[None, :, :]
        u = tl.where(first, u + a * S[:, :, None], u)
        _, hs = tl.associative_scan((a, u), axis=2, combine_fn=_combine)
        y = tl.reduce(hs * Cv[None, :, :], 1, _add)
        tl.store(y_ptr + x_off, y.to(y_ptr.dtype.element_ty), mask=m_x)
        S = tl.reduce(tl.where(last_step, hs, 0.0), 2, _add)
    tl.store(last_ptr + state_off, S, mask=pn_mask)


def _ssd_bwd(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, ckpt_ptr, dy_ptr, dlast_ptr,
             dx_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dinit_ptr,
             L, H, P, N, G, N_PB, N_CHUNKS,
             ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    h = pid // N_PB
    pb = pid % N_PB
    g = h // (H // G)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = p < P
    n = tl.arange(0, BLOCK_N)
    n_mask = n < N
    s = tl.arange(0, CHUNK)
    pn_mask = p_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + h).to(ACC)
    state_off = ((b * H + h) * P + p[:, None]) * N + n[None, :]
    ck_off = (((b * H + h) * N_CHUNKS) * P + p[:, None]) * N + n[None, :]
    first = (s == 0)[None, None, :]
    last_step = (s == CHUNK - 1)[None, None, :]
    zeros = tl.full([BLOCK_P, BLOCK_N, CHUNK], 0.0, ACC)
    ones = zeros + 1.0
    q_next = tl.load(dlast_ptr + state_off, mask=pn_mask, other=0.0).to(ACC)   # adjoint entering the last step
    dA_acc = tl.full([BLOCK_P, BLOCK_N], 0.0, ACC)
    for i in range(N_CHUNKS):
        c = N_CHUNKS - 1 - i
        t = c * CHUNK + s
        t_mask = t < L
        x_off = ((b * L + t[None, :]) * H + h) * P + p[:, None]
        bc_off = ((b * L + t[None, :]) * G + g) * N + n[:, None]
        m_x = p_mask[:, None] & t_mask[None, :]
        m_bc = n_mask[:, None] & t_mask[None, :]
        xv = tl.load(x_ptr + x_off, mask=m_x, other=0.0).to(ACC)
        dt = tl.load(dt_ptr + (b * L + t) * H + h, mask=t_mask, other=0.0).to(ACC)
        Bv = tl.load(B_ptr + bc_off, mask=m_bc, other=0.0).to(ACC)
        Cv = tl.load(C_ptr + bc_off, mask=m_bc, other=0.0).to(ACC)
        dy = tl.load(dy_ptr + x_off, mask=m_x, other=0.0).to(ACC)
        h0 = tl.load(ckpt_ptr + ck_off + c * P * N, mask=pn_mask, other=0.0)[:, :, None]
        a = zeros + tl.exp(dt * A)[None, None, :]
        dtx = xv * dt[None, :]
        u = dtx[:, None, :] * Bv[None, :, :]
        _, hs, _, h_prev = tl.associative_scan(
            (a, tl.where(first, u + a * h0, u), ones, tl.where(first, h0, 0.0)), axis=2, combine_fn=_combine_pre)
        gx = dy[:, None, :] * Cv[None, :, :]
        gx = tl.where(last_step, gx + q_next[:, :, None], gx)
        _, qs, _, gs = tl.associative_scan((a, a * gx, ones, gx), axis=2, combine_fn=_combine_pre, reverse=True)
        q_next = tl.reduce(tl.where(first, qs, 0.0), 2, _add)
        row = ((b * L + t) * H + h) * N_PB + pb                                 # (b, L, h, pb) rows
        part = row[None, :]
        tl.store(dC_ptr + part * N + n[:, None], tl.reduce(dy[:, None, :] * hs, 0, _add), mask=m_bc)
        tl.store(dB_ptr + part * N + n[:, None], tl.reduce(gs * dtx[:, None, :], 0, _add), mask=m_bc)
        gB = tl.reduce(gs * Bv[None, :, :], 1, _add)                           # (BLOCK_P, CHUNK)
        gah = tl.reduce(tl.reduce(gs * a * h_prev, 1, _add), 0, _add)          # (CHUNK,)
        ddt = tl.reduce(gB * xv, 0, _add) + A * gah
        tl.store(ddt_ptr + row, ddt, mask=t_mask)
        dA_acc += tl.reduce(gs * a * h_prev * dt[None, None, :], 2, _add)
        tl.store(dx_ptr + x_off, (gB * dt[None, :]).to(dx_ptr.dtype.element_ty), mask=m_x)
    tl.store(dinit_ptr + state_off, q_next, mask=pn_mask)
    tl.store(dA_ptr + (b * H + h) * N_PB + pb, tl.reduce(tl.reduce(dA_acc, 1, _add), 0, _add))


@functools.cache
def _kernels(interpret: bool) -> tuple:
    """(forward, backward) kernels, compiled or interpreted, each built once."""
    wrap = InterpretedFunction if interpret else JITFunction
    return wrap(_ssd_fwd), wrap(_ssd_bwd)


def _tiles(P: int, N: int, chunk: int) -> tuple[int, int, int]:
    """(BLOCK_P, BLOCK_N, channel blocks per head)."""
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError(f"ssd_triton: chunk must be a power of two, got {chunk}")
    block_n = triton.next_power_of_2(N)
    block_p = max(1, min(triton.next_power_of_2(P), TILE // (block_n * chunk)))
    return block_p, block_n, triton.cdiv(P, block_p)


class _TritonCore(torch.autograd.Function):
    """x (b, L, h, p), final step sizes dt (b, L, h), A, B, C, initial state -> y (b, L, h, p)
    in the work dtype, final state (b, h, p, n)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, init, chunk):
        interpret = _check_device(x)
        fwd, _ = _kernels(interpret)
        x, dt, A, B, C = (t.contiguous() for t in (x, dt, A, B, C))
        b, L, H, P = x.shape
        G, N = B.shape[2], B.shape[3]
        acc = work_dtype(x)
        block_p, block_n, n_pb = _tiles(P, N, chunk)
        n_chunks = triton.cdiv(L, chunk)
        y = torch.empty(x.shape, device=x.device, dtype=acc)
        ckpt = torch.empty((b, H, n_chunks, P, N), device=x.device, dtype=acc)
        last = torch.empty((b, H, P, N), device=x.device, dtype=acc)
        meta = dict(ACC=tl.float64 if acc == torch.float64 else tl.float32, BLOCK_P=block_p, BLOCK_N=block_n,
                    CHUNK=chunk)
        with _on_device(x):
            fwd[(b, H * n_pb)](x, dt, A, B, C, init.contiguous() if init is not None else last, y, ckpt, last,
                               L, H, P, N, G, n_pb, n_chunks, HAS_INIT=init is not None, SAVE=True, **meta,
                               **_launch(0))
        ctx.save_for_backward(x, dt, A, B, C, ckpt)
        ctx.meta, ctx.interpret, ctx.has_init = meta, interpret, init is not None
        ctx.init_dtype = None if init is None else init.dtype
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        x, dt, A, B, C, ckpt = ctx.saved_tensors
        _, bwd = _kernels(ctx.interpret)
        b, L, H, P = x.shape
        G, N = B.shape[2], B.shape[3]
        acc = ckpt.dtype
        n_pb = triton.cdiv(P, ctx.meta["BLOCK_P"])
        dy = torch.zeros(x.shape, device=x.device, dtype=acc) if dy is None else dy.contiguous()
        dlast = torch.zeros(ckpt.shape[:2] + ckpt.shape[3:], device=x.device, dtype=acc) if dlast is None \
            else dlast.contiguous()
        dx = torch.empty_like(x)
        ddt = torch.empty((b, L, H, n_pb), device=x.device, dtype=acc)
        dA = torch.empty((b, H, n_pb), device=x.device, dtype=acc)
        dB = torch.empty((b, L, H, n_pb, N), device=x.device, dtype=acc)
        dC = torch.empty((b, L, H, n_pb, N), device=x.device, dtype=acc)
        dinit = torch.empty((b, H, P, N), device=x.device, dtype=acc)
        with _on_device(x):
            bwd[(b, H * n_pb)](x, dt, A, B, C, ckpt, dy, dlast, dx, ddt, dA, dB, dC, dinit,
                               L, H, P, N, G, n_pb, ckpt.shape[2], **ctx.meta, **_launch(1))
        dB = dB.view(b, L, G, H // G * n_pb, N).sum(3)
        dC = dC.view(b, L, G, H // G * n_pb, N).sum(3)
        return (dx, ddt.sum(-1).to(dt.dtype), dA.sum((0, 2)).to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                dinit.to(ctx.init_dtype) if ctx.has_init else None, None)


def ssd_triton(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None,
               return_final_state=False, chunk_size: int = CHUNK):
    """mamba_chunk_scan_combined's semantics in our Triton kernels (shapes: asym.nn.ssd). The
    kernels' chunk (steps between saved states) is the largest power of two up to chunk_size and
    CHUNK; it does not change the result."""
    chunk = 1 << (min(chunk_size, CHUNK).bit_length() - 1)
    work = work_dtype(x)
    steps = step_sizes(dt, dt_bias, dt_softplus, work)
    y, last = _TritonCore.apply(x, steps, A, B, C, initial_state, chunk)
    out = skip_and_gate(y, x, D, z).to(x.dtype)
    return (out, last) if return_final_state else out
