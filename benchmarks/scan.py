"""Selective scan forward+backward: time and peak memory per implementation and length.

    python benchmarks/scan.py [--lengths 256 1024 4096 16384] [--impls NAME ...] [--repeats 3]
                              [--processes 3] [--threads N] [--batch 8] [--d-inner 256]
                              [--d-state 16] [--gpu-device cuda|cpu] [--json F]

Each (implementation, L) runs in `--processes` fresh subprocesses, interleaved with the other
implementations round by round, and keeps the fastest: on a shared virtual machine a whole
process can get a slower share of the cores, and interleaving gives every implementation the same
luck. In each process: a small call compiles and warms up, one untimed call at full size brings
the allocator to the steady state of training (the same shapes every step), then the best of
`--repeats` timed calls counts. Peak memory is the resident set's high-water mark above the
resident size before the full-size calls (CUDA: max_memory_allocated), as reported by the
process kept. Shapes: batch 8, d_inner 256, d_state 16 unless given. Every implementation gets the same CPU
threads (all usable cores unless --threads says otherwise), for PyTorch's intra-op pool and for
Numba's.

After the table comes a roofline estimate for the CPU kernel: the floating-point operations and
the DRAM bytes that its forward+backward needs (`kernel_work`), set against this machine's peak
float32 / float64 rates (a large matrix product, which runs at close to the FMA peak) and its
memory bandwidth (a STREAM-style triad), both measured at the start with the same threads.

The GPU rows (the Triton scan, the PyTorch path, mamba-ssm's kernel when it imports) also give
the bytes a fused forward+backward must move (`fused_scan_bytes`) over their time, against the
device's copy bandwidth measured in the same process. `--gpu-device cpu` runs those rows on CPU
tensors (Triton through its interpreter, TRITON_INTERPRET=1): the GPU check's rehearsal.
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
GPU_IMPLS = ["asym Triton (GPU)", "mamba-ssm (CUDA)", "asym PyTorch path (GPU)"]
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


def make(L: int, device: str, shape: tuple[int, int, int] = (BATCH, D_INNER, D_STATE)):
    import torch

    b, d, n = shape
    g = torch.Generator().manual_seed(0)
    t = {
        "u": torch.randn(b, d, L, generator=g), "delta": torch.randn(b, d, L, generator=g),
        "A": -torch.rand(d, n, generator=g) - 0.5, "B": torch.randn(b, n, L, generator=g),
        "C": torch.randn(b, n, L, generator=g), "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, L, generator=g), "delta_bias": torch.randn(d, generator=g),
    }
    return {k: v.to(device).requires_grad_(True) for k, v in t.items()}


def fused_scan_bytes(L: int, shape: tuple[int, int, int], elem: int = 4) -> int:
    """The least a fused forward+backward moves: u, delta, z read and out written (forward); u,
    delta, z and dout read, du, ddelta and dz written (backward); B and C read twice, dB and dC
    written once; the parameters and saved chunk states are small beside these."""
    b, d, n = shape
    return elem * (b * d * L * (4 + 7) + b * n * L * (2 * 2 + 2))


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large device-to-device copy, counting bytes read and written."""
    import torch

    n = (256 if device == "cuda" else 16) * 2**20
    a, b = torch.ones(n, device=device), torch.empty(n, device=device)
    b.copy_(a)
    best = float("inf")
    for _ in range(10):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        b.copy_(a)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * 4 * n / best


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


def kernel_work(L: int, shape: tuple[int, int, int] = (BATCH, D_INNER, D_STATE)) -> dict:
    """Float32 and float64 operations and compulsory DRAM bytes of one forward+backward of the
    CPU kernel at this length (constants above). Bytes: u, delta, z read and out written by the
    forward; u, delta, z, dout read and du, ddelta, dz written by the backward (float32); the
    float64 checkpoints written and read once; B, C (and their time-reversed copies) and dB, dC
    per (batch, step, state); everything else stays in cache."""
    b, d, n = shape
    steps = b * d * L
    states = steps * n
    per_bt_n = b * L * n
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


def roofline(L: int, seconds: float, peaks: dict, shape: tuple[int, int, int] = (BATCH, D_INNER, D_STATE)) -> dict:
    work = kernel_work(L, shape)
    compute_s = work["flops_f32"] / peaks["flops_f32"] + work["flops_f64"] / peaks["flops_f64"]
    memory_s = work["bytes"] / peaks["bytes"]
    bound = max(compute_s, memory_s)
    return {"L": L, "gflop": (work["flops_f32"] + work["flops_f64"]) / 1e9, "mb": work["bytes"] / 2**20,
            "compute_bound_s": compute_s, "memory_bound_s": memory_s, "measured_s": seconds,
            "fraction_of_bound": bound / seconds}


