"""Fused selective scan for the CPU, compiled at run time by Numba.

The state h (d_state numbers per channel) lives in registers/cache; nothing of shape
(batch, d_inner, L, d_state) is ever stored. The forward pass keeps the state only at chunk
starts (every `CHUNK` steps); the backward pass walks chunks in reverse, recomputes the states
inside one chunk from its checkpoint, and runs the adjoint recurrence

    g_t = dy_t * C_t + exp(dt_{t+1} A) * g_{t+1}

so memory is linear in L with a small constant. Internal accumulation is float64.
Layout: B and C are passed as (batch, groups, L, d_state) so the inner loop over the state
is contiguous.

Per-step quantities (dt, the decay exponent dt * A, softplus) are computed in the inputs' own
precision, as mamba-ssm's kernel does (float32 exp is markedly cheaper than float64 exp); the
state and all gradient sums accumulate in float64.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

CHUNK = 64
# Reassociation lets LLVM vectorise the sums over the state; no-NaN/no-Inf assumptions are not
# made (inputs are validated finite upstream, but the kernel stays IEEE-safe regardless).
FAST = {"reassoc", "contract", "nsz", "arcp"}


@nb.njit(cache=True, inline="always")
def _softplus(x: float) -> float:
    return x if x > 20.0 else math.log1p(math.exp(x))


@nb.njit(cache=True, inline="always", fastmath=FAST)
def _exp_poly(x: float) -> float:
    """exp(x) as exp(x / 128) ** 128: a degree-11 Taylor polynomial then 7 squarings.

    Plain arithmetic, so LLVM vectorises it across the state dimension, unlike libm's exp.
    Relative error below 1e-8 for |x| <= 88 (decays are clamped to exp(-88) ~ 6e-39, far below
    float32 resolution); used for float32 inputs, float64 inputs use math.exp.
    """
    x = min(max(x, -88.0), 88.0) * 0.0078125
    p = 1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x * (1.0 / 720 + x * (
        1.0 / 5040 + x * (1.0 / 40320 + x * (1.0 / 362880 + x * (1.0 / 3628800 + x / 39916800))))))))))
    for _ in range(7):
        p = p * p
    return p


@nb.njit(cache=True, inline="always")
def _decay(x: float, fast: bool) -> float:
    return _exp_poly(x) if fast else math.exp(x)


@nb.njit(cache=True, inline="always")
def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@nb.njit(parallel=True, cache=True, fastmath=FAST)
def scan_fwd(u, delta, A, Bm, Cm, D, z, bias, softplus, has_d, has_z, has_bias, chunk, fast, out, ckpt, last):
    n_b, n_d, L = u.shape
    N = A.shape[1]
    G = Bm.shape[1]
    per = n_d // G
    for bd in nb.prange(n_b * n_d):
        b = bd // n_d
        d = bd % n_d
        g = d // per
        h = np.zeros(N)
        a_row = A[d]
        db = bias[d] if has_bias else bias[0] * 0
        dd = D[d] if has_d else 0.0
        for t in range(L):
            if t % chunk == 0:
                for n in range(N):
                    ckpt[b, d, t // chunk, n] = h[n]
            dt = delta[b, d, t] + db
            if softplus:
                dt = _softplus(dt)
            ut = u[b, d, t]
            x = dt * ut
            y = 0.0
            for n in range(N):
                h[n] = _decay(dt * a_row[n], fast) * h[n] + x * Bm[b, g, t, n]
            for n in range(N):
                y += h[n] * Cm[b, g, t, n]
            y += dd * ut
            if has_z:
                zz = z[b, d, t]
                y = y * zz * _sigmoid(zz)
            out[b, d, t] = y
        for n in range(N):
            last[b, d, n] = h[n]


@nb.njit(parallel=True, cache=True, fastmath=FAST)
def scan_bwd(u, delta, A, Bm, Cm, D, z, bias, softplus, has_d, has_z, has_bias, chunk, fast, ckpt, dout,
             du, ddelta, dA, dB, dC, dD, dz, dbias):
    """Gradients; dA / dD / dbias are per-batch partials (summed by the caller), dB / dC are
    accumulated per (batch, group) by one thread each, so no two threads write one cell."""
    n_b, n_d, L = u.shape
    N = A.shape[1]
    G = Bm.shape[1]
    per = n_d // G
    n_chunks = (L + chunk - 1) // chunk
    for bg in nb.prange(n_b * G):
        b = bg // G
        g = bg % G
        hbuf = np.empty((chunk + 1, N))
        abuf = np.empty((chunk, N))
        dtbuf = np.empty(chunk)
        carry = np.empty(N)
        for d in range(g * per, (g + 1) * per):
            db = bias[d] if has_bias else bias[0] * 0
            dd = D[d] if has_d else 0.0
            for n in range(N):
                carry[n] = 0.0
            for c in range(n_chunks - 1, -1, -1):
                t0 = c * chunk
                m = min(L, t0 + chunk) - t0
                for n in range(N):
                    hbuf[0, n] = ckpt[b, d, c, n]
                for j in range(m):
                    t = t0 + j
                    dt = delta[b, d, t] + db
                    if softplus:
                        dt = _softplus(dt)
                    dtbuf[j] = dt
                    x = dt * u[b, d, t]
                    for n in range(N):
                        a = _decay(dt * A[d, n], fast)
                        abuf[j, n] = a
                        hbuf[j + 1, n] = a * hbuf[j, n] + x * Bm[b, g, t, n]
                for j in range(m - 1, -1, -1):
                    t = t0 + j
                    dt = dtbuf[j]
                    ut = u[b, d, t]
                    go = dout[b, d, t]
                    if has_z:
                        zz = z[b, d, t]
                        sg = _sigmoid(zz)
                        y = dd * ut
                        for n in range(N):
                            y += hbuf[j + 1, n] * Cm[b, g, t, n]
                        dz[b, d, t] = go * y * sg * (1.0 + zz * (1.0 - sg))
                        dy = go * zz * sg
                    else:
                        dy = go
                    du_t = dy * dd
                    if has_d:
                        dD[b, d] += dy * ut
                    ddt = 0.0
                    for n in range(N):
                        hp = hbuf[j, n]
                        a = abuf[j, n]
                        bn = Bm[b, g, t, n]
                        dC[b, g, t, n] += dy * hbuf[j + 1, n]
                        gn = carry[n] + dy * Cm[b, g, t, n]
                        gh = gn * hp * a
                        ddt += gh * A[d, n] + gn * bn * ut
                        dA[b, d, n] += gh * dt
                        dB[b, g, t, n] += gn * dt * ut
                        du_t += gn * dt * bn
                        carry[n] = gn * a
                    du[b, d, t] = du_t
                    if softplus:
                        ddt *= _sigmoid(delta[b, d, t] + db)
                    ddelta[b, d, t] = ddt
                    if has_bias:
                        dbias[b, d] += ddt
