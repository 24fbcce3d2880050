"""params.yaml -> a validated, typed, scale-resolved configuration.

The file is checked against the schema below before anything runs: an unknown or misspelt key,
a wrong type or an unknown model name is refused with its dotted key named. Each block has one
typed accessor, `scale` is resolved in one place (`Params.recipe`, `Params.model_config`,
`Params.seeds`, `Params.protocol`), and every relative path is resolved in one place
(`Params.resolve`), against the folder of the params file.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from asym.data import formats, protocols
from asym.data.protocols import GENDER_PROTOCOLS, NO_GENDER_FORMATS, OPTIMISM_PROTOCOLS
from asym.errors import ConfigError
from asym.grid import (
    CROSS_GENDER_FOLDERS,
    OPTIMISM_FOLDERS,
    Run,
    cross_gender_folders,
    optimism_folders,
)
from asym.models import registry
from asym.models.families import ModelConfig
from asym.schema import Strict

T = TypeVar("T")
Scale = Literal["demo", "paper"]
SCALES: tuple[str, ...] = ("demo", "paper")
# A split protocol: the name of a row of asym.data.protocols (an unknown one is refused, with the
# known names listed).
Protocol = Annotated[str, AfterValidator(lambda name: protocols.get(name).name)]
# The params file `asym` reads when no --params is given (else params.yaml): how the Snakemake
# rules name it, outside their command lines (asym.dag.snakefile).
PARAMS_VARIABLE = "ASYM_PARAMS"
DEFAULT_PARAMS = "params.yaml"




# The entry of a per-dataset setting (a learning rate, a plateau factor, a crop length) that
# applies to every dataset it does not name.
DEFAULT_ENTRY = "default"


def per_dataset(values: Mapping[str, float], dataset: str, what: str) -> float:
    """A recipe's per-dataset value (its `default` entry for a dataset it does not name), or an
    error naming the setting and the key to add."""
    if dataset in values:
        return float(values[dataset])
    if DEFAULT_ENTRY in values:
        return float(values[DEFAULT_ENTRY])
    raise ConfigError(f"{what} has no entry for dataset {dataset!r} (has {sorted(values)}): add `{dataset}:` "
                      f"or `{DEFAULT_ENTRY}:` under it")


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


class FrameRates(Strict):
    """Rows per second of each modality's feature files: the reader pools both to one row per
    second (asym.data.sample.per_second), which is how the two streams align."""

    audio: float = Field(default=1.0, gt=0)
    visual: float = Field(default=1.0, gt=0)


class DatasetConfig(Strict):
    format: str
    source: str
    sha256: str | None = None
    protocol: ByScale[Protocol]
    split_csv: Path | None = None
    subjects: Path | None = None
    frame_rates: FrameRates | None = None   # formats whose rates are not fixed (manifest); default 1 and 1

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in formats.names():
            raise ValueError(f"unknown format {v!r}; known: {list(formats.names())}")
        return v

    @model_validator(mode="after")
    def _rates(self) -> DatasetConfig:
        if self.frame_rates is not None and not formats.get(self.format).frame_rates:
            raise ValueError(f"frame_rates: format {self.format!r} has fixed frame rates (readers.{self.format} "
                             "says what they are); only a manifest's are set here")
        return self

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


class DaicWozReaderConfig(Strict):
    """Which face frames DAIC-WOZ's reader counts (asym.data.daic_woz; the corpus's rates are facts there)."""

    min_confidence: float = Field(ge=0, le=1)   # CLNF frames below it, or without success, are left out


class ReadersConfig(Strict):
    lmvd: LmvdReaderConfig
    daic_woz: DaicWozReaderConfig | None = None


class ExtractConfig(Strict):
    """`asym extract`: D-Vlog's features from a video (asym.inference.extract)."""

    sample_rate: int = Field(gt=0)            # Hz: the audio track is resampled to it for openSMILE
    upsample: int = Field(ge=0)               # dlib's face detector: upsamplings before detecting
    # the 136 landmark columns: `xy_blocks` x_0..x_67 then y_0..y_67 (OpenFace, LMVD, asym's demo
    # data); `interleaved` x_0, y_0, x_1, y_1, ... It must match the release a model was trained on.
    landmark_order: Literal["xy_blocks", "interleaved"]


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


