"""The registry as it was before each model moved into one file (snapshot taken at a3f9815):
the same entries in the same order, with the same names, kinds, descriptions, recipes, families,
targets, overrides and digests (a DVC command carries the digest: a changed one retrains), and the
same parameter counts. A deliberate change to an entry updates the snapshot with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asym.config import load_params
from asym.models import factory, registry
from tests.project import ROOT

SNAPSHOT = json.loads((Path(__file__).parent / "registry_before_one_file.json").read_text())


def test_every_entry_and_its_digest_are_as_before():
    assert registry.names() == SNAPSHOT["names"]
    for name in registry.names():
        e = registry.get(name)
        now = {"target": e.target, "family": e.family, "kind": e.kind, "description": e.description,
               "recipe": e.recipe, "overrides": dict(e.overrides), "digest": e.digest()}
        assert now == SNAPSHOT["entries"][name], name


@pytest.mark.parametrize("row", SNAPSHOT["details"], ids=lambda r: r["model"])
def test_parameter_counts_are_as_before_at_demo_scale(row):
    p = load_params(ROOT / "params.yaml")
    for ds in ("dvlog", "lmvd"):
        assert factory.parameter_count(row["model"], p, "demo", ds) == row[f"demo/{ds}"], ds
