"""Paper-scale cost of every registry model: one training step, and the whole paper grid.

    python benchmarks/train_step.py [--device cpu|cuda] [--models asym depmamba ...]
                                    [--frames 1000] [--batch 16] [--precisions fp32 bf16]
                                    [--scale paper] [--in-process] [--json out.json]

For each model at `scale: paper` widths, on D-Vlog's and LMVD's input widths, one optimiser
step (forward + backward + AdamW step) on a batch of `--batch` vlogs of `--frames` frames is
timed after a short warm-up, each (model, dataset, precision) in a process of its own so that its
peak memory (the whole process's resident set on the CPU, about 0.4 GB of it the interpreter and
libraries; the allocator's peak on CUDA) is its own. One timed step per row: at tens of seconds a
step on the CPU, noise is small beside it. On CUDA it is measured in
fp32 and in bf16 autocast. The table ends with the projected wall time of the paper grid on
this machine: every model x both datasets x the paper seeds x the recipe's epochs, with the
real releases' training-fold sizes (D-Vlog 647 vlogs, LMVD 1458) and one forward pass over the
validation fold (102 / 182 vlogs) per epoch, costed at a third of a training step per batch, every
vlog at `--frames` frames: more than ASYM's recipe's random windows (500-1000 frames), less than
DepMamba's, whose offline crops add samples.

`--in-process` measures every row in this one process (on CUDA the allocator's peak is reset per
row, so each row's peak is still its own): what the GPU check uses, to spare one interpreter and
kernel compilation per row. bf16 is autocast on the device the step runs on (CPU autocast too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_VLOGS = {"dvlog": 647, "lmvd": 1458}
VALID_VLOGS = {"dvlog": 102, "lmvd": 182}
FORWARD_SHARE = 1 / 3        # a forward pass costs about a third of forward + backward + step


def measure(model: str, dataset: str, device: str, precision: str, frames: int, batch: int, threads: int,
            scale: str = "paper") -> dict:
    """One (model, dataset, precision) in this process: seconds per step and peak memory."""
    import resource

    import torch

    from asym.config import load_params
    from asym.data.formats import input_widths
    from asym.models import factory
    from asym.models.layers import param_groups

    torch.set_num_threads(threads)
    params = load_params(ROOT / "params.yaml").at_scale(scale)
    dev = torch.device(device)
    net = factory.from_params(model, params, dataset, widths=input_widths()[dataset]).to(dev)
    opt = torch.optim.AdamW(param_groups(net, 1e-4), lr=1e-4)
    a_dim, v_dim = input_widths()[dataset]
    autocast = precision == "bf16"

    def step(t: int) -> float:
        audio, visual = torch.randn(batch, t, a_dim, device=dev), torch.randn(batch, t, v_dim, device=dev)
        lengths = torch.full((batch,), t, device=dev)
        labels = torch.randint(0, 2, (batch,), device=dev).float()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            logits = net(audio, visual, lengths)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step(min(frames, 64))                       # compiles the CPU kernel, warms the allocator
    if dev.type == "cuda":
        step(frames)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds = step(frames)
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    n_params = sum(p.numel() for p in net.parameters())
    row = {"model": model, "dataset": dataset, "device": device, "precision": precision, "seconds": seconds,
           "peak_mb": peak_mb, "params": n_params, "frames": frames, "batch": batch, "threads": threads}
    return row


def project_grid(rows: list[dict], seeds: int, epochs: dict[str, int], batch: int) -> float:
    """Hours for the paper grid from the measured step times (one precision)."""
    total = 0.0
    for r in rows:
        steps = -(-TRAIN_VLOGS[r["dataset"]] // batch)
        valid = -(-VALID_VLOGS[r["dataset"]] // batch) * FORWARD_SHARE
        total += r["seconds"] * (steps + valid) * epochs[r["model"]] * seeds
    return total / 3600


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--datasets", nargs="*", default=["dvlog", "lmvd"])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                    help="default: fp32 and bf16 on CUDA, fp32 on the CPU")
    ap.add_argument("--scale", default="paper", choices=["demo", "paper"], help="whose widths (paper unless rehearsing)")
    ap.add_argument("--in-process", action="store_true", help="every row in this process (see above)")
    ap.add_argument("--json", help="write the rows and projections here")
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "DATASET", "PRECISION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one[:2], args.device, args.one[2], args.frames, args.batch, args.threads,
                                 args.scale)))
        return

    from asym.config import load_params
    from asym.models import registry

    params = load_params(ROOT / "params.yaml").at_scale(args.scale)
    models = args.models or registry.names()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU on this machine")
    precisions = args.precisions or (["fp32", "bf16"] if args.device == "cuda" else ["fp32"])
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads), "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    rows = []
    print(f"{'model':28s} {'dataset':7s} {'prec':5s} {'params':>11s} {'s/step':>9s} {'peak MB':>9s}", flush=True)
    for model in models:
        for dataset in args.datasets:
            for precision in precisions:
                if args.in_process:
                    r = measure(model, dataset, args.device, precision, args.frames, args.batch, args.threads,
                                args.scale)
                else:
                    cmd = [sys.executable, __file__, "--device", args.device, "--frames", str(args.frames),
                           "--batch", str(args.batch), "--threads", str(args.threads), "--scale", args.scale,
                           "--one", model, dataset, precision]
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                    if out.returncode != 0:
                        print(f"{model:28s} {dataset:7s} {precision:5s} failed: {out.stderr.strip().splitlines()[-1:]}")
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                print(f"{model:28s} {dataset:7s} {precision:5s} {r['params']:>11,d} {r['seconds']:>9.2f} {r['peak_mb']:>9.0f}",
                      flush=True)
    epochs = {m: params.recipe(registry.get(m).recipe).epochs for m in models}
    seeds = len(params.seeds)
    projection = {p: project_grid([r for r in rows if r["precision"] == p], seeds, epochs, args.batch) for p in precisions}
    for p, hours in projection.items():
        print(f"paper grid ({len(models)} models x {len(args.datasets)} datasets x {seeds} seeds x epochs of each recipe, "
              f"{p}, {args.device}, {args.threads} threads): {hours:,.0f} h = {hours / 24:,.1f} days")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "grid_hours": projection,
                                               "machine": {"cpus": os.cpu_count(), "device": args.device}}, indent=2))


if __name__ == "__main__":
    main()