class SynthManifestConfig(Strict):
    """A manifest dataset (asym.data.manifest_demo): per-vlog .npy files at any widths."""

    n_samples: int = Field(gt=0)
    n_subjects: int = Field(gt=0)
    depressed_fraction: float = Field(gt=0, lt=1)
    fold_fractions: tuple[float, float, float]
    seconds: tuple[int, int]
    length_jitter: int = Field(ge=0)
    signal: float = Field(ge=0)
    audio_dim: int = Field(ge=1)
    visual_dim: int = Field(ge=1)
    frame_rates: FrameRates = Field(default_factory=FrameRates)

    @model_validator(mode="after")
    def _subjects(self) -> SynthManifestConfig:
        if self.n_subjects > self.n_samples:
            raise ValueError("n_subjects cannot exceed n_samples")
        return self


class SynthConfig(Strict):
    seed: int
    dvlog: SynthDvlogConfig
    lmvd: SynthLmvdConfig
    daic_woz: SynthDvlogConfig | None = None        # the D-Vlog block's shape: participants, folds, seconds
    manifest: SynthManifestConfig | None = None


class KFoldConfig(Strict):
    k: int = Field(ge=2)
    valid_fraction: float = Field(gt=0, lt=1)


class GenderSplitConfig(Strict):
    """The by-gender protocols' settings (asym.data.splits.by_gender)."""

    # target: the validation fold holds the test gender's vlogs, as DynMultiDep's code filters it;
    # source: the training gender's, so no label of the test gender is seen before the test
    validation: Literal["target", "source"]
    min_test_per_class: int = Field(ge=1)    # fewer depressed or normal test vlogs: refused as too small


class SplitConfig(Strict):
    seed: int
    ratios: tuple[float, float, float]
    kfold: KFoldConfig
    gender: GenderSplitConfig | None = None   # read by the by-gender protocols only

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(v) - 1.0) > 1e-6 or min(v) <= 0:
            raise ValueError("must be three positive numbers summing to 1")
        return v


def distinct_seeds(v: ByScale[list[int]]) -> ByScale[list[int]]:
    """Each scale's seeds: at least one, distinct, non-negative (the run's and the study's alike)."""
    for scale in SCALES:
        seeds = v.at(scale)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"{scale}: needs distinct non-negative seeds")
    return v


Seeds = Annotated[ByScale[list[int]], AfterValidator(distinct_seeds)]


class RunConfig(Strict):
    datasets: list[str] = Field(min_length=1)
    models: Literal["all"] | list[str]
    seeds: Seeds
    # `models: all` trains the peers' own ablations (kind peer-ablation) too only when this is on
    peer_ablations: bool = False



# How the DAGs cut training into jobs (asym.dag.stages): `per_model` trains every seed of a
# (dataset, model) in one job (start-up paid once), `per_seed` one job per seed (a cluster or a
# multi-GPU box spreads the seeds). The same run folders either way.
TrainJob = Literal["per_model", "per_seed"]


class TrainConfig(Strict):
    device: Literal["auto", "cpu", "cuda"]
    job: ByScale[TrainJob] = ByScale[TrainJob](demo="per_model", paper="per_model")
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
            return int(per_dataset(self.min_frames, dataset, "recipe crop.min_frames"))
        return int(self.min_frames or 0)


