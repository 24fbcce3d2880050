"""The SLURM profile against a real one-node SLURM cluster (slurmctld, slurmd, slurmdbd, MariaDB).

The pipeline runs with `snakemake --profile workflow/profiles/slurm` and the real executor plugin,
overriding only the partition and account (and the GPU request, as a CPU-only partition does);
`sacct` must then account for every training job, and the tables must equal those of the same
config run locally (tests.workflow.conftest's `snakemake_project`, from the same data stages).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from asym.report.runs import FLOORS
from tests.workflow import slurm_cluster
from tests.workflow.conftest import TINY
from tests.workflow.slurm_cluster import SlurmCluster
from tests.workflow.slurm_profile import cpu_only_override
from tests.workflow.slurm_profile import load as profile

# The first test also starts the cluster and makes the SLURM run (and this worker's local one); each
# wait below has a shorter timeout of its own that fails with the logs.
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm"), pytest.mark.timeout(2400)]

BIN = Path(sys.executable).parent
RUN_TIMEOUT_S = 600
TIMING = re.compile(r"time|_s$")   # wall-clock columns differ between any two runs


def job_counts(text: str) -> dict[str, int]:
    """Snakemake's "Job stats" table, as printed before the first job runs."""
    counts: dict[str, int] = {}
    for line in text.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _snakemake(args: list[str], cwd: Path, env: dict[str, str], logs: Callable[[], str] = str) -> str:
    """Snakemake's output; a failure or a timeout fails the test with it and with `logs()`."""
    try:
        proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        pytest.fail(f"snakemake {' '.join(args)} still running after {RUN_TIMEOUT_S} s:\n{out[-4000:]}\n{logs()}")
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{out[-4000:]}\n{logs()}")
    return out


def _slurm_logs(root: Path, lines: int = 30) -> str:
    parts = []
    for log in sorted((root / ".snakemake" / "slurm_logs").rglob("*.log")):
        parts.append(f"--- {log.relative_to(root)} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_cluster.unavailable_reason()
    if reason:
        pytest.skip(reason)
    if slurm_cluster.missing_binaries():
        slurm_cluster.install()
    sizes = [res for res in profile()["set-resources"].values()]
    # Room for two of the profile's largest jobs at once, whatever this machine has.
    cpus = 2 * max([int(r.get("cpus_per_task", 1)) for r in sizes] + [os.cpu_count() or 1])
    memory = 2 * max([int(r.get("mem_mb", 0)) for r in sizes] + [8000])
    with SlurmCluster(cpus=cpus, memory_mb=memory) as c:
        yield c


@pytest.fixture(scope="module")
def slurm_run(cluster, data_stages, tmp_path_factory):
    """The tiny config of the local runs (tests.workflow.conftest.TINY) from its data stages, as
    Snakemake recorded them there: training, evaluation, the report and its studies run by SLURM."""
    root = tmp_path_factory.mktemp("slurm") / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    args = ["--profile", "workflow/profiles/slurm",
            "--default-resources", f"slurm_partition={cluster.partition}", f"slurm_account={cluster.account}",
            *cpu_only_override(profile()),
            # The plugin's first status check comes 40 s after a submission by default, and the next
            # ones 10 s apart: each of the DAG's waves would wait that long for jobs of a few seconds.
            "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]
    start = time.monotonic()
    out = _snakemake(args, root, {**cluster.env(), **_env()}, lambda: f"{_slurm_logs(root)}\n{cluster.logs()}")
    elapsed = time.monotonic() - start
    yield root, out, elapsed
    shutil.rmtree(root, ignore_errors=True)


def test_every_training_job_ran_as_a_slurm_job(cluster, slurm_run):
    root, out, elapsed = slurm_run
    planned = job_counts(out)
    jobs = cluster.jobs()
    table = "\n".join(map(str, jobs)) + "\n" + cluster.logs()
    train = _train_jobs(jobs)
    assert planned.get("train", 0) > 0 and "fetch" not in planned, out[-3000:]     # the data stages: recorded
    assert len(train) == planned["train"], table
    assert len({j["Comment"] for j in train}) == len(train), table        # one SLURM job per training job
    # Every job but the target rule `all` (which Snakemake runs itself) went through sbatch.
    assert len(jobs) == sum(planned.values()) - planned.get("all", 0), table
    for job in jobs:
        assert job["State"] == "COMPLETED" and job["ExitCode"] == "0:0", table
        assert (job["Partition"], job["Account"]) == (cluster.partition, cluster.account), table
        assert Path(job["WorkDir"]).resolve() == root.resolve(), table
    print(f"sacct: {len(train)} training jobs of {len(jobs)} SLURM jobs; snakemake took {elapsed:.0f} s")


def test_training_jobs_got_the_profiles_sizes_and_no_gpu(cluster, slurm_run):
    wanted = profile()["set-resources"]["train"]
    jobs = _train_jobs(cluster.jobs())
    assert jobs
    for job in jobs:
        tres = dict(item.split("=", 1) for item in job["ReqTRES"].split(","))
        assert tres["cpu"] == str(wanted["cpus_per_task"]), (job, cluster.logs())
        assert tres["mem"] == f"{wanted['mem_mb']}M", (job, cluster.logs())
        assert not any(key.startswith("gres/") for key in tres), (job, cluster.logs())
        assert _minutes(job["Timelimit"]) == wanted["runtime"], (job, cluster.logs())


def _train_jobs(jobs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The plugin's job comment names the rule (and the wildcards) of each SLURM job."""
    return [j for j in jobs if re.fullmatch(r"rule_train(_wildcards_.*)?", j["Comment"])]


def _minutes(limit: str) -> int:
    """sacct's [days-]hours:minutes:seconds as minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, _seconds = (int(x) for x in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes


def test_tables_match_a_local_run(slurm_run, snakemake_project):
    root, _, _ = slurm_run
    slurm = pd.read_csv(root / "reports" / "summary.csv")
    local = pd.read_csv(snakemake_project / "reports" / "summary.csv")
    timing = [c for c in local.columns if TIMING.search(c)]
    assert timing, "no timing column left out: the pattern no longer matches the table"
    slurm, local = slurm.drop(columns=timing), local.drop(columns=timing)
    assert list(slurm.columns) == list(local.columns)
    assert len(slurm) == len(local) == 3 * (len(TINY["models"]) + len(FLOORS))    # models and floors, two datasets and macro
    pd.testing.assert_frame_equal(slurm, local, check_exact=False, rtol=1e-9, atol=1e-12)
