"""pytest plugin for mutation runs only (loaded by mutmut's config in pyproject.toml).

While mutmut tests one mutant, only the test files named in ASYM_MUTANT_TESTS (space separated,
set per module by benchmarks/mutants.py) run: each module is judged by its own fast tests, and a
surviving mutant does not pay for the whole suite. Statistics collection, the clean run and
every run outside mutmut are left alone.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    files = os.environ.get("ASYM_MUTANT_TESTS", "").split()
    if not files or "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    keep = [i for i in items if i.nodeid.split("::")[0] in files]
    drop = [i for i in items if i.nodeid.split("::")[0] not in files]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
