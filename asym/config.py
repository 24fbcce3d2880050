"""params.yaml -> validated, scale-resolved configuration.

Every command reads the same file; `scale` selects the `demo` or `paper` entry of the
scale-keyed blocks (`train`, `model`) in one place.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asym.errors import ConfigError

SCALES = ("demo", "paper")
DATASET_FORMATS = ("dvlog", "lmvd")
SPLIT_KINDS = ("official", "stratified_group", "csv")
REQUIRED = ("scale", "paths", "mlflow", "datasets", "readers", "synth", "split", "run", "train", "model")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Params:
    raw: dict[str, Any]
    path: Path

    @property
    def scale(self) -> str:
        return self.raw["scale"]

    @property
    def root(self) -> Path:
        return self.path.resolve().parent

    def path_of(self, key: str) -> Path:
        p = Path(self.raw["paths"][key])
        return p if p.is_absolute() else self.root / p

    def dataset(self, name: str) -> dict[str, Any]:
        try:
            return self.raw["datasets"][name]
        except KeyError:
            raise ConfigError(f"dataset {name!r} is not declared under `datasets` in {self.path}") from None

    @property
    def train(self) -> dict[str, Any]:
        shared = {k: v for k, v in self.raw["train"].items() if k not in SCALES}
        return {**shared, **self.raw["train"][self.scale]}

    def model_family(self, family: str, dataset: str | None = None) -> dict[str, Any]:
        block = self.raw["model"][self.scale]
        if family not in block:
            raise ConfigError(f"model family {family!r} has no block under model.{self.scale} in {self.path}")
        cfg = copy.deepcopy(block[family])
        by_dataset = cfg.pop("by_dataset", {}) or {}
        if dataset is not None and dataset in by_dataset:
            cfg = deep_merge(cfg, by_dataset[dataset])
        return cfg

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.raw["run"]["seeds"]]

    @property
    def datasets(self) -> list[str]:
        return list(self.raw["run"]["datasets"])

    @property
    def models(self) -> list[str]:
        from asym.models import registry

        chosen = self.raw["run"]["models"]
        if chosen == "all":
            return registry.names()
        unknown = [m for m in chosen if m not in registry.names()]
        if unknown:
            raise ConfigError(f"run.models in {self.path} names unknown models {unknown}; known: {registry.names()}")
        return list(chosen)


def _validate(raw: Any, path: Path) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at top level")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing top-level keys {missing}")
    if raw["scale"] not in SCALES:
        raise ConfigError(f"{path}: scale must be one of {SCALES}, got {raw['scale']!r}")
    for scale in SCALES:
        for block in ("train", "model"):
            if scale not in raw[block]:
                raise ConfigError(f"{path}: `{block}` has no `{scale}` entry")
    for name, ds in raw["datasets"].items():
        if ds.get("format") not in DATASET_FORMATS:
            raise ConfigError(f"{path}: datasets.{name}.format must be one of {DATASET_FORMATS}")
        if ds.get("split") not in SPLIT_KINDS:
            raise ConfigError(f"{path}: datasets.{name}.split must be one of {SPLIT_KINDS}")
        if ds["split"] == "csv" and not ds.get("split_csv"):
            raise ConfigError(f"{path}: datasets.{name}.split is csv but split_csv is not set")
    for name in raw["run"]["datasets"]:
        if name not in raw["datasets"]:
            raise ConfigError(f"{path}: run.datasets names {name!r}, which is not under `datasets`")
    ratios = raw["split"]["ratios"]
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) <= 0:
        raise ConfigError(f"{path}: split.ratios must be three positive numbers summing to 1")
    if not raw["run"]["seeds"]:
        raise ConfigError(f"{path}: run.seeds is empty")


def default_params_path() -> Path:
    return Path(os.environ.get("ASYM_PARAMS", "params.yaml"))


def load_params(path: str | os.PathLike | None = None) -> Params:
    path = Path(path) if path is not None else default_params_path()
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    _validate(raw, path)
    return Params(raw=raw, path=path)
