"""selective_scan with exactly the semantics of mamba-ssm's `selective_scan_fn`.

    u, delta, z: (batch, d_inner, L)      A: (d_inner, d_state) real
    B, C: (batch, d_state, L) or grouped (batch, groups, d_state, L)
    D, delta_bias: (d_inner,)             returns out (batch, d_inner, L) [, last_state]

Backends, chosen per call ("auto"): mamba-ssm's fused CUDA kernel for CUDA tensors when it
imports, else our Triton kernels (asym.nn.scan_triton) when triton imports; the fused Numba
kernel (asym.nn.scan_cpu) on the CPU; a chunked parallel scan in plain PyTorch
(asym.nn.scan_torch) anywhere else. "triton" on a CPU tensor runs the same kernels under
Triton's interpreter (TRITON_INTERPRET=1). triton and mamba-ssm are imported only when a call
needs them. As in mamba-ssm, no gradient flows through the returned last state.

Precision: every backend reads bf16 inputs as they are, keeps the state, the adjoint and every
sum in float32 or wider (float64 for float64 inputs; the CPU kernel always in float64), and
returns the output in u's dtype and the last state in float32 (float64 for float64 inputs).
The scan runs outside autocast, so under torch.autocast nothing inside it is recast.

Two inputs mamba-ssm accepts are refused here, by every backend alike, with a message saying so:
a complex A (S4D-complex; Mamba's S4D-real initialisation is real, and no model here uses one),
and a constant B or C of shape (d_inner, d_state) (time-invariant, as in S4; every Mamba block
here computes B and C from its input, so they always carry the batch and time axes).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from asym.nn.scan_torch import selective_scan_torch

BACKENDS = ("auto", "cuda", "cpu", "torch", "triton")


@functools.cache
def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or the extension failing to load without CUDA
        return None
    return selective_scan_fn


def cuda_kernel_available() -> bool:
    return torch.cuda.is_available() and _mamba_ssm_fn() is not None


@functools.cache
def triton_available() -> bool:
    """Whether triton imports (asked only for CUDA tensors: the CPU paths never import it)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


@functools.cache
def _triton_scan():
    """The Triton scan, imported once (a failed import is not cached: it raises again)."""
    try:
        from asym.nn.scan_triton import selective_scan_triton
    except ImportError as e:
        raise RuntimeError(f"backend 'triton' requested but triton does not import ({e}); it "
                           "comes with PyTorch's CUDA wheels, or `pip install triton`") from e
    return selective_scan_triton


def _np(t: torch.Tensor | None, dtype: np.dtype, ndim: int = 1) -> np.ndarray:
    """Contiguous numpy view/copy; an absent optional input becomes a placeholder of the same
    rank (Numba types every branch, taken or not). bf16, which numpy lacks, is widened first."""
    if t is None:
        return np.zeros((1,) * ndim, dtype=dtype)
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.ascontiguousarray(t.numpy().astype(dtype, copy=False))