class PlateauConfig(Strict):
    """`scheduler: plateau`: ReduceLROnPlateau on the validation loss (CAF-Mamba's), the factor
    per dataset; PyTorch's defaults for everything else (mode min, threshold 1e-4 relative)."""

    factor: dict[str, float]
    patience: int = Field(ge=0)

    @field_validator("factor")
    @classmethod
    def _factors(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(not 0 < f < 1 for f in v.values()):
            raise ValueError("needs a factor in (0, 1) per dataset")
        return v

    def factor_for(self, dataset: str) -> float:
        return per_dataset(self.factor, dataset, "recipe plateau.factor")


class CombinedLossConfig(Strict):
    """`loss: combined` (MDD-Net's CombinedLoss, asym.train.losses): BCE on label-smoothed targets, plus
    `focal_weight` x that BCE x the batch mean of the focal factors, plus `l2_weight` x `l2_lambda`
    x the sum of every parameter's L2 norm."""

    smoothing: float = Field(ge=0, lt=1)
    focal_weight: float = Field(ge=0)
    focal_alpha: float = Field(ge=0, le=1)
    focal_gamma: float = Field(ge=0)
    l2_weight: float = Field(ge=0)
    l2_lambda: float = Field(ge=0)


class ThresholdGrid(Strict):
    """The candidate thresholds of `threshold: valid_f1`: low, low + step, ... up to high."""

    low: float = Field(gt=0, lt=1)
    high: float = Field(gt=0, lt=1)
    step: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdGrid:
        if self.high < self.low:
            raise ValueError("high must not be below low")
        return self


# A recipe's decision threshold unless it names one; also the cut at which checkpoints are selected.
DEFAULT_THRESHOLD = 0.5


class RecipeConfig(Strict):
    optimizer: Literal["adam", "adamw"]
    lr: dict[str, float]
    betas: tuple[float, float] | None = None       # Adam's; null = PyTorch's (0.9, 0.999)
    weight_decay: float = Field(ge=0)
    # `weights`: A_log, D, norms and biases exempt (mamba-ssm's groups); `all`: every parameter
    weight_decay_on: Literal["weights", "all"] = "weights"
    scheduler: Literal["none", "cosine", "plateau"]
    plateau: PlateauConfig | None = None
    grad_clip: float | None = Field(default=None, gt=0)
    # zscore: train-fold statistics; none: raw; per_sample: each vlog over its own frames
    normalize: Literal["zscore", "none", "per_sample"]
    std_floor: float | None = Field(default=None, gt=0)    # per_sample: the smallest std divided by
    crop: CropConfig
    loss: Literal["bce", "combined"]
    combined_loss: CombinedLossConfig | None = None
    class_weighting: Literal["none", "balanced"]
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    selection_metric: Literal["mean4", "accuracy", "f1", "balanced_accuracy", "mcc"]
    # the probability at or above which a vlog is labelled depressed; `valid_f1`: the grid's
    # threshold of highest F1 on the validation fold, at the chosen checkpoint (asym.train.thresholds)
    threshold: float | Literal["valid_f1"] = DEFAULT_THRESHOLD
    threshold_grid: ThresholdGrid | None = None

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not 0 < v < 1:
            raise ValueError("must be in (0, 1) or `valid_f1`")
        return v

    @model_validator(mode="after")
    def _complete(self) -> RecipeConfig:
        need = [("plateau", self.scheduler == "plateau"), ("combined_loss", self.loss == "combined"),
                ("std_floor", self.normalize == "per_sample"), ("threshold_grid", self.threshold == "valid_f1")]
        missing = [key for key, needed in need if needed and getattr(self, key) is None]
        if missing:
            raise ValueError(f"needs {missing} for its scheduler / loss / normalize / threshold")
        if self.betas is not None and not all(0 <= b < 1 for b in self.betas):
            raise ValueError("betas must lie in [0, 1)")
        return self

    def lr_for(self, dataset: str) -> float:
        return per_dataset(self.lr, dataset, "recipe lr")


class ReportConfig(Strict):
    bootstrap: int = Field(ge=100)
    ci_seed: int
    alpha: float = Field(gt=0, lt=1)
    chance_draws: int = Field(ge=1)
    mde_power: float = Field(default=0.8, gt=0, lt=1)   # power at which captions state the detectable ΔF1


class OptimismConfig(Strict):
    """The cost of selecting on the test fold, measured: each of `models` is trained again under
    both OPTIMISM_PROTOCOLS (the same outer folds, the same `seeds`) on every dataset of the run,
    apart from the main runs (asym.grid.optimism_folders); the report's `protocol_optimism` table
    sets the two side by side. An empty list turns the study off."""

    models: ByScale[list[str]]
    seeds: Seeds



class CrossGenderConfig(Strict):
    """Training on one gender and testing on the other, measured: each of `models` is trained under
    every by-gender protocol (asym.data.protocols.GENDER_PROTOCOLS: f -> m and m -> f, with each test
    gender's same-gender reference) on each of `datasets` that the run trains on (datasets whose
    releases record gender), apart from the main runs (asym.grid.cross_gender_folders); the report's `cross_gender`
    table sets each cross-gender score beside its same-gender one. An empty model list turns the
    study off."""

    models: ByScale[list[str]]
    seeds: Seeds
    datasets: list[str]


class CostConfig(Strict):
    """`asym cost` (asym.cost): each model's parameters, multiply-accumulates, CPU latency and peak
    memory per minute of vlog, at each of `minutes` (the field's vlogs run from a minute to over an
    hour), on `batch` vlogs per forward pass."""

    # vlog lengths costed at each scale (the demo's fewer and shorter: the step runs in the demo DAG)
    minutes: ByScale[Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]]
    batch: int = Field(ge=1)                 # vlogs per forward pass
    threads: int = Field(ge=1)               # torch threads while timing on the CPU
    warmup: int = Field(ge=1)                # untimed forward passes before the timed ones
    repeats: ByScale[Annotated[int, Field(ge=1)]]   # timed forward passes; their median is reported
    # measure peak memory at each scale (the resident set's high-water mark, Linux): the slowest part on the CPU
    memory: ByScale[bool] = ByScale[bool](demo=True, paper=True)

    @field_validator("minutes")
    @classmethod
    def _distinct(cls, v: ByScale[list[float]]) -> ByScale[list[float]]:
        for scale in SCALES:
            if len(set(v.at(scale))) != len(v.at(scale)):
                raise ValueError(f"{scale}: needs distinct lengths")
        return type(v)(**{scale: sorted(v.at(scale)) for scale in SCALES})


