"""A job's own figures, for benchmarks/pipeline.py: with ASYM_JOB_STATS naming a file, every `asym`
command appends one JSON line to it when it ends.

- `wall_s`: from the process's start (the kernel's record of it), so the interpreter's start-up and
  every import count;
- `work_s`: the time of the steps themselves, where the command knows it (a training job: its seeds'
  training in this process, from each seed's start or resumption to its train.json), so that
  `wall_s - work_s` is what the job costs before and after its work;
- `max_rss_mb`: the process's peak resident memory.

Without the variable nothing is measured or written.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ENV = "ASYM_JOB_STATS"
_work: list[float] = []


def add_work(seconds: float) -> None:
    """Count `seconds` as the command's own work (none are counted unless the command says)."""
    _work.append(float(seconds))


def process_start() -> float:
    """This process's start, in seconds since the epoch (Linux's /proc; the interpreter's own clock
    elsewhere, which misses its start-up)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])                   # starttime: clock ticks after boot (field 22)
        uptime = float(Path("/proc/uptime").read_text().split()[0])     # to the hundredth, as the ticks
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time() - time.process_time()


def record(command: str, options: dict[str, Any], returncode: int) -> None:
    """Append this command's line to the file ASYM_JOB_STATS names (a no-op without it)."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = {"command": command, **{k: v for k, v in options.items() if v is not None},
            "returncode": returncode, "wall_s": round(time.time() - process_start(), 3),
            "work_s": round(sum(_work), 3) if _work else None,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        with open(path, "a", encoding="utf-8") as f:     # one short line in append mode: whole under concurrent jobs
            f.write(json.dumps(line) + "\n")
    except OSError as exc:           # a measurement never fails the job it measures
        print(f"asym: {ENV}={path}: not written ({exc})", file=sys.stderr)