def one(impl: str, L: int, repeats: int, threads: int, shape: tuple[int, int, int] = (BATCH, D_INNER, D_STATE),
        gpu_device: str = "cuda") -> dict:
    import torch

    torch.set_num_threads(threads)

    from asym.nn.ssm import selective_scan

    device = gpu_device if impl in GPU_IMPLS else "cpu"
    fns = {
        "asym Triton (GPU)": lambda **k: selective_scan(**k, delta_softplus=True, backend="triton"),
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
    warm = make(min(L, 64), device, shape)
    fn(**warm).sum().backward()                       # compile / warm up outside the timing
    inputs = make(L, device, shape)
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
    row = {"impl": impl, "L": L, "seconds": min(times), "peak_mb": max(peak, 0.0), "shape": list(shape)}
    if impl in GPU_IMPLS:
        row["bytes"] = fused_scan_bytes(L, shape)
        row["copy_bandwidth"] = copy_bandwidth(device)
        row["share_of_copy_bandwidth"] = row["bytes"] / min(times) / row["copy_bandwidth"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per process (its best counts)")
    ap.add_argument("--processes", type=int, default=3, help="fresh processes per implementation and length")
    ap.add_argument("--impls", nargs="+")
    ap.add_argument("--threads", type=int, default=usable_cores())
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--d-inner", type=int, default=D_INNER)
    ap.add_argument("--d-state", type=int, default=D_STATE)
    ap.add_argument("--gpu-device", default="cuda", choices=["cuda", "cpu"],
                    help="where the GPU rows run (cpu: the rehearsal, Triton interpreted)")
    ap.add_argument("--json")
    ap.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = (args.batch, args.d_inner, args.d_state)
    if args._one:
        print(json.dumps(one(args._one[0], int(args._one[1]), int(args._one[2]), args.threads, shape,
                             args.gpu_device)))
        return
    import torch

    impls = args.impls or CPU_IMPLS + (GPU_IMPLS if torch.cuda.is_available() else [])
    avail_mb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    rows: list[dict] = []
    failed: list[tuple[str, int]] = []
    print(f"batch {shape[0]}, d_inner {shape[1]}, d_state {shape[2]}; forward+backward, best of {args.repeats} calls "
          f"in each of {args.processes} processes; "
          f"{args.threads} CPU threads for every implementation (PyTorch and Numba; {usable_cores()} cores usable)")
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads)}
    print(f"{'implementation':22s} {'L':>6s} {'seconds':>9s} {'peak MB':>9s}")
    for L in args.lengths:
        state_mb = shape[0] * shape[1] * shape[2] * L * 4 / 2**20
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
                                       "--threads", str(args.threads), "--batch", str(shape[0]),
                                       "--d-inner", str(shape[1]), "--d-state", str(shape[2]),
                                       "--gpu-device", args.gpu_device], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"{impl:22s} {L:6d} {'failed':>9s} "
                          f"{proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
                    failed.append((impl, L))
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                if impl not in best or row["seconds"] < best[impl]["seconds"]:
                    best[impl] = row
        for impl in todo:
            if impl in best:
                rows.append(best[impl])
                r = best[impl]
                moved = (f"  {r['bytes'] / r['seconds'] / 1e9:8.1f} GB/s = {100 * r['share_of_copy_bandwidth']:.0f}% "
                         f"of the copy bandwidth ({r['copy_bandwidth'] / 1e9:.0f} GB/s)" if "bytes" in r else "")
                print(f"{impl:22s} {L:6d} {r['seconds']:9.4f} {r['peak_mb']:9.1f}{moved}", flush=True)
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
            line = roofline(r["L"], r["seconds"], peaks, shape)
            lines.append(line)
            print(f"  {line['L']:6d} {line['gflop']:7.2f} {line['mb']:8.0f} {line['compute_bound_s']:16.4f} "
                  f"{line['memory_bound_s']:15.4f} {line['measured_s']:11.4f} {100 * line['fraction_of_bound']:12.0f}%")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows, "roofline": lines,
                       "peaks": peaks if kernel else None, "failed": failed}, fh, indent=2)
    if failed:
        sys.exit(f"failed: {', '.join(f'{impl} at L={L}' for impl, L in failed)}")


if __name__ == "__main__":
    main()
