"""`asym predict`: a trained run (or every seed of one) applied to vlogs it has never seen.

The input is read by the same readers and validation as a release (D-Vlog's layout, either of
LMVD's, an `asym extract` output, or an `asym convert` Parquet table), with labels optional. The
model is rebuilt from its checkpoint alone: its `meta` block names the model, its resolved config,
input widths, format and threshold, and each partition keeps its training fold's normaliser; older
checkpoints without that block are read with their train.json. Each vlog gets the probability of
the depressed class, averaged over a run's partitions (under `kfold`) and, for a model folder, over
its seeds with their spread. These are research models, not diagnostic tools: the output says so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from asym.data.parquet import FeatureTable, read_samples
from asym.data.sample import Sample
from asym.errors import ConfigError, DataError
from asym.io import atomic_path, read_json
from asym.layout import TRAIN_FILES
from asym.models import registry

DISCLAIMER = ("research model trained on self-reported vlog labels (D-Vlog / LMVD); "
              "not a diagnostic tool and not for clinical use")
FORMAT_NAMES = {"dvlog": "D-Vlog", "lmvd": "LMVD"}


@dataclass
class RunModel:
    """One seed's trained model(s): one per partition, each with its training fold's normaliser."""

    run_dir: Path
    meta: dict[str, Any]
    models: list[nn.Module]
    norms: list[Any]
    thresholds: list[float]

    @property
    def threshold(self) -> float:
        """The run's decision threshold (partitions of a `kfold` run averaged, as their probabilities are)."""
        return float(np.mean(self.thresholds))

    def probabilities(self, table: FeatureTable, device: torch.device) -> np.ndarray:
        from asym.train import predict

        batch = int(self.meta["eval_batch_size"])
        return np.mean([predict(m, table, n, batch, device) for m, n in zip(self.models, self.norms, strict=True)],
                       axis=0)


def _meta_from_summary(run_dir: Path, ckpt: dict[str, Any], params: Any | None) -> dict[str, Any]:
    """A checkpoint written before it described itself: its train.json and normaliser say enough."""
    from asym.config import TrainConfig

    summary_path = run_dir / TRAIN_FILES["summary"]
    if not summary_path.is_file():
        raise DataError(run_dir / TRAIN_FILES["checkpoint"], "an old checkpoint without its train.json beside it")
    s = read_json(summary_path)
    part = ckpt["partitions"][0]
    widths = registry.input_widths()
    if "a_mean" in part:
        dims = (int(part["a_mean"].numel()), int(part["v_mean"].numel()))
    else:
        dims = widths.get(s["dataset"], (0, 0))
    fmt = next((f for f, w in widths.items() if w == dims), s["dataset"])
    readers = getattr(params.readers, fmt, None) if params is not None else None
    entry = registry.get(s["model"])
    batch = params.train.eval_batch_size if params is not None else TrainConfig.model_fields["eval_batch_size"].default
    return {"dataset": s["dataset"], "format": fmt, "model": s["model"], "entry_digest": entry.digest(),
            "kind": s.get("kind", entry.kind), "seed": s["seed"], "scale": s.get("scale"),
            "model_config": s["model_config"], "audio_dim": dims[0], "visual_dim": dims[1],
            "readers": readers.model_dump(mode="json") if readers is not None else {},
            "recipe_name": s.get("recipe_name"), "recipe": s.get("recipe", {}),
            "eval_batch_size": int(batch)}


def _thresholds(value: Any, n: int, where: Path) -> list[float]:
    values = [float(v) for v in (value if isinstance(value, list | tuple) else [value] * n)]
    if len(values) != n:
        raise DataError(where, f"{len(values)} threshold(s) for {n} partition(s)")
    return values


def build_model(meta: dict[str, Any], where: Path) -> nn.Module:
    """The registry's class with the checkpoint's own resolved config (never params.yaml's)."""
    entry = registry.get(meta["model"])
    if entry.digest() != meta["entry_digest"]:
        print(f"asym predict: warning: the registry entry of {meta['model']!r} changed since {where} was trained",
              file=sys.stderr)
    try:
        return registry.model_class(meta["model"])(audio_dim=int(meta["audio_dim"]), visual_dim=int(meta["visual_dim"]),
                                                   **meta["model_config"])
    except TypeError as exc:
        raise ConfigError(f"{where}: cannot rebuild {meta['model']!r} from its checkpoint: {exc}") from None


