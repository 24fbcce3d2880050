"""DVC out of the box in a fresh clone: repro, dag, metrics, params diff, plots, precise
reruns, and push / pull between two clones through the default local remote."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.project import REAL_EDIT, ROOT, edit, edit_comments, small_params
from tests.workflow.conftest import BIN, TINY, copy_data_stages, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc")]
DVC = str(BIN / "dvc")


def _origin(dest: Path) -> Path:
    """A repository holding what a clone of this one holds (tracked and new, unignored files)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "origin"], dest)
    return dest


@pytest.fixture(scope="module")
def clones(tmp_path_factory, data_stages):
    """Two clones side by side (so they share ../asym-dvc-remote), set to the tiny config, the
    first one reproduced."""
    base = tmp_path_factory.mktemp("dvc")
    origin = _origin(base / "origin")
    a, b = base / "a", base / "b"
    run(["git", "clone", "-q", str(origin), str(a)], base)
    raw = small_params(TINY["models"], TINY["seeds"], TINY["epochs"])
    (a / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run([sys.executable, "-m", "asym", "dvc-yaml"], a)
    run(["git", "commit", "-qam", "tiny config"], a)
    # the data stages are shared with the Snakemake tests: recorded, not run again
    copy_data_stages(data_stages, a)
    data_stages_names = [f"{s}-{d}" for d in ("dvlog", "lmvd") for s in ("fetch", "convert", "split")]
    run([DVC, "commit", "-f", *data_stages_names], a)
    out = run([DVC, "repro"], a).stdout
    assert "Running stage 'fetch-" not in out and "Running stage 'train-dvlog-bilstm'" in out
    run(["git", "add", "dvc.lock"], a)
    run(["git", "commit", "-qm", "results"], a)
    return a, b


def test_repro_works_without_dvc_init_and_every_view_answers(clones):
    a, _ = clones
    assert (a / ".dvc" / "config").is_file() and (a / "reports" / "comparison.md").is_file()
    assert "up to date" in run([DVC, "status"], a).stdout.lower()
    dag = run([DVC, "dag"], a).stdout
    assert "train-lmvd-mean-mlp" in dag and "report" in dag
    metrics = run([DVC, "metrics", "show", "--json"], a).stdout
    assert "dvlog/mean-mlp/f1" in metrics and "runs/lmvd/bilstm/seed1/metrics.json" in metrics
    run([DVC, "plots", "show", "-o", "plots-out"], a)
    assert (a / "plots-out" / "index.html").stat().st_size > 0
    assert "reliability.png" in (a / "plots-out" / "index.html").read_text()


def test_editing_one_models_block_reruns_only_that_models_stages(clones, tmp_path):
    a, _ = clones
    edited = tmp_path / "edited"
    shutil.copytree(a, edited, symlinks=True)
    raw = yaml.safe_load((edited / "params.yaml").read_text())
    raw["model"]["demo"]["bilstm"]["hidden"] = 24
    (edited / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert "model.demo.bilstm.hidden" in run([DVC, "params", "diff"], edited).stdout
    status = run([DVC, "status"], edited).stdout
    changed = {line.rstrip(":").strip() for line in status.splitlines() if line and not line.startswith(("\t", " "))}
    assert changed == {"train-dvlog-bilstm", "train-lmvd-bilstm", "cost"}, status     # cost reads every model's block


def test_a_comment_reruns_nothing_and_a_models_code_reruns_only_its_stages(clones, tmp_path):
    """asym.dag.code: dvc.yaml written by the clone's own (edited) package."""
    a, _ = clones
    edited = tmp_path / "edited"
    shutil.copytree(a, edited, symlinks=True)
    edit_comments(edited)                        # asym/config.py and bilstm's file
    run([sys.executable, "-m", "asym", "dvc-yaml", "--check"], edited)
    assert "up to date" in run([DVC, "status"], edited).stdout.lower()
    edit(edited, *REAL_EDIT)                     # bilstm's forward
    assert run([sys.executable, "-m", "asym", "dvc-yaml", "--check"], edited, check=False).returncode != 0
    run([sys.executable, "-m", "asym", "dvc-yaml"], edited)
    status = run([DVC, "status"], edited).stdout
    changed = {line.rstrip(":").strip() for line in status.splitlines() if line and not line.startswith(("\t", " "))}
    # and the steps that build bilstm besides its training: cost (every model) and robustness (robustness.models)
    assert changed == {"train-dvlog-bilstm", "train-lmvd-bilstm", "cost", "robustness"}, status


def test_push_and_pull_restore_a_second_clone(clones):
    a, b = clones
    run([DVC, "push"], a)
    assert (a.parent / "asym-dvc-remote").is_dir()
    run(["git", "clone", "-q", str(a), str(b)], a.parent)
    run([DVC, "pull"], b)
    for rel in ("reports/results.md", "runs/dvlog/bilstm/seed1/checkpoint.pt", "data/processed/lmvd.parquet"):
        assert (b / rel).read_bytes() == (a / rel).read_bytes(), rel
    # the MLflow store is each clone's own: only the step that fills it is left to run
    status = run([DVC, "status"], b).stdout
    assert [line for line in status.splitlines() if not line.startswith("\t")] == ["track:"], status
    out = run([DVC, "repro"], b).stdout
    assert "Running stage 'track'" in out and "Running stage 'train-" not in out and "Running stage 'report'" not in out
    assert (b / "mlflow.db").is_file()
