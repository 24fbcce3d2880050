"""Selective scan as Triton kernels, with the semantics of mamba-ssm's `selective_scan_fn`.

Layout and parallelism. One program per (batch, group, block of BLOCK_D channels of that group),
each holding the states of its channels as a (BLOCK_D, BLOCK_N) tile (BLOCK_N: d_state rounded up
to a power of two, the extra lanes masked). A program walks the sequence in chunks of CHUNK steps,
one after another; inside a chunk the recurrence h_t = a_t h_{t-1} + x_t, with a_t = exp(dt_t A)
and x_t = dt_t u_t B_t, is solved as a parallel scan over the chunk's steps
(`tl.associative_scan` on a (BLOCK_D, BLOCK_N, CHUNK) tile, first-order linear recurrences
composing as (a1, x1) . (a2, x2) = (a1 a2, a2 x1 + x2)), the state from the previous chunk entering
at its first step. Every chunk loads whole (channel, step) and (state, step) rows, contiguous along
the sequence. Steps past the end get dt = 0, so a = 1 and x = 0 there and the state only carries
through.

Forward. Writes out (in u's dtype, gated and with the D skip as mamba-ssm does) and, for the
backward pass, only each chunk's starting state: (batch, d_inner, ceil(L / CHUNK), d_state), in
the accumulation dtype (none when no input needs a gradient); the last state is returned in it too
(float32 for float32 and bf16 inputs, float64 for float64 ones), with no gradient, as in
mamba-ssm. Nothing of size batch * d_inner * L * d_state is ever stored, so memory is linear in L:
the autograd context holds the inputs and the chunk states (d_state / CHUNK times u's size).

Backward. Chunks are walked last to first. For each, the states are recomputed from its saved
starting state with the same scan, and the adjoint

    g_t = dy_t C_t + a_{t+1} g_{t+1}

is solved with a reverse scan over the chunk, as q_t = a_t g_t = a_t (dy_t C_t + q_{t+1}), whose
terms need no decay from another step; q at the next chunk's first step enters at the last one.
Both scans also carry, beside each partial map, the map up to its last step's input
(`_combine_linear_pre`), which yields exactly the values one step away without shifting anything
in registers: h_{t-1} beside h_t, and g_t = dy_t C_t + q_{t+1} beside q_t. (mamba-ssm's kernel
takes a_t h_{t-1} as h_t - dt_t u_t B_t, which loses it to rounding when decays are near 0.) From
g and h: dC_t = sum_d dy_t h_t, dB_t = sum_d g_t dt_t u_t, du_t = dt_t sum_n g_t B_t + D dy_t,
ddelta_t = sum_n g_t A a_t h_{t-1} + u_t sum_n g_t B_t (times softplus' derivative),
dA = sum_t g_t dt_t a_t h_{t-1}; with the z gate, dy = dout silu(z), and dz from the output
recomputed from h.

Reductions, all deterministic (no atomics). dB and dC sum over the channels of a group, which
several programs share: each program writes its block's partial sums (a (blocks per group,
batch, groups, d_state, L) buffer in the accumulation dtype, d_state / BLOCK_D times the size of u
in float32), and one `sum` over the blocks follows. dA, dD and ddelta_bias are per-batch partials
summed afterwards. The same inputs give bit-identical gradients on every run.

Precision: every input is read in its own dtype and converted to the accumulation dtype (float32,
or float64 for float64 inputs) in registers; the state, the adjoint and every sum stay in it;
outputs and gradients are written in their tensors' dtypes (bf16 in, bf16 out, as mamba-ssm).

Two modes, chosen per call: compiled for CUDA tensors; Triton's interpreter (TRITON_INTERPRET=1)
runs the same kernel bodies on CPU tensors, which is how the tests exercise them without a GPU.
CHUNK, TILE and the warp counts are first choices, not yet timed on a GPU: compiled for sm_90
(Hopper) with bf16 inputs and d_state 16, the forward kernel takes 190 registers a thread and
spills none, the backward 255 with 40 bytes of spill; `selective_scan_triton` takes `chunk` and
`block_d` to try others.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

CHUNK = 16              # steps between saved states, and the scan's length inside a program
TILE = (4096, 2048)     # channel x state x step elements of a program's tile: forward, backward
NUM_WARPS = (4, 8)      # forward, backward
SOFTPLUS_LINEAR = 20.0   # softplus(v) = v above this, as in mamba-ssm and F.softplus


def _combine_linear(a1, x1, a2, x2):
    """(a1, x1) then (a2, x2): h -> a2 (a1 h + x1) + x2."""
    return a1 * a2, a2 * x1 + x2


def _combine_linear_pre(a1, x1, p1, y1, a2, x2, p2, y2):
    """The same composition, carrying beside it the map (p, y) of the segment up to its last
    step's input: the second element's own (p2, y2) after the first's full map. A scan of
    (a_t, x_t, 1, 0) gives h_t and, in the third and fourth places, exactly h_{t-1}."""
    return a1 * a2, a2 * x1 + x2, p2 * a1, p2 * x1 + y2


# The kernels call only Triton's builtins and these combine functions, never a function of
# Triton's standard library: those are compiled or interpreted as TRITON_INTERPRET was when
# triton was first imported, and the kernels must run in either mode whenever it was set. The
# combiners are always JITFunctions (compiled kernels inline them; the interpreter calls their
# Python bodies), and `_add` is the standard library's own sum combiner, which the interpreter
# turns into numpy's sum.
_combine = JITFunction(_combine_linear)
_combine_pre = JITFunction(_combine_linear_pre)
_add = tl.standard._sum_combine


def _scan_fwd(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
              out_ptr, ckpt_ptr, last_ptr,
              L, D_INNER, PER, N, G, N_BLK, N_CHUNKS,
              HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
              SOFTPLUS: tl.constexpr, SP_LINEAR: tl.constexpr, SAVE: tl.constexpr,
              ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
              CHUNK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    g = pid // N_BLK
    j = (pid % N_BLK) * BLOCK_D + tl.arange(0, BLOCK_D)          # channel within its group
    d_mask = j < PER
    d = (g * PER + j).to(tl.int64)
    n = tl.arange(0, BLOCK_N)
    n_mask = n < N
    s = tl.arange(0, CHUNK)
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(ACC)
    row = (b * D_INNER + d) * L                  # (BLOCK_D,) offsets of (b, d, 0)
    bc_row = ((b * G + g) * N + n) * L           # (BLOCK_N,) offsets of (b, g, n, 0)
    ck_row = (b * D_INNER + d[:, None]) * N_CHUNKS * N + n[None, :]
    first = (s == 0)[None, None, :]
    last_step = (s == CHUNK - 1)[None, None, :]
    h = tl.full([BLOCK_D, BLOCK_N], 0.0, ACC)
    for c in range(N_CHUNKS):
        t = c * CHUNK + s
        t_mask = t < L
        m2 = d_mask[:, None] & t_mask[None, :]
        mbc = n_mask[:, None] & t_mask[None, :]
        if SAVE:
            tl.store(ckpt_ptr + ck_row + c * N, h, mask=dn_mask)
        uv = tl.load(u_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
        v = tl.load(delta_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
        if HAS_BIAS:
            v = v + bias[:, None]
        if SOFTPLUS:    # max(v, 0) + log1p(exp(-|v|)), log1p in Kahan's form: no overflow, no 0/0
            e = tl.exp(-tl.abs(v))
            e1 = 1.0 + e
            lp = tl.where(e1 == 1.0, e, tl.log(e1) * (e / tl.where(e1 == 1.0, 1.0, e1 - 1.0)))
            v = tl.where(v > SP_LINEAR, v, tl.maximum(v, 0.0) + lp)
        dt = tl.where(m2, v, 0.0)
        Bv = tl.load(B_ptr + bc_row[:, None] + t[None, :], mask=mbc, other=0.0).to(ACC)
        Cv = tl.load(C_ptr + bc_row[:, None] + t[None, :], mask=mbc, other=0.0).to(ACC)
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        x = (dt * uv)[:, None, :] * Bv[None, :, :]
        x = tl.where(first, x + a * h[:, :, None], x)
        _, hs = tl.associative_scan((a, x), axis=2, combine_fn=_combine)
        y = tl.reduce(hs * Cv[None, :, :], 1, _add)
        if HAS_D:
            y = y + uv * Dv[:, None]
        if HAS_Z:
            zv = tl.load(z_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
            ez = tl.exp(-tl.abs(zv))
            y = y * zv * (tl.where(zv >= 0, 1.0, ez) / (1.0 + ez))      # silu(z)
        tl.store(out_ptr + row[:, None] + t[None, :], y.to(out_ptr.dtype.element_ty), mask=m2)
        h = tl.reduce(tl.where(last_step, hs, 0.0), 2, _add)
    tl.store(last_ptr + (b * D_INNER + d[:, None]) * N + n[None, :], h, mask=dn_mask)


def _scan_bwd(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr,
              du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
              L, D_INNER, PER, N, G, N_BLK, N_CHUNKS, BATCH,
              HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
              SOFTPLUS: tl.constexpr, SP_LINEAR: tl.constexpr, SAVE: tl.constexpr,
              ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
              CHUNK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    g = pid // N_BLK
    blk = pid % N_BLK
    j = blk * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = j < PER
    d = (g * PER + j).to(tl.int64)
    n = tl.arange(0, BLOCK_N)
    n_mask = n < N
    s = tl.arange(0, CHUNK)
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(ACC)
    row = (b * D_INNER + d) * L
    bc_row = ((b * G + g) * N + n) * L
    part_row = (((blk * BATCH + b) * G + g) * N + n) * L     # this block's dB / dC partial sums
    ck_row = (b * D_INNER + d[:, None]) * N_CHUNKS * N + n[None, :]
    first = (s == 0)[None, None, :]
    last_step = (s == CHUNK - 1)[None, None, :]
    ones = tl.full([BLOCK_D, BLOCK_N, CHUNK], 1.0, ACC)
    q_next = tl.full([BLOCK_D, BLOCK_N], 0.0, ACC)     # a g at the first step of the chunk after
    dA_acc = tl.full([BLOCK_D, BLOCK_N], 0.0, ACC)
    dD_acc = tl.full([BLOCK_D], 0.0, ACC)
    dbias_acc = tl.full([BLOCK_D], 0.0, ACC)
    for i in range(N_CHUNKS):
        c = N_CHUNKS - 1 - i
        t = c * CHUNK + s
        t_mask = t < L
        m2 = d_mask[:, None] & t_mask[None, :]
        mbc = n_mask[:, None] & t_mask[None, :]
        uv = tl.load(u_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
        v = tl.load(delta_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
        if HAS_BIAS:
            v = v + bias[:, None]
        if SOFTPLUS:    # as in the forward kernel; its derivative is sigmoid(v), 1 where linear
            e = tl.exp(-tl.abs(v))
            e1 = 1.0 + e
            dsp = tl.where(v > SP_LINEAR, 1.0, tl.where(v >= 0, 1.0, e) / e1)
            lp = tl.where(e1 == 1.0, e, tl.log(e1) * (e / tl.where(e1 == 1.0, 1.0, e1 - 1.0)))
            v = tl.where(v > SP_LINEAR, v, tl.maximum(v, 0.0) + lp)
        dt = tl.where(m2, v, 0.0)
        Bv = tl.load(B_ptr + bc_row[:, None] + t[None, :], mask=mbc, other=0.0).to(ACC)
        Cv = tl.load(C_ptr + bc_row[:, None] + t[None, :], mask=mbc, other=0.0).to(ACC)
        h0 = tl.load(ckpt_ptr + ck_row + c * N, mask=dn_mask, other=0.0)[:, :, None]
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        dtu = dt * uv
        x = dtu[:, None, :] * Bv[None, :, :]
        # states h_t and, exactly, h_{t-1} (h_{-1} = the chunk's saved state)
        _, hs, _, h_prev = tl.associative_scan(
            (a, tl.where(first, x + a * h0, x), ones, tl.where(first, h0, 0.0)), axis=2,
            combine_fn=_combine_pre)
        go = tl.load(dout_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
        if HAS_Z:
            y = tl.reduce(hs * Cv[None, :, :], 1, _add)
            if HAS_D:
                y = y + uv * Dv[:, None]
            zv = tl.load(z_ptr + row[:, None] + t[None, :], mask=m2, other=0.0).to(ACC)
            ez = tl.exp(-tl.abs(zv))
            sz = tl.where(zv >= 0, 1.0, ez) / (1.0 + ez)
            dz = go * y * sz * (1.0 + zv * (1.0 - sz))
            tl.store(dz_ptr + row[:, None] + t[None, :], dz.to(dz_ptr.dtype.element_ty), mask=m2)
            dy = go * zv * sz
        else:
            dy = go
        # q_t = a_t g_t backwards in time, and the adjoint g_t = dy_t C_t + q_{t+1} beside it;
        # q at the first step of the chunk after enters at the last step
        gx = dy[:, None, :] * Cv[None, :, :]
        gx = tl.where(last_step, gx + q_next[:, :, None], gx)
        _, qs, _, gs = tl.associative_scan((a, a * gx, ones, gx), axis=2, combine_fn=_combine_pre,
                                           reverse=True)
        q_next = tl.reduce(tl.where(first, qs, 0.0), 2, _add)
        dC = tl.reduce(dy[:, None, :] * hs, 0, _add)
        dB = tl.reduce(gs * dtu[:, None, :], 0, _add)
        tl.store(dC_ptr + part_row[:, None] + t[None, :], dC, mask=mbc)
        tl.store(dB_ptr + part_row[:, None] + t[None, :], dB, mask=mbc)
        gB = tl.reduce(gs * Bv[None, :, :], 1, _add)
        gah = gs * a * h_prev
        ddt = tl.reduce(gah * A[:, :, None], 1, _add) + gB * uv
        dA_acc += tl.reduce(gah * dt[:, None, :], 2, _add)
        if SOFTPLUS:
            ddt = ddt * dsp
        ddt = tl.where(m2, ddt, 0.0)
        du = gB * dt
        if HAS_D:
            du = du + dy * Dv[:, None]
            dD_acc += tl.reduce(dy * uv, 1, _add)
        dbias_acc += tl.reduce(ddt, 1, _add)
        tl.store(du_ptr + row[:, None] + t[None, :], du.to(du_ptr.dtype.element_ty), mask=m2)
        tl.store(ddelta_ptr + row[:, None] + t[None, :], ddt.to(ddelta_ptr.dtype.element_ty),
                 mask=m2)
    bd = b * D_INNER + d
    tl.store(dA_ptr + bd[:, None] * N + n[None, :], dA_acc, mask=dn_mask)
    if HAS_D:
        tl.store(dD_ptr + bd, dD_acc, mask=d_mask)
    if HAS_BIAS:
        tl.store(dbias_ptr + bd, dbias_acc, mask=d_mask)


def interpreting() -> bool:
    """Whether Triton's interpreter is asked for (read at each call, so the order in which
    triton and this module were imported does not matter)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def _kernels(interpret: bool) -> tuple:
    """(forward, backward) kernels, compiled or interpreted, each built once."""
    wrap = InterpretedFunction if interpret else JITFunction
    return wrap(_scan_fwd), wrap(_scan_bwd)


