"""Mutation testing of the code whose bugs change results: kill rate per module.

    python benchmarks/mutants.py [MODULE ...] [--workers 2] [--survivors] [--report-only]

Runs mutmut (configured in pyproject.toml: files, fast tests) module by module over the
functions in SCOPE, then prints killed / total per module and lists every survivor. A mutant
counts as killed when a test fails on it or it times out; a mutant no test reaches counts as
surviving. `--survivors` re-tests only the mutants that were not killed last time (after a test
was added); `--report-only` runs nothing and summarises the last results. Results live in
./mutants (mutmut's own folder): `mutmut show NAME` prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Function-name globs of mutmut's mutant names (module.x_function or module.xǁClassǁmethod).
# Whole modules, except the training modules (only what chooses and feeds: the z-score
# normaliser, cropping, prediction, selection, checkpoint), the report's aggregation (its maths,
# and in asym.report.runs the reading of the runs; not file writing or plots) and parquet.py (not
# the Markdown wording of the dataset card).
SCOPE: dict[str, list[str]] = {
    "asym.metrics": ["*"],
    "asym.report.stats": ["*"],
    "asym.report.aggregate": ["x_floors", "x__point", "x_aggregate", "x__macro", "x__combine", "x__paired_tests",
                              "x_fairness"],
    "asym.report.runs": ["x_load_dataset_runs"],
    "asym.data.splits": ["*"],
    "asym.data.validate": ["*"],
    "asym.data.convert": ["*"],
    "asym.data.dvlog": ["*"],
    "asym.data.lmvd": ["*"],
    "asym.data.parquet": ["x__sequence_column", "x_write_samples", "xǁFeatureTableǁ*", "x__unpack", "x_read_samples",
                          "x_dataset_card"],
    "asym.train.normalize": ["xǁNormalizerǁ*"],
    "asym.train.feed": ["x_random_window", "x_offline_crops", "xǁTrainFeedǁ*", "x_predict"],
    "asym.train.loop": ["x_validation_score", "x_fit"],
    "asym.train.job": ["x_save_run", "x_load_checkpoint"],
}
# The fast tests that judge each module's mutants (tests/mutmut_scope.py keeps only these).
TESTS: dict[str, list[str]] = {
    "asym.metrics": ["tests/test_metrics.py", "tests/report/test_stats.py"],
    "asym.report.stats": ["tests/report/test_stats.py", "tests/report/test_report.py"],
    "asym.report.aggregate": ["tests/report/test_report.py"],
    "asym.report.runs": ["tests/report/test_report.py"],
    "asym.data.splits": ["tests/data/test_splits.py"],
    "asym.data.validate": ["tests/data/test_convert.py", "tests/data/test_dvlog.py", "tests/data/test_lmvd.py"],
    "asym.data.convert": ["tests/data/test_convert.py", "tests/data/test_dvlog.py", "tests/data/test_lmvd.py",
                          "tests/data/test_parquet.py"],
    "asym.data.dvlog": ["tests/data/test_dvlog.py", "tests/data/test_convert.py"],
    "asym.data.lmvd": ["tests/data/test_lmvd.py", "tests/data/test_convert.py"],
    "asym.data.parquet": ["tests/data/test_parquet.py", "tests/data/test_convert.py", "tests/data/test_splits.py"],
    "asym.train.normalize": ["tests/train/test_train.py"],
    "asym.train.feed": ["tests/train/test_train.py"],
    "asym.train.loop": ["tests/train/test_train.py"],
    "asym.train.job": ["tests/train/test_train.py"],
}
KILLED = {"killed", "timeout", "caught by type check"}
LINE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def patterns(module: str) -> list[str]:
    return [f"{module}.{f}__mutmut_*" for f in SCOPE[module]]


def mutmut() -> str:
    exe = shutil.which("mutmut") or str(Path(sys.executable).with_name("mutmut"))
    if not Path(exe).exists():
        sys.exit("mutmut is not installed: pip install -e '.[test]'")
    return exe


def results() -> dict[str, str]:
    """Every mutant's last status, from `mutmut results --all true`."""
    out = subprocess.run([mutmut(), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {m[1]: m[2].strip() for m in map(LINE.match, out.stdout.splitlines()) if m}


def in_scope(module: str, status: dict[str, str]) -> dict[str, str]:
    pats = patterns(module)
    return {k: v for k, v in status.items() if any(fnmatch.fnmatchcase(k, p) for p in pats)}


def run_module(module: str, workers: int, survivors_only: bool) -> float:
    names = patterns(module)
    if survivors_only:
        names = sorted(k for k, v in in_scope(module, results()).items() if v not in KILLED)
        if not names:
            return 0.0
    log = ROOT / "mutants" / f"{module}.log"
    log.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run([mutmut(), "run", "--max-children", str(workers), *names], cwd=ROOT, stdout=fh,
                              stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": "", "ASYM_MUTANT_TESTS": " ".join(TESTS[module]),
                                   # mutmut forks each mutant's test process from one that has run
                                   # the scan kernel; Numba's GNU OpenMP layer then ends the fork with
                                   # SIGTERM ("fork() called from a process already using GNU OpenMP")
                                   "NUMBA_THREADING_LAYER": "forksafe"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"mutmut failed on {module} (exit {proc.returncode}); its output is in {log}", file=sys.stderr)
    return seconds


def summarise(modules: list[str], seconds: dict[str, float]) -> bool:
    status = results()
    rows, survivors, complete = [], [], True
    for module in modules:
        mine = in_scope(module, status)
        checked = {k: v for k, v in mine.items() if v != "not checked"}
        complete &= len(checked) == len(mine)
        killed = sum(v in KILLED for v in checked.values())
        rate = 100 * killed / len(checked) if checked else float("nan")
        rows.append((module, killed, len(checked), len(mine), rate, seconds.get(module)))
        survivors += [(k, v) for k, v in sorted(mine.items()) if v not in KILLED]
    print(f"\n{'module':<20} {'killed':>7} {'checked':>8} {'mutants':>8} {'kill %':>7} {'time':>8}")
    for module, killed, checked, total, rate, sec in rows:
        t = f"{sec / 60:.1f} min" if sec is not None else ""
        print(f"{module:<20} {killed:>7} {checked:>8} {total:>8} {rate:>6.1f}% {t:>8}")
    k, c = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all':<20} {k:>7} {c:>8} {sum(r[3] for r in rows):>8} {100 * k / max(c, 1):>6.1f}%"
          f" {sum(seconds.values()) / 60:>4.1f} min" if seconds else "")
    if survivors:
        print(f"\nnot killed ({len(survivors)}; `mutmut show NAME` prints the diff):")
        for name, st in survivors:
            print(f"  {name}: {st}")
    return complete


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"default: all of {', '.join(SCOPE)}")
    ap.add_argument("--workers", type=int, default=2, help="parallel mutmut workers (default 2)")
    ap.add_argument("--survivors", action="store_true", help="re-test only the mutants not killed last time")
    ap.add_argument("--report-only", action="store_true", help="summarise the last results, run nothing")
    args = ap.parse_args()
    unknown = [m for m in args.modules if m not in SCOPE]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; known: {list(SCOPE)}")
    modules = args.modules or list(SCOPE)
    seconds: dict[str, float] = {}
    if not args.report_only:
        for module in modules:
            print(f"mutmut: {module} ...", flush=True)
            seconds[module] = run_module(module, args.workers, args.survivors)
    if not summarise(modules, seconds):
        print("\nsome mutants are not checked yet: run without --report-only", file=sys.stderr)


if __name__ == "__main__":
    main()
