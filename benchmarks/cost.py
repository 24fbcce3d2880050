"""Inference cost per minute of vlog on a device: asym.cost's rows, for the GPU check.

    python benchmarks/cost.py [--device cuda|cpu] [--scale paper|demo] [--models asym ...]
                              [--datasets dvlog lmvd] [--minutes 1 10 60] [--no-count] [--json out.json]

Every registered model (or --models) at --scale's widths on each dataset's input widths, for vlogs
of each length of `cost.minutes` in params.yaml (or --minutes): latency (median of the cost block's
repeats after its warm-up, at its batch) and peak memory (on CUDA the allocator's peak over the
pass; on the CPU the resident set's) through `asym.cost.measure`; with the MACs too unless
--no-count (they do not depend on the device: `asym cost` puts them in reports/cost.*). On a
machine without CUDA, `--device cuda` says so and exits 0, as the GPU check's steps do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--scale", default="paper", choices=["demo", "paper"], help="whose widths (paper unless rehearsing)")
    ap.add_argument("--models", nargs="*", help="registry names (default: every registered model)")
    ap.add_argument("--datasets", nargs="*", help="default: run.datasets of --params")
    ap.add_argument("--minutes", nargs="*", type=float, help="vlog lengths (default: cost.minutes of --params)")
    ap.add_argument("--no-count", action="store_true", help="latency and memory only, no MACs")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return 0
    from asym.config import load_params
    from asym.cost import measure

    params = load_params(args.params).at_scale(args.scale)
    rows = measure(params, device=args.device, models=args.models or None, datasets=args.datasets or None,
                   minutes=args.minutes or None, count=not args.no_count)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    for r in rows:
        print(f"{r['dataset']:6s} {r['model']:26s} {r['minutes']:5g} min  {r['latency_ms_per_min']:9.3f} ms/min  "
              f"peak {r['peak_mb']:9.1f} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": device, "scale": args.scale, "rows": rows}, indent=2,
                                              default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