def _check_device(u: torch.Tensor) -> bool:
    """Interpret or compile; a CPU tensor runs only under the interpreter."""
    interpret = interpreting()
    if not u.is_cuda and not interpret:
        raise RuntimeError(
            f"the Triton scan runs on CUDA tensors, or on CPU tensors under Triton's interpreter "
            f"(set TRITON_INTERPRET=1); got a tensor on {u.device}")
    return interpret


def _on_device(u: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch on u's GPU (Triton launches on the current device)."""
    return torch.cuda.device(u.device) if u.is_cuda else contextlib.nullcontext()


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if A.is_complex():
        raise NotImplementedError("complex A is not supported (Mamba's S4D-real init is real)")
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, d_inner, L); got {tuple(u.shape)} "
                         f"and {tuple(delta.shape)}")
    b, d, L = u.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be (d_inner={d}, d_state); got {tuple(A.shape)}")
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        flat = m.dim() == 3 and tuple(m.shape) == (b, n, L)
        grouped = m.dim() == 4 and m.shape[0] == b and tuple(m.shape[2:]) == (n, L) \
            and d % m.shape[1] == 0
        if not (flat or grouped):
            raise ValueError(f"{name} must be (batch, d_state, L) or (batch, groups, d_state, L) "
                             f"with groups dividing d_inner={d}; got {tuple(m.shape)}")
    for name, m in (("D", D), ("delta_bias", delta_bias)):
        if m is not None and tuple(m.shape) != (d,):
            raise ValueError(f"{name} must be (d_inner={d},); got {tuple(m.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must be shaped like u {tuple(u.shape)}; got {tuple(z.shape)}")
    groups = [m.shape[1] if m.dim() == 4 else 1 for m in (B, C)]
    if groups[0] != groups[1]:
        raise ValueError(f"B and C must have the same number of groups; got {groups[0]} "
                         f"and {groups[1]}")


