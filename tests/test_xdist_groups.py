"""The test suite's own scheduling: `--dist loadgroup` keeps an `xdist_group` on one worker
(tests.conftest.group_in_node_id), as the SLURM, DVC and demo tests' shared fixtures need."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from tests.conftest import ROOT

GROUPED = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
'''
SPREAD = '''
import os
import pytest


@pytest.mark.parametrize("i", range(6))
def test_spread(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
'''


def test_a_group_runs_on_one_worker_and_the_rest_spreads(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    (tests / "__init__.py").write_text("")
    (tests / "test_grouped.py").write_text(GROUPED)
    (tests / "test_spread.py").write_text(SPREAD)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "tests"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    ran = re.findall(r"\[(gw\d)\] .*PASSED tests/(test_\w+)\.py", proc.stdout)
    grouped = {worker for worker, module in ran if module == "test_grouped"}
    assert len([m for _, m in ran if m == "test_grouped"]) == 6 and len(grouped) == 1, proc.stdout[-3000:]
    assert len({worker for worker, _ in ran}) == 2, proc.stdout[-3000:]      # the others use both workers
