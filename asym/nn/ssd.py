"""ssd: Mamba2's scan (SSD, Dao & Gu 2024) with the semantics of mamba-ssm's `mamba_chunk_scan_combined`.

    x, z: (batch, L, heads, headdim)       dt: (batch, L, heads)       A, dt_bias: (heads,)
    B, C: (batch, L, groups, d_state)      D: (heads,) or (heads, headdim)
    initial_state: (batch, heads, headdim, d_state)
    returns out (batch, L, heads, headdim) [, final_state (batch, heads, headdim, d_state)]

One scalar decay per head and step: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,
y_t = h_t C_t + D x_t, out = y * SiLU(z); dt is dt + dt_bias, then softplus when dt_softplus.
Heads are split evenly into the groups of B and C. Gradients reach every input, the initial
state included, and flow back from the final state too (as mamba-ssm).

Backends, chosen per call ("auto", as asym.nn.ssm): for CUDA tensors mamba-ssm's Triton kernels
when mamba_ssm imports, else ours (asym.nn.ssd_triton) when triton imports, else the PyTorch one;
on the CPU whichever of the Numba kernel (asym.nn.ssd_cpu) and the chunked PyTorch form
(asym.nn.ssd_torch) `CPU_AUTO` names (benchmarks/ssd.py measures both); the PyTorch form
anywhere else. "triton" on a CPU tensor runs our kernels under Triton's interpreter
(TRITON_INTERPRET=1).

Precision as asym.nn.ssm: inputs are read in their dtype; the state and every sum are float32
or wider (float64 for float64 inputs; the CPU kernel always float64); the output comes back in
x's dtype, the final state in float32 (float64 for float64 inputs). The scan runs outside
autocast.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from asym.nn.ssd_torch import CHUNK, ssd_torch
from asym.nn.ssm import (  # the selective scan's backends, by the same names
    BACKENDS,
    check_device,
    triton_available,
)

CPU_AUTO = "cpu"     # what "auto" picks for CPU tensors: the faster of cpu and torch (benchmarks/ssd.py)


@functools.cache
def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # ImportError, or its Triton / CUDA pieces failing to load
        return None
    return mamba_chunk_scan_combined


def cuda_kernel_available() -> bool:
    return torch.cuda.is_available() and _mamba_ssm_fn() is not None


def auto_backend(device_type: str, mamba_ssm: bool, triton: bool) -> str:
    """What "auto" picks on a device, given which of mamba-ssm's kernel and triton import."""
    if device_type == "cuda":
        return "cuda" if mamba_ssm else "triton" if triton else "torch"
    return CPU_AUTO if device_type == "cpu" else "torch"


def pick_backend(x: torch.Tensor, backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"ssd: backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        check_device(x, backend, "ssd")
        return backend
    if not x.is_cuda:
        return auto_backend(x.device.type, False, False)
    return auto_backend("cuda", cuda_kernel_available(), triton_available())


def check_shapes(x, dt, A, B, C, D, z, dt_bias, initial_state) -> None:
    """Refuse inconsistent shapes with a message naming the input, before any backend runs."""
    if x.dim() != 4:
        raise ValueError(f"ssd: x must be (batch, L, heads, headdim), got shape {tuple(x.shape)}")
    b, L, h, p = x.shape
    if B.dim() != 4 or B.shape[:2] != (b, L) or C.shape != B.shape:
        raise ValueError(f"ssd: B and C must both be (batch, L, groups, d_state) = ({b}, {L}, g, n), "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    g, n = B.shape[2:]
    if h % g:
        raise ValueError(f"ssd: heads ({h}) must be a multiple of B/C's groups ({g})")
    expected = {"dt": (dt, [(b, L, h)]), "A": (A, [(h,)]), "D": (D, [(h,), (h, p)]), "z": (z, [(b, L, h, p)]),
                "dt_bias": (dt_bias, [(h,)]), "initial_state": (initial_state, [(b, h, p, n)])}
    for name, (t, shapes) in expected.items():
        if t is not None and tuple(t.shape) not in shapes:
            raise ValueError(f"ssd: {name} must have shape {' or '.join(map(str, shapes))}, got {tuple(t.shape)}")
    if A.is_complex():
        raise NotImplementedError("ssd: A must be real (one scalar decay rate per head)")


def ssd(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None,
        return_final_state=False, chunk_size: int = CHUNK, backend: str = "auto"):
    check_shapes(x, dt, A, B, C, D, z, dt_bias, initial_state)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"ssd: chunk_size must be a positive integer, got {chunk_size!r}")
    chosen = pick_backend(x, backend)
    device = x.device.type
    autocasting = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    args = (x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, return_final_state, chunk_size)
    with torch.autocast(device, enabled=False) if autocasting else contextlib.nullcontext():
        return _dispatch(chosen, *args)


def _dispatch(chosen, x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, return_final_state, chunk_size):
    if chosen == "cuda":
        fn = _mamba_ssm_fn()
        if fn is None:
            raise RuntimeError("ssd: backend 'cuda' requested but mamba_ssm's mamba_chunk_scan_combined does not import")
        return fn(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_state,
                  dt_softplus=dt_softplus, return_final_states=return_final_state)
    if chosen == "cpu":
        from asym.nn.ssd_cpu import ssd_cpu

        return ssd_cpu(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, return_final_state, chunk_size)
    if chosen == "triton":
        try:
            from asym.nn.ssd_triton import ssd_triton
        except ImportError as e:
            raise RuntimeError(f"ssd: backend 'triton' requested but triton does not import ({e})") from e
        return ssd_triton(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, return_final_state, chunk_size)
    return ssd_torch(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, return_final_state, chunk_size)
