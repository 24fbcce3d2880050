"""benchmarks/gpu_check.py: the no-GPU answer, the architecture cut applied to the kernels' real
setup.py files, and the whole check rehearsed on the CPU in an environment that holds only the
base a CUDA image has and the wheels `make gpu-wheels` collected."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from tests.conftest import ORACLE_DIR, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import SIZES, restrict_architectures  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_cuda_it_says_so_exits_0_and_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU" in proc.stdout
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("pattern", ["mamba_ssm-*.tar.gz", "causal_conv1d-*.tar.gz"])
def test_setup_py_is_cut_to_the_present_architecture(tmp_path, pattern):
    tars = sorted(ORACLE_DIR.glob(pattern))
    if not tars:
        pytest.skip(f"{pattern} not in .cache/oracle (run `make oracle` with network access)")
    with tarfile.open(tars[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/setup.py"))
        original = tar.extractfile(member).read().decode()
    setup_py = tmp_path / "setup.py"
    setup_py.write_text(original)
    assert original.count('"-gencode"') > 2
    assert restrict_architectures(setup_py, (8, 9))
    text = setup_py.read_text()
    tree = ast.parse(text)
    assert text.count('"-gencode"') == 1 and text.count("arch=compute_") == 1
    assert 'cc_flag.append("arch=compute_89,code=sm_89")' in text
    for node in ast.walk(tree):   # not inside a branch that only some CUDA versions take
        if isinstance(node, ast.If) and "bare_metal_version" in ast.unparse(node.test):
            assert "arch=compute_89" not in ast.unparse(node)


# --- the offline rehearsal -----------------------------------------------------------------------
WHEELS = ROOT / ".gpu-wheels"


def base_only_python(root: Path) -> Path:
    """A fresh venv that holds only gpu_wheels.BASE (and what those need), linked from this
    environment: what a CUDA image gives the check before its wheels are installed."""
    from gpu_wheels import BASE, requirements_closure

    venv, site = root / "venv", root / "base-site"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site.mkdir()
    for name in requirements_closure(BASE):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "base.pth").write_text(f"{site}\n")
    return venv / "bin" / "python"


def clean_env() -> dict:
    """This environment less the project venv's traces, so the child sees only its own packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TRITON_INTERPRET")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def test_the_wheels_bring_what_the_base_lacks_and_nothing_of_the_base():
    from gpu_wheels import BASE, NEEDED, canonical, requirements_closure

    base = requirements_closure(BASE)
    needed = requirements_closure(NEEDED) - base
    assert {"pydantic", "pydantic-core", "pooch", "snakemake", "captum"} <= needed
    assert not needed & {canonical(b) for b in BASE}
    assert "torch" in base and "typing-extensions" in base      # torch's own dependency


@pytest.mark.skipif(not (WHEELS / "requirements.txt").exists(),
                    reason="no .gpu-wheels (run `make gpu-wheels` with network access)")
