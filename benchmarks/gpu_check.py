"""Check a CUDA machine in one command: build the fused kernels for this GPU, run the CUDA tests
and the benchmarks, and write one JSON of results.

    python benchmarks/gpu_check.py [--mamba-ssm SPEC] [--causal-conv1d SPEC] [--skip-build]
                                   [--out benchmarks/results]

1. Builds causal-conv1d and mamba-ssm from their source distributions (.cache/oracle, where
   `make oracle` puts them, else `pip download`) with `pip install --no-build-isolation`, for
   the present GPU only: TORCH_CUDA_ARCH_LIST is its compute capability, and the fixed list of
   about eight architectures in each package's setup.py is cut down to it in an unpacked copy
   (building for one architecture takes a fraction of the time).
2. Runs the tests marked `cuda` (CUDA kernel vs our PyTorch path vs our CPU kernel).
3. Runs benchmarks/scan.py (with mamba-ssm's kernel as a row; one process per row) and
   benchmarks/train_step.py --device cuda (fp32 and bf16).
4. Writes benchmarks/results/<date>-<gpu>.json with every step's outcome and output.

On a machine without a CUDA GPU it says so and exits 0; otherwise it exits 1 if a step failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / ".cache" / "oracle"
TAIL = 4000                      # characters of each step's output kept in the JSON
PACKAGES = (                     # build order: mamba-ssm uses causal-conv1d when present
    ("causal-conv1d", "causal_conv1d", "CAUSAL_CONV1D"),
    ("mamba-ssm", "mamba_ssm", "MAMBA"),
)
GENCODE = re.compile(r'cc_flag\.append\("-gencode"\)\n(?P<indent>[ \t]*)cc_flag\.append\("arch=compute_\d+,code=sm_\d+"\)')


def no_cuda_message() -> str | None:
    """None when PyTorch sees a CUDA GPU, else why not."""
    import torch

    if torch.cuda.is_available():
        return None
    smi = shutil.which("nvidia-smi")
    gpus = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip() if smi else ""
    if gpus:
        return f"no CUDA GPU usable: nvidia-smi lists {gpus.splitlines()[0]!r}, but PyTorch {torch.__version__} " \
               "has no CUDA support (install a CUDA build of torch)"
    return "no CUDA GPU on this machine"


def restrict_architectures(setup_py: Path, capability: tuple[int, int]) -> bool:
    """Rewrite the package's hard-coded `-gencode` pairs into one for `capability` ((9, 0) for
    sm_90): the least indented pair (not inside a CUDA-version branch) becomes ours, every other
    pair a no-op. Returns False (file untouched) when no pair is found."""
    sm = f"{capability[0]}{capability[1]}"
    text = setup_py.read_text()
    pairs = list(GENCODE.finditer(text))
    if not pairs:
        return False
    keep = min(pairs, key=lambda m: len(m.group("indent")))
    ours = f'cc_flag.append("-gencode")\n{keep.group("indent")}cc_flag.append("arch=compute_{sm},code=sm_{sm}")'

    def replace(m: re.Match) -> str:
        return ours if m.start() == keep.start() else f'pass\n{m.group("indent")}pass'

    setup_py.write_text(GENCODE.sub(replace, text))
    return True


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    out = proc.stdout + proc.stderr
    print(out[-TAIL:], flush=True)
    return {"command": " ".join(cmd), "returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "output_tail": out[-TAIL:]}


def sdist(spec: str, module: str) -> Path:
    found = sorted(ORACLE.glob(f"{module}-*.tar.gz"))
    if not found:
        ORACLE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-binary", ":all:", spec, "-d", str(ORACLE)], check=True,
                       env={**os.environ, "MAMBA_SKIP_CUDA_BUILD": "TRUE", "CAUSAL_CONV1D_SKIP_CUDA_BUILD": "TRUE"})
        found = sorted(ORACLE.glob(f"{module}-*.tar.gz"))
    return found[-1]


def build(specs: dict[str, str], capability: tuple[int, int], workdir: Path) -> dict:
    steps = {}
    for name, module, env_prefix in PACKAGES:
        try:
            archive = sdist(specs[name], module)
        except subprocess.CalledProcessError as e:
            steps[name] = {"returncode": e.returncode, "output_tail": f"no source distribution of {specs[name]}"}
            continue
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
        source = workdir / archive.name.removesuffix(".tar.gz")
        restricted = restrict_architectures(source / "setup.py", capability)
        env = {**os.environ, "TORCH_CUDA_ARCH_LIST": "{}.{}".format(*capability),
               f"{env_prefix}_FORCE_BUILD": "TRUE", "MAX_JOBS": str(os.cpu_count() or 1)}
        print("building {} for sm_{}{}{}".format(archive.name, *capability,
              "" if restricted else " (no -gencode list found in its setup.py: all of its architectures)"))
        steps[name] = {"sdist": archive.name, "architectures_restricted": restricted,
                       **run([sys.executable, "-m", "pip", "install", "--no-build-isolation", str(source)], env=env)}
    return steps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-ssm", default="mamba-ssm==2.3.2.post1", help="pip spec, used if no sdist is cached")
    ap.add_argument("--causal-conv1d", default="causal-conv1d==1.5.3.post1", help="pip spec, as above")
    ap.add_argument("--skip-build", action="store_true", help="use the kernels already installed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    reason = no_cuda_message()
    if reason:
        print(f"{reason}: nothing to check.")
        return 0
    import torch

    major, minor = torch.cuda.get_device_capability()
    gpu = torch.cuda.get_device_name()
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "gpu": gpu,
        "compute_capability": f"{major}.{minor}", "torch": torch.__version__, "cuda": torch.version.cuda,
        "steps": {},
    }
    steps = result["steps"]
    if not args.skip_build:
        with tempfile.TemporaryDirectory(prefix="asym-kernels-") as work:
            steps["build"] = build({"mamba-ssm": args.mamba_ssm, "causal-conv1d": args.causal_conv1d},
                                   (major, minor), Path(work))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    steps["cuda_tests"] = run([sys.executable, "-m", "pytest", "-m", "cuda", "-rA", "-q", "tests"], env=env)
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in (("scan_benchmark", ["scan.py", "--processes", "1"]),
                          ("train_step", ["train_step.py", "--device", "cuda"])):
            out = Path(tmp) / f"{name}.json"
            steps[name] = run([sys.executable, str(ROOT / "benchmarks" / cmd[0]), *cmd[1:], "--json", str(out)], env=env)
            if out.exists():
                steps[name]["results"] = json.loads(out.read_text())
    failed = sorted(k for k, v in _flatten(steps) if v.get("returncode", 0) != 0)
    result["failed_steps"] = failed
    sys.path.insert(0, str(ROOT))
    from asym.io import write_json

    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    path = Path(args.out) / f"{dt.date.today().isoformat()}-{slug}.json"
    write_json(path, result)
    print(f"wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else "; every step passed"))
    return 1 if failed else 0


def _flatten(steps: dict, prefix: str = ""):
    for key, value in steps.items():
        if isinstance(value, dict) and "returncode" not in value and "skipped" not in value:
            yield from _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, dict):
            yield f"{prefix}{key}", value


if __name__ == "__main__":
    sys.exit(main())
