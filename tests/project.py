"""A throw-away copy of the pipeline (Snakefile, workflow/, params.yaml) with a small config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_project(dest: Path, models: list[str], seeds: list[int], epochs: int, synth: dict[str, Any] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(ROOT / "workflow", dest / "workflow")
    (dest / "profiles").symlink_to("workflow/profiles")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["run"].update(models=models, seeds=seeds)
    raw["train"]["demo"]["epochs"] = epochs
    raw["report"]["bootstrap"] = 200
    for name, over in (synth or {}).items():
        raw["synth"][name].update(over)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest
