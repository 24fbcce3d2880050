"""Fused selective scan for the CPU, compiled at run time by Numba.

The state h (d_state numbers per channel) lives in small per-thread buffers; nothing of shape
(batch, d_inner, L, d_state) is ever stored. The forward pass keeps the state only at chunk
starts (every `CHUNK` steps, the default of `selective_scan_cpu`); the backward pass walks
chunks in reverse, recomputes the states inside one chunk from its checkpoint, and runs the
adjoint recurrence

    g_t = dy_t * C_t + exp(dt_{t+1} A) * g_{t+1}

so memory is linear in L with a small constant. Layout: B and C are passed as
(batch, groups, L, d_state) so every loop over the state is contiguous.

Each chunk is processed in passes that LLVM turns into SIMD code:
- per-step scalars (softplus of dt, the SiLU gate of z, their derivatives) for the whole chunk,
  with branch-free exp / log1p, in the inputs' precision (float32 for float32 inputs, about as
  accurate as PyTorch's own), since libm's scalar calls cannot be vectorised and used to cost
  as much as the rest of the kernel;
- the decays exp(dt_t A) of the whole chunk, in the inputs' precision as mamba-ssm's kernel
  computes them (`_exp32`: within about one ulp);
- the recurrences, whose only serial dependence is on the state itself.
The state, the adjoint and every gradient sum accumulate in float64 (at AVX-512 widths a float64
FMA costs two float32 lane-operations, less than a compensated float32 sum would).
The scalar and decay passes are compiled without reassociation so the range reduction in the
exp functions stays exact; the recurrences are compiled with it, so their sums over the state
vectorise. The backward pass keeps the rows it walks backwards in time newest first, and
prefetches the next chunk of each input row, because LLVM's alias checks and the hardware
prefetchers both handle downward walks poorly.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

CHUNK = 64
FAST = {"reassoc", "contract", "nsz", "arcp"}
EXACT = {"contract"}

F32 = np.float32
_LOG2E = 1.4426950408889634
_LN2_HI64, _LN2_LO64 = 0.6931471803691238, 1.9082149292705877e-10
_LOG2E32, _LN2_HI32, _LN2_LO32 = F32(_LOG2E), F32(0.693359375), F32(-2.12194440e-4)
_LO32, _HI32, _HALF32, _ONE32 = F32(-87.0), F32(88.0), F32(0.5), F32(1.0)
_Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7 = (F32(1 / math.factorial(i)) for i in range(1, 8))
_ZERO32, _TWO32, _TWENTY32 = F32(0.0), F32(2.0), F32(20.0)
_S3, _S5, _S7, _S9, _S11, _S13, _S15 = (F32(1 / k) for k in range(3, 16, 2))


@intrinsic
def _pow2_f64(typingctx, k):
    """2.0 ** k for an integer -1022 <= k <= 1023, built from its exponent bits (vectorisable)."""
    def codegen(context, builder, sig, args):
        bits = builder.shl(builder.add(args[0], ir.Constant(ir.IntType(64), 1023)), ir.Constant(ir.IntType(64), 52))
        return builder.bitcast(bits, ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _pow2_f32(typingctx, k):
    """2.0 ** k in float32 for an integer -126 <= k <= 127."""
    def codegen(context, builder, sig, args):
        bits = builder.shl(builder.add(args[0], ir.Constant(ir.IntType(32), 127)), ir.Constant(ir.IntType(32), 23))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _prefetch(typingctx, row, start):
    """Hint the CPU to fetch the cache line holding row[start] (a no-op for correctness)."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(row, types.intp), codegen


@nb.njit(cache=True, error_model="numpy", inline="always")
def _prefetch_rows(t0, m, r1, r2, r3, r4):
    """Fetch steps t0 .. t0 + m of four rows ahead of use: the backward pass walks time
    backwards, which the hardware prefetchers follow poorly."""
    for t in range(t0, t0 + m, 16):
        _prefetch(r1, t)
        _prefetch(r2, t)
        _prefetch(r3, t)
        _prefetch(r4, t)


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _exp64(x: float) -> float:
    """exp(x) to within an ulp: x = k ln2 + r with |r| <= ln2 / 2 (Cody-Waite), a degree-13
    Taylor polynomial in r, then 2**k from its bits. x is clamped to [-708, 709]."""
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = x - k * _LN2_HI64 - k * _LN2_LO64
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r / 6227020800))))))))))))
    return p * _pow2_f64(np.int64(k))


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _exp32(x):
    """exp(x) for float32 x, within about one ulp (degree-7 polynomial); clamped to
    [-87, 88], i.e. decays below exp(-87) ~ 1.6e-38 stay at that value (as zero in effect)."""
    x = min(max(x, _LO32), _HI32)
    k = np.floor(x * _LOG2E32 + _HALF32)
    r = x - k * _LN2_HI32 - k * _LN2_LO32
    p = _ONE32 + r * (_Q1 + r * (_Q2 + r * (_Q3 + r * (_Q4 + r * (_Q5 + r * (_Q6 + r * _Q7))))))
    return p * _pow2_f32(np.int32(k))


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _log1p64(w: float) -> float:
    """log(1 + w) for 0 <= w <= 1 as 2 atanh(s), s = w / (2 + w) <= 1/3: an odd series in s
    whose terms shrink by 9x, so 17 terms reach double precision with no cancellation."""
    s = w / (2.0 + w)
    q = s * s
    p = 1 / 33 + q * (1 / 35)
    p = 1 / 25 + q * (1 / 27 + q * (1 / 29 + q * (1 / 31 + q * p)))
    p = 1 / 17 + q * (1 / 19 + q * (1 / 21 + q * (1 / 23 + q * p)))
    p = 1 / 9 + q * (1 / 11 + q * (1 / 13 + q * (1 / 15 + q * p)))
    p = 1.0 + q * (1 / 3 + q * (1 / 5 + q * (1 / 7 + q * p)))
    return 2.0 * s * p


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _softplus64(v: float) -> float:
    """log(1 + e^v), = v above 20 as in mamba-ssm; stable for any v (max(v, 0) + log1p(e^-|v|))."""
    sp = max(v, 0.0) + _log1p64(_exp64(-abs(v)))
    return v if v > 20.0 else sp


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _sigmoid64(v: float) -> float:
    return 1.0 / (1.0 + _exp64(-v))


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _softplus32(v):
    """float32 softplus to a few ulp: the same identity as `_softplus64`, 8 series terms."""
    s = _exp32(-abs(v))
    s = s / (_TWO32 + s)
    q = s * s
    p = _ONE32 + q * (_S3 + q * (_S5 + q * (_S7 + q * (_S9 + q * (_S11 + q * (_S13 + q * _S15))))))
    sp = max(v, _ZERO32) + _TWO32 * s * p
    return v if v > _TWENTY32 else sp


@nb.njit(cache=True, error_model="numpy", inline="always", fastmath=EXACT)
def _sigmoid32(v):
    return _ONE32 / (_ONE32 + _exp32(-v))


@nb.njit(cache=True, error_model="numpy", fastmath=EXACT)
def _steps(delta, u, t0, m, db, softplus, grad, fast, dt, x, dsp):
    """One chunk's step sizes dt = softplus(delta + bias) in the inputs' precision (float32
    arithmetic for float32 inputs: fast), inputs x = dt * u and, for the backward pass (grad),
    d softplus / d delta."""
    if not softplus:
        for j in range(m):
            dt[j] = delta[t0 + j] + db
    elif fast:
        for j in range(m):
            dt[j] = _softplus32(F32(delta[t0 + j] + db))
    else:
        for j in range(m):
            dt[j] = _softplus64(delta[t0 + j] + db)
    for j in range(m):
        x[j] = dt[j] * np.float64(u[t0 + j])
    if softplus and grad:
        if fast:
            for j in range(m):
                dsp[j] = _sigmoid32(F32(delta[t0 + j] + db))
        else:
            for j in range(m):
                dsp[j] = _sigmoid64(delta[t0 + j] + db)


