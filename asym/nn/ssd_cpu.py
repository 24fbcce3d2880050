"""SSD (Mamba2's scan) for the CPU: a fused recurrence compiled at run time by Numba.

One task per (batch, head), spread over Numba's threads. With a scalar decay per head the
recurrence is cheap to run step by step: each step is one exp and, over the (headdim, d_state)
state, one multiply-add for the update and one for the output,

    S_t = exp(dt_t A) S_{t-1} + (dt_t x_t) B_t^T,     y_t = S_t C_t,

whereas the chunked (quadratic) form does chunk_size / 2 times more arithmetic inside each
chunk. The state lives in a per-thread buffer and is kept only every `CKPT` steps; the backward
pass walks those stretches last to first, recomputes a stretch's states from its checkpoint
(a (CKPT + 1, headdim, d_state) buffer that stays in cache) and runs the adjoint recurrence

    G_t = dy_t C_t^T + exp(dt_{t+1} A) G_{t+1}      (G_L = the final state's gradient)

in one pass over the state per step, from which dx_t = dt_t G_t B_t, dB_t = dt_t G_t^T x_t,
dC_t = S_t^T dy_t, ddt_t = x_t . G_t B_t + A exp(dt_t A) <G_t, S_{t-1}>, dA and the initial
state's gradient G_0 follow. B and C are shared by the heads of a group; each head writes its own
dB, dC (batch, L, heads, d_state) and the heads of a group are summed afterwards, so no two
threads write one cell and the result is deterministic. Inputs are read in their dtype (float32,
or float64; bf16 is widened to float32); the state, the adjoint and every sum are float64.

dt's bias and softplus, the D skip and the z gate are elementwise and stay in PyTorch around
the kernel (asym.nn.ssd_torch's helpers, differentiated by autograd).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch

from asym.nn.ssd_torch import skip_and_gate, step_sizes, work_dtype

CKPT = 16                     # steps between saved states
FAST = {"reassoc", "contract", "nsz", "arcp"}


@nb.njit(parallel=True, cache=True, error_model="numpy", fastmath=FAST)
def ssd_fwd(x, dt, A, B, C, init, has_init, every, y, ckpt, last):
    """x (b, L, h, p), dt (b, L, h), A (h,), B, C (b, L, g, n), init (b, h, p, n) ->
    y (b, L, h, p), ckpt (b, h, ceil(L / every), p, n), last (b, h, p, n)."""
    n_b, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    per = H // G
    for task in nb.prange(n_b * H):
        b = task // H
        h = task % H
        g = h // per
        a_h = np.float64(A[h])
        S = np.zeros((P, N))
        if has_init:
            for i in range(P):
                for k in range(N):
                    S[i, k] = init[b, h, i, k]
        for t in range(L):
            if t % every == 0:
                ckpt[b, h, t // every] = S
            d = np.float64(dt[b, t, h])
            a = np.exp(d * a_h)
            Bt, Ct, xt = B[b, t, g], C[b, t, g], x[b, t, h]
            for i in range(P):
                u = d * xt[i]
                acc = 0.0
                for k in range(N):
                    v = a * S[i, k] + u * Bt[k]
                    S[i, k] = v
                    acc += v * Ct[k]
                y[b, t, h, i] = acc
        last[b, h] = S


@nb.njit(parallel=True, cache=True, error_model="numpy", fastmath=FAST)
def ssd_bwd(x, dt, A, B, C, ckpt, every, dy, dlast, dx, ddt, dA, dB, dC, dinit):
    """Gradients; dB, dC are per head (b, L, h, n), dA per (b, h), dinit (b, h, p, n)."""
    n_b, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    per = H // G
    n_ck = ckpt.shape[2]
    for task in nb.prange(n_b * H):
        b = task // H
        h = task % H
        g = h // per
        a_h = np.float64(A[h])
        Gr = np.empty((P, N))
        for i in range(P):
            for k in range(N):
                Gr[i, k] = dlast[b, h, i, k]
        hs = np.empty((every + 1, P, N))
        decay = np.empty(every)
        dBk = np.empty(N)
        dCk = np.empty(N)
        da = 0.0
        for c in range(n_ck - 1, -1, -1):
            t0 = c * every
            m = min(L, t0 + every) - t0
            hs[0] = ckpt[b, h, c]
            for j in range(m):                       # recompute the stretch's states
                t = t0 + j
                d = np.float64(dt[b, t, h])
                a = np.exp(d * a_h)
                decay[j] = a
                Bt, xt = B[b, t, g], x[b, t, h]
                for i in range(P):
                    u = d * xt[i]
                    for k in range(N):
                        hs[j + 1, i, k] = a * hs[j, i, k] + u * Bt[k]
            for j in range(m - 1, -1, -1):           # the adjoint, backwards
                t = t0 + j
                d = np.float64(dt[b, t, h])
                a = decay[j]
                Bt, Ct, xt, dyt = B[b, t, g], C[b, t, g], x[b, t, h], dy[b, t, h]
                dBk[:] = 0.0
                dCk[:] = 0.0
                gs = 0.0
                xgb = 0.0
                for i in range(P):
                    gy = np.float64(dyt[i])
                    xi = np.float64(xt[i])
                    gb = 0.0
                    for k in range(N):
                        gv = Gr[i, k] + gy * Ct[k]
                        dCk[k] += gy * hs[j + 1, i, k]
                        dBk[k] += gv * xi
                        gb += gv * Bt[k]
                        gs += gv * hs[j, i, k]
                        Gr[i, k] = a * gv
                    dx[b, t, h, i] = d * gb
                    xgb += xi * gb
                for k in range(N):
                    dB[b, t, h, k] = d * dBk[k]
                    dC[b, t, h, k] = dCk[k]
                ddt[b, t, h] = xgb + a_h * a * gs
                da += d * a * gs
        dA[b, h] = da
        dinit[b, h] = Gr


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.ascontiguousarray(t.numpy())


class _CpuCore(torch.autograd.Function):
    """The scan alone: x (b, L, h, p), final step sizes dt (b, L, h), A, B, C, initial state ->
    y (b, L, h, p) in the work dtype, final state (b, h, p, n)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, init, every):
        work = np.float64 if x.dtype == torch.float64 else np.float32
        arrays = tuple(_np(t).astype(work, copy=False) for t in (x, dt, A, B, C))
        b, L, H, P = x.shape
        N = B.shape[-1]
        init_np = _np(init).astype(np.float64) if init is not None else np.zeros((1, 1, 1, 1))
        y = np.empty((b, L, H, P), dtype=work)
        ckpt = np.empty((b, H, -(-L // every), P, N))
        last = np.empty((b, H, P, N))
        ssd_fwd(*arrays, init_np, init is not None, every, y, ckpt, last)
        ctx.arrays, ctx.ckpt, ctx.every, ctx.has_init = arrays, ckpt, every, init is not None
        ctx.dtypes = (x.dtype, dt.dtype, A.dtype, B.dtype, C.dtype, None if init is None else init.dtype)
        state_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return torch.from_numpy(y), torch.from_numpy(last).to(state_dtype)

    @staticmethod
    def backward(ctx, dy, dlast):
        x, dt, A, B, C = ctx.arrays
        b, L, H, P = x.shape
        N = B.shape[-1]
        g = B.shape[2]
        dy_np = _np(dy).astype(x.dtype, copy=False) if dy is not None else np.zeros_like(x)
        dlast_np = _np(dlast).astype(np.float64) if dlast is not None else np.zeros((b, H, P, N))
        dx, ddt = np.empty_like(x), np.empty_like(dt)
        dA = np.empty((b, H))
        dBh, dCh = np.empty((b, L, H, N), x.dtype), np.empty((b, L, H, N), x.dtype)
        dinit = np.empty((b, H, P, N))
        ssd_bwd(x, dt, A, B, C, ctx.ckpt, ctx.every, dy_np, dlast_np, dx, ddt, dA, dBh, dCh, dinit)
        t = ctx.dtypes

        def back(arr: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)

        dB = torch.from_numpy(dBh).view(b, L, g, H // g, N).sum(3).to(t[3])
        dC = torch.from_numpy(dCh).view(b, L, g, H // g, N).sum(3).to(t[4])
        return (back(dx, t[0]), back(ddt, t[1]), back(dA.sum(0), t[2]), dB, dC,
                back(dinit, t[5]) if ctx.has_init else None, None)


def ssd_cpu(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None,
            return_final_state=False, chunk_size: int = CKPT):
    """mamba_chunk_scan_combined's semantics on the CPU (shapes: asym.nn.ssd). States are saved
    every min(chunk_size, CKPT) steps; that does not change the result."""
    every = min(chunk_size, CKPT)
    work = work_dtype(x)
    steps = step_sizes(dt, dt_bias, dt_softplus, work)
    y, last = _CpuCore.apply(x, steps, A, B, C, initial_state, every)
    out = skip_and_gate(y, x, D, z).to(x.dtype)
    return (out, last) if return_final_state else out
