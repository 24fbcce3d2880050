"""Collect, where there is network, the wheels `benchmarks/gpu_check.py` needs on a GPU node that
has none: everything the check imports beyond what a CUDA image already holds (BASE).

    python benchmarks/gpu_wheels.py [--dest .gpu-wheels] [--pythons 3.11 3.12] [--limit-mib 48]

The versions are this environment's (the ones `make` installed), so the node runs the code
against the releases the project is tested with. Pure-Python wheels go to `<dest>/any/`, the
compiled ones to `<dest>/cp<XY>/` for each target Python (the node's own `python3` may not be
this one); `gpu_check.py` installs `any/` and its interpreter's folder with
`pip install --no-index --no-deps --target`. Fails when the total passes `--limit-mib`.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a typical CUDA image has and the check may assume (their dependencies come with them).
BASE = ("torch", "triton", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "matplotlib", "numba",
        "pyyaml", "tqdm", "filelock", "jinja2", "tabulate", "einops", "packaging", "requests", "pytest",
        "pytest-xdist", "pytest-timeout")
# What the check imports beyond the base: the config schema, the fetch step, the DAG's runner and
# the report's HTML pages, and the explanations (Captum).
NEEDED = ("pydantic", "pooch", "snakemake", "markdown-it-py", "captum")
PLATFORM = "manylinux_2_28_x86_64"
LIMIT_MIB = 48


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_closure(names: tuple[str, ...]) -> set[str]:
    """Every distribution installed here that `names` need, themselves included (markers that
    do not hold here are skipped: the targets are Linux CPythons like this one)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonical(req.name))
    return seen


def pinned(names: set[str]) -> list[str]:
    return sorted(f"{md.distribution(n).metadata['Name']}=={md.version(n)}" for n in names)


def wheels_here(pins: list[str], into: Path) -> None:
    """This interpreter's wheels of `pins`: a release's own wheel, or one built from its source
    distribution where it has none (a few pure-Python ones)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(into), *pins], check=True)


def wheels_for(pins: list[str], python: str, into: Path) -> None:
    """Another CPython's binary wheels of `pins` (only compiled ones differ between versions)."""
    major, minor = python.split(".")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--python-version", python, "--implementation", "cp", "--abi", f"cp{major}{minor}",
                    "--abi", "abi3", "--abi", "none", "--platform", PLATFORM, "--platform", "manylinux2014_x86_64",
                    "--platform", "any", "-d", str(into), *pins], check=True)


def project_of(wheel: Path) -> str:
    return canonical(wheel.name.split("-")[0])


def collect(dest: Path, pythons: list[str]) -> dict[str, int]:
    base = requirements_closure(BASE)
    pins = pinned(requirements_closure(NEEDED) - base)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "any").mkdir(parents=True)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "here"
        wheels_here(pins, local)
        compiled = {project_of(w): w for w in local.glob("*.whl") if not w.name.endswith("-none-any.whl")}
        for wheel in local.glob("*.whl"):
            if project_of(wheel) not in compiled:
                shutil.copy2(wheel, dest / "any" / wheel.name)
        for python in pythons:
            folder = dest / f"cp{python.replace('.', '')}"
            folder.mkdir()
            if python == here:
                for wheel in compiled.values():
                    shutil.copy2(wheel, folder / wheel.name)
            else:
                wheels_for([p for p in pins if canonical(p.split("==")[0]) in compiled], python, folder)
    (dest / "requirements.txt").write_text("\n".join(pins) + "\n")
    return {p.relative_to(dest).as_posix(): p.stat().st_size for p in sorted(dest.rglob("*.whl"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".gpu-wheels")
    ap.add_argument("--pythons", nargs="+", default=[f"{sys.version_info.major}.{sys.version_info.minor}", "3.12"])
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    args = ap.parse_args()
    pythons = list(dict.fromkeys(args.pythons))
    sizes = collect(args.dest, pythons)
    total = sum(sizes.values()) / 2**20
    for name, size in sizes.items():
        print(f"{size / 2**20:7.2f} MiB  {name}")
    print(f"{len(sizes)} wheels, {total:.1f} MiB in {args.dest} for Python {', '.join(pythons)} "
          f"(limit {args.limit_mib:g} MiB)")
    if total > args.limit_mib:
        print(f"too large: {total:.1f} MiB > {args.limit_mib:g} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