class RobustnessConfig(Strict):
    """Robustness curves (`asym robustness`, asym.robustness): every trained run evaluated on its test
    fold(s) under perturbations drawn at evaluation time, never retrained. Levels exclude the clean
    one, which every curve starts from."""

    seed: int                                       # every perturbation's draws (asym.robustness.vlog_rng)
    bootstrap: int = Field(ge=100)                  # resamples of the CIs and exchanges of the paired tests
    drop: list[Literal["audio", "visual", "both"]]  # modalities replaced by their training-fold mean
    noise: list[Literal["audio", "visual"]]         # modalities given Gaussian noise at each of noise_levels
    noise_levels: list[Annotated[float, Field(gt=0)]]       # std, in the feature's normalised training-fold stds
    keep_first: list[Annotated[float, Field(gt=0, lt=1)]]   # share of each vlog kept, from its first frame
    drop_frames: list[Annotated[float, Field(gt=0, lt=1)]]  # share of each vlog's frames removed at random
    metric: Literal["balanced_accuracy", "auroc", "f1"]     # of the relative / effective robustness summary
    reference: str | None = None                    # effective robustness's reference model (MultiBench: late fusion)
    # the run's models perturbed at each scale (`all`: every model of the run); the DAG's step
    # depends on these models' runs alone
    models: ByScale[Literal["all"] | list[str]] = ByScale[Literal["all"] | list[str]](demo="all", paper="all")

    @field_validator("noise_levels", "keep_first", "drop_frames")
    @classmethod
    def _distinct(cls, v: list[float]) -> list[float]:
        if len(set(v)) != len(v):
            raise ValueError("levels must be distinct")
        return sorted(v)


class ExplainConfig(Strict):
    """`asym explain`: Captum's Integrated Gradients of the depressed-class logit (asym.explain)."""

    n_steps: int = Field(ge=2)                 # Riemann steps of the path integral from the baseline
    internal_batch_size: int = Field(ge=1)     # interpolated inputs per forward pass (memory, not results)
    max_vlogs: int | None = Field(default=None, ge=1)   # test vlogs attributed per run (null: all of them)
    timelines: int = Field(ge=0)               # per-vlog timeline plots written per run
    random_seed: int                           # initialises the re-initialised model of the sanity check
    generic_groups: int = Field(ge=1)          # contiguous column blocks for widths whose columns have no names
    # the models and seeds the DAG explains at each scale (one job per dataset, model and seed);
    # `asym explain` on its own explains whatever runs it is given
    models: ByScale[list[str]] = ByScale[list[str]](demo=["asym"], paper=["asym"])
    seeds: ByScale[list[int]] = ByScale[list[int]](demo=[0], paper=[0])


