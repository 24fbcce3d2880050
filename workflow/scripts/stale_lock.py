"""Remove Snakemake's lock when no Snakemake is alive in this folder (a killed run leaves it).

    python workflow/scripts/stale_lock.py [folder]

Snakemake refuses to start while `.snakemake/locks/` holds a lock ("Directory cannot be locked");
after a kill -9 nothing removes it. A live Snakemake of this folder is never unlocked under.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def live_snakemake(folder: Path) -> list[int]:
    """Pids of Snakemake processes whose working directory is `folder` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if "snakemake" in cmd and "stale_lock" not in cmd and cwd.resolve() == folder.resolve():
            pids.append(int(proc.name))
    return pids


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    locks = folder / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return 0
    alive = live_snakemake(folder)
    if alive:
        print(f"Snakemake is running in {folder.resolve()} (pid {alive[0]}): its lock is kept")
        return 0
    print("A killed run left Snakemake's lock behind; unlocking (snakemake --unlock)")
    snakemake = Path(sys.executable).parent / "snakemake"
    return subprocess.run([str(snakemake), "--unlock", "--cores", "1"], cwd=folder).returncode


if __name__ == "__main__":
    sys.exit(main())
