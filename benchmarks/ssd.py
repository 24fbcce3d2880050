"""SSD (Mamba2's scan) forward+backward on the CPU: the Numba kernel, the chunked PyTorch form and
a plain PyTorch sequential recurrence, side by side.

    python benchmarks/ssd.py [--lengths 1024 4096] [--threads 2] [--repeats 3] [--batch 8]
                             [--heads 8] [--headdim 32] [--d-state 32] [--impls NAME ...] [--json F]
                             [--device cpu|cuda] [--check]

`--device cuda` times the GPU backends instead (--impls torch triton cuda; "cuda" is mamba-ssm's
mamba_chunk_scan_combined, where it imports) and `--check` first compares each implementation's
output, final state and every input's gradient, at the first length, with the float64
sequential recurrence (benchmarks/gpu_check.py runs both; its CPU rehearsal runs them with
--device cpu and the Triton kernels under the interpreter).

All implementations get the same threads (PyTorch's intra-op pool and Numba's, set before either
is imported) and the same float32 inputs with every option on (D, z, dt_bias, softplus, one
group). Each implementation first runs a small call (Numba compiles, or loads its cache), then
one untimed call at full size; the timed calls are interleaved round by round across the
implementations (the machine is shared: every one gets the same luck) and the fastest counts.

Roofline share = useful flops / (seconds * peak). Useful flops are those of the sequential
recurrence the CPU kernel runs, per (batch, head, step) over the (headdim, d_state) state:
forward 5 P N (decay and input: 3, output: 2), backward 14 P N (recomputing the state: 3; the
adjoint, dC, dB, dx, <G, S_{t-1}> and the decayed adjoint: 11); all in float64 in the kernel.
Peak is measured, not taken from a data sheet: the best of a few 2048 x 2048 float64 matrix
products (torch.mm, close to the FMA peak) at the same threads.
"""

from __future__ import annotations

import argparse
import json
import os
import time

IMPLS = ("sequential", "torch", "cpu", "triton", "cuda")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--headdim", type=int, default=32)
    ap.add_argument("--d-state", type=int, default=32)
    ap.add_argument("--impls", nargs="+", default=None, choices=IMPLS,
                    help="default: sequential torch cpu (--device cpu), torch triton (--device cuda)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--check", action="store_true", help="errors against the float64 recurrence first")
    return ap.parse_args()


def make(L: int, b: int, h: int, p: int, n: int, seed: int = 0, device: str = "cpu") -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    inputs = dict(x=r(b, L, h, p), dt=0.5 * r(b, L, h) - 2.0, A=-(torch.rand(h, generator=g) * 8 + 1),
                  B=r(b, L, 1, n), C=r(b, L, 1, n), D=r(h), z=r(b, L, h, p), dt_bias=0.1 * r(h))
    return {k: v.to(device).requires_grad_(True) for k, v in inputs.items()}


def check(fns: dict, L: int, shape: tuple, device: str) -> dict:
    """Largest error of each implementation's output, final state and gradients, relative to
    the largest magnitude of the float64 sequential recurrence's (final state: through ssd only)."""
    import torch

    inputs = make(L, *shape, seed=1, device=device)
    ref_in = {k: v.detach().double().requires_grad_(True) for k, v in inputs.items()}
    weight = torch.randn(inputs["x"].shape, generator=torch.Generator().manual_seed(2)).to(device)
    ref = sequential(**ref_in)
    ref.backward(weight.double())
    errors = {}
    for impl, fn in fns.items():
        if impl == "sequential":
            continue
        for v in inputs.values():
            v.grad = None
        out = fn(**inputs)
        out.backward(weight)
        rel = lambda a, b: ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()  # noqa: E731
        errors[impl] = {"out": rel(out.detach(), ref.detach()),
                        **{f"d{k}": rel(inputs[k].grad, ref_in[k].grad) for k in inputs}}
    return errors


