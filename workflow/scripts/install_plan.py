"""Which lock `make` installs into the venv: the CPU one or the CUDA one, and never a CPU torch
over a GPU build of torch that is already there.

    python workflow/scripts/install_plan.py --venv .venv [--device auto|cpu|cuda] [--dry-run]

`auto` (make's default) takes the CUDA lock where `nvidia-smi -L` lists a GPU, the CPU lock
elsewhere. A venv that already holds a GPU build of torch keeps it whatever the machine: a venv
shared by a cluster's login node (no GPU) and its GPU nodes is the case this guards. pip counts
`2.13.0+cpu` as satisfying `torch==2.13.0`, so a CPU torch is uninstalled before the CUDA lock
goes in. It exits 2 with the reason, installing nothing, where the only way on would replace a GPU
torch (`--device cpu`) or keep one of another version than the lock's. Standard library only: it
runs in a venv where nothing is installed yet.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPU_LOCK = ROOT / "requirements.lock"
CUDA_LOCK = ROOT / "requirements-cuda.lock"
DEVICES = ("auto", "cpu", "cuda")
# What a GPU build of torch brings with it: left out of the CUDA lock when the venv's own torch stays.
TORCH_COMPANIONS = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


class Refusal(Exception):
    """Installing would replace a GPU build of torch, or keep one the lock does not name."""


@dataclass(frozen=True)
class Torch:
    version: str                 # as its dist-info says: 2.13.0, 2.13.0+cpu, 2.13.0+cu124
    build: str                   # cpu | cuda | rocm

    @property
    def public(self) -> str:
        return self.version.split("+")[0]


@dataclass
class Plan:
    lock: Path                   # the lock the requirements come from
    build: str                   # the torch build it leaves in the venv: cpu | cuda | rocm
    message: str
    uninstall: list[str] = field(default_factory=list)
    keep: bool = False           # the venv's torch and its companions are kept, the rest installed

    def requirements(self) -> str:
        """The lock's text, less torch and its GPU companions where the venv's torch stays."""
        text = self.lock.read_text()
        if not self.keep:
            return text
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
        return "\n".join(b for b in blocks
                         if not ((m := PIN.match(b)) and TORCH_COMPANIONS.match(_canonical(m["name"]))))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed_gpus(smi: str | None = None) -> list[str]:
    """The GPUs `nvidia-smi -L` lists (none where it is missing or fails: no driver, no device)."""
    smi = smi or shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if out.returncode == 0 and line.startswith("GPU ")]


def build_of(version: str, requires: list[str]) -> str:
    """cpu, cuda or rocm, from the local label (+cpu, +cu124, +rocm6.2); a wheel without one is
    PyPI's, a CUDA build on Linux where it requires NVIDIA's libraries."""
    local = version.partition("+")[2]
    if local:
        return "cuda" if local.startswith("cu") else "rocm" if local.startswith("rocm") else "cpu"
    return "cuda" if any(re.match(r"(nvidia-|cuda-)", r.lower()) for r in requires) else "cpu"


def installed_torch(venv: Path) -> Torch | None:
    """The torch in the venv's site-packages, read from its dist-info (torch is not imported)."""
    for metadata in sorted(venv.glob("lib*/python*/site-packages/torch-*.dist-info/METADATA")):
        fields = [line.partition(": ") for line in metadata.read_text(errors="replace").splitlines()]
        version = next((v for k, _, v in fields if k == "Version"), None)
        if version:
            return Torch(version, build_of(version, [v for k, _, v in fields if k == "Requires-Dist"]))
    return None


def locked_torch(lock: Path) -> str:
    for line in lock.read_text().splitlines():
        m = PIN.match(line)
        if m and _canonical(m["name"]) == "torch":
            return m["version"]
    raise ValueError(f"{lock}: no torch pin (regenerate it with `make lock`)")


def plan(device: str, gpus: list[str], torch: Torch | None, venv: Path,
         cpu_lock: Path = CPU_LOCK, cuda_lock: Path = CUDA_LOCK) -> Plan:
    """What to install, and why; Refusal where any install would lose or mismatch a GPU torch."""
    if device not in DEVICES:
        raise ValueError(f"DEVICE={device}: not one of {', '.join(DEVICES)}")
    want = device if device != "auto" else ("cuda" if gpus else "cpu")
    why = {"cuda": "DEVICE=cuda" if device == "cuda" else f"nvidia-smi lists {gpus[0]!r}" if gpus else "",
           "cpu": "DEVICE=cpu" if device == "cpu" else "no GPU listed by nvidia-smi"}[want]
    if torch is None or torch.build == "cpu":
        lock = cuda_lock if want == "cuda" else cpu_lock
        uninstall = ["torch"] if torch is not None and want == "cuda" else []
        return Plan(lock, want, f"{why}: installing {lock.name} (torch {locked_torch(lock)})"
                    + (f", replacing the venv's torch {torch.version}" if uninstall else ""), uninstall)
    held = f"{venv} holds torch {torch.version}, a {torch.build.upper()} build"
    if device == "cpu":
        raise Refusal(f"{held}: DEVICE=cpu would replace it with the CPU wheel of {cpu_lock.name}. "
                      f"Use another venv for the CPU (or remove {venv}), or run make without DEVICE=cpu "
                      "to keep it.")
    wanted = locked_torch(cuda_lock)
    if torch.public != wanted.split("+")[0]:
        raise Refusal(f"{held}, but the project pins torch {wanted}: install torch {wanted}'s "
                      f"{torch.build.upper()} build into {venv} (or remove {venv} to install {cuda_lock.name}).")
    if torch.version == wanted:
        return Plan(cuda_lock, torch.build, f"{held} ({why}): installing {cuda_lock.name}, the same torch")
    return Plan(cuda_lock, torch.build, f"{held} ({why}): keeping it, installing the rest of {cuda_lock.name}",
                keep=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv")
    ap.add_argument("--device", default="auto", choices=DEVICES)
    ap.add_argument("--cpu-lock", type=Path, default=CPU_LOCK)
    ap.add_argument("--cuda-lock", type=Path, default=CUDA_LOCK)
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the pip commands, run nothing")
    args = ap.parse_args(argv)
    try:
        p = plan(args.device, listed_gpus(), installed_torch(args.venv), args.venv, args.cpu_lock, args.cuda_lock)
    except Refusal as refusal:
        print(f"install refused: {refusal}", file=sys.stderr)
        return 2
    print(f"install plan: {p.message}", flush=True)
    requirements = args.venv / "install-requirements.txt"
    pip = [str(args.venv / "bin" / "python"), "-m", "pip"]
    commands = ([[*pip, "uninstall", "--quiet", "--yes", *p.uninstall]] if p.uninstall else []) + [
        [*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(requirements)]]
    if args.dry_run:
        for cmd in commands:
            print(" ".join(cmd))
        return 0
    requirements.write_text(p.requirements())
    for cmd in commands:
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
