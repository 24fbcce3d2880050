"""Atomic writes: a file appears whole or not at all, with the mode a plain open() would give it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from asym import cli
from asym.io import atomic_path, current_umask, write_text
from tests.project import prepared


@pytest.fixture
def umask():
    """Set a umask for one test; the previous one comes back afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_the_umask_is_read_without_being_changed(umask, mask):
    umask(mask)
    assert current_umask() == mask
    assert current_umask() == mask


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.md"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664)])
def test_a_runs_artefacts_have_the_modes_of_the_umask(tmp_path, umask, mask, expected):
    """Parquet, checkpoint, report table and figure from a real (tiny) run, under two umasks."""
    umask(mask)
    params = prepared(tmp_path, ["mean-mlp"], epochs=1, n_samples=30)
    argv = ["--params", str(tmp_path / "params.yaml")]
    for step in (["split", "--dataset", "dvlog"], ["train", "--dataset", "dvlog", "--model", "mean-mlp"],
                 ["evaluate"], ["report"]):
        assert cli.main(argv + step) == 0
    files = {
        "parquet": Path(params.path_of("processed")) / "dvlog.parquet",
        "checkpoint": Path(params.path_of("runs")) / "dvlog" / "mean-mlp" / "seed0" / "checkpoint.pt",
        "table": Path(params.path_of("reports")) / "results.md",
        "figure": Path(params.path_of("reports")) / "metrics.png",
    }
    assert {kind: oct(mode(path)) for kind, path in files.items()} == {kind: oct(expected) for kind in files}
    assert mode(Path(params.path_of("raw")) / "dvlog") & 0o777 == 0o777 & ~mask or \
        not (Path(params.path_of("raw")) / "dvlog").is_dir()