def _tiles(d_inner: int, groups: int, d_state: int, chunk: int, block_d: int | None,
           tile: int) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_N, blocks per group)."""
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two, got {chunk}")
    per = d_inner // groups
    block_n = triton.next_power_of_2(d_state)
    if block_d is None:
        block_d = max(1, min(triton.next_power_of_2(per), tile // (block_n * chunk)))
    elif block_d < 1 or block_d & (block_d - 1):
        raise ValueError(f"block_d must be a power of two, got {block_d}")
    return block_d, block_n, triton.cdiv(per, block_d)


def _launch(which: int) -> dict:
    """Compile options of the forward (0) or backward (1) kernel; FMA contraction asked for
    explicitly (Triton warns when left to its changing default)."""
    return {"num_warps": NUM_WARPS[which], "enable_fp_fusion": True}


def _contiguous(t: torch.Tensor | None) -> torch.Tensor | None:
    return t.contiguous() if t is not None else None


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk, block_d, save):
        interpret = _check_device(u)
        fwd, _ = _kernels(interpret)
        grouped = (B.dim() == 4, C.dim() == 4)
        Bg = (B if grouped[0] else B.unsqueeze(1)).contiguous()
        Cg = (C if grouped[1] else C.unsqueeze(1)).contiguous()
        u, delta, A, D, z, delta_bias = map(_contiguous, (u, delta, A, D, z, delta_bias))
        n_b, n_d, L = u.shape
        groups, N = Bg.shape[1], A.shape[1]
        block_d_bwd = _tiles(n_d, groups, N, chunk, block_d, TILE[1])[0]
        block_d, block_n, n_blk = _tiles(n_d, groups, N, chunk, block_d, TILE[0])
        n_chunks = triton.cdiv(L, chunk)
        acc = torch.float64 if u.dtype == torch.float64 else torch.float32
        out = torch.empty_like(u)
        ckpt = torch.empty((n_b, n_d, n_chunks if save else 0, N), device=u.device, dtype=acc)
        last = torch.empty((n_b, n_d, N), device=u.device, dtype=acc)
        flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                     SOFTPLUS=bool(delta_softplus), SP_LINEAR=SOFTPLUS_LINEAR,
                     ACC=tl.float64 if acc == torch.float64 else tl.float32,
                     BLOCK_D=block_d, BLOCK_N=block_n, CHUNK=chunk)
        absent = u                                      # never read: its flag is off
        with _on_device(u):
            fwd[(n_b, groups * n_blk)](
                u, delta, A, Bg, Cg, *(t if t is not None else absent for t in (D, z, delta_bias)),
                out, ckpt, last, L, n_d, n_d // groups, N, groups, n_blk, n_chunks,
                SAVE=save, **flags, **_launch(0))
        ctx.save_for_backward(u, delta, A, Bg, Cg, D, z, delta_bias, ckpt)
        ctx.flags = {**flags, "BLOCK_D": block_d_bwd}
        ctx.interpret, ctx.grouped = interpret, grouped
        ctx.mark_non_differentiable(last)
        return out, last

    @staticmethod
    def backward(ctx, dout, _dlast):
        u, delta, A, Bg, Cg, D, z, delta_bias, ckpt = ctx.saved_tensors
        _, bwd = _kernels(ctx.interpret)
        flags = ctx.flags
        n_b, n_d, L = u.shape
        groups, N = Bg.shape[1], A.shape[1]
        n_blk = triton.cdiv(n_d // groups, flags["BLOCK_D"])
        acc = ckpt.dtype

        def empty(*shape: int) -> torch.Tensor:
            return torch.empty(shape, device=u.device, dtype=acc)

        dout = dout.contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dB, dC = empty(n_blk, n_b, groups, N, L), empty(n_blk, n_b, groups, N, L)
        dA = empty(n_b, n_d, N)
        dD = empty(n_b, n_d) if D is not None else None
        dbias = empty(n_b, n_d) if delta_bias is not None else None
        absent = u
        with _on_device(u):
            bwd[(n_b, groups * n_blk)](
                u, delta, A, Bg, Cg, *(t if t is not None else absent for t in (D, z, delta_bias)),
                ckpt, dout, du, ddelta, dz if dz is not None else absent, dA, dB, dC,
                *(t if t is not None else absent for t in (dD, dbias)),
                L, n_d, n_d // groups, N, groups, n_blk, ckpt.shape[2], n_b,
                SAVE=True, **flags, **_launch(1))
        dB, dC = dB.sum(0), dC.sum(0)                  # over channel blocks, in a fixed order
        dB, dC = (grad if grouped else grad.squeeze(1)
                  for grad, grouped in zip((dB, dC), ctx.grouped, strict=True))
        return (du, ddelta, dA.sum(0).to(A.dtype), dB.to(Bg.dtype), dC.to(Cg.dtype),
                dD.sum(0).to(D.dtype) if D is not None else None, dz,
                dbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
                None, None, None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False, *, chunk: int = CHUNK,
                          block_d: int | None = None):
    """The Triton kernels; `chunk` (steps between saved states) and `block_d` (channels per
    program, in both passes) are powers of two, `block_d` chosen from TILE when None."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    out, last = _TritonScan.apply(*inputs, delta_softplus, chunk, block_d, save)
    return (out, last) if return_last_state else out
