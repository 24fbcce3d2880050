"""A trained run as an MLflow Model (pyfunc flavour): feature sequences in, probabilities out.

The model folder carries the run's checkpoint.pt and train.json (the normaliser of each
partition's training fold, the threshold and everything needed to rebuild the network; see
asym.predict) and the asym package itself (`code_paths`), with its requirements pinned to the
versions installed when it was logged. Its input is one row per vlog: `id`, and `audio` /
`visual` as lists of per-second feature rows; its output is asym predict's: `id`,
`probability`, `label`, `threshold` — so `models:/asym-<dataset>-<model>/<v>` scores exactly as
`asym predict` does. A research model, not a diagnostic tool.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from asym.layout import PACKAGE, TRAIN_FILES

ARTIFACT = "run"                 # the pyfunc artifact: a folder with checkpoint.pt and train.json
MODEL_PATH = "model"             # where a run's model sits among its artifacts
# What the model's code imports at load and predict time (asym's own dependencies among them).
REQUIREMENTS = ("torch", "numpy", "pandas", "pyarrow", "numba", "pydantic", "pyyaml", "tqdm", "filelock",
                "scikit-learn")


class AsymPyfunc(PythonModel):
    """`predict(DataFrame[id, audio, visual]) -> DataFrame[id, probability, label, threshold]`."""

    def load_context(self, context: Any) -> None:
        import torch

        from asym.predict import load_run

        self.device = torch.device("cpu")
        self.run = load_run(Path(context.artifacts[ARTIFACT]), self.device)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from asym.predict import predict_frame

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
    """The pyfunc input of a FeatureTable (first `rows` seconds of each vlog, for an input example)."""
    return pd.DataFrame({"id": list(table.sample_id),
                         "audio": [a[:rows].astype(np.float64).tolist() for a in table.audio],
                         "visual": [v[:rows].astype(np.float64).tolist() for v in table.visual]})


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    rows = Array(Array(DataType.double))
    inputs = Schema([ColSpec(DataType.string, "id"), ColSpec(rows, "audio"), ColSpec(rows, "visual")])
    outputs = Schema([ColSpec(DataType.string, "id"), ColSpec(DataType.double, "probability"),
                      ColSpec(DataType.integer, "label"), ColSpec(DataType.double, "threshold")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pinned_requirements() -> list[str]:
    import mlflow

    return [f"mlflow=={mlflow.__version__}", *(f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS)]


def save_run_model(run_dir: Path, dest: Path, example: pd.DataFrame) -> Path:
    """Write `run_dir`'s model as an MLflow Model folder at `dest`."""
    import mlflow.pyfunc

    from asym.predict import load_run

    run = load_run(run_dir, __import__("torch").device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / ARTIFACT
        files.mkdir()
        for name in (TRAIN_FILES["checkpoint"], TRAIN_FILES["summary"]):
            if (run_dir / name).is_file():
                shutil.copy(run_dir / name, files / name)
        meta = run.meta
        mlflow.pyfunc.save_model(
            path=str(dest), python_model=AsymPyfunc(), artifacts={ARTIFACT: str(files)},
            code_paths=[str(PACKAGE)], signature=signature(), input_example=example,
            pip_requirements=pinned_requirements(),
            metadata={"dataset": meta["dataset"], "model": meta["model"], "format": meta["format"],
                      "seed": int(meta["seed"]), "threshold": run.threshold, "audio_dim": int(meta["audio_dim"]),
                      "visual_dim": int(meta["visual_dim"]),
                      "normaliser": "each partition's training-fold statistics, in the checkpoint",
                      "intended_use": "research on D-Vlog / LMVD; not a diagnostic tool"})
    return dest
