"""workflow/scripts/install_plan.py, which `make` asks which lock to install: the GPU simulated by
a fake `nvidia-smi` on PATH, the venv's torch by a dist-info in a fake site-packages."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import ROOT

SCRIPT = ROOT / "workflow" / "scripts" / "install_plan.py"
_spec = importlib.util.spec_from_file_location("install_plan", SCRIPT)
install_plan = importlib.util.module_from_spec(_spec)
sys.modules["install_plan"] = install_plan    # dataclasses resolve their module
_spec.loader.exec_module(install_plan)

H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5a1b2c3d-0000-1111-2222-333344445555)"
CPU_LOCK, CUDA_LOCK = ROOT / "requirements.lock", ROOT / "requirements-cuda.lock"


def fake_smi(folder: Path, stdout: str, rc: int = 0) -> Path:
    """An `nvidia-smi` that prints `stdout` to `-L` and exits `rc`, alone in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\nexit {rc}\n")
    smi.chmod(0o755)
    return folder


def fake_venv(root: Path, torch: str | None, requires: tuple[str, ...] = ()) -> Path:
    venv = root / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if torch:
        info = site / f"torch-{torch}.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: " + torch + "\n"
                                             + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return venv


def cli(venv: Path, device: str, smi_dir: Path | None) -> subprocess.CompletedProcess:
    """The script as the Makefile runs it, with only `smi_dir` (if any) and the system's tools on PATH."""
    path = os.pathsep.join(filter(None, [str(smi_dir) if smi_dir else "", "/usr/bin", "/bin"]))
    return subprocess.run([sys.executable, str(SCRIPT), "--venv", str(venv), "--device", device, "--dry-run"],
                          capture_output=True, text=True, env={"PATH": path}, cwd=ROOT, timeout=60)


def installs(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(("smi", "device", "lock"), [
    (H100, "auto", "requirements-cuda.lock"),
    (None, "auto", "requirements.lock"),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "auto", "requirements.lock"),
    ("No devices were found", "auto", "requirements.lock"),
    (None, "cuda", "requirements-cuda.lock"),
    (H100, "cpu", "requirements.lock"),
])
def test_a_fresh_venv_gets_the_lock_of_the_gpu_it_sees_or_the_device_asked(tmp_path, smi, device, lock):
    smi_dir = fake_smi(tmp_path / "bin", smi, rc=9 if smi and "failed" in smi else 0) if smi else None
    out = installs(cli(fake_venv(tmp_path, None), device, smi_dir))
    assert f"installing {lock} " in out
    assert "pip uninstall" not in out


@pytest.mark.parametrize(("torch", "requires"), [("2.13.0+cu124", ()),
                                                 ("2.13.0", ("nvidia-cudnn-cu13==9.20.0.48", "triton==3.7.1"))])
@pytest.mark.parametrize("smi", [H100, None])
def test_a_cuda_torch_in_the_venv_is_never_replaced_by_the_cpu_wheel(tmp_path, torch, requires, smi):
    venv = fake_venv(tmp_path, torch, requires)
    smi_dir = fake_smi(tmp_path / "bin", smi) if smi else None
    out = installs(cli(venv, "auto", smi_dir))    # no GPU seen (a login node) keeps it too
    assert "requirements-cuda.lock" in out and "requirements.lock " not in out
    assert "pip uninstall" not in out
    refused = cli(venv, "cpu", smi_dir)
    assert refused.returncode == 2 and not refused.stdout
    assert f"holds torch {torch}, a CUDA build" in refused.stderr and "DEVICE=cpu would replace it" in refused.stderr


def test_a_kept_cuda_torch_of_another_build_is_left_out_of_what_pip_installs(tmp_path):
    venv = fake_venv(tmp_path, "2.13.0+cu124")
    p = install_plan.plan("auto", [H100], install_plan.installed_torch(venv), venv)
    assert p.keep and p.lock == CUDA_LOCK and p.build == "cuda"
    text = p.requirements()
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, re.M)
    assert not [n for n in pins if re.match(r"(torch|triton|nvidia-|cuda-)", n.lower())]
    assert "numpy" in pins and len(pins) > 100
    blocks = [b for b in re.split(r"\n(?=[A-Za-z0-9])", text) if "==" in b]
    assert all("--hash=sha256:" in b for b in blocks)


def test_a_cpu_torch_is_uninstalled_before_the_cuda_lock_since_pip_counts_it_as_the_same(tmp_path):
    venv = fake_venv(tmp_path, "2.13.0+cpu")
    out = installs(cli(venv, "auto", fake_smi(tmp_path / "bin", H100)))
    lines = out.splitlines()
    assert "requirements-cuda.lock" in lines[0] and "replacing the venv's torch 2.13.0+cpu" in lines[0]
    assert lines[1].endswith("-m pip uninstall --quiet --yes torch")
    assert lines[2].endswith(f"-r {venv / 'install-requirements.txt'}")
    # with no GPU a CPU torch stays the CPU lock's, nothing uninstalled
    assert "pip uninstall" not in installs(cli(venv, "auto", None))


def test_a_gpu_torch_of_another_version_is_refused_not_kept(tmp_path):
    venv = fake_venv(tmp_path, "2.5.1+cu124")
    proc = cli(venv, "auto", fake_smi(tmp_path / "bin", H100))
    assert proc.returncode == 2
    assert "holds torch 2.5.1+cu124" in proc.stderr and "pins torch 2.13.0" in proc.stderr


@pytest.mark.parametrize(("version", "requires", "build"), [
    ("2.13.0+cpu", (), "cpu"), ("2.13.0+cu126", (), "cuda"), ("2.13.0+rocm6.4", (), "rocm"),
    ("2.13.0", ("nvidia-cublas==13.1.1.3",), "cuda"), ("2.13.0", ("filelock",), "cpu")])
def test_the_build_is_read_from_the_local_label_or_the_nvidia_requirements(version, requires, build):
    assert install_plan.build_of(version, list(requires)) == build


def test_the_makefile_runs_the_plan_with_the_device_asked_and_a_stamp_of_its_own(tmp_path):
    venv = fake_venv(tmp_path, None)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    for device, stamp in [("auto", ".installed"), ("cuda", ".installed-cuda"), ("cpu", ".installed-cpu")]:
        args = [] if device == "auto" else [f"DEVICE={device}"]
        proc = subprocess.run(["make", "-n", "install", f"VENV={venv}", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"install_plan.py --venv {venv} --device {device} " in proc.stdout
        assert f"touch {venv}/{stamp} {venv}/.installed" in proc.stdout
        assert "requirements.lock" not in proc.stdout.split("install_plan.py")[0]
