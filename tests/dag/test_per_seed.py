"""`train.job: per_seed`: both DAGs have one training job per (dataset, model, seed), the studies'
too, each writing its seed's folder alone, and every later stage reads the same files as under
`per_model`; the rules keep their names, threads and resources; dvc.yaml at paper scale (where
params.yaml turns it on) has a stage per seed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from asym.config import load_params
from asym.dag import stages
from asym.dag.dvc_yaml import render
from asym.dag.snakefile import Rules
from asym.layout import Layout
from tests.conftest import ROOT
from tests.dag.test_stages import (
    _command_shape,
    _relative,
    _written_rules,
    assert_same_dags,
    snakemake_jobs,
)
from tests.project import copy_workflow

TRAINING = ("train", "train_optimism", "train_cross_gender")
LATER = ("evaluate", "report", "track")


def _project(root: Path, job: str) -> Path:
    """The DAG's files with params.yaml (its studies on) under `train.job: job` at the demo scale."""
    copy_workflow(ROOT, root)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["job"]["demo"] = job
    raw["cross_gender"]["models"]["demo"] = ["mean-mlp", "tamfn"]      # off in the demo: on here
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return root


@pytest.fixture(scope="module")
def per_seed(tmp_path_factory) -> Path:
    return _project(tmp_path_factory.mktemp("per_seed"), "per_seed")


@pytest.fixture(scope="module")
def per_model(tmp_path_factory) -> Path:
    return _project(tmp_path_factory.mktemp("per_model"), "per_model")


@pytest.fixture(scope="module")
def seed_jobs(per_seed) -> list:
    return snakemake_jobs(per_seed)


@pytest.fixture(scope="module")
def model_jobs(per_model) -> list:
    return snakemake_jobs(per_model)


def _seeds(p, name: str) -> list[int]:
    return {"train": p.seeds, "train_optimism": p.optimism_seeds, "train_cross_gender": p.cross_gender_seeds}[name]


def test_params_yaml_trains_per_model_on_the_demo_and_per_seed_at_paper_scale():
    p = load_params(ROOT / "params.yaml")
    assert (p.train_job, p.at_scale("paper").train_job) == ("per_model", "per_seed")


def test_snakemake_has_one_training_job_per_seed_writing_that_seeds_folder_alone(per_seed, seed_jobs, model_jobs):
    p = load_params(per_seed / "params.yaml")
    for name in TRAINING:
        stage = stages.get(name)
        cells = stage.cells(p)
        assert cells, name                                        # the studies are on
        jobs = [j for j in seed_jobs if j.rule.name == name]
        got = sorted(tuple(j.wildcards[k] for k in (*stage.wildcards, "seed")) for j in jobs)
        assert got == sorted((*(w[k] for k in stage.wildcards), str(s)) for w in cells for s in _seeds(p, name))
        assert len(jobs) == len(cells) * len(_seeds(p, name)) == len([j for j in model_jobs if j.rule.name == name]) * \
            len(_seeds(p, name))
        for job in jobs:
            seed = job.wildcards["seed"]
            assert {Path(f).parent.name for f in job.output} == {f"seed{seed}"}, job
            assert len(job.output) == len(Layout.of(p).for_optimism("kfold").train_files() if name == "train_optimism"
                                          else Layout.of(p).train_files())
            assert job.log[0].endswith(f"/{job.wildcards['model']}/seed{seed}.log")
            assert f"--seeds {seed} " in job.params.args and f"seed {seed}" in job.rule.message.format(wildcards=job.wildcards)
            assert re.search(r"\bseeds\b", job.params.settings) is None        # no other seed reruns it
    # the same names, threads and resources as the jobs per model (the profiles' keys)
    for name in TRAINING:
        a, b = (next(j for j in js if j.rule.name == name) for js in (seed_jobs, model_jobs))
        assert (a.threads, a.resources.get("gpu_slots")) == (b.threads, b.resources.get("gpu_slots"))


def test_every_later_stage_reads_the_same_run_files_either_way(per_seed, per_model, seed_jobs, model_jobs):
    """The stage table's rows and Snakemake's jobs: evaluate, report and track read the seeds' files
    whichever jobs wrote them, and together the training jobs write exactly those files."""
    ps, pm = (load_params(r / "params.yaml") for r in (per_seed, per_model))
    for name in LATER:
        stage = stages.get(name)
        assert stage.inputs(ps, Layout.of(ps, absolute=False), {}) == stage.inputs(pm, Layout.of(pm, absolute=False), {})
        a, b = (next(j for j in js if j.rule.name == name) for js in (seed_jobs, model_jobs))
        assert {_relative(f, per_seed) for f in a.input} == {_relative(f, per_model) for f in b.input}, name
    for name in TRAINING:
        a, b = ({_relative(f, r) for j in js if j.rule.name == name for f in j.output}
                for js, r in ((seed_jobs, per_seed), (model_jobs, per_model)))
        assert a == b and a, name