def test_without_its_wheels_a_base_environment_is_told_what_to_run(tmp_path):
    python = base_only_python(tmp_path)
    proc = subprocess.run([python, str(ROOT / "benchmarks" / "gpu_check.py"), "--rehearse", "--wheels",
                           str(tmp_path / "none"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=ROOT, env=clean_env(), timeout=300)
    assert proc.returncode == 1
    result = json.loads(next((tmp_path / "out").glob("*-rehearsal.json")).read_text())
    assert result["failed_steps"] == ["wheels"]
    assert "pydantic" in result["steps"]["wheels"]["output_tail"]
    assert "make gpu-wheels" in result["steps"]["wheels"]["output_tail"]


@pytest.mark.slow
@pytest.mark.skipif(not (WHEELS / "requirements.txt").exists(),
                    reason="no .gpu-wheels (run `make gpu-wheels` with network access)")
def test_the_rehearsal_passes_every_step_in_a_base_environment_with_only_the_wheels(tmp_path):
    python = base_only_python(tmp_path)
    wheels = tmp_path / "wheels"
    shutil.copytree(WHEELS, wheels, ignore=shutil.ignore_patterns("site-*"))
    proc = subprocess.run([python, str(ROOT / "benchmarks" / "gpu_check.py"), "--rehearse", "--wheels", str(wheels),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                          env=clean_env(), timeout=900)
    result = json.loads(next((tmp_path / "out").glob("*-rehearsal.json")).read_text())
    assert proc.returncode == 0, (result["failed_steps"], proc.stdout[-3000:])
    steps = result["steps"]
    assert set(steps) == {"wheels", "cuda_tests", "scan_benchmark", "ssd_benchmark", "train_step", "pipeline",
                          "projection"}
    assert steps["wheels"]["wheels"] == len(list((wheels / "any").glob("*.whl"))) + len(
        list((wheels / f"cp{sys.version_info.major}{sys.version_info.minor}").glob("*.whl")))
    assert all(step["seconds"] > 0 for name, step in steps.items() if name != "projection")
    assert " passed" in steps["cuda_tests"]["output_tail"] and " skipped" not in steps["cuda_tests"]["output_tail"]
    scan = steps["scan_benchmark"]["results"]["rows"]
    assert {r["impl"] for r in scan} == {"asym Triton (GPU)", "asym PyTorch path (GPU)"}
    assert all(r["share_of_copy_bandwidth"] > 0 and r["bytes"] > 0 for r in scan)
    ssd = steps["ssd_benchmark"]["results"]
    assert {r["impl"] for r in ssd["rows"]} == {"torch", "triton"} and all(r["seconds"] > 0 for r in ssd["rows"])
    assert set(ssd["errors"]) == {"torch", "triton"}
    assert all(err < 1e-5 for errs in ssd["errors"].values() for err in errs.values())
    rows = steps["train_step"]["results"]["rows"]
    assert {(r["model"], r["precision"]) for r in rows} == {(m, p) for m in ("asym", "mean-mlp") for p in ("fp32", "bf16")}
    pipe = steps["pipeline"]
    assert sorted(r["model"] for r in pipe["runs"]) == sorted(["asym", "mean-mlp"] * 2)     # two seeds, a job each
    assert {"results.md", "comparison.md"} <= set(pipe["reports"])
    assert pipe["gpu"]["available"] is False and pipe["train_span_s"] > 0
    proj = steps["projection"]
    assert proj["grid_hours"] > 0 and proj["measured_over_predicted"] > 0
    assert proj["grid_hours"] == pytest.approx(proj["grid_serial_hours"] * proj["measured_over_predicted"])
    pipeline_step_holds(steps)


@pytest.mark.slow
@pytest.mark.skipif((WHEELS / "requirements.txt").exists(),
                    reason="the base-environment rehearsal runs these steps and checks the same (.gpu-wheels is here)")
def test_the_pipeline_step_runs_the_paper_dag_a_job_per_seed_sharing_the_card_by_memory(tmp_path):
    """The rehearsal of the pipeline and projection steps with this venv, where no wheel folder
    lets the base-environment rehearsal run them."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--rehearse", "--steps",
                           "train_step", "pipeline", "projection", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pipeline_step_holds(json.loads(next(tmp_path.glob("*-rehearsal.json")).read_text())["steps"])


def pipeline_step_holds(steps: dict) -> None:
    """The pipeline step ran one training job per seed, recorded each model's declared GPU memory
    beside the card's, and set its projection beside README's estimate (benchmarks/paper_grid.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import paper_grid

    pipeline, size = steps["pipeline"], SIZES["rehearse"]["pipeline"]
    assert pipeline["train_jobs"] == len(size["models"]) * len(size["seeds"]) == len(pipeline["runs"])
    assert set(pipeline["declared_gpu_mem_mb"]) == set(size["models"])
    assert all(0 < mb <= pipeline["card_memory_mib"] for mb in pipeline["declared_gpu_mem_mb"].values())
    projection = steps["projection"]
    assert projection["readme_estimate_cpu_hours"] == pytest.approx(paper_grid.grid().hours)
    assert projection["gpu_over_readme_estimate"] == pytest.approx(
        projection["grid_hours"] / projection["readme_estimate_cpu_hours"])
