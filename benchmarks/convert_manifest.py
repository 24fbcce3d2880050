"""Wall time and peak memory of `asym convert` on a large manifest dataset.

    python benchmarks/convert_manifest.py [--vlogs 1000] [--seconds 600] [--audio-dim 128]
                                          [--visual-dim 136] [--cpus 0,1] [--workdir DIR]
                                          [--params params.yaml] [--markdown FILE] [--json FILE]

Writes a manifest of `--vlogs` vlogs of `--seconds` seconds (one row a second, float32 .npy at
the given widths, with subject and gender columns) in a temporary folder (or `--workdir`, kept),
then runs `python -m asym convert --format manifest --input <manifest.csv> --output <t.parquet>`
as a user would, its start-up included, pinned to `--cpus` with taskset where there is one. Wall
time is the subprocess's; peak memory is its maximum resident set (`/usr/bin/time -v` where
present, else getrusage of the children). Both are printed against the goals (60 s on two cores,
2 GB) and written to benchmarks/results/convert_manifest.md.

The feature files are written just before the conversion, so they are read from the page cache:
the figure is the converter's own cost, not the disk's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 60.0
GOAL_BYTES = 2 << 30


def write_dataset(root: Path, n: int, seconds: int, audio_dim: int, visual_dim: int, seed: int = 0) -> Path:
    """`n` vlogs of `seconds` rows each (standard normal float32), the manifest naming them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "visual").mkdir(parents=True, exist_ok=True)
    folds = ("train", "valid", "test")
    rows = ["id,label,fold,audio,visual,subject,gender"]
    for i in range(n):
        sid = f"v{i:05d}"
        np.save(root / "audio" / f"{sid}.npy", rng.standard_normal((seconds, audio_dim), dtype=np.float32))
        np.save(root / "visual" / f"{sid}.npy", rng.standard_normal((seconds, visual_dim), dtype=np.float32))
        subject = i // 2                       # two vlogs a subject, in one fold
        fold = folds[0 if subject % 10 < 7 else 1 if subject % 10 < 8 else 2]
        rows.append(f"{sid},{'depression' if subject % 2 else 'normal'},{fold},audio/{sid}.npy,visual/{sid}.npy,"
                    f"S{subject:05d},{'f' if subject % 3 else 'm'}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def run_convert(manifest: Path, out: Path, params: Path, cpus: str | None) -> dict[str, float | str]:
    """`asym convert` in a subprocess: wall seconds, peak RSS bytes, and how they were measured."""
    cmd = [sys.executable, "-m", "asym", "--params", str(params), "convert", "--format", "manifest",
           "--input", str(manifest), "--output", str(out)]
    pinned = bool(cpus) and shutil.which("taskset") is not None
    if pinned:
        cmd = ["taskset", "-c", cpus, *cmd]
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        cmd = [str(gnu_time), "-v", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"asym convert failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if gnu_time.exists():
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", proc.stderr).group(1)) for k in ("User", "System"))
        how = "/usr/bin/time -v"
    else:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kb, cpu, how = usage.ru_maxrss, usage.ru_utime + usage.ru_stime, "getrusage(RUSAGE_CHILDREN)"
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_bytes": peak_kb * 1024, "memory_by": how,
            "pinned": f"taskset -c {cpus}" if pinned else "not pinned", "stdout": proc.stdout.strip()}


def markdown(fig: dict) -> str:
    ok = lambda good: "meets the goal" if good else "**misses the goal**"  # noqa: E731
    return "\n".join([
        "# `asym convert` of a manifest dataset",
        "",
        f"{fig['vlogs']} vlogs of {fig['seconds']} s (one row a second), widths {fig['audio_dim']} + {fig['visual_dim']}, "
        f"float32 .npy: {fig['input_bytes'] / 2**20:.0f} MiB of feature files; Parquet out: "
        f"{fig['output_bytes'] / 2**20:.0f} MiB (zstd).",
        f"Command: `python -m asym convert --format manifest --input manifest.csv --output t.parquet`, "
        f"{fig['pinned']} ({fig['cores']} core(s) on this machine), files in the page cache.",
        f"Machine: {fig['machine']}, Python {fig['python']}.",
        "",
        "| | measured | goal | |",
        "|---|---:|---:|---|",
        f"| wall time | {fig['wall_s']:.1f} s | {GOAL_SECONDS:.0f} s | {ok(fig['wall_s'] < GOAL_SECONDS)} |",
        f"| peak RSS ({fig['memory_by']}) | {fig['peak_rss_bytes'] / 2**20:.0f} MiB | {GOAL_BYTES / 2**20:.0f} MiB | "
        f"{ok(fig['peak_rss_bytes'] < GOAL_BYTES)} |",
        f"| CPU time (user + system) | {fig['cpu_s']:.1f} s | | |",
        f"| throughput | {fig['input_bytes'] / 2**20 / fig['wall_s']:.0f} MiB/s, {fig['vlogs'] / fig['wall_s']:.0f} vlogs/s | | |",
        "",
        "Reproduce: `python benchmarks/convert_manifest.py` (see its docstring for the options).",
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vlogs", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--audio-dim", type=int, default=128)
    ap.add_argument("--visual-dim", type=int, default=136)
    ap.add_argument("--cpus", default="0,1", help="taskset CPU list ('' to leave unpinned)")
    ap.add_argument("--workdir", help="write the dataset and the table here and keep them")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--markdown", default=str(ROOT / "benchmarks" / "results" / "convert_manifest.md"))
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="asym-convert-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        manifest = write_dataset(work / "data", args.vlogs, args.seconds, args.audio_dim, args.visual_dim)
        input_bytes = sum(f.stat().st_size for d in ("audio", "visual") for f in (work / "data" / d).iterdir())
        print(f"wrote {args.vlogs} vlogs ({input_bytes / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
        out = work / "t.parquet"
        fig = run_convert(manifest, out, Path(args.params), args.cpus or None)
        fig.update(vlogs=args.vlogs, seconds=args.seconds, audio_dim=args.audio_dim, visual_dim=args.visual_dim,
                   input_bytes=input_bytes, output_bytes=out.stat().st_size, cores=os.cpu_count(),
                   machine=f"{platform.machine()} {platform.system()}", python=platform.python_version())
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(fig.pop("stdout"))
    print(f"wall time {fig['wall_s']:.1f} s (goal {GOAL_SECONDS:.0f} s), CPU {fig['cpu_s']:.1f} s, "
          f"peak RSS {fig['peak_rss_bytes'] / 2**20:.0f} MiB (goal {GOAL_BYTES / 2**20:.0f} MiB), {fig['pinned']}")
    Path(args.markdown).write_text(markdown(fig), encoding="utf-8")
    print(f"-> {args.markdown}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
