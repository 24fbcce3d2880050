"""The README's "Add your model" section as written: its files are written and its commands
run, as a built-in in a copy of the package and as a plug-in in a project beside a checkout.
Each fenced block says what it is: `file=<path>` (written there), `block=model` (merged into
params.yaml), `dir=clone|checkout` (its commands, run there). The full run of the plug-in
(`snakemake --cores 2 all`, every command but a dry run) is what tests/workflow/test_plugin_pipeline.py
runs, in a project whose params file extends the default; here it runs as a dry run (`-n`)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

from asym.config import deep_merge
from tests.project import ROOT, make_project
from tests.workflow.conftest import ENV

README = ROOT / "README.md"
SECTION = "## Add your model\n"
FENCE = re.compile(r"^```(\w+) (\w+)=(\S+)\n(.*?)^```$", re.S | re.M)
FULL_RUN = "snakemake --cores 2 all"          # run for real by tests/workflow/test_plugin_pipeline.py


def blocks() -> dict[tuple[str, str], str]:
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return {(key, value): body for _, key, value, body in FENCE.findall(section)}


def _run(line: str, cwd: Path, pythonpath: Path) -> str:
    if line.startswith(FULL_RUN):
        line = line.replace("snakemake", "snakemake -n", 1)
    proc = subprocess.run(shlex.split(line), cwd=cwd, env={**ENV, "PYTHONPATH": str(pythonpath)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{line}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout + proc.stderr


def test_the_doc_has_what_this_test_runs():
    found = blocks()
    assert {("file", "gru.py"), ("block", "model"), ("dir", "clone"), ("file", "my-project/params.yaml"),
            ("dir", "checkout")} == set(found)
    assert any(line.startswith(FULL_RUN) for line in found[("dir", "checkout")].splitlines())


def test_a_built_in_model_as_the_doc_adds_it(tmp_path):
    """One file in the package and one params block: listed, in dvc.yaml and in Snakemake's DAG."""
    found = blocks()
    clone = make_project(tmp_path / "clone", models=["mean-mlp", "gru"], seeds=[0], epochs=1, dvc=True)
    (clone / "asym" / "models" / "baselines" / "gru.py").write_text(found[("file", "gru.py")])
    raw = yaml.safe_load((clone / "params.yaml").read_text())
    raw = deep_merge(raw, yaml.safe_load(found[("block", "model")]))
    (clone / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    said = [_run(line, clone, clone) for line in found[("dir", "clone")].splitlines()]
    assert re.search(r"^gru +baseline +asym ", said[0], re.M), said[0]
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    assert "--code-digest" in stages["train-dvlog-gru"]["cmd"]          # its file's code, in the command
    assert "Training gru on dvlog" in said[2], said[2]


def test_a_plugin_as_the_doc_adds_it(tmp_path):
    """The file in the user's project, listed under `plugins` of a params file that extends the
    checkout's: listed, and in Snakemake's DAG, asym itself unedited."""
    found = blocks()
    checkout = make_project(tmp_path / "checkout", models=["asym"], seeds=[0], epochs=1)
    (checkout / "my-project" / "models").mkdir(parents=True)
    (checkout / "my-project" / "models" / "gru.py").write_text(found[("file", "gru.py")])
    (checkout / "my-project" / "params.yaml").write_text(found[("file", "my-project/params.yaml")])
    said = [_run(line, checkout, ROOT) for line in found[("dir", "checkout")].splitlines()]
    assert re.search(r"^gru +baseline +asym ", said[0], re.M), said[0]
    for dry in said[1:]:
        assert "Training gru on dvlog" in dry and "Training asym on dvlog" in dry, dry
    assert not (ROOT / "asym" / "models" / "baselines" / "gru.py").exists()
