"""The device the GPU check's tests run on: CUDA, or, in `gpu_check.py --rehearse`, the CPU with
Triton's interpreter (ASYM_DEVICE_CHECK=cpu, TRITON_INTERPRET=1) at tiny sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REHEARSAL = os.environ.get("ASYM_DEVICE_CHECK") == "cpu"


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Skip this folder's tests (the hook sees the whole session's) without a GPU or rehearsal."""
    if REHEARSAL or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine (gpu_check.py --rehearse runs these on the CPU)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cpu" if REHEARSAL else "cuda")


@pytest.fixture(scope="session")
def tiny() -> bool:
    return REHEARSAL
