"""benchmarks/gpu_check.py's first decision, with the GPU simulated by a fake `nvidia-smi` on PATH:
a GPU that torch cannot use fails the check loudly; no GPU at all is a success that says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.workflow.test_install_plan import H100, fake_smi

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def gpu_check(smi_dir: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{smi_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_a_listed_gpu_that_torch_cannot_use_fails_the_check(tmp_path):
    proc = gpu_check(fake_smi(tmp_path / "bin", H100), tmp_path / "out")
    assert proc.returncode == 1
    assert "gpu_check failed: no CUDA GPU usable: nvidia-smi lists 'GPU 0: NVIDIA H100" in proc.stderr
    assert "DEVICE=cuda" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("listing", "rc"), [("No devices were found", 6),
                                             ("NVIDIA-SMI has failed because it couldn't communicate with "
                                              "the NVIDIA driver.", 9)])
def test_an_nvidia_smi_that_lists_no_gpu_is_no_gpu(tmp_path, listing, rc):
    proc = gpu_check(fake_smi(tmp_path / "bin", listing, rc), tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU on this machine: nothing to check." in proc.stdout


@pytest.mark.parametrize(("listing", "rc"), [(H100, 2), (None, 0)])
def test_make_gpu_check_fails_on_a_gpu_torch_cannot_use_and_passes_without_one(tmp_path, listing, rc):
    """`make gpu-check` itself, with an installed venv whose python is this one (nothing installed)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (venv / ".installed").touch()
    smi_dir = fake_smi(tmp_path / "smi", listing) if listing else tmp_path / "empty"
    smi_dir.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{smi_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    proc = subprocess.run(["make", "--no-print-directory", "gpu-check", f"VENV={venv}"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    if listing:
        assert "gpu_check failed: no CUDA GPU usable" in proc.stderr
    else:
        assert "no CUDA GPU on this machine: nothing to check." in proc.stdout
