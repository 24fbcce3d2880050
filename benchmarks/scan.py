"""Selective scan forward+backward: time and peak memory per implementation and length.

    python benchmarks/scan.py [--lengths 256 1024 4096 16384] [--impls NAME ...] [--repeats 3]
                              [--processes 3] [--threads N] [--json F]

Each (implementation, L) runs in `--processes` fresh subprocesses, interleaved with the other
implementations round by round, and keeps the fastest: on a shared virtual machine a whole
process can get a slower share of the cores, and interleaving gives every implementation the same
luck. In each process: a small call compiles and warms up, one untimed call at full size brings
the allocator to the steady state of training (the same shapes every step), then the best of
`--repeats` timed calls counts. Peak memory is the resident set's high-water mark above the
resident size before the full-size calls (CUDA: max_memory_allocated), as reported by the
process kept. Shapes: batch 8, d_inner 256, d_state 16. Every implementation gets the same CPU
threads (all usable cores unless --threads says otherwise), for PyTorch's intra-op pool and for
Numba's.

After the table comes a roofline estimate for the CPU kernel: the floating-point operations and
the DRAM bytes that its forward+backward needs (`kernel_work`), set against this machine's peak
float32 / float64 rates (a large matrix product, which runs at close to the FMA peak) and its
memory bandwidth (a STREAM-style triad), both measured at the start with the same threads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BATCH, D_INNER, D_STATE = 8, 256, 16
NAIVE_MAX_L = 1024
CPU_IMPLS = ["asym CPU kernel", "asym PyTorch path", "mambapy pscan", "naive loop"]
GPU_IMPLS = ["mamba-ssm (CUDA)", "asym PyTorch path (GPU)"]
CHUNK = 64                # the CPU kernel's steps between saved states (asym.nn.scan_cpu.CHUNK)

# Floating-point operations of the CPU kernel per (batch, channel, step, state) and per
# (batch, channel, step), counted from asym/nn/scan_cpu.py (an FMA counts 2):
# - a float32 decay exp(dt A): the product, Cody-Waite reduction and degree-7 polynomial, 22,
#   computed twice (forward, and again when the backward pass recomputes a chunk);
# - float64 state work: forward recurrence and readout 5; backward recurrence and readout 5,
#   adjoint and the gradients of B, C, A, dt and u 15;
# - per step (float32): softplus 45, its derivative 23, the SiLU gate 27, both passes, and the
#   float64 bookkeeping of dy, du, ddelta, dz about 15.
DECAY_FLOPS_F32 = 2 * 22
STATE_FLOPS_F64 = 5 + 5 + 15
STEP_FLOPS_F32 = 2 * 45 + 23 + 2 * 27
STEP_FLOPS_F64 = 15


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make(L: int, device: str):
    import torch

    g = torch.Generator().manual_seed(0)
    t = {
        "u": torch.randn(BATCH, D_INNER, L, generator=g), "delta": torch.randn(BATCH, D_INNER, L, generator=g),
        "A": -torch.rand(D_INNER, D_STATE, generator=g) - 0.5, "B": torch.randn(BATCH, D_STATE, L, generator=g),
        "C": torch.randn(BATCH, D_STATE, L, generator=g), "D": torch.randn(D_INNER, generator=g),
        "z": torch.randn(BATCH, D_INNER, L, generator=g), "delta_bias": torch.randn(D_INNER, generator=g),
    }
    return {k: v.to(device).requires_grad_(True) for k, v in t.items()}


def mambapy_scan(u, delta, A, B, C, D, z, delta_bias):
    """The selective scan as mambapy's MambaBlock computes it, around its parallel `pscan`."""
    import torch.nn.functional as F
    from mambapy.pscan import pscan

    delta = F.softplus(delta + delta_bias[:, None]).transpose(1, 2)          # (b, l, d)
    x = u.transpose(1, 2)
    dA = torch_exp(delta.unsqueeze(-1) * A)                                  # (b, l, d, n)
    bx = delta.unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2) * x.unsqueeze(-1)
    hs = pscan(dA, bx)
    y = (hs @ C.transpose(1, 2).unsqueeze(-1)).squeeze(-1) + D * x
    return (y * F.silu(z.transpose(1, 2))).transpose(1, 2)


