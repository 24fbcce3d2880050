"""params.yaml -> a validated, typed, scale-resolved configuration.

The file is checked against the schema below before anything runs: an unknown or misspelt key,
a wrong type or an unknown model name is refused with its dotted key named. Each block has one
typed accessor, `scale` is resolved in one place (`Params.recipe`, `Params.model_family`,
`Params.seeds`, `Params.protocol`), and every relative path is resolved in one place
(`Params.resolve`), against the folder of the params file.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asym.errors import ConfigError

T = TypeVar("T")
Scale = Literal["demo", "paper"]
SCALES: tuple[str, ...] = ("demo", "paper")
Protocol = Literal["official", "depmamba", "stratified_group", "kfold", "csv"]


class Strict(BaseModel):
    """Every block refuses keys it does not know: a typo is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ByScale(Strict, Generic[T]):
    demo: T
    paper: T

    def at(self, scale: str) -> T:
        return getattr(self, scale)


class PathsConfig(Strict):
    raw: Path
    processed: Path
    splits: Path
    runs: Path
    reports: Path
    logs: Path


class MlflowConfig(Strict):
    tracking_uri: str
    artifact_root: Path
    experiment: str
    lock_timeout_s: float = Field(gt=0)
    live: bool = False


class DatasetConfig(Strict):
    format: Literal["dvlog", "lmvd"]
    source: str
    sha256: str | None = None
    protocol: ByScale[Protocol]
    split_csv: Path | None = None
    subjects: Path | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v.lower())):
            raise ValueError("must be 64 hexadecimal digits")
        return v


class LmvdReaderConfig(Strict):
    video_csv_frame_stride: int = Field(gt=0)
    video_npy_row_stride: int = Field(gt=0)
    max_audio_rows: int | None = Field(default=None, gt=0)
    standardise_landmark_rows: bool = True


class ReadersConfig(Strict):
    lmvd: LmvdReaderConfig


SynthMechanism = Literal["marginal", "synchrony", "null"]


class SynchronyCoupling(Strict):
    """Correlation of the mouth's driver with the lagged vocal energy, per class."""

    normal: float = Field(ge=0, le=1)
    depressed: float = Field(ge=0, le=1)


class SynchronyConfig(Strict):
    """`mechanism: synchrony` (asym/data/synthetic.py): the label only in the audio-visual coupling."""

    lag: int = Field(ge=0)                        # frames from the voice to the mouth
    coupling: SynchronyCoupling
    smoothness: float = Field(ge=0, lt=1)         # AR(1) coefficient of both drivers
    energy_amplitude: float = Field(gt=0)         # of the driver in the energy dimensions
    mouth_amplitude: float = Field(gt=0)          # of the driver in the mouth landmarks, in pixels


class SynthDvlogConfig(Strict):
    n_samples: int = Field(gt=0)
    depressed_fraction: float = Field(gt=0, lt=1)
    fold_fractions: tuple[float, float, float]
    seconds: tuple[int, int]
    length_jitter: int = Field(ge=0)
    signal: float = Field(ge=0)
    mechanism: SynthMechanism = "marginal"
    synchrony: SynchronyConfig


class SynthLmvdConfig(Strict):
    n_samples: int = Field(gt=0)
    n_subjects: int = Field(gt=0)
    depressed_fraction: float = Field(gt=0, lt=1)
    seconds: tuple[int, int]
    video_fps: int = Field(gt=0)
    length_jitter: int = Field(ge=0)
    signal: float = Field(ge=0)
    mechanism: SynthMechanism = "marginal"
    synchrony: SynchronyConfig

    @model_validator(mode="after")
    def _subjects(self) -> SynthLmvdConfig:
        if self.n_subjects > self.n_samples:
            raise ValueError("n_subjects cannot exceed n_samples")
        return self


class SynthConfig(Strict):
    seed: int
    dvlog: SynthDvlogConfig
    lmvd: SynthLmvdConfig


