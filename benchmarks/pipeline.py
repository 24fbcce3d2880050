"""Wall time of the default pipeline, per stage and in total, in a fresh copy of the workflow.

    python benchmarks/pipeline.py [--cores 2] [--params params.yaml] [--keep DIR] [--json FILE]

Each stage is run to completion with `snakemake --until <stage>` before the next, so its time
is that stage's alone (process start-up included); the total is their sum.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["fetch", "convert", "split", "train", "evaluate", "report", "track"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", default="2")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--keep", help="run in this folder and keep it")
    ap.add_argument("--json", help="also write the stage times here")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="asym-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(ROOT / "workflow", work / "workflow", dirs_exist_ok=True)
    if not (work / "profiles").exists():
        (work / "profiles").symlink_to("workflow/profiles")
    shutil.copy(args.params, work / "params.yaml")
    snakemake = str(Path(sys.executable).parent / "snakemake")
    times = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        subprocess.run([snakemake, "--cores", args.cores, "--quiet", "all", "--until", stage],
                       cwd=work, check=True, stdout=subprocess.DEVNULL)
        times[stage] = time.perf_counter() - t0
        print(f"{stage:10s} {times[stage]:8.1f} s", flush=True)
    print(f"{'total':10s} {sum(times.values()):8.1f} s  ({sum(times.values()) / 60:.1f} min on {args.cores} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": args.cores, "seconds": times, "total_s": sum(times.values())}, indent=2))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
