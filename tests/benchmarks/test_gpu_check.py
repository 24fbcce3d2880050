"""benchmarks/gpu_check.py: the no-GPU answer, and the architecture cut applied to the kernels'
real setup.py files (the one part of a GPU build that can be checked without a GPU)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile

import pytest
import torch

from tests.conftest import ORACLE_DIR, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import restrict_architectures  # noqa: E402


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