class ParamsFile(Strict):
    extends: str | None = None   # a params file this one amends (see load_params)
    # model files (paths relative to the params file that lists them) or importable modules whose
    # models join the registry's (see load_params)
    plugins: list[str] = Field(default_factory=list)
    scale: Scale
    paths: PathsConfig
    mlflow: MlflowConfig
    datasets: dict[str, DatasetConfig]
    readers: ReadersConfig
    extract: ExtractConfig | None = None
    synth: SynthConfig
    split: SplitConfig
    run: RunConfig
    train: TrainConfig
    recipes: ByScale[dict[str, RecipeConfig]]
    model: ByScale[Any]           # one typed block per model family: see params_schema
    report: ReportConfig
    optimism: OptimismConfig | None = None
    cross_gender: CrossGenderConfig | None = None
    cost: CostConfig | None = None
    robustness: RobustnessConfig | None = None
    explain: ExplainConfig | None = None

    @model_validator(mode="after")
    def _cross_refs(self, info: ValidationInfo) -> ParamsFile:
        # the models this file can name: the built-ins and its own plug-ins' (load_params says which)
        models = (info.context or {}).get("models") or registry.names()

        def known(chosen: list[str], key: str) -> None:
            unknown = [m for m in chosen if m not in models]
            if unknown:
                raise ValueError(f"{key} names unknown models {unknown}; known: {models}")

        for scale in SCALES if self.optimism is not None else ():
            known(self.optimism.models.at(scale), f"optimism.models.{scale}")

        for name in self.run.datasets:
            if name not in self.datasets:
                raise ValueError(f"run.datasets names {name!r}, which is not under `datasets`")
        self._cross_gender(known)
        if self.robustness is not None and self.robustness.reference is not None:
            known([self.robustness.reference], "robustness.reference")
        for scale in SCALES:
            chosen = self.robustness.models.at(scale) if self.robustness is not None else "all"
            if chosen != "all":
                known(chosen, f"robustness.models.{scale}")
            if self.explain is not None:
                known(self.explain.models.at(scale), f"explain.models.{scale}")
        if self.run.models != "all":
            known(self.run.models, "run.models")
        for name, ds in self.datasets.items():
            self._reader_inputs(name, ds)
            for scale in SCALES:
                protocol = ds.protocol.at(scale)
                if protocols.get(protocol).split_csv and ds.split_csv is None:
                    raise ValueError(f"datasets.{name}: protocol {protocol} needs split_csv")
        for scale in SCALES:
            for model in models:
                entry = registry.get(model)
                if entry.recipe not in self.recipes.at(scale):
                    raise ValueError(f"recipes.{scale} has no recipe {entry.recipe!r} (named by model {model!r}"
                                     f"{_declared_by(model)})")
        self._per_dataset_entries(models)
        return self

    def _cross_gender(self, known: Any) -> None:
        """The gender study's models exist, its datasets are the run's and record gender, and the
        by-gender protocols' settings are there wherever one is used."""
        study = self.cross_gender
        if study is not None:
            for scale in SCALES:
                known(study.models.at(scale), f"cross_gender.models.{scale}")
            for name in study.datasets:
                if name not in self.datasets:
                    raise ValueError(f"cross_gender.datasets names {name!r}, which is not under `datasets`")
                fmt = self.datasets[name].format
                if fmt in NO_GENDER_FORMATS:
                    raise ValueError(f"cross_gender.datasets names {name!r}, whose release ({formats.title(fmt)}, "
                                     "format " + fmt + ") records no gender: the cross-gender study cannot run on it")
        used = [f"datasets.{n}" for n, ds in self.datasets.items() for sc in SCALES if ds.protocol.at(sc) in GENDER_PROTOCOLS]
        for key in used:
            fmt = self.datasets[key.split(".")[1]].format
            if fmt in NO_GENDER_FORMATS:
                raise ValueError(f"{key}: a by-gender protocol splits by gender, which {formats.title(fmt)}'s release "
                                 "(format " + fmt + ") does not record")
        if study is not None and any(study.models.at(sc) for sc in SCALES):
            used.append("cross_gender")
        if used and self.split.gender is None:
            raise ValueError(f"{sorted(set(used))[0]} uses the by-gender protocols, which need the `split.gender` block")

    def _reader_inputs(self, name: str, ds: DatasetConfig) -> None:
        """What the dataset's reader reads is there, and a demo is read at the rates it is written at."""
        fmt = formats.get(ds.format)
        if fmt.reader_block and getattr(self.readers, fmt.reader_block, None) is None:
            raise ValueError(f"datasets.{name} (format {ds.format}) needs the `readers.{fmt.reader_block}` block")
        demo = getattr(self.synth, ds.format, None) if ds.source == "demo" else None
        if fmt.frame_rates and demo is not None and (ds.frame_rates or FrameRates()) != demo.frame_rates:
            raise ValueError(f"datasets.{name}.frame_rates must equal synth.{ds.format}.frame_rates, the rates its "
                             "demo is written at")

    def _per_dataset_entries(self, models: list[str]) -> None:
        """Every per-dataset setting of a recipe the run trains has an entry for every dataset it
        trains on, or a `default`: refused here, naming the key to add, not in the middle of a run."""
        trained = models if self.run.models == "all" else self.run.models
        if self.optimism is not None:
            trained = [*trained, *(m for s in SCALES for m in self.optimism.models.at(s))]
        if self.cross_gender is not None and set(self.cross_gender.datasets) & set(self.run.datasets):
            trained = [*trained, *(m for s in SCALES for m in self.cross_gender.models.at(s))]
        for scale in SCALES:
            for recipe in sorted({registry.get(m).recipe for m in trained}):
                r = self.recipes.at(scale)[recipe]
                keyed = {"lr": r.lr, "plateau.factor": r.plateau.factor if r.plateau else None,
                         "crop.min_frames": r.crop.min_frames if isinstance(r.crop.min_frames, dict) else None}
                for key, values in keyed.items():
                    for dataset in self.run.datasets if values is not None else ():
                        if dataset not in values and DEFAULT_ENTRY not in values:
                            raise ValueError(f"recipes.{scale}.{recipe}.{key} has no entry for dataset {dataset!r}: add "
                                             f"`{dataset}: <value>` (or `{DEFAULT_ENTRY}: <value>`, for every dataset "
                                             "it does not name)")


