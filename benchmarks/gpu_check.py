"""Check a CUDA machine in one command, offline, in minutes, with the machine's own python3.

    python3 benchmarks/gpu_check.py [--rehearse] [--build-mamba-ssm] [--wheels .gpu-wheels]
                                    [--out benchmarks/results] [--steps NAME ...] [--budget-s 480]

No venv and no network: a GPU node's python3 with its CUDA build of torch and Triton holds the
base (benchmarks/gpu_wheels.py: BASE); everything else comes from the wheels `make gpu-wheels`
collected into .gpu-wheels/, installed first with `pip install --no-index --no-deps --target`.
The steps, each timed and kept in one JSON:

- wheels: the install (skipped when no wheel folder is given and the packages already import);
- build (only with --build-mamba-ssm): causal-conv1d and mamba-ssm from their source
  distributions, for the present GPU's architecture only;
- cuda_tests: tests/gpu (Triton vs the PyTorch path vs the CPU kernel, fp32 and bf16; Bi-Mamba
  padding-exact on the device; a paper-scale ASYM step in bf16 against fp32);
- scan_benchmark: benchmarks/scan.py's GPU rows at batch 16, d_inner 1024, d_state 16, with the
  bytes moved against the device's copy bandwidth;
- ssd_benchmark: benchmarks/ssd.py's GPU rows (our Triton SSD, the chunked PyTorch SSD and mamba-ssm's
  mamba_chunk_scan_combined when it imports) at batch 8, 16 heads of 64 channels, d_state 64,
  after their errors (output and every input's gradient) against the float64 recurrence;
- train_step: benchmarks/train_step.py, every registry model at paper scale, fp32 and bf16, with
  peak GPU memory;
- pipeline: a real paper-scale run of the DAG as README's "Paper scale" runs it, on a synthetic
  D-Vlog of the release's size (961 vlogs of ~600 rows), 2 epochs of a handful of models over two
  seeds, one training job per seed (`train.job: per_seed`), `snakemake --profile
  workflow/profiles/gpu --resources gpu_mem_mb=<the card's MiB>`: training jobs share the GPU by
  the memory each declares (asym.train.gpu_memory), up to the report (no MLflow); GPU utilisation
  and memory sampled by nvidia-smi, beside each job's declared figure;
- projection: the whole paper grid (every model x 2 datasets x the paper seeds x each recipe's
  epochs) from the train-step table, scaled by how much longer the pipeline's handful took than
  that table predicts for it (data feeding, evaluation, several jobs on one GPU), beside README's
  estimate from the CPU's table (benchmarks/paper_grid.py).

`--rehearse` runs every step on the CPU at tiny sizes through the same code (Triton through its
interpreter), so the script is proven before it meets a GPU. Without --rehearse on a machine
with no CUDA GPU it says so and exits 0; otherwise it exits 1 if a step failed.
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
import threading
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
NEEDED_MODULES = ("pydantic", "pooch", "snakemake", "captum")   # what the wheels bring (gpu_wheels.NEEDED)
# The pipeline step's handful: ASYM, two of its ablations and baselines of each kind.
PIPELINE_MODELS = ["asym", "asym-no-mem", "depmamba", "transformer", "bilstm", "mean-mlp"]
# The sizes of each step: on the GPU, and in the CPU rehearsal.
SIZES = {
    "gpu": {"scan": {"batch": 16, "d_inner": 1024, "d_state": 16, "lengths": [1000, 4000]},
            "ssd": {"batch": 8, "heads": 16, "headdim": 64, "d_state": 64, "lengths": [1000, 4000]},
            "train_step": {"frames": 1000, "batch": 16, "scale": "paper", "models": None},
            "pipeline": {"scale": "paper", "n_samples": 961, "seconds": [300, 900], "epochs": 2,
                         "models": PIPELINE_MODELS, "seeds": [0, 1], "precision": "bf16"}},
    "rehearse": {"scan": {"batch": 1, "d_inner": 8, "d_state": 4, "lengths": [40]},
                 "ssd": {"batch": 1, "heads": 2, "headdim": 4, "d_state": 4, "lengths": [20]},
                 "train_step": {"frames": 24, "batch": 2, "scale": "demo", "models": ["asym", "mean-mlp"]},
                 "pipeline": {"scale": "demo", "n_samples": 40, "seconds": [12, 20], "epochs": 1,
                              "models": ["asym", "mean-mlp"], "seeds": [0, 1], "precision": "fp32"}},
}
STEP_TIMEOUT_S = {"wheels": 120, "build": 3600, "cuda_tests": 180, "scan_benchmark": 120, "ssd_benchmark": 120,
                  "train_step": 180, "pipeline": 300}
STEPS = ("wheels", "build", "cuda_tests", "scan_benchmark", "ssd_benchmark", "train_step", "pipeline", "projection")


def no_cuda_message() -> tuple[str, int] | None:
    """None when PyTorch sees a CUDA GPU, else why not and the exit status: 1 where nvidia-smi lists
    a GPU this torch cannot use (a loud failure: the check would otherwise pass having run nothing),
    0 where there is no GPU."""
    import torch

    if torch.cuda.is_available():
        return None
    smi = shutil.which("nvidia-smi")
    out = subprocess.run([smi, "-L"], capture_output=True, text=True) if smi else None
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")] if out and out.returncode == 0 else []
    if gpus:
        why = ("has no CUDA support (a CPU build: `make install DEVICE=cuda` installs requirements-cuda.lock)"
               if torch.version.cuda is None else
               f"(CUDA {torch.version.cuda}) cannot use it (is the driver older than this CUDA needs?)")
        return f"no CUDA GPU usable: nvidia-smi lists {gpus[0]!r}, but PyTorch {torch.__version__} {why}", 1
    return "no CUDA GPU on this machine", 0


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


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT, timeout: float | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
        out, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\n(timed out after {timeout:.0f} s)"
        code = 124
    print(out[-TAIL:], flush=True)
    return {"command": " ".join(map(str, cmd)), "returncode": code, "seconds": round(time.perf_counter() - t0, 1),
            "output_tail": out[-TAIL:]}


# --- wheels -------------------------------------------------------------------------------------
def wheel_files(wheels: Path) -> list[Path]:
    """The pure-Python wheels and this interpreter's compiled ones (gpu_wheels.py's layout)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return sorted((wheels / "any").glob("*.whl")) + sorted((wheels / tag).glob("*.whl"))