def load_run(run_dir: Path, device: torch.device, params: Any | None = None) -> RunModel:
    """Rebuild one seed's model(s) from its checkpoint.pt (and train.json, when present)."""
    from asym.train import load_checkpoint

    run_dir = Path(run_dir)
    path = run_dir / TRAIN_FILES["checkpoint"]
    if not path.is_file():
        raise DataError(path, "missing checkpoint (is this a run folder, runs/<dataset>/<model>/seed<k>?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:    # torch raises several kinds for a truncated or foreign file
        raise DataError(path, f"unreadable checkpoint: {exc}") from None
    meta = ckpt.get("meta") or _meta_from_summary(run_dir, ckpt, params)
    summary_path = run_dir / TRAIN_FILES["summary"]
    summary = read_json(summary_path) if summary_path.is_file() else {}
    n = len(ckpt["partitions"])
    thresholds = _thresholds(summary.get("threshold", meta.get("threshold", 0.5)), n, summary_path)
    models, norms = [], []
    for p in range(n):
        state, norm, _ = load_checkpoint(path, p)
        model = build_model(meta, path)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(f"{path}: its weights do not fit {meta['model']!r} as the registry builds it: {exc}") from None
        models.append(model.to(device).eval())
        norms.append(norm)
    return RunModel(run_dir, meta, models, norms, thresholds)


def run_dirs(model_path: Path) -> list[Path]:
    """A seed folder itself, or every complete seed folder of runs/<dataset>/<model>."""
    model_path = Path(model_path)
    if (model_path / TRAIN_FILES["checkpoint"]).is_file():
        return [model_path]
    seeds = sorted((d for d in model_path.glob("seed*") if (d / TRAIN_FILES["checkpoint"]).is_file()
                    and (d / TRAIN_FILES["summary"]).is_file()), key=lambda d: int(d.name[4:] or 0))
    if not seeds:
        raise DataError(model_path, "no trained run here: expected checkpoint.pt, or seed<k>/ folders with one")
    return seeds


# --- input ------------------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    from asym.data import dvlog, lmvd

    try:
        lmvd.detect_layout(path)
        return "lmvd"
    except DataError:
        pass
    try:
        dvlog.find_root(path)
        return "dvlog"
    except DataError:
        raise DataError(path, "neither a D-Vlog release (labels.csv, <index>/<index>_acoustic.npy, ...), "
                        "an LMVD release in either layout, nor an asym Parquet table") from None


def _table(samples: list[Sample], meta: dict[str, Any]) -> FeatureTable:
    gender = [s.extra.get("gender") for s in samples]
    return FeatureTable([s.sample_id for s in samples], [s.subject_id or s.sample_id for s in samples],
                        np.array([s.label for s in samples], dtype=np.int64), [s.fold for s in samples],
                        [s.audio for s in samples], [s.visual for s in samples], meta,
                        gender if any(g is not None for g in gender) else None)


def read_input(path: Path, meta: dict[str, Any]) -> FeatureTable:
    """Vlogs to predict, read and validated as a release is (labels optional), in the model's format."""
    from asym.config import LmvdReaderConfig
    from asym.data.dvlog import read_dvlog
    from asym.data.lmvd import read_lmvd

    path = Path(path)
    want = meta["format"]
    trained_on = f"{FORMAT_NAMES.get(want, want)} features ({meta['audio_dim']} audio + {meta['visual_dim']} visual)"
    if path.is_file() and path.suffix == ".parquet":
        table = read_samples(path)
        fmt = table.meta.get("format", want)
    elif path.is_dir():
        fmt = detect_format(path)
    else:
        raise DataError(path, "not found: expected a release folder or an asym Parquet table")
    if fmt != want:
        raise DataError(path, f"a {FORMAT_NAMES.get(fmt, fmt)} input, but the model was trained on {trained_on}")
    if path.is_dir():
        if fmt == "dvlog":
            samples = list(read_dvlog(path, labels_required=False))
        else:
            if not meta.get("readers"):
                raise ConfigError(f"{meta.get('dataset')}: the checkpoint records no LMVD reader settings")
            samples = list(read_lmvd(path, LmvdReaderConfig(**meta["readers"]), labels_required=False))
        if not samples:
            raise DataError(path, "no vlogs to predict")
        table = _table(samples, {"format": fmt})
    a, v = table.audio[0].shape[1], table.visual[0].shape[1]
    if (a, v) != (int(meta["audio_dim"]), int(meta["visual_dim"])):
        raise DataError(path, f"{a} audio + {v} visual features per frame, but the model was trained on {trained_on}")
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
    keys = ("format", "audio_dim", "visual_dim", "model")
    first = {k: runs[0].meta[k] for k in keys}
    for r in runs[1:]:
        if {k: r.meta[k] for k in keys} != first:
            raise ConfigError(f"{r.run_dir}: not the same model and inputs as {runs[0].run_dir}")


def predict_path(model_path: Path, input_path: Path, output: Path, device: torch.device | str = "cpu",
                 params: Any | None = None) -> pd.DataFrame:
    """The `predict` step: every seed found under `model_path` applied to `input_path`."""
    device = torch.device(device)
    runs = [load_run(d, device, params) for d in run_dirs(model_path)]
    check_compatible(runs)
    table = read_input(input_path, runs[0].meta)
    frame = predict_frame(runs, table, device)
    write_predictions(frame, output, f"{runs[0].meta['dataset']}/{runs[0].meta['model']} "
                      f"({len(runs)} seed{'s' if len(runs) > 1 else ''})")
    return frame
