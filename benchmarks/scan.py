"""Selective scan forward+backward: time and peak memory per implementation and length.

    python benchmarks/scan.py [--lengths 256 1024 4096 16384] [--repeats 3]

Each (implementation, L) runs in a fresh subprocess so peak memory (max RSS above the
process's resident size just before the timed call, or CUDA max_memory_allocated on a GPU)
belongs to that call alone. Shapes: batch 8, d_inner 256, d_state 16, as in issue 3.
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


def one(impl: str, L: int, repeats: int) -> dict:
    import torch

    from asym.nn.ssm import selective_scan

    device = "cuda" if impl == "mamba-ssm (CUDA)" else "cpu"
    fns = {
        "asym CPU kernel": lambda **k: selective_scan(**k, delta_softplus=True, backend="cpu"),
        "asym PyTorch path": lambda **k: selective_scan(**k, delta_softplus=True, backend="torch"),
        "asym auto (GPU)": lambda **k: selective_scan(**k, delta_softplus=True),
        "mamba-ssm (CUDA)": None,
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
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = rss_mb()
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
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impls", nargs="+")
    ap.add_argument("--json")
    ap.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        print(json.dumps(one(args._one[0], int(args._one[1]), int(args._one[2]))))
        return
    import torch

    impls = args.impls or ["asym CPU kernel", "asym PyTorch path", "mambapy pscan", "naive loop"]
    if torch.cuda.is_available() and not args.impls:
        impls += ["asym auto (GPU)", "mamba-ssm (CUDA)"]
    avail_mb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    rows = []
    print(f"batch {BATCH}, d_inner {D_INNER}, d_state {D_STATE}; forward+backward, best of {args.repeats}; "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'implementation':22s} {'L':>6s} {'seconds':>9s} {'peak MB':>9s}")
    for L in args.lengths:
        state_mb = BATCH * D_INNER * D_STATE * L * 4 / 2**20
        for impl in impls:
            if impl == "naive loop" and L > NAIVE_MAX_L:
                continue
            if impl == "mambapy pscan" and 8 * state_mb > 0.6 * avail_mb:   # it materialises (b, L, d, n) tensors
                print(f"{impl:22s} {L:6d} {'skipped':>9s} (needs ~{8 * state_mb:.0f} MB)")
                continue
            proc = subprocess.run([sys.executable, __file__, "--_one", impl, str(L), str(args.repeats)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{impl:22s} {L:6d} {'failed':>9s} {proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{impl:22s} {L:6d} {row['seconds']:9.3f} {row['peak_mb']:9.1f}", flush=True)
    by = {(r["impl"], r["L"]): r for r in rows}
    print("\nspeed-up of the asym CPU kernel over mambapy's parallel scan (forward+backward):")
    for L in args.lengths:
        a, m = by.get(("asym CPU kernel", L)), by.get(("mambapy pscan", L))
        if a and m:
            print(f"  L={L:6d}: {m['seconds'] / a['seconds']:5.1f}x faster, peak memory {a['peak_mb']:.0f} MB vs {m['peak_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