_SCHEMAS: dict[type, type[ParamsFile]] = {}


def params_schema(modules: list[str] | None = None) -> type[ParamsFile]:
    """ParamsFile with `model.<scale>` typed: one block per family of the models the registry has
    collected (asym.models.registry), or of those `modules` declare, each checked against its
    model's config."""
    blocks = registry.model_blocks(modules)
    if blocks not in _SCHEMAS:
        _SCHEMAS[blocks] = create_model("ParamsFile", __base__=ParamsFile, model=(ByScale[blocks], ...))
    return _SCHEMAS[blocks]


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

    def __init__(self, data: ParamsFile, path: Path, raw: dict[str, Any], in_optimism: bool = False,
                 plugins: list[str] | None = None) -> None:
        self.data = data
        self.path = path
        self.raw = raw            # the YAML as written: params slices for the DAGs' rerun triggers
        self.in_optimism = in_optimism    # the optimism study's view (`for_optimism`): its runs keep more files
        self.plugins = list(plugins or [])    # the modules its `plugins` loaded (asym.models.registry)

    # --- scale-resolved views ------------------------------------------------------------
    @property
    def scale(self) -> str:
        return self.data.scale

    scales: tuple[str, ...] = SCALES

    def at_scale(self, scale: str) -> Params:
        """The same file read at another scale (e.g. paper-scale widths from a demo config)."""
        return Params(self.data.model_copy(update={"scale": scale}), self.path, {**self.raw, "scale": scale}, self.in_optimism,
                      self.plugins)

    @property
    def root(self) -> Path:
        """The params file's folder; for a file that `extends` another, the other's: its keys
        amend that file, so their relative paths mean what they would there."""
        if self.data.extends is not None:
            return (self.path.resolve().parent / self.data.extends).resolve().parent
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

    @property
    def cost(self) -> CostConfig:
        if self.data.cost is None:
            raise ConfigError(f"{self.path}: no `cost` block (minutes, batch, threads, warmup, repeats) for `asym cost`")
        return self.data.cost

    @property
    def robustness(self) -> RobustnessConfig:
        if self.data.robustness is None:
            raise ConfigError(f"{self.path}: no `robustness` block: `asym robustness` reads its settings there")
        return self.data.robustness

    @property
    def robustness_models(self) -> list[str]:
        """The run's models `asym robustness` perturbs at the active scale (robustness.models), in
        the run's order: a listed model the run does not train has no runs to perturb."""
        chosen = self.robustness.models.at(self.scale)
        return [m for m in self.models if chosen == "all" or m in chosen]

    @property
    def explain(self) -> ExplainConfig:
        """The `explain` block, or an error naming the file that lacks it."""
        block = self.data.explain
        if block is None:
            raise ConfigError(f"{self.path}: no `explain` block (n_steps, internal_batch_size, max_vlogs, timelines, "
                              "random_seed, generic_groups) for `asym explain`")
        return block

    def explain_runs(self) -> list[Run]:
        """The runs the DAG explains at the active scale: explain.models and explain.seeds, those the run trains."""
        cfg = self.explain
        models, seeds = cfg.models.at(self.scale), cfg.seeds.at(self.scale)
        return [r for r in self.runs() if r.model in models and r.seed in seeds]

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

    def model_config(self, name: str, dataset: str | None = None, **overrides: Any) -> ModelConfig:
        """Registry entry `name`'s family block at the active scale, refined for `dataset`, with the
        entry's overrides and then the caller's: what the model is built from and what its
        checkpoint records."""
        entry = registry.get(name)
        block = getattr(self.data.model.at(self.scale), entry.family)
        try:
            return block.resolved(dataset, {**entry.overrides, **overrides})
        except ValidationError as exc:
            raise ConfigError(f"model {name!r} at model.{self.scale}.{entry.family}: {_format_errors(exc)}") from None

    @property
    def seeds(self) -> list[int]:
        return list(self.data.run.seeds.at(self.scale))

    @property
    def train_job(self) -> str:
        """`train.job` at the active scale: one training job per (dataset, model), or per seed."""
        return self.data.train.job.at(self.scale)

    @property
    def datasets(self) -> list[str]:
        return list(self.data.run.datasets)

    @property
    def models(self) -> list[str]:
        run = self.data.run
        if run.models != "all":
            return list(run.models)
        every = registry.names(modules=[*registry.builtins(), *self.plugins])
        return [m for m in every if run.peer_ablations or registry.get(m).kind != registry.PEER_ABLATION_KIND]

    def runs(self, dataset: str | None = None, model: str | None = None) -> list[Run]:
        """The run grid (datasets x models x seeds), optionally of one dataset or model."""
        return [Run(d, m, s) for d in ([dataset] if dataset else self.datasets)
                for m in ([model] if model else self.models) for s in self.seeds]

    # --- the optimism study: the same steps, another protocol, its own folders --------------
    @property
    def optimism_models(self) -> list[str]:
        """The models of the optimism study at the active scale (none when it is off)."""
        return [] if self.data.optimism is None else list(self.data.optimism.models.at(self.scale))

    @property
    def optimism_seeds(self) -> list[int]:
        return [] if self.data.optimism is None else list(self.data.optimism.seeds.at(self.scale))

    def for_optimism(self, protocol: str) -> Params:
        """This file as the optimism study's runs under `protocol` read it: every dataset split by
        `protocol`, the study's models and seeds, and splits and runs in the protocol's own
        folders (asym.grid.optimism_folders), so the steps themselves need no second code path.
        `raw` stays the file as written: what the study's stages depend on is named by
        the stage table's study rows (asym.dag.stages)."""
        if protocol not in OPTIMISM_PROTOCOLS:
            raise ConfigError(f"the optimism study runs {list(OPTIMISM_PROTOCOLS)}, not {protocol!r}")
        d = self.data
        by_scale = ByScale[Protocol](demo=protocol, paper=protocol)
        folders = optimism_folders({k: Path(getattr(d.paths, k)).as_posix() for k in OPTIMISM_FOLDERS}, protocol)
        paths = d.paths.model_copy(update={k: Path(v) for k, v in folders.items()})
        seeds = ByScale[list[int]](demo=self.optimism_seeds or [0], paper=self.optimism_seeds or [0])
        run = d.run.model_copy(update={"models": self.optimism_models, "seeds": seeds})
        datasets = {n: ds.model_copy(update={"protocol": by_scale}) for n, ds in d.datasets.items()}
        data = d.model_copy(update={"paths": paths, "run": run, "datasets": datasets})
        return Params(data, self.path, self.raw, in_optimism=True, plugins=self.plugins)

    # --- the cross-gender study: the same steps, a by-gender protocol, its own folders -------
    @property
    def cross_gender_models(self) -> list[str]:
        """The models of the cross-gender study at the active scale (none when it is off)."""
        return [] if self.data.cross_gender is None else list(self.data.cross_gender.models.at(self.scale))

    @property
    def cross_gender_seeds(self) -> list[int]:
        return [] if self.data.cross_gender is None else list(self.data.cross_gender.seeds.at(self.scale))

    @property
    def cross_gender_datasets(self) -> list[str]:
        """The study's datasets, in the run's order (none when it is off)."""
        chosen = [] if not self.cross_gender_models else self.data.cross_gender.datasets
        return [d for d in self.datasets if d in chosen]

    def for_cross_gender(self, protocol: str) -> Params:
        """This file as the cross-gender study's runs under `protocol` read it (as `for_optimism`
        does for that study): the study's datasets split by `protocol`, its models and seeds, in
        the protocol's own folders (asym.grid.cross_gender_folders)."""
        if protocol not in GENDER_PROTOCOLS:
            raise ConfigError(f"the cross-gender study runs {list(GENDER_PROTOCOLS)}, not {protocol!r}")
        d = self.data
        by_scale = ByScale[Protocol](demo=protocol, paper=protocol)
        folders = cross_gender_folders({k: Path(getattr(d.paths, k)).as_posix() for k in CROSS_GENDER_FOLDERS}, protocol)
        paths = d.paths.model_copy(update={k: Path(v) for k, v in folders.items()})
        seeds = ByScale[list[int]](demo=self.cross_gender_seeds or [0], paper=self.cross_gender_seeds or [0])
        run = d.run.model_copy(update={"models": self.cross_gender_models, "seeds": seeds,
                                       "datasets": self.cross_gender_datasets})
        datasets = {n: ds.model_copy(update={"protocol": by_scale}) for n, ds in d.datasets.items()}
        data = d.model_copy(update={"paths": paths, "run": run, "datasets": datasets})
        return Params(data, self.path, self.raw, plugins=self.plugins)

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


