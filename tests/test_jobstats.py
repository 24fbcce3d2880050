"""A job's own figures (asym.jobstats), as benchmarks/pipeline.py reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from asym import jobstats

ROOT = jobstats.Path(__file__).resolve().parents[1]


def _asym(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asym", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_a_command_appends_its_wall_time_from_the_process_start_and_its_peak_memory(tmp_path):
    out = tmp_path / "jobs.jsonl"
    env = {**os.environ, jobstats.ENV: str(out)}
    before = time.time()
    assert _asym(["models"], env).returncode == 0
    failed = _asym(["--params", str(tmp_path / "missing.yaml"), "train", "--dataset", "dvlog", "--model", "asym"], env)
    assert failed.returncode == 2, failed.stderr
    elapsed = time.time() - before
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert (first["command"], second["command"]) == ("models", "train")
    assert (second["dataset"], second["model"]) == ("dvlog", "asym")
    assert (first["returncode"], second["returncode"]) == (0, 2)
    # The interpreter's start-up and imports count: more than nothing, less than the runs took.
    assert first["wall_s"] > 0.05 and first["wall_s"] + second["wall_s"] <= elapsed + 0.1
    assert first["work_s"] is None                       # `models` reports no work of its own
    assert first["max_rss_mb"] > 10


def test_the_process_start_is_this_processs():
    start = jobstats.process_start()
    assert start <= time.time()
    assert time.time() - start < 24 * 3600          # this test process, not the machine's boot
