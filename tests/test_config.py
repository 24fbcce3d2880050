"""params.yaml: a typed schema that refuses bad keys before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asym.config import load_params
from asym.errors import ConfigError
from asym.models import registry
from tests.project import ROOT, copy_workflow


def _write(tmp_path, raw):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_params_are_valid_and_scale_switches_in_one_place(params, tmp_path):
    assert params.scale == "demo" and params.seeds == [0, 1, 2]
    assert params.models == [m for m in registry.names() if registry.get(m).kind != registry.PEER_ABLATION_KIND]
    raw = yaml.safe_load(params.path.read_text())
    raw["scale"] = "paper"
    paper = load_params(_write(tmp_path, raw))
    assert paper.seeds == [0, 1, 2, 3, 4]
    assert paper.recipe("asym").epochs == 120 and paper.recipe("depmamba").lr_for("dvlog") == 1e-4
    assert paper.recipe("depmamba").crop.min_frames_for("dvlog") == 500
    assert paper.recipe("depmamba").crop.min_frames_for("lmvd") == 400
    assert paper.protocol("lmvd") == "depmamba" and params.protocol("lmvd") == "stratified_group"
    assert paper.model_config("asym-no-gate", "dvlog").use_gate is False
    assert params.at_scale("paper").recipe("asym").epochs == 120


def test_paths_are_resolved_against_the_params_file(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    p = load_params(_write(tmp_path, raw))
    assert p.path_of("runs") == tmp_path / "runs" and p.resolve("/abs/x") == Path("/abs/x")


@pytest.mark.parametrize("change,key", [
    (lambda r: r.update(scale="huge"), "scale"),
    (lambda r: r["run"].update(models=["asym", "nope"]), "unknown models ['nope']"),
    (lambda r: r["datasets"]["dvlog"].update(protocl="official"), "datasets.dvlog.protocl: unknown key"),
    (lambda r: r["datasets"]["dvlog"]["protocol"].update(demo="random"), "datasets.dvlog.protocol.demo"),
    (lambda r: r["recipes"]["demo"]["asym"].update(epochs="many"), "recipes.demo.asym.epochs"),
    (lambda r: r["recipes"]["demo"]["asym"].update(learning_rate=0.1), "recipes.demo.asym.learning_rate: unknown key"),
    (lambda r: r["train"].update(threads=0), "train.threads"),
    (lambda r: r["run"]["seeds"].update(demo=[0, 0]), "run.seeds: Value error, demo: needs distinct non-negative seeds"),
    (lambda r: r["optimism"]["seeds"].update(paper=[]), "optimism.seeds: Value error, paper: needs distinct"),
    (lambda r: r["split"].update(ratios=[0.5, 0.5, 0.5]), "split.ratios"),
    (lambda r: r.pop("train"), "train: Field required"),
    (lambda r: r.update(extra_block={}), "extra_block: unknown key"),
    (lambda r: r["recipes"]["demo"].pop("depmamba"), "no recipe 'depmamba'"),
    (lambda r: r["recipes"]["demo"]["asym"]["crop"].pop("max_frames"), "needs ['max_frames']"),
    # the model blocks are typed too (each model file's config, collected by asym.models.registry)
    (lambda r: r["model"]["demo"]["asym"].update(d_stat=8), "model.demo.asym.d_stat: unknown key (a typo?)"),
    (lambda r: r["model"]["demo"]["bilstm"].update(hidden="wide"), "model.demo.bilstm.hidden"),
    (lambda r: r["model"]["paper"]["depmamba"].pop("d_conv"), "model.paper.depmamba.d_conv: Field required"),
    (lambda r: r["model"]["paper"]["asym"]["by_dataset"]["dvlog"].update(d_stat=3),
     "model.paper.asym.by_dataset.dvlog.d_stat: unknown key (a typo?)"),
    (lambda r: r["model"]["demo"]["mult"].update(dropout=1.5), "model.demo.mult.dropout"),
    (lambda r: r["model"]["demo"].pop("tamfn"), "model.demo.tamfn: Field required"),
    (lambda r: r["model"]["demo"].update(tamfm={}), "model.demo.tamfm: unknown key (a typo?)"),
    # datasets of any name and format: a format must exist, its reader's block be there, a
    # per-dataset value have an entry (or a default) for every dataset the run trains on
    (lambda r: r["datasets"]["dvlog"].update(format="dvlgo"), "unknown format 'dvlgo'; known: ['dvlog', 'lmvd'"),
    (lambda r: r["readers"].pop("daic_woz") and r["datasets"].update(
        daic={"format": "daic_woz", "source": "demo", "protocol": {"demo": "official", "paper": "official"}}),
     "datasets.daic (format daic_woz) needs the `readers.daic_woz` block"),
    (lambda r: r["datasets"]["dvlog"].update(frame_rates={"audio": 100}), "frame_rates: format 'dvlog' has fixed"),
    (lambda r: r["datasets"].update(mine={"format": "manifest", "source": "demo", "frame_rates": {"audio": 2},
                                          "protocol": {"demo": "official", "paper": "official"}}),
     "datasets.mine.frame_rates must equal synth.manifest.frame_rates"),
    (lambda r: r["run"].update(datasets=["dvlog", "lmvd", "mine"]) or r["datasets"].update(
        mine={"format": "manifest", "source": "x.csv", "protocol": {"demo": "official", "paper": "official"}}),
     "recipes.demo.caf-mamba.plateau.factor has no entry for dataset 'mine': add `mine: <value>` (or `default:"),
])
def test_invalid_params_are_refused_with_the_key_named(params, tmp_path, change, key):
    raw = yaml.safe_load(params.path.read_text())
    change(raw)
    with pytest.raises(ConfigError) as err:
        load_params(_write(tmp_path, raw))
    assert key in str(err.value)


def test_the_cli_refuses_a_typo_before_anything_runs(params, tmp_path):
    raw = yaml.safe_load(params.path.read_text())
    raw["mlflow"]["tracking_url"] = raw["mlflow"].pop("tracking_uri")
    path = _write(tmp_path, raw)
    proc = subprocess.run([sys.executable, "-m", "asym", "--params", str(path), "fetch", "--dataset", "dvlog"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "mlflow.tracking_url: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "data").exists()


def test_dvc_yaml_is_generated_from_the_registry_and_the_layout(params):
    from asym.dag.dvc_yaml import render

    committed = (params.root / "dvc.yaml").read_text()
    assert committed == render(params), "dvc.yaml is stale: run `asym dvc-yaml`"
    stages = yaml.safe_load(committed)["stages"]
    assert {s.split("-", 2)[2] for s in stages if s.startswith("train-dvlog-")} == set(params.models)
    assert {"evaluate", "report", "track"} <= set(stages)


@pytest.mark.parametrize("runner", ["snakemake", "asym"])
def test_a_model_block_typo_stops_the_dag_before_any_job_naming_the_key(params, tmp_path, runner):
    """Under `snakemake -n` as in each `asym` step (what `dvc repro` runs): the key, no traceback."""

    raw = yaml.safe_load(params.path.read_text())
    raw["model"]["demo"]["asym"]["d_stat"] = raw["model"]["demo"]["asym"].pop("d_state")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    copy_workflow(ROOT, tmp_path)
    cmd = ([str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1"] if runner == "snakemake"
           else [sys.executable, "-m", "asym", "--params", "params.yaml", "fetch", "--dataset", "dvlog"])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "model.demo.asym.d_stat: unknown key (a typo?)" in out and "model.demo.asym.d_state: Field required" in out
    assert "Traceback" not in out and 'File "' not in out
    assert not (tmp_path / "data").exists()