def _extended(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """`extends: <params file>` (relative to this one): that file with this one's keys in place
    of its own, mappings merged key by key, anything else (a list, a number) replaced whole.
    One level only, so what a file means can be read from two files."""
    base = raw["extends"]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends: expected the path of a params file, relative to this one")
    base_path = path.parent / base
    base_raw = _yaml_mapping(base_path, f"{path}: extends: {base_path}: params file not found")
    if base_raw.get("extends") is not None:
        raise ConfigError(f"{path}: extends {base_path}, which extends another file: one level only")
    return deep_merge(base_raw, raw)


# libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents, a
# tenth of the time of every job's start.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_mapping(path: Path, missing: str) -> dict[str, Any]:
    """A YAML file holding a mapping; `missing`: what to say when there is no file."""
    if not path.is_file():
        raise ConfigError(missing)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    return raw


def _read_raw(path: Path) -> dict[str, Any]:
    """The params file as YAML, with the file it `extends` merged in; not yet validated."""
    raw = _yaml_mapping(path, f"{path}: params file not found")
    if raw.get("extends") is not None:
        raw = _extended(path, raw)
    return raw


def plugins_folder(path: Path) -> Path:
    """What a params file's `plugins` paths are relative to: the folder of the file that lists
    them, which is the file itself, or the file it `extends` where only that one has the key
    (the project's plug-ins live beside the project's params file, whatever file it amends)."""
    raw = _yaml_mapping(path, f"{path}: params file not found")
    if "plugins" not in raw and isinstance(raw.get("extends"), str):
        return (path.parent / raw["extends"]).resolve().parent
    return path.resolve().parent


def load_plugins(path: Path, raw: Mapping[str, Any]) -> list[str]:
    """The models of `plugins` (Python files, or importable modules) collected by the registry
    before the file is validated, so their params blocks are typed like a built-in's. An import
    error, a name taken by a built-in, an untyped config is refused here, naming the file."""
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(x, str) and x for x in plugins):
        raise ConfigError(f"{path}: plugins: expected a list of model files (relative to the params file that lists "
                          "them) or importable module names")
    return registry.load(*plugins, base=plugins_folder(path)) if plugins else []


