"""Write environment.yml, the conda environment of every rule, from requirements.lock.

    python workflow/scripts/conda_env.py [--check]

The environment pins exactly the lock's packages (`make lock` runs this after regenerating the
lock; `--check` fails when the two disagree), so `snakemake --software-deployment-method conda`
runs each rule on the same versions as `make`. Hashes stay in the lock: conda hands the pip list
to one `pip install`, and the pins alone name the same wheels. The rules run asym itself from the
checkout (asym.dag.snakefile), so the package is not in the environment.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
ENV = ROOT / "environment.yml"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"         # where the lock's `torch==…+cpu` is published
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*==\S+) \\$")
PYTHON = re.compile(r"--python-version (\S+)")           # in the lock's header: the command that made it


def render(lock: str) -> str:
    pins = [m.group(1) for line in lock.splitlines() if (m := PIN.match(line))]
    python = PYTHON.search(lock)
    if python is None:
        raise SystemExit(f"{LOCK.name}: its header names no --python-version")
    lines = ["# Generated from requirements.lock by workflow/scripts/conda_env.py (`make lock`): do not edit.",
             "name: asym", "channels:", "  - conda-forge", "dependencies:", f"  - python={python.group(1)}", "  - pip",
             "  - pip:", f"      - --extra-index-url {TORCH_INDEX}", *(f"      - {p}" for p in pins)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(LOCK.read_text(encoding="utf-8"))
    if "--check" in argv:
        if not ENV.is_file() or ENV.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{ENV.relative_to(ROOT)} disagrees with {LOCK.name}: run `make lock`\n")
            return 1
        return 0
    ENV.parent.mkdir(parents=True, exist_ok=True)
    ENV.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
