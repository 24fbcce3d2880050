"""A trained run as an MLflow Model (pyfunc flavour): feature sequences in, probabilities out.

The model is saved from code (MLflow's models-from-code): its `python_model` is the file
asym/tracking/mlflow_pyfunc.py, copied into the model folder, which builds `AsymPyfunc` with
`mlflow.models.set_model`; loading or serving the model runs that file and unpickles nothing
(the checkpoint loads with `weights_only=True`). The folder carries the run's checkpoint.pt (each
partition's weights, training-fold normaliser and threshold, and everything needed to rebuild
the network; see asym.inference.predict) and the asym package itself (`code_paths`; with a plug-in
model's file, or its package, beside it: MLflow puts them on sys.path), with requirements
pinned from asym's own declared dependencies at the installed versions (`pinned_requirements`).
Its input is one row per vlog: `id`, and `audio` / `visual` as lists of
per-second feature rows exactly as asym's readers output them (what `asym convert` writes and
`asym predict` feeds; for LMVD that is after the reader's strides, cap and per-row landmark
standardisation, see `input_note`); its output is asym predict's: `id`, `probability`, `label`,
`threshold` — so `models:/asym-<dataset>-<model>/<v>` scores exactly as `asym predict` does. The
logged input example is synthetic (zeros of the model's widths), never a dataset's vlogs. A
research model, not a diagnostic tool.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomllib
from mlflow.pyfunc import PythonModel

from asym.errors import ConfigError
from asym.layout import PACKAGE, TRAIN_FILES
from asym.models import registry

ARTIFACT = "run"                 # the pyfunc artifact: a folder with checkpoint.pt
MODEL_PATH = "model"             # where a run's model sits among its artifacts
CODE_FILE = PACKAGE / "tracking" / "mlflow_pyfunc.py"     # the model's code (models-from-code)
PROJECT = "asym"                 # the distribution whose declared dependencies the model pins
EXAMPLE_VLOGS = 2                # the logged input example: this many vlogs ...
EXAMPLE_SECONDS = 3              # ... of this many per-second rows each
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class AsymPyfunc(PythonModel):
    """`predict(DataFrame[id, audio, visual]) -> DataFrame[id, probability, label, threshold]`."""

    def load_context(self, context: Any) -> None:
        import torch

        from asym.inference.predict import load_run

        self.device = torch.device("cpu")
        # a plug-in model's file is among the model's code paths, which MLflow puts on sys.path
        self.run = load_run(Path(context.artifacts[ARTIFACT]), self.device, plugins_on_path=True)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from asym.inference.predict import predict_frame

        return predict_frame([self.run], table_from_frame(model_input, self.run.meta), self.device)


def table_from_frame(frame: pd.DataFrame, meta: dict[str, Any]) -> Any:
    """The pyfunc input as a FeatureTable, each matrix checked as a release's files are."""
    from asym.data.parquet import FeatureTable
    from asym.data.sample import UNLABELLED, align
    from asym.data.validate import check_matrix

    missing = [c for c in ("id", "audio", "visual") if c not in frame.columns]
    if missing:
        raise ValueError(f"model input: missing column(s) {missing}; expected id, audio, visual")
    audio, visual = [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        a = check_matrix(np.array([np.asarray(r, np.float64) for r in row.audio]), Path(f"row {i} ({row.id})"),
                         int(meta["audio_dim"]), "audio")
        v = check_matrix(np.array([np.asarray(r, np.float64) for r in row.visual]), Path(f"row {i} ({row.id})"),
                         int(meta["visual_dim"]), "visual")
        a, v = align(a, v)
        audio.append(a)
        visual.append(v)
    ids = [str(x) for x in frame["id"]]
    return FeatureTable(ids, ids, np.full(len(ids), UNLABELLED), [None] * len(ids), audio, visual, {"format": meta["format"]})


def frame_from_table(table: Any, rows: int | None = None) -> pd.DataFrame:
    """The pyfunc input of a FeatureTable (the first `rows` seconds of each vlog, or all)."""
    return pd.DataFrame({"id": list(table.sample_id),
                         "audio": [a[:rows].astype(np.float64).tolist() for a in table.audio],
                         "visual": [v[:rows].astype(np.float64).tolist() for v in table.visual]})


def synthetic_example(audio_dim: int, visual_dim: int) -> pd.DataFrame:
    """An input example of the model's widths made of zeros: it shows the input's shape without
    copying any dataset's features into every logged model (both releases are given on request)."""
    ids = [f"example-{i}" for i in range(EXAMPLE_VLOGS)]
    return pd.DataFrame({"id": ids,
                         "audio": [np.zeros((EXAMPLE_SECONDS, audio_dim)).tolist() for _ in ids],
                         "visual": [np.zeros((EXAMPLE_SECONDS, visual_dim)).tolist() for _ in ids]})


def input_note(meta: dict[str, Any]) -> str:
    """What the pyfunc expects in `audio` and `visual`, for this model's format."""
    a, v = int(meta["audio_dim"]), int(meta["visual_dim"])
    if meta["format"] == "lmvd":
        r = meta["readers"]
        cap = f", at most {r['max_audio_rows']} rows" if r.get("max_audio_rows") else ""
        std = ", each row z-scored over its own 136 values" if r.get("standardise_landmark_rows") else ""
        return (f"per-second rows as asym's LMVD reader outputs them (what `asym convert` writes): audio {a} VGGish "
                f"values{cap}; visual {v} OpenFace landmarks x_0..x_67, y_0..y_67 (every "
                f"{r['video_csv_frame_stride']}th OpenFace CSV row, or every {r['video_npy_row_stride']}th row of "
                f"the .npy copies){std}")
    if meta["format"] == "dvlog":
        return (f"per-second rows as a D-Vlog release (or `asym extract`) holds them: audio {a} eGeMAPSv02 LLDs, "
                f"visual {v} landmark coordinates in the release's own column order")
    if meta["format"] == "daic_woz":
        return (f"per-second rows as asym's DAIC-WOZ reader outputs them (what `asym convert` writes): audio {a} "
                f"COVAREP features averaged over each second, visual {v} CLNF landmarks x0..x67, y0..y67 averaged "
                "over each second's tracked frames")
    rates = (meta.get("readers") or {}).get("frame_rates") or {"audio": 1, "visual": 1}
    return (f"per-second rows as asym's manifest reader outputs them (what `asym convert` writes): audio {a} and "
            f"visual {v} values, the training data's own features (files at {rates['audio']:g} and "
            f"{rates['visual']:g} rows per second averaged over each second)")


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    rows = Array(Array(DataType.double))
    inputs = Schema([ColSpec(DataType.string, "id"), ColSpec(rows, "audio"), ColSpec(rows, "visual")])
    outputs = Schema([ColSpec(DataType.string, "id"), ColSpec(DataType.double, "probability"),
                      ColSpec(DataType.integer, "label"), ColSpec(DataType.double, "threshold")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def public_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`: a local label names a build (CPU, CUDA) that no index but its
    vendor's serves; which build to install is the user's choice."""
    return version.split("+", 1)[0]


def declared_requirements() -> list[str]:
    """asym's declared dependencies: its installed metadata's Requires-Dist, or, where asym runs
    from a checkout it was never installed from (the rules' conda environment), pyproject.toml's."""
    try:
        return importlib.metadata.requires(PROJECT) or []
    except importlib.metadata.PackageNotFoundError:
        pyproject = PACKAGE.parent / "pyproject.toml"
        if not pyproject.is_file():
            raise ConfigError(f"{PROJECT} is not installed (no package metadata) and {pyproject} is missing: "
                              "`make install` first") from None
        return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])


def pinned_requirements() -> list[str]:
    """asym's declared dependencies (extras left out) at the versions installed now:
    pyproject.toml stays the one list."""
    declared = declared_requirements()
    pins = []
    for spec in declared:
        requirement, _, marker = spec.partition(";")
        if "extra" in marker:
            continue                                  # an optional extra (cuda, extract, test)
        name = _NAME.match(requirement.strip()).group(0)
        try:
            pins.append(f"{name}=={public_version(importlib.metadata.version(name))}")
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(f"{PROJECT} declares {name!r}, which is not installed: `make install`") from None
    return pins


def save_run_model(run_dir: Path, dest: Path) -> Path:
    """Write `run_dir`'s model as an MLflow Model folder at `dest`."""
    import mlflow.pyfunc
    import torch

    from asym.inference.predict import load_run

    run = load_run(run_dir, torch.device("cpu"))          # refuses a checkpoint it could not serve
    meta = run.meta
    plugin = registry.plugin_code(meta["model"])         # a plug-in model's file travels with it
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / ARTIFACT
        files.mkdir()
        shutil.copy(run_dir / TRAIN_FILES["checkpoint"], files / TRAIN_FILES["checkpoint"])
        mlflow.pyfunc.save_model(
            path=str(dest), python_model=str(CODE_FILE), artifacts={ARTIFACT: str(files)},
            code_paths=[str(PACKAGE), *([str(plugin)] if plugin is not None else [])], signature=signature(),
            input_example=synthetic_example(int(meta["audio_dim"]), int(meta["visual_dim"])),
            pip_requirements=pinned_requirements(),
            metadata={"dataset": meta["dataset"], "model": meta["model"], "format": meta["format"],
                      "seed": int(meta["seed"]), "threshold": run.threshold, "audio_dim": int(meta["audio_dim"]),
                      "visual_dim": int(meta["visual_dim"]), "input": input_note(meta),
                      "normaliser": "each partition's training-fold statistics, in the checkpoint",
                      **({"plugin": meta["plugin"]["file"], "plugin_sha256": meta["plugin"]["sha256"]}
                         if meta.get("plugin") else {}),
                      "intended_use": "research on D-Vlog / LMVD; not a diagnostic tool"})
    return dest