@nb.njit(cache=True, error_model="numpy", fastmath=EXACT)
def _gates(z, t0, m, fast, gate, dgate):
    """SiLU(z) and its derivative for one chunk (float32 arithmetic for float32 inputs)."""
    if fast:
        for j in range(m):
            zz = F32(z[t0 + j])
            sg = _sigmoid32(zz)
            gate[j] = zz * sg
            dgate[j] = sg * (_ONE32 + zz * (_ONE32 - sg))
    else:
        for j in range(m):
            zz = np.float64(z[t0 + j])
            sg = _sigmoid64(zz)
            gate[j] = zz * sg
            dgate[j] = sg * (1.0 + zz * (1.0 - sg))


@nb.njit(cache=True, error_model="numpy", fastmath=EXACT)
def _decays(dt, a_row, m, fast, a):
    """a[j, n] = exp(dt[j] A[n]) for one chunk; the exponent in the inputs' precision, float32
    exp for float32 inputs (fast)."""
    N = a_row.shape[0]
    for j in range(m):
        for n in range(N):
            a[j, n] = dt[j] * a_row[n]
    flat = a.reshape(-1)[:m * N]
    if fast:
        for i in range(m * N):
            flat[i] = _exp32(flat[i])
    else:
        for i in range(m * N):
            flat[i] = _exp64(flat[i])


@nb.njit(cache=True, error_model="numpy", fastmath=FAST)
def _forward_chunk(a, x, Bc, Cc, u, gate, dd, t0, m, hc, out):
    """The recurrence h = a h + x B through one chunk (hc: state in and out) and the gated
    output out = (<h, C> + D u) * gate."""
    N = hc.shape[0]
    for j in range(m):
        xj = x[j]
        y = 0.0
        for n in range(N):
            v = a[j, n] * hc[n] + xj * Bc[j, n]
            hc[n] = v
            y += v * Cc[j, n]
        out[t0 + j] = (y + dd * u[t0 + j]) * gate[j]


@nb.njit(cache=True, error_model="numpy", fastmath=FAST)
def _recompute_chunk(a, x, Bc, Cc, m, rev, hc, hr, y):
    """States of one chunk from its start state hc, stored newest first: hr[rev[j]] = h after
    step j (rev[j] = m - 1 - j), hr[m] = the start state; and y[j] = <h after step j, C[j]>.
    Newest-first rows let the adjoint pass walk memory upwards: LLVM's hoisted alias checks
    give up on loops that walk rows downwards, which then run scalar."""
    N = hc.shape[0]
    hr[m] = hc
    for j in range(m):
        xj = x[j]
        r = rev[j]
        acc = 0.0
        for n in range(N):
            v = a[j, n] * hc[n] + xj * Bc[j, n]
            hc[n] = v
            hr[r, n] = v
            acc += v * Cc[j, n]
        y[j] = acc


@nb.njit(cache=True, error_model="numpy", fastmath=EXACT)
def _reverse_rows(a, rev, m, ar):
    """ar[m - 1 - j] = a[j] (through the index array rev, for the reason given above)."""
    for j in range(m):
        r = rev[j]
        for n in range(a.shape[1]):
            ar[r, n] = a[j, n]


@nb.njit(cache=True, error_model="numpy", fastmath=FAST)
def _output_grads(dout, u, y, gate, dgate, dd, has_z, t0, m, dy, dz):
    """dy = dout * gate (the gradient reaching <h, C> + D u) and dz."""
    for j in range(m):
        go = np.float64(dout[t0 + j])
        dy[j] = go * gate[j]
        if has_z:
            dz[t0 + j] = go * (y[j] + dd * u[t0 + j]) * dgate[j]


