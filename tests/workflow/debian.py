"""Debian packages for tests that need real system software (a browser, a SLURM cluster).

Standard library only, so `.ci/run` can import it with the system Python before any venv exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable


def missing(binaries: Iterable[str]) -> list[str]:
    return [b for b in binaries if shutil.which(b) is None]


def apt_install(packages: Iterable[str], binaries: Iterable[str], timeout_s: int = 900) -> None:
    """apt-get install `packages` (refreshing the package lists once if the first try fails) and
    check that `binaries` are then on PATH; RuntimeError with apt's output otherwise."""
    packages, binaries = tuple(packages), tuple(binaries)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=timeout_s)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or missing(binaries):
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}), missing {missing(binaries)}:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