def torch_exp(x):
    import torch

    return torch.exp(x)


def naive_scan(u, delta, A, B, C, D, z, delta_bias):
    import torch
    import torch.nn.functional as F

    delta = F.softplus(delta + delta_bias[:, None])
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    return (torch.stack(ys, -1) + u * D[:, None]) * F.silu(z)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def kernel_work(L: int) -> dict:
    """Float32 and float64 operations and compulsory DRAM bytes of one forward+backward of the
    CPU kernel at this length (constants above). Bytes: u, delta, z read and out written by the
    forward; u, delta, z, dout read and du, ddelta, dz written by the backward (float32); the
    float64 checkpoints written and read once; B, C (and their time-reversed copies) and dB, dC
    per (batch, step, state); everything else stays in cache."""
    steps = BATCH * D_INNER * L
    states = steps * D_STATE
    per_bt_n = BATCH * L * D_STATE
    return {
        "flops_f32": states * DECAY_FLOPS_F32 + steps * STEP_FLOPS_F32,
        "flops_f64": states * STATE_FLOPS_F64 + steps * STEP_FLOPS_F64,
        "bytes": steps * 4 * (4 + 7) + 2 * 8 * states // CHUNK + per_bt_n * (4 * 4 + 4 * 4 + 2 * 8 * 2),
    }


def machine_peaks(threads: int) -> dict:
    """Measured peak float32 / float64 rates (best of a few 2048x2048 matrix products) and
    memory bandwidth (best of a few triads c = a + s b over 3 x 256 MB, counted as 3 x 256 MB
    moved, as STREAM does), with `threads` PyTorch threads."""
    import torch

    torch.set_num_threads(threads)
    peaks = {}
    for name, dtype in (("flops_f32", torch.float32), ("flops_f64", torch.float64)):
        a = torch.randn(2048, 2048, dtype=dtype)
        torch.mm(a, a)
        best = min(_timed(lambda: torch.mm(a, a)) for _ in range(3))   # noqa: B023
        peaks[name] = 2 * 2048**3 / best
    n = 64 * 2**20
    a, b, c = torch.ones(n), torch.ones(n), torch.empty(n)
    torch.add(a, b, alpha=2.0, out=c)
    best = min(_timed(lambda: torch.add(a, b, alpha=2.0, out=c)) for _ in range(5))
    peaks["bytes"] = 3 * 4 * n / best
    return peaks


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def roofline(L: int, seconds: float, peaks: dict) -> dict:
    work = kernel_work(L)
    compute_s = work["flops_f32"] / peaks["flops_f32"] + work["flops_f64"] / peaks["flops_f64"]
    memory_s = work["bytes"] / peaks["bytes"]
    bound = max(compute_s, memory_s)
    return {"L": L, "gflop": (work["flops_f32"] + work["flops_f64"]) / 1e9, "mb": work["bytes"] / 2**20,
            "compute_bound_s": compute_s, "memory_bound_s": memory_s, "measured_s": seconds,
            "fraction_of_bound": bound / seconds}