@nb.njit(cache=True, error_model="numpy", fastmath=FAST)
def _backward_chunk(ar, hr, dy, dt, u, a_row, Br, Cr, t0, m, carry, dBr, dCr, da, s_dt, s_x):
    """Adjoint g_j = dy_j C_j + a_{j+1} g_{j+1} backwards through one chunk (carry: a g in from
    the chunk after, out to the chunk before) and every gradient it feeds: dC, dB, dA, and the
    sums over the state that dt (s_dt) and u (s_x) need. Rows of ar, hr, Br, Cr, dBr, dCr are
    newest first (row r is step j = m - 1 - r), so the loop walks memory upwards."""
    N = carry.shape[0]
    for r in range(m):
        j = m - 1 - r
        dyj = dy[j]
        dtj = np.float64(dt[j])
        dtu = dtj * u[t0 + j]
        acc_dt = 0.0
        acc_x = 0.0
        for n in range(N):
            aj = ar[r, n]
            gn = carry[n] + dyj * Cr[r, n]
            carry[n] = gn * aj
            gh = gn * hr[r + 1, n] * aj
            dCr[r, n] += dyj * hr[r, n]
            dBr[r, n] += gn * dtu
            da[n] += gh * dtj
            acc_dt += gh * a_row[n]
            acc_x += gn * Br[r, n]
        s_dt[j] = acc_dt
        s_x[j] = acc_x


@nb.njit(cache=True, error_model="numpy", fastmath=FAST)
def _input_grads(s_dt, s_x, dt, dy, dsp, u, dd, softplus, t0, m, du, ddelta, sums):
    """du, ddelta of one chunk; sums[0] += dD, sums[1] += dbias contributions."""
    d_sum = 0.0
    b_sum = 0.0
    for j in range(m):
        uj = np.float64(u[t0 + j])
        du[t0 + j] = s_x[j] * dt[j] + dy[j] * dd
        v = s_dt[j] + s_x[j] * uj
        if softplus:
            v *= dsp[j]
        ddelta[t0 + j] = v
        d_sum += dy[j] * uj
        b_sum += v
    sums[0] += d_sum
    sums[1] += b_sum


@nb.njit(parallel=True, cache=True, error_model="numpy", fastmath=FAST)
def scan_fwd(u, delta, A, Bm, Cm, D, z, bias, softplus, has_d, has_z, has_bias, chunk, fast, out, ckpt, last):
    n_b, n_d, L = u.shape
    N = A.shape[1]
    G = Bm.shape[1]
    per = n_d // G
    n_chunks = (L + chunk - 1) // chunk
    for bd in nb.prange(n_b * n_d):
        b = bd // n_d
        d = bd % n_d
        g = d // per
        db = bias[d] if has_bias else bias[0] * 0
        dd = np.float64(D[d]) if has_d else 0.0
        hc = np.zeros(N)
        dt = np.empty(chunk, u.dtype)
        x = np.empty(chunk)
        dsp = np.empty(1)
        gate = np.ones(chunk)
        dgate = np.empty(chunk)
        a = np.empty((chunk, N), u.dtype)
        for c in range(n_chunks):
            t0 = c * chunk
            m = min(L, t0 + chunk) - t0
            ckpt[b, d, c] = hc
            _steps(delta[b, d], u[b, d], t0, m, db, softplus, False, fast, dt, x, dsp)
            if has_z:
                _gates(z[b, d], t0, m, fast, gate, dgate)
            _decays(dt, A[d], m, fast, a)
            _forward_chunk(a, x, Bm[b, g, t0:t0 + m], Cm[b, g, t0:t0 + m], u[b, d], gate, dd, t0, m, hc, out[b, d])
        last[b, d] = hc


