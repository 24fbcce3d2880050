"""`asym predict`: a trained run (or every seed of one) applied to vlogs it has never seen.

The input is read by the same readers and validation as a release (any layout of
asym.data.formats: D-Vlog's, either of LMVD's, DAIC-WOZ's, a manifest CSV, an `asym extract`
output, or an `asym convert` Parquet table), with labels optional, with the reader settings
the model was trained with, into
the very table training reads (asym.data.parquet). The model is rebuilt from its checkpoint
alone: its `meta` block names the model, its resolved config, input widths, format and each
partition's threshold, and each partition keeps its training fold's normaliser; train.json is
never read. A checkpoint without that block predates it and is refused (retrain it).

Each vlog gets the probability of the depressed class, averaged over a run's partitions and, for
a model folder, over its seeds (with their spread). Under `kfold` a run has one model per outer
fold, each trained on the other folds: for new vlogs, which none of them saw, their mean is one
score per vlog. For a vlog of the training data it is not a held-out score (the other partitions
trained on it); the held-out one is that partition's alone, as the run's predictions.parquet
holds it (`RunModel.per_partition`). These are research models, not diagnostic tools: the output
says so.
"""

from __future__ import annotations

import importlib.machinery
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from torch import nn

from asym.data import formats
from asym.data.parquet import FeatureTable, feature_table, read_samples, samples_table
from asym.errors import ConfigError, DataError
from asym.grid import SEED_FOLDER
from asym.io import atomic_path
from asym.layout import TRAIN_FILES
from asym.models import factory, registry

DISCLAIMER = ("research model trained on a dataset's depression labels (annotators' or questionnaires', not "
              "clinical diagnoses); not a diagnostic tool and not for clinical use")
SEED_DIR = re.compile(re.escape(SEED_FOLDER).replace(re.escape("{}"), r"(\d+)"))
# Seeds of one model must agree on these to be averaged (asym.inference.predict.check_compatible).
SAME_MODEL = ("format", "audio_dim", "visual_dim", "model", "scale", "model_config")


@dataclass
class RunModel:
    """One seed's trained model(s): one per partition, each with its training fold's normaliser
    and decision threshold."""

    run_dir: Path
    meta: dict[str, Any]
    models: list[nn.Module]
    norms: list[Any]
    thresholds: list[float]

    @property
    def threshold(self) -> float:
        """The run's decision threshold (partitions of a `kfold` run averaged, as their probabilities are)."""
        return float(np.mean(self.thresholds))

    def per_partition(self, table: FeatureTable, device: torch.device) -> np.ndarray:
        """(partitions, vlogs): each partition's own model's probabilities."""
        from asym.train.feed import predict

        batch = int(self.meta["eval_batch_size"])
        return np.stack([predict(m, table, n, batch, device) for m, n in zip(self.models, self.norms, strict=True)])

    def probabilities(self, table: FeatureTable, device: torch.device) -> np.ndarray:
        """The mean over partitions: one score per new vlog (see the module's note on `kfold`)."""
        return self.per_partition(table, device).mean(0)


def plugin_file(meta: dict[str, Any], where: Path, on_path: bool = False) -> Path | None:
    """The plug-in file a checkpoint's model is declared in, collected by the registry (None for a
    built-in). It is the file the checkpoint records, or with `on_path` the module of that name on
    sys.path (an MLflow Model's code directory). A missing file is refused; a file whose sha256
    differs from the recorded one is loaded with a warning (the code the weights were trained with
    changed: restore it to predict as trained), and weights that no longer fit are refused."""
    plugin = meta.get("plugin")
    if not plugin:
        return None
    module, recorded = plugin["module"], Path(plugin["file"])
    if on_path:
        spec = importlib.machinery.PathFinder.find_spec(module)
        recorded = Path(spec.origin) if spec is not None and spec.origin else recorded
    if meta["model"] not in registry.names() and plugin.get("loaded_as") == "module":
        try:
            registry.load(module)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {meta['model']!r} was trained from plug-in module {module} "
                              f"({plugin['file']}), which is missing: {exc}") from None
    if meta["model"] not in registry.names():
        if not recorded.is_file():
            raise ConfigError(f"{where}: {meta['model']!r} was trained from plug-in {recorded}, which is missing: "
                              "restore that file (the checkpoint records its path and sha256) to rebuild the model")
        registry.load(recorded)
    if meta["model"] not in registry.names() or registry.declared_in(meta["model"]) != module:
        raise ConfigError(f"{where}: {meta['model']!r} was trained from plug-in {plugin['file']}, which the "
                          f"registry's {meta['model']!r} no longer comes from")
    path = registry.module_file(module)
    digest = registry.plugin_of(meta["model"])["sha256"]
    if digest != plugin["sha256"]:
        print(f"asym predict: warning: plug-in {path} changed since {where} was trained (sha256 {digest[:12]}, "
              f"trained with {plugin['sha256'][:12]}): the model is rebuilt from the file as it is now",
              file=sys.stderr)
    return path


