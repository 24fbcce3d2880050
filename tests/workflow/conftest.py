"""What the end-to-end tests share: a tiny project whose data stages have run once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import make_project
from tests.workflow import headless_chromium

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true",
       "GIT_AUTHOR_NAME": "asym-test", "GIT_AUTHOR_EMAIL": "test@localhost",
       "GIT_COMMITTER_NAME": "asym-test", "GIT_COMMITTER_EMAIL": "test@localhost"}
TINY = {"models": ["mean-mlp", "bilstm"], "seeds": [0, 1], "epochs": 8}


def run(cmd: list[str], cwd: Path, timeout: int = 900, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def snakemake(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = run([str(BIN / "snakemake"), "--cores", "2", *args], root, check=check, env=env)
    return proc.stdout + proc.stderr


def job_counts(text: str) -> dict[str, int]:
    """Snakemake's "Job stats" table."""
    counts: dict[str, int] = {}
    for line in text.split("Job stats:")[-1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def data_stages(tmp_path_factory) -> Path:
    """fetch, convert and split of the tiny config, run once by Snakemake for every test here."""
    root = make_project(tmp_path_factory.mktemp("data-stages"), **TINY)
    snakemake(root, "all", "--until", "split")
    return root


def copy_data_stages(src: Path, dest: Path) -> None:
    shutil.copytree(src / "data", dest / "data", symlinks=True)


@pytest.fixture(scope="session")
def snakemake_project(data_stages, tmp_path_factory) -> Path:
    """The tiny config run to the end by `snakemake --cores 2 all`, uninterrupted."""
    root = tmp_path_factory.mktemp("snake") / "p"
    shutil.copytree(data_stages, root, symlinks=True)       # with Snakemake's records of the data stages
    out = snakemake(root, "all")
    assert job_counts(out).get("fetch") is None, "the shared data stages were run again"
    return root


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's chromium and chromedriver, installed where missing; a skip only without root or apt."""
    reason = headless_chromium.unavailable_reason()
    if reason:
        pytest.skip(reason)
    if headless_chromium.missing_binaries():
        headless_chromium.install()
