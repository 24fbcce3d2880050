"""Wall time of the default pipeline, in total and per rule, in a fresh copy of the workflow.

    python benchmarks/pipeline.py [--cores 2] [--params params.yaml] [--keep DIR] [--json FILE]

One `snakemake --cores N all`, as a user runs it (its own start-up included): the total is that
command's wall time. Per rule, the log's timestamps give the span from the rule's first job
starting to its last job finishing (rules overlap when they can) and how many jobs it ran. Each
job's own figures (asym.jobstats) give, per command, the median wall time of a job, the median
fixed cost of a training job (its wall time less its seeds' own training time: start-up, imports,
reading, writing) and the peak resident memory of any of its jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
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


def job_figures(lines: list[dict]) -> dict[str, dict[str, float]]:
    """Per command (`train`, `train --protocol`, `evaluate`, ...): jobs, median wall, median fixed
    cost where the command reports its work, and peak memory."""
    by: dict[str, list[dict]] = {}
    for job in lines:
        by.setdefault(job["command"] + (" --protocol" if job.get("protocol") else ""), []).append(job)
    out = {}
    for name, jobs in by.items():
        fixed = [j["wall_s"] - j["work_s"] for j in jobs if j.get("work_s") is not None]
        out[name] = {"jobs": len(jobs), "wall_s": statistics.median(j["wall_s"] for j in jobs),
                     "fixed_s": statistics.median(fixed) if fixed else None,
                     "max_rss_mb": max(j["max_rss_mb"] for j in jobs)}
    return out


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
    stats = work / "jobstats.jsonl"
    stats.unlink(missing_ok=True)
    proc = subprocess.run([snakemake, "--cores", args.cores, "all"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "ASYM_JOB_STATS": str(stats)})
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
    jobs = job_figures([json.loads(line) for line in stats.read_text().splitlines()] if stats.is_file() else [])
    print(f"\n{'command':18s} {'jobs':>5s} {'wall/job':>9s} {'fixed/job':>10s} {'peak RSS':>9s}")
    for name, j in sorted(jobs.items(), key=lambda kv: -kv[1]["jobs"]):
        fixed = f"{j['fixed_s']:9.2f}s" if j["fixed_s"] is not None else f"{'–':>10s}"
        print(f"{name:18s} {j['jobs']:5d} {j['wall_s']:8.2f}s {fixed} {j['max_rss_mb']:6.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": args.cores, "total_s": total, "rules": spans, "commands": jobs},
                                              indent=2))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