def test_snakemake_and_dvc_declare_the_same_per_seed_stages(per_seed, seed_jobs):
    assert_same_dags(per_seed, seed_jobs)
    dvc = yaml.safe_load(render(load_params(per_seed / "params.yaml")))["stages"]
    assert "train-dvlog-asym-seed0" in dvc and "train-dvlog-asym" not in dvc
    assert dvc["train-dvlog-asym-seed1"]["cmd"].startswith(
        "asym --params params.yaml train --dataset dvlog --model asym --seeds 1 --entry-digest ")


def test_the_rules_as_written_name_the_per_seed_command_and_wildcards(per_seed, seed_jobs):
    p = load_params(per_seed / "params.yaml")
    written, parsed = _written_rules(), {j.rule.name: j.rule for j in seed_jobs}
    for name in TRAINING:
        stage = stages.get(name)
        assert f"# {_command_shape(stage, p, stage.instances(p)[0])}\n" in written[name][1], name
        assert parsed[name].wildcard_names == {*stage.wildcards, "seed"}, name


def test_dvc_yaml_at_paper_scale_has_a_stage_per_seed_and_the_same_later_stages():
    """dvc.yaml is written for params.yaml as it stands (its `scale` included): the same file at
    paper scale gives a stage per seed, each training one seed."""
    p = load_params(ROOT / "params.yaml").at_scale("paper")
    dvc = yaml.safe_load(render(p))["stages"]
    names = {f"train-{r.dataset}-{r.model}-seed{r.seed}" for r in p.runs()}
    train = {k: v for k, v in dvc.items() if k in names}
    assert set(train) == names and len(p.seeds) == 5
    for name in TRAINING:                         # the studies' too: no stage trains a whole cell
        cells = stages.get(name).cells(p)
        assert cells and not {stages.get(name).dvc_name(w) for w in cells} & set(dvc), name
        assert sum(k.startswith("train-") and k.endswith(f"-{cells[0]['model']}-seed0") for k in dvc) >= 1
    for r in p.runs():
        entry = train[f"train-{r.dataset}-{r.model}-seed{r.seed}"]
        assert f" --seeds {r.seed} " in entry["cmd"] and f"run.seeds.{p.scale}" not in entry["params"]
        assert {Path(f).parent.name for f in entry["outs"]} == {f"seed{r.seed}"}
    per_model = yaml.safe_load(render(load_params(ROOT / "params.yaml")))["stages"]
    assert "train-dvlog-asym" in per_model and "train-dvlog-asym-seed0" not in per_model     # the demo's


def test_a_per_seed_rule_names_its_seed_wildcard_and_logs_by_seed_folder(per_seed):
    rules = Rules(str(per_seed / "params.yaml"))
    assert rules.seed("train") == ("{seed}",) and Rules(str(ROOT / "params.yaml")).seed("train") == ()
    assert rules.log("train", "{dataset}", "{model}", "{seed}").endswith("train/{dataset}/{model}/seed{seed}.log")
    with pytest.raises(ValueError, match='rule train: its stage.s wildcards are "{dataset}", "{model}", "{seed}"'):
        rules.outputs("train", "{dataset}", "{model}")
    assert rules.seed("split") == () and rules.log("split", "{dataset}").endswith("split/{dataset}.log")   # no seeds


def test_a_seeds_job_runs_its_cells_code_digest_which_asym_train_checks(per_seed, per_model):
    """The digest is its cell's whichever way the DAG cuts the jobs, so `asym train --seeds k` checks
    it without knowing the switch, and flipping the switch changes no job's code digest."""
    ps, pm = (load_params(r / "params.yaml") for r in (per_seed, per_model))
    for name in TRAINING:
        stage = stages.get(name)
        for w in stage.instances(ps):
            cell = {k: v for k, v in w.items() if k != "seed"}
            assert stage.code_digest(ps, w) == stage.code_digest(pm, cell) == stage.command(ps, w)[-1], w
            assert stages.of_command("train", {"protocol": None, **cell}) is stage