def install_wheels(wheels: Path, target: Path) -> dict:
    files = wheel_files(wheels)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if not (wheels / tag).is_dir():
        return {"returncode": 1, "output_tail": f"{wheels} holds no wheels for this Python ({tag}): "
                f"run `make gpu-wheels GPU_PYTHONS='{sys.version_info.major}.{sys.version_info.minor}'` where there is network"}
    if target.exists():
        shutil.rmtree(target)
    step = run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(target),
                *map(str, files)], timeout=STEP_TIMEOUT_S["wheels"])
    step["wheels"] = len(files)
    step["mib"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
    return step


def missing_modules(env: dict) -> list[str]:
    code = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    out = subprocess.run([sys.executable, "-c", code, *NEEDED_MODULES], capture_output=True, text=True, env=env)
    return out.stdout.split()


# --- mamba-ssm, built only when asked -----------------------------------------------------------
def sdist(spec: str, module: str) -> Path:
    found = sorted(ORACLE.glob(f"{module}-*.tar.gz"))
    if not found:
        ORACLE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-binary", ":all:", spec, "-d", str(ORACLE)], check=True,
                       env={**os.environ, "MAMBA_SKIP_CUDA_BUILD": "TRUE", "CAUSAL_CONV1D_SKIP_CUDA_BUILD": "TRUE"})
        found = sorted(ORACLE.glob(f"{module}-*.tar.gz"))
    return found[-1]


def build(specs: dict[str, str], capability: tuple[int, int], workdir: Path, target: Path) -> dict:
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
                       **run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                              "--target", str(target), str(source)], env=env, timeout=STEP_TIMEOUT_S["build"])}
    return steps


# --- the pipeline on the device -----------------------------------------------------------------
class GpuSampler:
    """nvidia-smi's utilisation and memory every half second while the pipeline runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        smi = shutil.which("nvidia-smi")
        if smi:
            self.proc = subprocess.Popen([smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                          "-lms", "500"], stdout=subprocess.PIPE, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((util, mem))

    def stop(self) -> dict:
        if self.proc is None:
            return {"available": False, "why": "no nvidia-smi on this machine"}
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if not self.samples:
            return {"available": False, "why": "nvidia-smi gave no samples"}
        util = [s[0] for s in self.samples]
        mem = [s[1] for s in self.samples]
        busy = [u for u in util if u > 0]
        return {"available": True, "samples": len(util), "utilization_mean_pct": sum(util) / len(util),
                "utilization_mean_busy_pct": sum(busy) / len(busy) if busy else 0.0,
                "utilization_max_pct": max(util), "memory_max_mib": max(mem)}


def pipeline_params(size: dict) -> dict:
    """params.yaml for the pipeline step: D-Vlog only, the release's size, a handful of models,
    `seeds` as one job each, `epochs` of every recipe, the optimism and cross-gender studies off
    (more of the same training), no MLflow writes (the `report` target)."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    scale = size["scale"]
    raw["scale"] = scale
    raw["run"].update(datasets=["dvlog"], models=size["models"])
    raw["run"]["seeds"][scale] = size["seeds"]
    raw["train"]["job"][scale] = "per_seed"           # the paper scale's own choice, the rehearsal's too
    for study in ("optimism", "cross_gender"):        # the studies repeat the same training: off here
        raw[study]["models"][scale] = []
    for recipe in raw["recipes"][scale].values():
        recipe["epochs"] = size["epochs"]
    raw["synth"]["dvlog"].update(n_samples=size["n_samples"], seconds=size["seconds"])
    raw["train"].update(precision=size["precision"], device="auto")
    return raw