def sequential(x, dt, A, B, C, D, z, dt_bias):
    """The recurrence step by step in PyTorch (autograd through every step)."""
    import torch
    import torch.nn.functional as F

    dt = F.softplus(dt + dt_bias)
    b, L, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1])
    ys = []
    for t in range(L):
        a = torch.exp(dt[:, t] * A)[:, :, None, None]
        state = a * state + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append((state * C[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, 1) + x * D[:, None]
    return y * F.silu(z)


def runner(impl: str):
    from asym.nn.ssd import ssd

    if impl == "sequential":
        return sequential
    return lambda x, dt, A, B, C, D, z, dt_bias: ssd(x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=True,
                                                      backend=impl)


def fwd_bwd(fn, inputs: dict, weight, sync) -> float:
    for v in inputs.values():
        v.grad = None
    sync()
    start = time.perf_counter()
    fn(**inputs).backward(weight)
    sync()
    return time.perf_counter() - start


def useful_flops(L: int, b: int, h: int, p: int, n: int) -> int:
    return (5 + 14) * p * n * b * h * L


def float64_peak(threads: int) -> float:
    import torch

    a = torch.randn(2048, 2048, dtype=torch.float64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        torch.mm(a, a)
        best = min(best, time.perf_counter() - start)
    return 2 * 2048 ** 3 / best


def main() -> None:
    args = parse()
    args.impls = args.impls or (["sequential", "torch", "cpu"] if args.device == "cpu" else ["torch", "triton"])
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from asym.nn import ssd as ssd_mod

    shape = (args.batch, args.heads, args.headdim, args.d_state)
    fns = {impl: runner(impl) for impl in args.impls}
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    small = make(64, 2, 2, 4, 4, device=args.device)
    for fn in fns.values():
        fwd_bwd(fn, small, torch.ones_like(small["x"]), sync)
    errors = check(fns, args.lengths[0], shape, args.device) if args.check else None
    if errors:
        print(f"largest error against the float64 recurrence at L={args.lengths[0]} (relative to its largest value):")
        for impl, errs in errors.items():
            print(f"  {impl:10s} " + " ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    rows = []
    print(f"SSD forward+backward, batch {shape[0]}, heads {shape[1]}, headdim {shape[2]}, d_state {shape[3]}, "
          f"{args.threads} threads (torch and Numba), float32 inputs, best of {args.repeats}")
    print(f"{'implementation':12s} {'L':>6s} {'seconds':>9s}")
    for L in args.lengths:
        inputs = make(L, *shape, device=args.device)
        weight = torch.randn(inputs["x"].shape, device=args.device)
        best = {}
        for impl, fn in fns.items():
            fwd_bwd(fn, inputs, weight, sync)
            best[impl] = float("inf")
        for _ in range(args.repeats):
            for impl, fn in fns.items():
                best[impl] = min(best[impl], fwd_bwd(fn, inputs, weight, sync))
        for impl in fns:
            rows.append({"impl": impl, "L": L, "seconds": best[impl]})
            print(f"{impl:12s} {L:6d} {best[impl]:9.4f}", flush=True)
    if args.device == "cuda":
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"device": torch.cuda.get_device_name(), "shape": list(shape), "rows": rows,
                           "errors": errors}, fh, indent=2)
        return
    peak = float64_peak(args.threads)
    print(f"\npeak: {peak / 1e9:.1f} GFLOP/s float64, measured as the best of 3 torch.mm of 2048 x 2048 float64 "
          f"matrices at {args.threads} threads")
    summary = []
    for L in args.lengths:
        t = {r["impl"]: r["seconds"] for r in rows if r["L"] == L}
        flops = useful_flops(L, *shape)
        line = {"L": L, "useful_gflop": flops / 1e9}
        for impl in ("cpu", "torch"):
            if impl in t:
                line[f"{impl}_gflops"] = flops / t[impl] / 1e9
                line[f"{impl}_roofline_share"] = flops / (t[impl] * peak)
                if "sequential" in t:
                    line[f"{impl}_speedup_over_sequential"] = t["sequential"] / t[impl]
        if "cpu" in t and "torch" in t:
            line["cpu_over_torch"] = t["torch"] / t["cpu"]
        summary.append(line)
        parts = [f"L={L:5d}: {flops / 1e9:.2f} GFLOP useful"]
        for impl, label in (("cpu", "Numba kernel"), ("torch", "chunked torch")):
            if impl in t:
                parts.append(f"{label} {line[f'{impl}_gflops']:.1f} GFLOP/s = {100 * line[f'{impl}_roofline_share']:.1f}% "
                             f"of peak" + (f", {line[f'{impl}_speedup_over_sequential']:.1f}x sequential"
                                           if "sequential" in t else ""))
        if "cpu_over_torch" in line:
            parts.append(f"Numba/chunked {line['cpu_over_torch']:.2f}x")
        print("; ".join(parts))
    if {"cpu", "torch"} <= set(args.impls):
        faster = "cpu" if all(s["cpu_over_torch"] > 1 for s in summary) else "torch"
        print(f"\nfaster on the CPU at these sizes: {faster} ({'the Numba kernel' if faster == 'cpu' else 'chunked torch'})"
              f"; asym.nn.ssd.CPU_AUTO = {ssd_mod.CPU_AUTO!r}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "shape": list(shape), "rows": rows, "peak_flops_f64": peak,
                       "summary": summary, "errors": errors}, fh, indent=2)


if __name__ == "__main__":
    main()
