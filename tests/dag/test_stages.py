"""Both DAGs are read off the one stage table: Snakemake's real DAG (its own parser and job graph)
and dvc.yaml declare the same stages, files, commands and params; each rule is written out by name
in workflow/rules/ as its stage's row says; and the linter finds nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version

from asym.config import load_params
from asym.dag import stages
from asym.dag.dvc_yaml import render
from asym.layout import Layout
from tests.conftest import ROOT
from tests.project import copy_workflow
from tests.workflow.conftest import job_counts

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def snakemake_jobs(workdir: Path, conda: bool = False) -> list:
    """Every job of `snakemake --forceall all` (with `conda`: `--software-deployment-method conda`),
    as Snakemake's own DAG builds it (nothing runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        DAGSettings,
        DeploymentSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    deployment = DeploymentSettings(deployment_method={DeploymentMethod.CONDA} if conda else frozenset())
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf_api = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=workdir / "Snakefile",
                              workdir=workdir, deployment_settings=deployment)
        workflow = wf_api.dag(DAGSettings(forceall=True)).workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        return [j for j in workflow.dag.jobs if j.rule.name != "all"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's DAG files, both studies on, so that every stage has jobs."""
    root = tmp_path_factory.mktemp("dag")
    copy_workflow(ROOT, root)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw.get("optimism") and raw["optimism"]["models"]["demo"], "the default params run the optimism study"
    raw["cross_gender"]["models"]["demo"] = ["mean-mlp", "tamfn"]      # off in the demo: on here
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return root


@pytest.fixture(scope="module")
def jobs(project) -> list:
    return snakemake_jobs(project)


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    for base in (root, ROOT):
        if p.is_absolute() and p.is_relative_to(base):
            return p.relative_to(base).as_posix()
    return p.as_posix()


def test_snakemake_and_dvc_declare_the_same_stages_files_commands_and_params(project, jobs):
    assert_same_dags(project, jobs)


def assert_same_dags(project: Path, jobs: list) -> None:
    """Each Snakemake job is a DVC stage of dvc.yaml written for the same params file, with the same
    outputs, inputs, command and params slice, and the other way round."""
    p = load_params(project / "params.yaml")
    dvc = yaml.safe_load(render(p))["stages"]
    seen = set()
    for job in jobs:
        stage = stages.get(job.rule.name)
        w = dict(job.wildcards.items())
        name = stage.dvc_name(w)
        assert name in dvc, f"Snakemake job {job.rule.name} {w} has no DVC stage"
        seen.add(name)
        d = dvc[name]
        outs = {next(iter(o)) if isinstance(o, dict) else o for k in ("outs", "metrics", "plots") for o in d.get(k, [])}
        assert {_relative(f, project) for f in job.output} == outs, name
        assert {_relative(f, project) for f in job.input} == set(d.get("deps", [])), name
        assert d["cmd"] == f"asym --params params.yaml {job.params.args}", name
        assert job.format_wildcards(job.rule.shellcmd) == f"python -m asym {job.params.args} > {job.log[0]} 2>&1"
        settings = json.loads(job.params.get("settings", "{}"))
        assert sorted(settings) == sorted(d.get("params", [])), name
        assert settings == {k: p.slice(k) for k in d.get("params", [])}
    assert seen == set(dvc), f"DVC stages without a Snakemake job: {sorted(set(dvc) - seen)}"
    assert {j.rule.name for j in jobs} == {s.name for s in stages.STAGES}


RULES = ROOT / "workflow" / "rules"
# A rule as written: the comment lines above it, its name, its indented body.
WRITTEN_RULE = re.compile(r"^((?:#.*\n)*)rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.M)
DIRECTIVES = ("input", "output", "log", "params", "message", "threads", "resources", "conda", "shell")


def _written_rules() -> dict[str, tuple[Path, str, str]]:
    """Each rule of workflow/rules/ by name: its file, leading comment and body."""
    rules: dict[str, tuple[Path, str, str]] = {}
    for path in sorted(RULES.glob("*.smk")):
        for m in WRITTEN_RULE.finditer(path.read_text()):
            assert m.group(2) not in rules, f"rule {m.group(2)} is written twice"
            rules[m.group(2)] = (path, m.group(1), m.group(3))
    return rules


def _command_shape(stage: stages.Stage, p, w: dict[str, str]) -> str:
    """`asym <step> <options>` with the job's wildcard values as `{name}` and each digest as `<digest>`."""
    args, names = stage.command(p, w), {v: "{" + k + "}" for k, v in w.items()}
    return " ".join(["asym", *("<digest>" if i and args[i - 1].endswith("-digest") else names.get(a, a)
                              for i, a in enumerate(args))])


def test_every_stage_is_a_rule_written_out_by_name_in_its_steps_file(jobs, project):
    """`grep "rule train"` finds the rule in workflow/rules/train.smk, every directive in view: the
    comment above it is the command it runs, each value it takes from the table names its own
    stage, and Snakemake reads the stage's wildcards off its outputs."""
    p = load_params(project / "params.yaml")
    written = _written_rules()
    assert set(written) == set(stages.BY_NAME)
    included = re.findall(r'^include: "workflow/rules/(\w+)\.smk"$', (ROOT / "Snakefile").read_text(), re.M)
    assert sorted(included) == sorted(path.stem for path in RULES.glob("*.smk"))
    parsed = {j.rule.name: j.rule for j in jobs}
    for stage in stages.STAGES:
        path, comment, body = written[stage.name]
        assert path.name == f"{stage.step.replace('-', '_')}.smk", stage.name     # cost-plot: cost_plot.smk
        named = re.findall(r'\bS\.\w+\("(\w+)"', body)
        assert named and set(named) == {stage.name}, (stage.name, named)
        assert all(re.search(rf"^    {d}:", body, re.M) for d in DIRECTIVES), stage.name
        assert f"# {_command_shape(stage, p, stage.instances(p)[0])}\n" in comment, stage.name
        assert parsed[stage.name].wildcard_names == set(stage.wildcards), stage.name


def test_the_cross_gender_study_runs_its_protocols_on_the_datasets_that_record_gender_in_both_dags(project, jobs):
    """Its split and training jobs, by protocol, on D-Vlog alone (LMVD's release records no gender),
    in their own folders; the report reads their runs; `asym split/train --protocol` finds its stage."""
    from asym.data.protocols import GENDER_PROTOCOLS, OPTIMISM_PROTOCOLS

    p = load_params(project / "params.yaml")
    assert p.cross_gender_datasets == ["dvlog"] and "lmvd" in p.datasets
    snake = sorted((j.rule.name, j.wildcards.get("protocol"), j.wildcards.get("dataset"), j.wildcards.get("model"))
                   for j in jobs if j.rule.name.endswith("cross_gender"))
    expected = sorted([("split_cross_gender", pr, "dvlog", None) for pr in GENDER_PROTOCOLS]
                      + [("train_cross_gender", pr, "dvlog", m) for pr in GENDER_PROTOCOLS for m in p.cross_gender_models])
    assert snake == expected
    dvc = yaml.safe_load(render(p))["stages"]
    assert {k for k in dvc if "_gender" in k} == {
        stages.get(name).dvc_name({"protocol": pr, "dataset": d, **({"model": m} if m else {})}) for name, pr, d, m in expected}
    train = next(j for j in jobs if j.rule.name == "train_cross_gender")
    assert all("runs/cross_gender/" + train.wildcards["protocol"] + "/dvlog/" in f for f in train.output)
    report = next(j for j in jobs if j.rule.name == "report")
    read = {_relative(f, project) for f in report.input}
    assert {f"runs/cross_gender/{pr}/dvlog/{m}/seed{s}/predictions.parquet" for pr in GENDER_PROTOCOLS
            for m in p.cross_gender_models for s in p.cross_gender_seeds} <= read
    for pr in GENDER_PROTOCOLS:
        assert stages.of_command("train", {"protocol": pr, "dataset": "dvlog", "model": "tamfn"}).name == "train_cross_gender"
        assert stages.of_command("split", {"protocol": pr, "dataset": "dvlog"}).name == "split_cross_gender"
    for pr in OPTIMISM_PROTOCOLS:
        assert stages.of_command("split", {"protocol": pr, "dataset": "dvlog"}).name == "split_optimism"
    keys = stages.get("train_cross_gender").reads(p, {"protocol": GENDER_PROTOCOLS[0], "dataset": "dvlog", "model": "tamfn"})
    assert "cross_gender.seeds.demo" in keys and "run.seeds.demo" not in keys
    assert "split.gender" in stages.get("split_cross_gender").reads(p, {"protocol": GENDER_PROTOCOLS[0], "dataset": "dvlog"})


def test_with_the_cross_gender_study_off_no_stage_runs_it_and_the_report_has_no_table(project, tmp_path):
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["cross_gender"]["models"]["demo"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(tmp_path / "params.yaml")
    assert stages.get("split_cross_gender").instances(p) == [] and stages.get("train_cross_gender").instances(p) == []
    report = stages.get("report")
    assert "cross_gender_md" not in report.outputs(p, Layout.of(p, absolute=False), {})
    assert report.inputs(p, Layout.of(p, absolute=False), {})["cross_gender"] == []
    assert "cross_gender.models.demo" in report.reads(p, {}) and "cross_gender" not in report.reads(p, {})


def test_a_rule_that_names_wildcards_or_a_stage_the_table_does_not_stops_the_dag():
    from asym.dag.snakefile import Rules

    rules = Rules(str(ROOT / "params.yaml"))
    assert rules.log("train", "{dataset}", "{model}").endswith("train/{dataset}/{model}.log")
    with pytest.raises(ValueError, match='rule train: its stage.s wildcards are "{dataset}", "{model}", not {model}, {dataset}'):
        rules.outputs("train", "{model}", "{dataset}")
    with pytest.raises(ValueError, match="rule evaluate: its stage.s wildcards are none, not {dataset}"):
        rules.log("evaluate", "{dataset}")
    with pytest.raises(ValueError, match="rule trian: the stage table has no such stage"):
        rules.inputs("trian")


def test_every_rule_passes_what_it_runs_through_params_and_has_its_environment(jobs):
    from snakemake.io import is_flagged

    rules = {j.rule.name: j.rule for j in jobs}
    for rule in rules.values():
        assert rule.shellcmd == "python -m asym {params.args} > {log} 2>&1", rule.name
        assert set(rule.params.keys()) == {"args", "settings"}, rule.name
        env = (Path(str(rule.snakefile)).parent / str(rule.conda_env)).resolve()
        assert env.read_text() == (ROOT / "environment.yml").read_text(), rule.name
    captioned = {j.rule.name: [f for f in j.output if is_flagged(f, "report")] for j in jobs}
    assert {r for r, files in captioned.items() if files} == {"report", "robustness", "cost", "cost_plot", "explain"}
    assert {Path(f).name for f in captioned["report"]} >= {"results.md", "metrics.png", "confusion_matrices.png"}
    assert all(Path(f.flags["report"].caption).is_file() for f in captioned["report"])


def test_the_report_shows_every_table_as_a_page_every_figure_and_model_card_in_named_categories(project, jobs):
    """Snakemake's report shows HTML and images inline and offers anything else for download: each
    table is shown as its page, each model card under its dataset, and nothing falls under "Other"."""
    p = load_params(project / "params.yaml")
    report = next(j for j in jobs if j.rule.name == "report")
    shown = {_relative(f, project): f.flags["report"] for f in report.output if "report" in f.flags}
    where = {f: (r.category, r.subcategory) for f, r in shown.items()}
    tables = {Path(f).stem for f in report.output if f.endswith(".md") and "model_cards" not in f}
    assert tables >= {"results", "comparison", "ablation", "fairness", "protocol_optimism", "cross_gender"}
    for table in tables:
        assert where[f"reports/{table}.html"][0] == "Tables", table
        assert {where[f"reports/{table}.{fmt}"] for fmt in ("md", "csv", "tex")} == {
            ("Data", "Markdown"), ("Data", "CSV"), ("Data", "LaTeX")}, table
    assert where["reports/results.html"] == ("Tables", "Metrics")
    assert where["reports/summary.csv"] == ("Data", "Aggregates")
    assert {where[f"reports/{name}"][0] for name in ("metrics.png", "confusion_matrices.png", "reliability.png",
                                                     "published.png")} == {"Figures"}
    for d in p.datasets:
        for m in p.models:
            card = shown[f"reports/model_cards/{d}-{m}.html"]
            assert (card.category, card.subcategory, card.labels) == ("Model cards", d, {"model": m})
            assert f"reports/model_cards/{d}-{m}.md" not in shown     # its page is what a reader opens
    assert all(r.category and r.subcategory for r in shown.values())
    assert len({r.caption for r in shown.values()}) > len(tables)          # figures and cards have their own
    # the landing view's description of the workflow
    description = Path(report.rule.workflow.report_text.get_path_or_uri(secret_free=True))
    assert description.resolve() == (project / "workflow" / "report" / "workflow.rst").resolve()


def _prefix_applied() -> str:
    """The prefix the workflow gave `shell.prefix`, as Snakemake puts it before every job's command."""
    from snakemake.shell import shell

    return shell._process_prefix


def test_a_job_run_by_snakemake_reads_the_params_file_it_was_given_with_this_venv(project, tmp_path):
    """Another params file (`--config params=`), and no venv on PATH: the job still runs this venv's
    asym on that file."""
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw_default = raw["synth"]["dvlog"]["n_samples"]
    raw["synth"]["dvlog"].update(n_samples=12, seconds=[6, 8])
    work = tmp_path / "other"
    copy_workflow(project, work)
    (work / "mine.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([SNAKEMAKE, "--cores", "1", "data/raw/dvlog.provenance.json", "--config", "params=mine.yaml"],
                          capture_output=True, text=True, cwd=work, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(work)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    vlogs = [d for d in (work / "data" / "raw" / "dvlog" / "dvlog-dataset").iterdir() if d.is_dir()]
    assert len(vlogs) == 12 != raw_default              # the file given, not params.yaml


def test_every_job_runs_this_venvs_asym_and_names_the_params_file_outside_its_params(project, jobs):
    from asym.dag.snakefile import Rules

    prefix = Rules(str(project / "params.yaml")).shell_prefix
    assert _prefix_applied() == Rules("params.yaml").shell_prefix       # what common.smk gave Snakemake
    job = next(j for j in jobs if j.rule.name == "evaluate")
    command = prefix + job.format_wildcards(job.rule.shellcmd).replace(" > ", " --help > ")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project)}
    Path(project / job.log[0]).parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=project, env=env, timeout=120)
    assert proc.returncode == 0 and "usage: asym evaluate" in Path(project / job.log[0]).read_text(), proc.stderr


def test_under_conda_every_rule_runs_the_environments_python_on_this_checkout(project):
    """The conda environment holds the lock's packages, not asym: the rules run it from the checkout."""
    from asym.dag.snakefile import Rules

    assert snakemake_jobs(project, conda=True)               # Snakemake reads the workflow in this mode
    prefix = _prefix_applied()
    assert prefix == Rules("params.yaml", conda=True).shell_prefix
    assert sys.executable not in prefix and str(ROOT) in prefix
    bare = project / "bare-bin"                   # the venv's base interpreter: no asym installed in it
    bare.mkdir(exist_ok=True)
    (bare / "python").unlink(missing_ok=True)
    (bare / "python").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    where = subprocess.run(["bash", "-c", prefix + "python -c 'import asym; print(asym.__file__)'"],
                           capture_output=True, text=True, cwd=project,
                           env={"PATH": f"{bare}:/usr/bin:/bin", "HOME": str(project)})
    assert where.stdout.strip() == str(ROOT / "asym" / "__init__.py"), where.stderr


def test_snakemakes_linter_finds_nothing():
    proc = subprocess.run([SNAKEMAKE, "--lint", "--cores", "1"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations, your workflow is in a good condition!" in out, out[-3000:]
    assert "Lints for" not in out


def test_the_rules_conda_environment_pins_exactly_the_lock():
    from tests.test_lock import locked

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {canonicalize_name(line.split("==")[0]): Version(line.split("==")[1]) for line in pip if "==" in line}
    assert pins == locked()
    check = subprocess.run([sys.executable, str(ROOT / "workflow" / "scripts" / "conda_env.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr



def test_the_studies_tables_figures_and_explanations_are_shown_under_their_topics(project, jobs):
    """robustness and cost as the report's tables are (a page, its downloads), their figures, and each
    explained run's group chart under "Explanations", labelled by its run; every caption a file."""
    p = load_params(project / "params.yaml")
    shown = {_relative(f, project): f.flags["report"] for j in jobs if j.rule.name in ("robustness", "cost", "cost_plot",
                                                                                         "explain")
             for f in j.output if "report" in f.flags}
    where = {f: (r.category, r.subcategory) for f, r in shown.items()}
    for table, topic in (("robustness", "Robustness"), ("cost", "Cost")):
        assert where[f"reports/{table}.html"] == ("Tables", topic)
        assert {where[f"reports/{table}.{fmt}"] for fmt in ("md", "csv", "tex")} == {
            ("Data", "Markdown"), ("Data", "CSV"), ("Data", "LaTeX")}, table
    assert {where[f"reports/robustness_{d}.png"] for d in p.datasets} == {("Figures", "Robustness")}
    assert where["reports/cost.png"] == ("Figures", "Cost")
    charts = {f: r for f, r in shown.items() if f.startswith("reports/explain/")}
    assert sorted(charts) == sorted(f"reports/explain/{r.dataset}-{r.model}-seed{r.seed}-groups.png"
                                    for r in p.explain_runs())
    assert all((r.category, r.subcategory) == ("Figures", "Explanations") for r in charts.values())
    assert all(Path(r.caption).is_file() for r in shown.values())
    assert "not depression" in (ROOT / "workflow" / "report" / "explain.rst").read_text()


def test_the_studies_turned_off_leave_a_dag_without_them(project, tmp_path):
    """`robustness`, `cost` and `explain` set to null: Snakemake parses every rule file (none reads
    a block that is absent) and plans the rest of the run without their jobs."""
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw.update(robustness=None, cost=None, explain=None)
    work = tmp_path / "off"
    copy_workflow(project, work)
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([SNAKEMAKE, "-n", "all"], capture_output=True, text=True, cwd=work, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert counts["train"] > 0 and counts["report"] == 1
    assert not {"robustness", "cost", "cost_plot", "explain"} & set(counts), counts