def model_builder(meta: dict[str, Any], where: Path) -> Callable[[], nn.Module]:
    """Builds the registry's class with the checkpoint's own resolved config (never params.yaml's),
    once per partition; the config is checked, and a changed entry said, once."""
    entry = registry.get(meta["model"])
    if entry.digest() != meta["entry_digest"]:
        print(f"asym predict: warning: the registry entry of {meta['model']!r} changed since {where} was trained",
              file=sys.stderr)

    def refused(exc: Exception) -> ConfigError:
        return ConfigError(f"{where}: cannot rebuild {meta['model']!r} from its checkpoint: {exc}")

    try:
        config = factory.family_config(meta["model"], meta["model_config"])
    except (TypeError, ValidationError) as exc:
        raise refused(exc) from None

    def build() -> nn.Module:
        try:
            return factory.build(meta["model"], int(meta["audio_dim"]), int(meta["visual_dim"]), config)
        except (TypeError, ValidationError) as exc:
            raise refused(exc) from None
    return build


def _meta(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    from asym.train.job import CHECKPOINT_VERSION

    meta = ckpt.get("meta")
    if not meta:
        raise DataError(path, "a checkpoint from before checkpoints described themselves (no `meta`): it cannot "
                        "be rebuilt on its own; train this run again (`make run` or `asym train`)")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise DataError(path, f"checkpoint format version {meta.get('version')!r}; this asym reads version "
                        f"{CHECKPOINT_VERSION}")
    return meta


def load_run(run_dir: Path, device: torch.device, plugins_on_path: bool = False) -> RunModel:
    """Rebuild one seed's model(s) from its checkpoint.pt alone, read once (a plug-in model's file
    from where the checkpoint says, or with `plugins_on_path` from sys.path: see plugin_file)."""
    from asym.train.job import unpack_partition

    run_dir = Path(run_dir)
    path = run_dir / TRAIN_FILES["checkpoint"]
    if not path.is_file():
        raise DataError(path, "missing checkpoint (is this a run folder, runs/<dataset>/<model>/seed<k>?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:    # torch raises several kinds for a truncated or foreign file
        # not torch's message: it suggests weights_only=False, which would run code from the file
        raise DataError(path, "not a checkpoint written by `asym train` (truncated, or another kind of file; "
                        f"it is read as tensors only, never unpickled; torch said {type(exc).__name__})") from None
    meta = _meta(ckpt, path)
    thresholds = [float(t) for t in meta["threshold"]]
    if len(thresholds) != len(ckpt["partitions"]):
        raise DataError(path, f"{len(thresholds)} threshold(s) for {len(ckpt['partitions'])} partition(s)")
    models, norms = [], []
    plugin_file(meta, path, plugins_on_path)
    build = model_builder(meta, path)
    for part in ckpt["partitions"]:
        state, norm, _ = unpack_partition(part)
        model = build()
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(f"{path}: its weights do not fit {meta['model']!r} as the registry builds it: {exc}") from None
        models.append(model.to(device).eval())
        norms.append(norm)
    return RunModel(run_dir, meta, models, norms, thresholds)


def run_dirs(model_path: Path) -> list[Path]:
    """A seed folder itself, or every complete seed folder (`seed<k>`) of runs/<dataset>/<model>."""
    model_path = Path(model_path)
    if (model_path / TRAIN_FILES["checkpoint"]).is_file():
        return [model_path]
    seeds = sorted((int(m.group(1)), d) for d in model_path.glob("seed*")
                    if (m := SEED_DIR.fullmatch(d.name)) and (d / TRAIN_FILES["checkpoint"]).is_file()
                    and (d / TRAIN_FILES["summary"]).is_file())
    if not seeds:
        raise DataError(model_path, f"no trained run here: expected {TRAIN_FILES['checkpoint']}, or seed<k>/ folders with one")
    return [d for _, d in seeds]


# --- input ------------------------------------------------------------------------------------
def detect_format(path: Path, expected: str | None = None) -> str:
    """The format whose layout `path` is in: `expected` (the model's) first, then every other."""
    order = [expected] if expected in formats.names() else []
    order += [f for f in formats.names() if f not in order]
    for name in order:
        try:
            formats.get(name).detect(path)
            return name
        except DataError:
            continue
    layouts = ", ".join(formats.get(f).title for f in formats.names())
    raise DataError(path, f"not in any layout asym reads ({layouts}), nor an asym Parquet table")


def _trained_on(meta: dict[str, Any]) -> str:
    return f"{formats.title(meta['format'])} features ({meta['audio_dim']} audio + {meta['visual_dim']} visual)"


def read_release_table(path: Path, meta: dict[str, Any]) -> FeatureTable:
    """A release folder (or a manifest) as the table `asym convert` would write of it (labels
    optional), read with the reader settings the model was trained with."""
    from asym.data.convert import read_release

    fmt = detect_format(path, meta["format"])
    if fmt != meta["format"]:
        raise DataError(path, f"a {formats.title(fmt)} input, but the model was trained on {_trained_on(meta)}")
    samples, layout = read_release(fmt, path, meta.get("readers") or {}, labels_required=False)
    table = samples_table(samples, {"format": fmt, "layout": layout, "source": str(path)}, path)
    return feature_table(table, path)


def read_input(path: Path, meta: dict[str, Any]) -> FeatureTable:
    """Vlogs to predict, read and validated as a release is, and checked against the model's
    format and input widths."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        table = read_samples(path)
        fmt = table.meta.get("format")
        if fmt != meta["format"]:
            raise DataError(path, f"a table of {formats.title(fmt) if fmt else 'unknown'} features, but the model "
                            f"was trained on {_trained_on(meta)}")
    elif path.is_dir() or (path.is_file() and path.suffix == ".csv"):
        table = read_release_table(path, meta)
    else:
        raise DataError(path, "not found: expected a release folder, a manifest CSV or an asym Parquet table")
    a, v = table.audio[0].shape[1], table.visual[0].shape[1]
    if (a, v) != (int(meta["audio_dim"]), int(meta["visual_dim"])):
        raise DataError(path, f"{a} audio + {v} visual features per frame, but the model was trained on "
                        f"{_trained_on(meta)}")
    return table


# --- output -----------------------------------------------------------------------------------
def predict_frame(runs: list[RunModel], table: FeatureTable, device: torch.device) -> pd.DataFrame:
    """One row per vlog; with several seeds, the mean probability and its std over seeds."""
    probs = np.stack([r.probabilities(table, device) for r in runs]).astype(np.float64)
    threshold = float(np.mean([r.threshold for r in runs]))
    mean = probs.mean(0)
    out = pd.DataFrame({"id": table.sample_id, "probability": mean})
    if len(runs) > 1:
        out["probability_std"] = probs.std(0, ddof=1)
        out["n_seeds"] = len(runs)
    out["label"] = (mean >= threshold).astype(np.int8)
    out["threshold"] = threshold
    return out


def write_predictions(frame: pd.DataFrame, output: Path, source: str) -> None:
    """CSV with a first comment line (`#`) saying what these numbers are and are not."""
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(f"# {DISCLAIMER}; model: {source}\n")
        frame.to_csv(fh, index=False, float_format="%.9g")


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"id": str})


def check_compatible(runs: list[RunModel]) -> None:
    """Seeds are averaged only if they are one model on one input: format, widths, model, scale
    and resolved config must agree (refused otherwise). A registry entry whose code changed between
    seeds (its digest) is only warned about: the weights still fit, but the seeds ran other code."""
    first = {k: runs[0].meta[k] for k in SAME_MODEL}
    for r in runs[1:]:
        differ = [k for k in SAME_MODEL if r.meta[k] != first[k]]
        if differ:
            raise ConfigError(f"{r.run_dir}: not the same model and inputs as {runs[0].run_dir} (its {differ} differ)")
        if r.meta["entry_digest"] != runs[0].meta["entry_digest"]:
            print(f"asym predict: warning: {r.run_dir} and {runs[0].run_dir} were trained from different versions "
                  f"of the registry entry {r.meta['model']!r}", file=sys.stderr)


def predict_path(model_path: Path, input_path: Path, output: Path, device: torch.device | str = "cpu") -> pd.DataFrame:
    """The `predict` step: every seed found under `model_path` applied to `input_path`."""
    device = torch.device(device)
    runs = [load_run(d, device) for d in run_dirs(model_path)]
    check_compatible(runs)
    table = read_input(input_path, runs[0].meta)
    frame = predict_frame(runs, table, device)
    write_predictions(frame, output, f"{runs[0].meta['dataset']}/{runs[0].meta['model']} "
                      f"({len(runs)} seed{'s' if len(runs) > 1 else ''})")
    return frame
