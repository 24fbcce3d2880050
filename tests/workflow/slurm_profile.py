"""The SLURM profile as a file, and the one override a CPU-only partition needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.project import ROOT

PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"


def load(path: Path = PROFILE) -> dict:
    return yaml.safe_load(path.read_text())


def cpu_only_override(profile: dict) -> list[str]:
    """The profile's set-resources without its GPU request (Snakemake replaces the whole block)."""
    return ["--set-resources", *(f"{rule}:{key}={value}" for rule, res in profile["set-resources"].items()
                                 for key, value in res.items() if key != "gres")]