def one(impl: str, L: int, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)

    from asym.nn.ssm import selective_scan

    device = "cuda" if impl in GPU_IMPLS else "cpu"
    fns = {
        "asym CPU kernel": lambda **k: selective_scan(**k, delta_softplus=True, backend="cpu"),
        "asym PyTorch path": lambda **k: selective_scan(**k, delta_softplus=True, backend="torch"),
        "asym PyTorch path (GPU)": lambda **k: selective_scan(**k, delta_softplus=True, backend="torch"),
        "mambapy pscan": mambapy_scan,
        "naive loop": naive_scan,
    }
    if impl == "mamba-ssm (CUDA)":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        fns[impl] = lambda **k: selective_scan_fn(**k, delta_softplus=True)
    fn = fns[impl]
    warm = make(min(L, 64), device)
    fn(**warm).sum().backward()                       # compile / warm up outside the timing
    inputs = make(L, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = rss_mb()
    fn(**inputs).sum().backward()                     # once at full size too: the allocator's steady state
    times = []
    for _ in range(repeats):
        for v in inputs.values():
            v.grad = None
        t0 = time.perf_counter()
        fn(**inputs).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss
    return {"impl": impl, "L": L, "seconds": min(times), "peak_mb": max(peak, 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per process (its best counts)")
    ap.add_argument("--processes", type=int, default=3, help="fresh processes per implementation and length")
    ap.add_argument("--impls", nargs="+")
    ap.add_argument("--threads", type=int, default=usable_cores())
    ap.add_argument("--json")
    ap.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        print(json.dumps(one(args._one[0], int(args._one[1]), int(args._one[2]), args.threads)))
        return
    import torch

    impls = args.impls or CPU_IMPLS + (GPU_IMPLS if torch.cuda.is_available() else [])
    avail_mb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    rows = []
    print(f"batch {BATCH}, d_inner {D_INNER}, d_state {D_STATE}; forward+backward, best of {args.repeats} calls "
          f"in each of {args.processes} processes; "
          f"{args.threads} CPU threads for every implementation (PyTorch and Numba; {usable_cores()} cores usable)")
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads)}
    print(f"{'implementation':22s} {'L':>6s} {'seconds':>9s} {'peak MB':>9s}")
    for L in args.lengths:
        state_mb = BATCH * D_INNER * D_STATE * L * 4 / 2**20
        todo = []
        for impl in impls:
            if impl == "naive loop" and L > NAIVE_MAX_L:
                continue
            if impl == "mambapy pscan" and 8 * state_mb > 0.6 * avail_mb:   # it materialises (b, L, d, n) tensors
                print(f"{impl:22s} {L:6d} {'skipped':>9s} (needs ~{8 * state_mb:.0f} MB)")
                continue
            todo.append(impl)
        # Each implementation runs in `processes` fresh processes, interleaved round by round, and
        # keeps its best: on a shared (virtual) machine one process may get a slower share of
        # the cores for its whole life, and interleaving gives every implementation the same luck.
        best: dict[str, dict] = {}
        for _ in range(args.processes):
            for impl in todo:
                proc = subprocess.run([sys.executable, __file__, "--_one", impl, str(L), str(args.repeats),
                                       "--threads", str(args.threads)], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"{impl:22s} {L:6d} {'failed':>9s} "
                          f"{proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                if impl not in best or row["seconds"] < best[impl]["seconds"]:
                    best[impl] = row
        for impl in todo:
            if impl in best:
                rows.append(best[impl])
                print(f"{impl:22s} {L:6d} {best[impl]['seconds']:9.3f} {best[impl]['peak_mb']:9.1f}", flush=True)
    by = {(r["impl"], r["L"]): r for r in rows}
    print("\nspeed-up of the asym CPU kernel over mambapy's parallel scan (forward+backward):")
    for L in args.lengths:
        a, m = by.get(("asym CPU kernel", L)), by.get(("mambapy pscan", L))
        if a and m:
            print(f"  L={L:6d}: {m['seconds'] / a['seconds']:5.1f}x faster, peak memory {a['peak_mb']:.0f} MB vs {m['peak_mb']:.0f} MB")
    kernel = [r for r in rows if r["impl"] == "asym CPU kernel"]
    lines = []
    if kernel:
        peaks = machine_peaks(args.threads)
        print(f"\nroofline of the asym CPU kernel ({args.threads} threads; measured peaks: "
              f"float32 {peaks['flops_f32'] / 1e9:.0f} GFLOP/s and float64 {peaks['flops_f64'] / 1e9:.0f} GFLOP/s "
              f"from 2048x2048 matrix products, memory {peaks['bytes'] / 1e9:.1f} GB/s from a triad):")
        print(f"  {'L':>6s} {'GFLOP':>7s} {'DRAM MB':>8s} {'compute-bound s':>16s} {'memory-bound s':>15s} "
              f"{'measured s':>11s} {'of the bound':>13s}")
        for r in kernel:
            line = roofline(r["L"], r["seconds"], peaks)
            lines.append(line)
            print(f"  {line['L']:6d} {line['gflop']:7.2f} {line['mb']:8.0f} {line['compute_bound_s']:16.4f} "
                  f"{line['memory_bound_s']:15.4f} {line['measured_s']:11.4f} {100 * line['fraction_of_bound']:12.0f}%")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows, "roofline": lines,
                       "peaks": peaks if kernel else None}, fh, indent=2)


if __name__ == "__main__":
    main()