def run_pipeline(size: dict, work: Path, env: dict, timeout: float) -> dict:
    import yaml

    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copy(ROOT / "environment.yml", work / "environment.yml")    # every rule's conda environment
    shutil.copytree(ROOT / "workflow", work / "workflow")
    (work / "profiles").symlink_to("workflow/profiles")
    (work / "params.yaml").write_text(yaml.safe_dump(pipeline_params(size), sort_keys=False))
    card_mib = card_memory_mib()
    sampler = GpuSampler()
    step = run([sys.executable, "-m", "snakemake", "report", "--profile", "workflow/profiles/gpu",
                "--resources", f"gpu_mem_mb={card_mib}"], env=env, cwd=work, timeout=timeout)
    step["gpu"] = sampler.stop()
    summaries = sorted(work.glob("runs/dvlog/*/seed*/train.json"))
    runs = [json.loads(p.read_text()) for p in summaries]
    step["models"] = size["models"]
    step["runs"] = [{"model": p.parts[-3], "train_time_s": r.get("train_time_s"), "epoch_time_s": r.get("epoch_time_s"),
                     "device": r.get("device"), "started_at": r.get("started_at"), "finished_at": r.get("finished_at")}
                    for p, r in zip(summaries, runs, strict=True)]
    if runs:
        step["train_span_s"] = max(r["finished_at"] for r in runs) - min(r["started_at"] for r in runs)
    step["reports"] = sorted(p.name for p in (work / "reports").glob("*.md"))
    step["card_memory_mib"] = card_mib
    step["declared_gpu_mem_mb"] = declared_memory(work, size["models"])
    step["train_jobs"] = len(list(work.glob("logs/train/dvlog/*/seed*.log")))     # one log per seed's job
    expected = len(size["models"]) * len(size["seeds"])
    if step["returncode"] == 0 and (len(runs) != expected or step["train_jobs"] != expected):
        step["returncode"] = 1
        step["output_tail"] += (f"\n{len(runs)} training runs and {step['train_jobs']} per-seed jobs for "
                                f"{len(size['models'])} models x {len(size['seeds'])} seeds")
    return step


