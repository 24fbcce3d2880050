"""requirements.lock and requirements-cuda.lock pin every package `make` installs: each must agree
with pyproject.toml, and the two differ only in torch and what its CUDA build brings."""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+) \\$")


LOCKS = ["requirements.lock", "requirements-cuda.lock"]
# What PyPI's CUDA build of torch requires beside torch itself (its own triton, NVIDIA's libraries).
CUDA_COMPANIONS = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def locked(lock: str = "requirements.lock") -> dict[str, Version]:
    pins = {}
    for line in (ROOT / lock).read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m["name"])] = Version(m["version"])
    return pins


def lock_extras() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    return re.search(r"^LOCK_EXTRAS\s*:=\s*(.*)$", makefile, re.M).group(1).split()


def declared() -> list[Requirement]:
    """The project's requirements with the locked extras, an extra that names another of the
    project's own (`asym[extract]`) expanded in place."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(lock_extras()), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, project["optional-dependencies"][extra]):
            if canonicalize_name(r.name) == canonicalize_name(project["name"]):
                todo += sorted(r.extras)
            else:
                reqs.append(r)
    return reqs


@pytest.mark.parametrize("lock", LOCKS)
def test_every_declared_requirement_is_locked_at_a_version_it_allows(lock):
    pins = locked(lock)
    wrong = {}
    for req in declared():
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong[req.name] = (str(req.specifier), str(version))
    assert not wrong, f"pyproject.toml and {lock} disagree (run `make lock`): {wrong}"


@pytest.mark.parametrize(("lock", "torch"), [("requirements.lock", "2.13.0+cpu"),
                                             ("requirements-cuda.lock", "2.13.0")])
def test_every_pin_has_a_hash_and_torch_is_the_build_the_lock_is_for(lock, torch):
    text = (ROOT / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)
    assert str(locked(lock)["torch"]) == torch


def test_the_cuda_lock_brings_cuda_and_otherwise_pins_what_the_cpu_lock_pins():
    cpu, cuda = locked("requirements.lock"), locked("requirements-cuda.lock")
    assert any(name.startswith("nvidia-cudnn") for name in cuda)
    assert not any(name.startswith("nvidia-") for name in cpu)
    differ = {name for name in cpu.keys() | cuda.keys() if cpu.get(name) != cuda.get(name)}
    assert differ and all(CUDA_COMPANIONS.match(name) for name in differ), sorted(differ)


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_was_made_for_the_extras_make_installs(lock):
    header = (ROOT / lock).read_text().splitlines()[1]
    assert sorted(re.findall(r"--extra (\S+)", header)) == sorted(lock_extras())
    assert header.endswith(f"-o {lock}")