@nb.njit(parallel=True, cache=True, error_model="numpy", fastmath=FAST)
def scan_bwd(u, delta, A, Bm, Cm, Bf, Cf, D, z, bias, softplus, has_d, has_z, has_bias, chunk, fast, ckpt, dout,
             du, ddelta, dA, dBf, dCf, dD, dz, dbias):
    """Gradients. Bf, Cf are B, C with time reversed, and dBf, dCf receive dB, dC with time
    reversed (see `_backward_chunk`). Work is split over (batch, group, part of the group's
    channels); dBf / dCf have a leading `parts` axis and each task accumulates into its own
    slice, so no two threads write one cell (the caller sums the parts). dA / dD / dbias are
    per-batch partials."""
    n_b, n_d, L = u.shape
    N = A.shape[1]
    parts, G = dBf.shape[0], dBf.shape[2]
    per = n_d // G
    n_chunks = (L + chunk - 1) // chunk
    for task in nb.prange(n_b * G * parts):
        p = task % parts
        b = task // parts // G
        g = task // parts % G
        hc = np.empty(N)
        hr = np.empty((chunk + 1, N))
        a = np.empty((chunk, N), u.dtype)
        ar = np.empty((chunk, N), u.dtype)
        rev = np.empty(chunk, np.int64)
        dt = np.empty(chunk, u.dtype)
        x = np.empty(chunk)
        dsp = np.empty(chunk)
        gate = np.ones(chunk)
        dgate = np.empty(chunk)
        y = np.empty(chunk)
        dy = np.empty(chunk)
        s_dt = np.empty(chunk)
        s_x = np.empty(chunk)
        carry = np.empty(N)
        da = np.empty(N)
        sums = np.empty(2)
        for d in range(g * per + p * per // parts, g * per + (p + 1) * per // parts):
            db = bias[d] if has_bias else bias[0] * 0
            dd = np.float64(D[d]) if has_d else 0.0
            carry[:] = 0.0
            da[:] = 0.0
            sums[:] = 0.0
            for c in range(n_chunks - 1, -1, -1):
                t0 = c * chunk
                m = min(L, t0 + chunk) - t0
                Bc, Cc = Bm[b, g, t0:t0 + m], Cm[b, g, t0:t0 + m]
                f0 = L - t0 - m
                for j in range(m):
                    rev[j] = m - 1 - j
                if c > 0:
                    _prefetch_rows(t0 - chunk, chunk, delta[b, d], u[b, d], dout[b, d], du[b, d])
                    _prefetch_rows(t0 - chunk, chunk, ddelta[b, d], z[b, d] if has_z else u[b, d],
                                   dz[b, d] if has_z else du[b, d], ddelta[b, d])
                _steps(delta[b, d], u[b, d], t0, m, db, softplus, True, fast, dt, x, dsp)
                if has_z:
                    _gates(z[b, d], t0, m, fast, gate, dgate)
                _decays(dt, A[d], m, fast, a)
                hc[:] = ckpt[b, d, c]
                _recompute_chunk(a, x, Bc, Cc, m, rev, hc, hr, y)
                _output_grads(dout[b, d], u[b, d], y, gate, dgate, dd, has_z, t0, m, dy, dz[b, d] if has_z else dz[0, 0])
                _reverse_rows(a, rev, m, ar)
                _backward_chunk(ar, hr, dy, dt, u[b, d], A[d], Bf[b, g, f0:f0 + m], Cf[b, g, f0:f0 + m], t0, m, carry,
                                dBf[p, b, g, f0:f0 + m], dCf[p, b, g, f0:f0 + m], da, s_dt, s_x)
                _input_grads(s_dt, s_x, dt, dy, dsp, u[b, d], dd, softplus, t0, m, du[b, d], ddelta[b, d], sums)
            dA[b, d] = da
            if has_d:
                dD[b, d] = sums[0]
            if has_bias:
                dbias[b, d] = sums[1]