def card_memory_mib() -> int:
    """The GPU's memory in MiB, which the gpu profile's jobs share; the profile's 80 GB where there
    is no GPU (the rehearsal, whose training jobs declare none)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory // 2 ** 20
    return 80000


def declared_memory(work: Path, models: list[str]) -> dict[str, int]:
    """Each model's `gpu_mem_mb` at the pipeline's scale, as its training jobs declared it."""
    from asym.config import load_params
    from asym.train import gpu_memory

    params = load_params(work / "params.yaml")
    return {m: gpu_memory.gpu_mem_mb(m, "dvlog", params.scale, params) for m in models}


def projection(train_step: dict, pipeline: dict, size: dict) -> dict:
    """Hours of the paper grid: the train-step table's serial estimate of every model x dataset x
    seed x epochs, times the ratio of the pipeline's measured training span to what the same
    table predicts for the pipeline's own runs."""
    rows = (train_step.get("results") or {}).get("rows") or []
    if not rows or "train_span_s" not in pipeline:
        return {"returncode": 1, "output_tail": "needs the train_step rows and a finished pipeline run"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_step import TRAIN_VLOGS, project_grid

    from asym.config import load_params
    from asym.models import registry

    params = load_params(ROOT / "params.yaml").at_scale(size["train_step"]["scale"])
    precision = size["pipeline"]["precision"]
    chosen = [r for r in rows if r["precision"] == precision] or rows
    models = sorted({r["model"] for r in chosen})
    epochs = {m: params.recipe(registry.get(m).recipe).epochs for m in models}
    batch = size["train_step"]["batch"]
    grid_serial_h = project_grid(chosen, len(params.seeds), epochs, batch)
    # What the table predicts for the pipeline's handful: its vlogs, its epochs, one seed each.
    n_train = round(size["pipeline"]["n_samples"] * TRAIN_VLOGS["dvlog"] / 961)
    handful = [dict(r, seconds=r["seconds"] * n_train / TRAIN_VLOGS["dvlog"]) for r in chosen
               if r["dataset"] == "dvlog" and r["model"] in size["pipeline"]["models"]]
    predicted_h = project_grid(handful, 1, {m: size["pipeline"]["epochs"] for m in size["pipeline"]["models"]}, batch)
    ratio = pipeline["train_span_s"] / 3600 / predicted_h if predicted_h > 0 else float("nan")
    from paper_grid import grid

    readme = grid()           # README's estimate: the CPU table's hours for the run's models
    return {"readme_estimate_cpu_hours": readme.hours, "readme_models": len(readme.models),
            "gpu_over_readme_estimate": grid_serial_h * ratio / readme.hours if readme.hours else float("nan"),
            "returncode": 0, "models": len(models), "datasets": 2, "seeds": len(params.seeds),
            "epochs": epochs, "precision": precision, "grid_serial_hours": grid_serial_h,
            "handful_predicted_s": predicted_h * 3600, "handful_measured_span_s": pipeline["train_span_s"],
            "measured_over_predicted": ratio, "grid_hours": grid_serial_h * ratio,
            "basis": "train_step's serial s/step at the table's frames x (steps + a third per validation batch) "
                     "x epochs x seeds, for every model on both datasets' real training folds; times the "
                     "pipeline's measured training span over that same estimate for its own runs"}


# --- main ---------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rehearse", action="store_true", help="every step on the CPU at tiny sizes")
    ap.add_argument("--build-mamba-ssm", action="store_true", help="also build causal-conv1d and mamba-ssm")
    ap.add_argument("--mamba-ssm", default="mamba-ssm==2.3.2.post1", help="pip spec, used if no sdist is cached")
    ap.add_argument("--causal-conv1d", default="causal-conv1d==1.5.3.post1", help="pip spec, as above")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".gpu-wheels", help="where `make gpu-wheels` put them")
    ap.add_argument("--steps", nargs="+", choices=STEPS, help="only these steps (default: all but build)")
    ap.add_argument("--budget-s", type=float, default=480, help="no step starts past this many seconds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    unusable = None if args.rehearse else no_cuda_message()
    if unusable:
        reason, status = unusable
        print(f"{reason}: nothing to check." if status == 0 else f"gpu_check failed: {reason}",
              file=sys.stderr if status else sys.stdout)
        return status
    import torch

    mode = "rehearse" if args.rehearse else "gpu"
    size = SIZES[mode]
    wanted = set(args.steps or STEPS) - ({"build"} if not args.build_mamba_ssm else set())
    if args.rehearse:
        gpu, capability = "rehearsal on the CPU", None
    else:
        capability = torch.cuda.get_device_capability()
        gpu = torch.cuda.get_device_name()
    result = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "gpu": gpu, "mode": mode,
              "compute_capability": "{}.{}".format(*capability) if capability else None,
              "python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
              "triton": _version("triton"), "cpus": os.cpu_count(), "steps": {}}
    steps = result["steps"]
    site = args.wheels / f"site-cp{sys.version_info.major}{sys.version_info.minor}"
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if args.rehearse:
        env.update(ASYM_DEVICE_CHECK="cpu", TRITON_INTERPRET="1")
    with tempfile.TemporaryDirectory(prefix="asym-gpu-check-") as tmp:
        extra = [str(ROOT)]
        if "wheels" in wanted and args.wheels.is_dir():
            steps["wheels"] = install_wheels(args.wheels, site)
            extra.append(str(site))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*extra, os.environ.get("PYTHONPATH")]))
        missing = missing_modules(env)
        if missing:
            steps.setdefault("wheels", {})
            steps["wheels"].update(returncode=1, output_tail=f"{', '.join(missing)} not importable and no wheels "
                                   f"in {args.wheels}: run `make gpu-wheels` where there is network")
            return finish(result, args, t_start)
        sys.path[:0] = extra
        if "build" in wanted and capability:
            build_site = Path(tmp) / "kernels"
            steps["build"] = build({"mamba-ssm": args.mamba_ssm, "causal-conv1d": args.causal_conv1d},
                                   capability, Path(tmp), build_site)
            env["PYTHONPATH"] = os.pathsep.join([str(build_site), env["PYTHONPATH"]])

        def budget(step: str) -> float | None:
            left = args.budget_s - (time.perf_counter() - t_start)
            if left <= 0:
                steps[step] = {"returncode": 1, "output_tail": f"not started: the {args.budget_s:.0f} s budget was spent"}
                return None
            return min(STEP_TIMEOUT_S[step], left)

        if "cuda_tests" in wanted and (limit := budget("cuda_tests")):
            steps["cuda_tests"] = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q",
                                       "tests/gpu"], env=env, timeout=limit)
        if "scan_benchmark" in wanted and (limit := budget("scan_benchmark")):
            s = size["scan"]
            impls = ["asym Triton (GPU)", "asym PyTorch path (GPU)"]
            if "build" in steps or _importable("mamba_ssm", env):
                impls.append("mamba-ssm (CUDA)")
            out = Path(tmp) / "scan.json"
            steps["scan_benchmark"] = run(
                [sys.executable, str(ROOT / "benchmarks" / "scan.py"), "--processes", "1", "--repeats", "3",
                 "--batch", str(s["batch"]), "--d-inner", str(s["d_inner"]), "--d-state", str(s["d_state"]),
                 "--lengths", *map(str, s["lengths"]), "--impls", *impls,
                 "--gpu-device", "cpu" if args.rehearse else "cuda", "--json", str(out)], env=env, timeout=limit)
            _attach(steps["scan_benchmark"], out)
        if "ssd_benchmark" in wanted and (limit := budget("ssd_benchmark")):
            s = size["ssd"]
            impls = ["torch", "triton"] + (["cuda"] if "build" in steps or _importable("mamba_ssm", env) else [])
            out = Path(tmp) / "ssd.json"
            steps["ssd_benchmark"] = run(
                [sys.executable, str(ROOT / "benchmarks" / "ssd.py"), "--check", "--repeats", "3",
                 "--batch", str(s["batch"]), "--heads", str(s["heads"]), "--headdim", str(s["headdim"]),
                 "--d-state", str(s["d_state"]), "--lengths", *map(str, s["lengths"]), "--impls", *impls,
                 "--device", "cpu" if args.rehearse else "cuda", "--json", str(out)], env=env, timeout=limit)
            _attach(steps["ssd_benchmark"], out)
        if "train_step" in wanted and (limit := budget("train_step")):
            s = size["train_step"]
            out = Path(tmp) / "train_step.json"
            steps["train_step"] = run(
                [sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--device",
                 "cpu" if args.rehearse else "cuda", "--in-process", "--precisions", "fp32", "bf16",
                 "--scale", s["scale"], "--frames", str(s["frames"]), "--batch", str(s["batch"]),
                 *(["--models", *s["models"]] if s["models"] else []), "--json", str(out)], env=env, timeout=limit)
            _attach(steps["train_step"], out)
        if "pipeline" in wanted and (limit := budget("pipeline")):
            work = Path(tmp) / "pipeline"
            work.mkdir()
            steps["pipeline"] = run_pipeline(size["pipeline"], work, env, limit)
        if "projection" in wanted and "train_step" in steps and "pipeline" in steps:
            steps["projection"] = projection(steps["train_step"], steps["pipeline"], size)
    return finish(result, args, t_start)


def finish(result: dict, args: argparse.Namespace, t_start: float) -> int:
    steps = result["steps"]
    failed = sorted(k for k, v in _flatten(steps) if v.get("returncode", 0) != 0)
    result["failed_steps"] = failed
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    slug = "rehearsal" if args.rehearse else re.sub(r"[^A-Za-z0-9]+", "-", result["gpu"]).strip("-").lower()
    path = Path(args.out) / f"{dt.date.today().isoformat()}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
    print(f"wrote {path} in {result['total_seconds']:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else "; every step passed"))
    return 1 if failed else 0


def _attach(step: dict, out: Path) -> None:
    if out.exists():
        step["results"] = json.loads(out.read_text())
    elif step["returncode"] == 0:
        step.update(returncode=1, output_tail=step["output_tail"] + f"\nno {out.name} written")


def _importable(module: str, env: dict) -> bool:
    code = f"import importlib.util as u; raise SystemExit(u.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0


def _version(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _flatten(steps: dict, prefix: str = ""):
    for key, value in steps.items():
        if isinstance(value, dict) and "returncode" not in value and "skipped" not in value:
            yield from _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, dict):
            yield f"{prefix}{key}", value


if __name__ == "__main__":
    sys.exit(main())
