"""Wall time of the default pipeline, in total and per rule, in a fresh copy of the workflow.

    python benchmarks/pipeline.py [--cores 2] [--params params.yaml] [--keep DIR] [--json FILE]

One `snakemake --cores N all`, as a user runs it (its own start-up included): the total is that
command's wall time. Per rule, the log's timestamps give the span from the rule's first job
starting to its last job finishing (rules overlap when they can) and how many jobs it ran.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")


def rule_spans(log: str) -> dict[str, dict[str, float]]:
    """Per rule: first start and last finish (seconds from the run's first job, to the second the
    log gives) and the number of jobs. Snakemake 9 logs `Job <id>: <message>` when a job starts
    and `Finished jobid: <id> (Rule: <rule>)` when it ends."""
    spans: dict[str, dict[str, float]] = {}
    started: dict[str, float] = {}
    now = first = None
    for line in log.splitlines():
        m = STAMP.match(line)
        if m:
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
            first = now if first is None else first
            continue
        if now is None:
            continue
        if start := re.match(r"^(?:local)?[Jj]ob(?:id)?:? (\d+)\b", line.strip()):
            started.setdefault(start.group(1), now - first)
        elif done := re.search(r"Finished jobid: (\d+) \(Rule: (\S+)\)", line):
            job, rule = done.groups()
            s = spans.setdefault(rule, {"start": started.get(job, now - first), "end": 0.0, "jobs": 0})
            s["start"] = min(s["start"], started.get(job, now - first))
            s["end"] = max(s["end"], now - first)
            s["jobs"] += 1
    return spans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", default="2")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--keep", help="run in this folder and keep it")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="asym-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copy(ROOT / "environment.yml", work / "environment.yml")    # every rule's conda environment
    shutil.copytree(ROOT / "workflow", work / "workflow", dirs_exist_ok=True)
    if not (work / "profiles").exists():
        (work / "profiles").symlink_to("workflow/profiles")
    shutil.copy(args.params, work / "params.yaml")
    snakemake = str(Path(sys.executable).parent / "snakemake")
    t0 = time.perf_counter()
    proc = subprocess.run([snakemake, "--cores", args.cores, "all"], cwd=work, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(proc.stdout[-3000:] + proc.stderr[-3000:])
    spans = rule_spans(proc.stdout + proc.stderr)
    print(f"{'rule':10s} {'jobs':>5s} {'from':>7s} {'to':>7s} {'span':>7s}")
    for rule, s in sorted(spans.items(), key=lambda kv: kv[1]["start"]):
        if rule != "all":
            print(f"{rule:10s} {int(s['jobs']):5d} {s['start']:6.0f}s {s['end']:6.0f}s {s['end'] - s['start']:6.0f}s")
    print(f"{'total':10s} {total:25.1f} s  ({total / 60:.1f} min on {args.cores} cores, `snakemake --cores "
          f"{args.cores} all` from nothing)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": args.cores, "total_s": total, "rules": spans}, indent=2))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