def _declared_by(model: str) -> str:
    plugin = registry.plugin_of(model)
    return f", declared by plug-in {plugin['file']}" if plugin else ""


def _plugin_blocks(exc: ValidationError, modules: list[str]) -> str:
    """Where a plug-in's params block is missing or bad: the plug-ins' files, to append to the errors."""
    families = {registry.get(n).family: n for n in registry.names(modules=modules)}
    named = {families[str(e["loc"][2])] for e in exc.errors()
             if len(e["loc"]) > 2 and e["loc"][0] == "model" and str(e["loc"][2]) in families}
    return "".join(f" (model.<scale>.{registry.get(n).family} is the block of {n!r}, declared by plug-in "
                   f"{registry.module_file(registry.declared_in(n))})" for n in sorted(named))


def load_params(path: str | os.PathLike) -> Params:
    path = Path(path)
    raw = _read_raw(path)
    plugins = load_plugins(path, raw)
    modules = [*registry.builtins(), *plugins]
    try:
        data = params_schema(modules).model_validate(raw, context={"models": registry.names(modules=modules)})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_errors(exc)}{_plugin_blocks(exc, plugins)}") from None
    return Params(data, path, raw, plugins=plugins)


def load_extract(path: str | os.PathLike) -> ExtractConfig:
    """The `extract` block alone: `asym extract` runs on any machine with a video, without the
    datasets, recipes and models the rest of the file configures (those are not validated here)."""
    path = Path(path)
    block = _read_raw(path).get("extract")
    if block is None:
        raise ConfigError(f"{path}: no `extract` block (sample_rate, upsample, landmark_order) for `asym extract`")
    try:
        return ExtractConfig.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(f"{path}: extract.{_format_errors(exc)}") from None
