"""A model of the user's own, end to end: a GRU written in a plug-in file outside `asym/`, in a
project whose params file `extends` the default and lists it under `plugins`, goes through
`snakemake all` beside ASYM, and is then found everywhere a built-in is: comparison.md, its model
card (which says it is a plug-in and names its file), its registered MLflow model version (whose
code paths carry the plug-in, so it loads where the file is gone), and `asym predict` from its
checkpoint (refused, naming the file, once the file is gone)."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap

import pytest

from tests.models.test_add_a_model import GRU
from tests.project import make_project, plugin_project
from tests.workflow.conftest import BIN, run, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("plugin")]

LOAD_MLFLOW = textwrap.dedent('''
    import sys
    import mlflow, mlflow.pyfunc
    import pandas as pd
    from asym.data.parquet import read_samples
    from asym.tracking.mlflow_model import frame_from_table

    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model("models:/asym-dvlog-gru/1")
    out = model.predict(frame_from_table(read_samples(sys.argv[2]), rows=8))
    assert list(out.columns) == ["id", "probability", "label", "threshold"] and len(out) > 0, out
    assert sys.modules["gru"].__file__.endswith("/code/gru.py"), sys.modules["gru"].__file__
    print("served", len(out))
''')


def test_a_plugin_model_runs_through_the_whole_pipeline(tmp_path):
    root = make_project(tmp_path / "project", models=["asym"], seeds=[0], epochs=1)
    data = {k: str(root / v) for k, v in {"raw": "data/raw", "processed": "data/processed", "splits": "data/splits",
                                           "runs": "runs", "reports": "reports", "logs": "logs"}.items()}
    plugin_project(root, GRU, models=["asym", "gru"], seeds=[0], paths=data,
                   mlflow={"tracking_uri": f"sqlite:///{root}/mlflow.db", "artifact_root": str(root / "mlartifacts")},
                   synth={"dvlog": {"n_samples": 48, "seconds": [8, 16]}},
                   recipes={"demo": {"asym": {"epochs": 1}}},
                   report={"bootstrap": 100, "chance_draws": 5},
                   optimism={"models": {"demo": []}})
    out = snakemake(root, "all")
    assert "Training gru on dvlog" in out

    comparison = (root / "reports" / "comparison.md").read_text()
    rows = [line for line in comparison.split("## dvlog")[1].splitlines() if line.startswith("| gru")]
    assert len(rows) == 1 and re.search(r"\| \d+\.\d\d ± \d+\.\d\d", rows[0]), rows   # its measured row
    card = (root / "reports" / "model_cards" / "dvlog-gru.md").read_text()
    plugin = (root / "models" / "gru.py").resolve()
    assert "**plug-in**" in card and str(plugin) in card

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    [version] = client.search_model_versions("name = 'asym-dvlog-gru'")
    assert client.get_run(version.run_id).data.tags["plugin"] == str(plugin)

    predicted = run([str(BIN / "asym"), "predict", "--model", "runs/dvlog/gru", "--input",
                     "data/processed/dvlog.parquet", "--output", "gru.csv"], root)
    assert "predicted" in predicted.stdout and len((root / "gru.csv").read_text().splitlines()) > 2

    # the plug-in file gone: asym predict refuses, naming it; the MLflow Model still loads (its code paths carry it)
    shutil.move(plugin, tmp_path / "gru.py.away")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = run([str(BIN / "asym"), "predict", "--model", str(root / "runs/dvlog/gru"), "--input",
                   str(root / "data/processed/dvlog.parquet"), "--output", "x.csv"], elsewhere, check=False)
    assert refused.returncode != 0 and f"trained from plug-in {plugin}, which is missing" in refused.stderr, refused.stderr
    served = run([sys.executable, "-c", LOAD_MLFLOW, f"sqlite:///{root}/mlflow.db",
                  str(root / "data/processed/dvlog.parquet")], elsewhere, timeout=300)
    assert "served" in served.stdout