class KFoldConfig(Strict):
    k: int = Field(ge=2)
    valid_fraction: float = Field(gt=0, lt=1)


class SplitConfig(Strict):
    seed: int
    ratios: tuple[float, float, float]
    kfold: KFoldConfig

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(v) - 1.0) > 1e-6 or min(v) <= 0:
            raise ValueError("must be three positive numbers summing to 1")
        return v


class RunConfig(Strict):
    datasets: list[str] = Field(min_length=1)
    models: Literal["all"] | list[str]
    seeds: ByScale[list[int]]

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: ByScale[list[int]]) -> ByScale[list[int]]:
        for scale in SCALES:
            seeds = v.at(scale)
            if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ValueError(f"{scale}: needs distinct non-negative seeds")
        return v


class TrainConfig(Strict):
    device: Literal["auto", "cpu", "cuda"]
    threads: int = Field(ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    pin_memory: bool = True
    eval_batch_size: int = Field(default=64, ge=1)


class CropConfig(Strict):
    """`random_window`: one random window per vlog and epoch (length in [min, max] frames).
    `offline`: before training, up to `n_crops` random sub-sequences of at least `min_frames`
    are added beside every full training vlog (DepMamba's augmentation); no length cap.
    `none`: whole vlogs."""

    kind: Literal["none", "random_window", "offline"]
    max_frames: int | None = Field(default=None, gt=0)
    min_frames: int | dict[str, int] | None = None
    n_crops: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> CropConfig:
        need = {"random_window": ("max_frames", "min_frames"), "offline": ("n_crops", "min_frames"), "none": ()}
        missing = [k for k in need[self.kind] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"crop kind {self.kind!r} needs {missing}")
        return self

    def min_frames_for(self, dataset: str) -> int:
        if isinstance(self.min_frames, dict):
            if dataset not in self.min_frames:
                raise ConfigError(f"crop.min_frames has no entry for dataset {dataset!r}")
            return int(self.min_frames[dataset])
        return int(self.min_frames or 0)


class RecipeConfig(Strict):
    optimizer: Literal["adam", "adamw"]
    lr: dict[str, float]
    weight_decay: float = Field(ge=0)
    scheduler: Literal["none", "cosine"]
    grad_clip: float | None = Field(default=None, gt=0)
    normalize: Literal["zscore", "none"]
    crop: CropConfig
    loss: Literal["bce"]
    class_weighting: Literal["none", "balanced"]
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    selection_metric: Literal["mean4", "accuracy", "f1", "balanced_accuracy", "mcc"]

    def lr_for(self, dataset: str) -> float:
        if dataset not in self.lr:
            raise ConfigError(f"recipe lr has no entry for dataset {dataset!r} (has {sorted(self.lr)})")
        return float(self.lr[dataset])


class ReportConfig(Strict):
    bootstrap: int = Field(ge=100)
    ci_seed: int
    alpha: float = Field(gt=0, lt=1)
    chance_draws: int = Field(ge=1)


class ParamsFile(Strict):
    scale: Scale
    paths: PathsConfig
    mlflow: MlflowConfig
    datasets: dict[str, DatasetConfig]
    readers: ReadersConfig
    synth: SynthConfig
    split: SplitConfig
    run: RunConfig
    train: TrainConfig
    recipes: ByScale[dict[str, RecipeConfig]]
    model: ByScale[dict[str, dict[str, Any]]]
    report: ReportConfig

    @model_validator(mode="after")
    def _cross_refs(self) -> ParamsFile:
        from asym.models import registry

        for name in self.run.datasets:
            if name not in self.datasets:
                raise ValueError(f"run.datasets names {name!r}, which is not under `datasets`")
        if self.run.models != "all":
            unknown = [m for m in self.run.models if m not in registry.names()]
            if unknown:
                raise ValueError(f"run.models names unknown models {unknown}; known: {registry.names()}")
        for name, ds in self.datasets.items():
            for scale in SCALES:
                if ds.protocol.at(scale) == "csv" and ds.split_csv is None:
                    raise ValueError(f"datasets.{name}: protocol csv needs split_csv")
        for scale in SCALES:
            for model in registry.names():
                entry = registry.get(model)
                if entry.family not in self.model.at(scale):
                    raise ValueError(f"model.{scale} has no block {entry.family!r} (read by model {model!r})")
                if entry.recipe not in self.recipes.at(scale):
                    raise ValueError(f"recipes.{scale} has no recipe {entry.recipe!r} (named by model {model!r})")
        return self


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Params:
    """The validated params file plus the few derived views every step needs."""

    def __init__(self, data: ParamsFile, path: Path, raw: dict[str, Any]) -> None:
        self.data = data
        self.path = path
        self.raw = raw            # the YAML as written: params slices for the DAGs' rerun triggers

    # --- scale-resolved views ------------------------------------------------------------
    @property
    def scale(self) -> str:
        return self.data.scale

    scales: tuple[str, ...] = SCALES

    def at_scale(self, scale: str) -> Params:
        """The same file read at another scale (e.g. paper-scale widths from a demo config)."""
        return Params(self.data.model_copy(update={"scale": scale}), self.path, {**self.raw, "scale": scale})

    @property
    def root(self) -> Path:
        return self.path.resolve().parent

    def resolve(self, p: str | os.PathLike) -> Path:
        """The one place relative paths are resolved: against the params file's folder."""
        p = Path(p).expanduser()
        return p if p.is_absolute() else self.root / p

    def path_of(self, key: str) -> Path:
        return self.resolve(getattr(self.data.paths, key))

    @property
    def paths(self) -> PathsConfig:
        return self.data.paths

    @property
    def mlflow(self) -> MlflowConfig:
        return self.data.mlflow

    @property
    def readers(self) -> ReadersConfig:
        return self.data.readers

    @property
    def synth(self) -> SynthConfig:
        return self.data.synth

    @property
    def split(self) -> SplitConfig:
        return self.data.split

    @property
    def train(self) -> TrainConfig:
        return self.data.train

    @property
    def report(self) -> ReportConfig:
        return self.data.report

    def dataset(self, name: str) -> DatasetConfig:
        try:
            return self.data.datasets[name]
        except KeyError:
            raise ConfigError(f"dataset {name!r} is not declared under `datasets` in {self.path}") from None

    def protocol(self, dataset: str) -> str:
        return self.dataset(dataset).protocol.at(self.scale)

    def recipe(self, name: str) -> RecipeConfig:
        recipes = self.data.recipes.at(self.scale)
        if name not in recipes:
            raise ConfigError(f"recipes.{self.scale} has no recipe {name!r} in {self.path}")
        return recipes[name]

    def model_family(self, family: str, dataset: str | None = None) -> dict[str, Any]:
        block = self.data.model.at(self.scale)
        if family not in block:
            raise ConfigError(f"model family {family!r} has no block under model.{self.scale} in {self.path}")
        cfg = copy.deepcopy(block[family])
        by_dataset = cfg.pop("by_dataset", {}) or {}
        if dataset is not None and dataset in by_dataset:
            cfg = deep_merge(cfg, by_dataset[dataset])
        return cfg

    @property
    def seeds(self) -> list[int]:
        return list(self.data.run.seeds.at(self.scale))

    @property
    def datasets(self) -> list[str]:
        return list(self.data.run.datasets)

    @property
    def models(self) -> list[str]:
        from asym.models import registry

        chosen = self.data.run.models
        return registry.names() if chosen == "all" else list(chosen)

    def slice(self, dotted: str) -> Any:
        """The raw value at a dotted key (what a DAG stage depends on)."""
        node: Any = self.raw
        for part in dotted.split("."):
            node = node[part]
        return node


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = "unknown key (a typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{key or '(top level)'}: {msg}")
    return "; ".join(dict.fromkeys(lines))


def load_params(path: str | os.PathLike) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    try:
        data = ParamsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_errors(exc)}") from None
    return Params(data, path, raw)
