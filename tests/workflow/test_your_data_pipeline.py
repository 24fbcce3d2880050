"""The README's "Bring your data" section as written, end to end: its commands write a manifest
dataset, its params file declares it, and `snakemake all` takes it through the whole pipeline,
with the DAIC-WOZ demo beside it in the same run (fewer models, vlogs and epochs than the README's,
to keep the test short): reports, model cards, MLflow and `asym predict` on both, each at its own
widths."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from asym.config import deep_merge
from tests.project import ROOT, make_project
from tests.workflow.conftest import BIN, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("your_data")]

SECTION = "## Bring your data\n"
FENCE = re.compile(r"^```(\w+) (\w+)=(\S+)\n(.*?)^```$", re.S | re.M)
# What this test changes of the README's run, on top of its params file: one cheap model, and
# DAIC-WOZ's demo (its dataset as workflow/demos/daic_woz.yaml declares it) beside the stand-in.
DAIC_DEMO = yaml.safe_load((ROOT / "workflow" / "demos" / "daic_woz.yaml").read_text())
SMALLER = {
    "run": {"datasets": ["mine", "daic_woz"], "models": ["mean-mlp"]},
    "datasets": {"daic_woz": DAIC_DEMO["datasets"]["daic_woz"]},
}


def blocks() -> dict[tuple[str, str], str]:
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    found: dict[tuple[str, str], str] = {}
    for _, key, value, body in FENCE.findall(section):
        found[(key, value)] = found.get((key, value), "") + body
    return found


def test_the_doc_has_what_this_test_runs():
    found = blocks()
    assert set(found) == {("dir", "checkout"), ("file", "my-project/params.yaml")}
    lines = found[("dir", "checkout")].splitlines()
    assert [line.split()[0] for line in lines] == ["asym", "head", "snakemake", "asym"]
    # the DAIC-WOZ demo the section names: its file exists and runs DAIC-WOZ alone
    assert "snakemake --cores 2 all --config params=workflow/demos/daic_woz.yaml" in \
        " ".join((ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0].split())
    assert DAIC_DEMO["run"]["datasets"] == ["daic_woz"] and DAIC_DEMO["datasets"]["daic_woz"]["format"] == "daic_woz"


def _run(line: str, root: Path) -> str:
    argv = shlex.split(line)
    if argv[0] == "asym":
        argv[0] = str(BIN / "asym")
    proc = run(argv, root)
    return proc.stdout + proc.stderr


def test_your_data_and_daic_woz_through_the_whole_pipeline(tmp_path):
    found = blocks()
    root = make_project(tmp_path / "checkout", models=["mean-mlp"], seeds=[0], epochs=2,
                        synth={"daic_woz": {"n_samples": 40, "seconds": [12, 20]}})
    synth, head, dag, predict = found[("dir", "checkout")].splitlines()
    _run(synth, root)
    manifest = run(shlex.split(head), root).stdout.splitlines()
    assert manifest[0].split(",")[:5] == ["id", "label", "fold", "audio", "visual"], manifest
    project = yaml.safe_load(found[("file", "my-project/params.yaml")])
    (root / "my-project" / "params.yaml").write_text(yaml.safe_dump(deep_merge(project, SMALLER)))

    out = _run(dag, root)
    assert "Training mean-mlp on mine" in out and "Training mean-mlp on daic_woz" in out, out[-3000:]
    reports = root / "my-project" / "reports"
    comparison = (reports / "comparison.md").read_text()
    for dataset in ("mine", "daic_woz"):
        section = comparison.split(f"## {dataset}")[1].split("\n## ")[0]
        rows = [ln for ln in section.splitlines() if ln.startswith("| mean-mlp")]
        assert len(rows) == 1 and re.search(r"\| \**\d+\.\d\d ± \d+\.\d\d", rows[0]), rows
    processed = root / "my-project" / "data" / "processed"
    widths = {d: yaml.safe_load((processed / f"{d}.card.json").read_text()) for d in ("mine", "daic_woz")}
    assert (widths["mine"]["audio_dim"], widths["mine"]["visual_dim"]) == (40, 17)
    assert (widths["daic_woz"]["audio_dim"], widths["daic_woz"]["visual_dim"]) == (74, 136)
    card = (reports / "model_cards" / "mine-mean-mlp.md").read_text()
    assert "40 acoustic + 17" in card and "mine (your data, format `manifest`)" in card, card[:2000]
    assert "DAIC-WOZ (Gratch et al., LREC 2014)" in (reports / "model_cards" / "daic_woz-mean-mlp.md").read_text()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    for dataset in ("mine", "daic_woz"):
        [version] = client.search_model_versions(f"name = 'asym-{dataset}-mean-mlp'")
        assert version.run_id

    # the README's predict, on the model the run trained (mean-mlp here, asym in the README)
    _run(predict.replace("runs/mine/asym", "runs/mine/mean-mlp"), root)
    predicted = [ln for ln in (root / "my-project" / "predictions.csv").read_text().splitlines() if not ln.startswith("#")]
    assert predicted[0].startswith("id,probability") and len(predicted) == 1 + len(manifest_rows(root))
    # DAIC-WOZ's layout, read again by its reader with the checkpoint's settings
    daic = run([str(BIN / "asym"), "predict", "--model", "my-project/runs/daic_woz/mean-mlp", "--input",
                "my-project/data/raw/daic_woz", "--output", "daic.csv"], root)
    rows = [ln for ln in (root / "daic.csv").read_text().splitlines() if not ln.startswith("#")]
    assert "predicted" in daic.stdout and len(rows) == 1 + 40
    # a manifest is not DAIC-WOZ: refused, naming the input and what the model was trained on
    refused = run([str(BIN / "asym"), "predict", "--model", "my-project/runs/daic_woz/mean-mlp", "--input",
                   "my-project/features/manifest.csv", "--output", "x.csv"], root, check=False)
    assert refused.returncode == 2 and "trained on DAIC-WOZ features (74 audio + 136 visual)" in refused.stderr


def manifest_rows(root: Path) -> list[str]:
    return (root / "my-project" / "features" / "manifest.csv").read_text().splitlines()[1:]