def _channel_parts(tasks: int, channels: int) -> int:
    """Into how many parts the backward pass splits each group's channels: enough for every
    Numba thread to have work when batch * groups is small (each part then keeps its own dB / dC
    partial sums, of shape (batch, groups, L, d_state), to be added at the end)."""
    import numba

    return max(1, min(channels, -(-2 * numba.get_num_threads() // tasks)))


class _CpuScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk):
        from asym.nn import scan_cpu

        work = np.float64 if u.dtype == torch.float64 else np.float32
        grouped = (B.dim() == 4, C.dim() == 4)
        Bg = B if grouped[0] else B.unsqueeze(1)
        Cg = C if grouped[1] else C.unsqueeze(1)
        n_b, n_d, L = u.shape
        N = A.shape[1]
        arrays = (
            _np(u, work), _np(delta, work), _np(A, work),
            _np(Bg.transpose(-1, -2), work), _np(Cg.transpose(-1, -2), work),
            _np(D, work), _np(z, work, ndim=3), _np(delta_bias, work),
        )
        flags = (bool(delta_softplus), D is not None, z is not None, delta_bias is not None, int(chunk),
                 work == np.float32)
        out = np.empty((n_b, n_d, L), dtype=work)
        ckpt = np.empty((n_b, n_d, (L + chunk - 1) // chunk, N))
        last = np.empty((n_b, n_d, N))
        scan_cpu.scan_fwd(*arrays, *flags, out, ckpt, last)
        ctx.arrays, ctx.flags, ctx.ckpt, ctx.grouped = arrays, flags, ckpt, grouped
        ctx.dtypes = (u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype,
                      None if D is None else D.dtype, None if z is None else z.dtype,
                      None if delta_bias is None else delta_bias.dtype)
        out_t = torch.from_numpy(out).to(u.dtype)
        last_t = torch.from_numpy(last).to(torch.float32 if u.dtype != torch.float64 else torch.float64)
        ctx.mark_non_differentiable(last_t)
        return out_t, last_t

    @staticmethod
    def backward(ctx, dout, _dlast):
        from asym.nn import scan_cpu

        u, delta, A, Bm, Cm, D, z, bias = ctx.arrays
        softplus, has_d, has_z, has_bias, chunk, fast = ctx.flags
        n_b, n_d, L = u.shape
        G, N = Bm.shape[1], A.shape[1]
        go = _np(dout, u.dtype)
        du, ddelta, dz = np.empty_like(u), np.empty_like(u), np.empty_like(u) if has_z else np.zeros((1, 1, 1), u.dtype)
        parts = _channel_parts(n_b * G, n_d // G)
        dA = np.empty((n_b, n_d, N))
        dB = np.zeros((parts, n_b, G, L, N))
        dC = np.zeros((parts, n_b, G, L, N))
        dD = np.zeros((n_b, n_d))
        dbias = np.zeros((n_b, n_d))
        Bf, Cf = Bm[:, :, ::-1].copy(), Cm[:, :, ::-1].copy()
        scan_cpu.scan_bwd(u, delta, A, Bm, Cm, Bf, Cf, D, z, bias, softplus, has_d, has_z, has_bias, chunk, fast,
                          ctx.ckpt, go, du, ddelta, dA, dB, dC, dD, dz, dbias)
        dB, dC = (dB[0], dC[0]) if parts == 1 else (dB.sum(0), dC.sum(0))
        dB, dC = dB[:, :, ::-1].copy(), dC[:, :, ::-1].copy()
        t = ctx.dtypes

        def back(arr: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)

        dB_t = back(dB, t[3]).transpose(-1, -2)
        dC_t = back(dC, t[4]).transpose(-1, -2)
        if not ctx.grouped[0]:
            dB_t = dB_t.squeeze(1)
        if not ctx.grouped[1]:
            dC_t = dC_t.squeeze(1)
        return (back(du, t[0]), back(ddelta, t[1]), back(dA.sum(0), t[2]), dB_t, dC_t,
                back(dD.sum(0), t[5]) if has_d else None, back(dz, t[6]) if has_z else None,
                back(dbias.sum(0), t[7]) if has_bias else None, None, None)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, chunk: int | None = None):
    """The fused CPU kernel; `chunk` (steps between saved states) defaults to scan_cpu.CHUNK."""
    if A.is_complex():
        raise NotImplementedError("complex A is not supported (Mamba's S4D-real init is real)")
    if chunk is None:
        from asym.nn.scan_cpu import CHUNK as chunk
    out, last = _CpuScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)
    return (out, last) if return_last_state else out


def auto_backend(device_type: str, mamba_ssm: bool, triton: bool) -> str:
    """What "auto" picks on a device, given which of mamba-ssm's kernel and triton import."""
    if device_type == "cuda":
        return "cuda" if mamba_ssm else "triton" if triton else "torch"
    return "cpu" if device_type == "cpu" else "torch"


def check_device(x: torch.Tensor, backend: str, scan: str) -> None:
    """Refuse a backend named for another device than the tensors' ("triton" on CPU tensors is
    its interpreter, and allowed): its outputs would land on the wrong device and fail later,
    far from the cause."""
    if backend == "cpu" and x.device.type != "cpu":
        raise ValueError(f"{scan}: backend 'cpu' needs CPU tensors, got tensors on {x.device}")
    if backend == "cuda" and not x.is_cuda:
        raise ValueError(f"{scan}: backend 'cuda' needs CUDA tensors, got tensors on {x.device}")


def pick_backend(u: torch.Tensor, backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        check_device(u, backend, "selective_scan")
        return backend
    if not u.is_cuda:
        return auto_backend(u.device.type, False, False)
    return auto_backend("cuda", cuda_kernel_available(), triton_available())


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend: str = "auto"):
    check_supported(A, B, C)
    chosen = pick_backend(u, backend)
    device = u.device.type
    autocasting = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    with torch.autocast(device, enabled=False) if autocasting else contextlib.nullcontext():
        return _dispatch(chosen, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                         return_last_state)


def check_supported(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> None:
    """Refuse, before any backend sees them, the two inputs the module docstring names."""
    if A.is_complex():
        raise NotImplementedError("selective_scan: complex A is not supported (Mamba's S4D-real init is real); "
                                  "pass a real A of shape (d_inner, d_state)")
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 2:
            raise NotImplementedError(f"selective_scan: a constant {name} of shape (d_inner, d_state) "
                                      f"{tuple(t.shape)} is not supported; pass an input-dependent {name} of "
                                      "shape (batch, d_state, L) or (batch, groups, d_state, L)")
        if t.dim() not in (3, 4):
            raise ValueError(f"selective_scan: {name} must be (batch, d_state, L) or (batch, groups, d_state, L), "
                             f"got shape {tuple(t.shape)}")


def _dispatch(chosen, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    if chosen == "cuda":
        fn = _mamba_ssm_fn()
        if fn is None:
            raise RuntimeError("backend 'cuda' requested but mamba-ssm's kernel does not import")
        return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                  return_last_state=return_last_state)
    if chosen == "cpu":
        return selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if chosen == "triton":
        return _triton_scan()(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                              return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
