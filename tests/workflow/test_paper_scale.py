"""README's "Paper scale": its figures are the registry's and params.yaml's (benchmarks/paper_grid.py),
and each of its commands that a CPU can run does run: the Snakemake commands as dry runs, with the
profiles, on the whole paper grid."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from asym.config import load_params
from asym.dag import snakefile
from asym.train import gpu_memory
from tests.project import ROOT, copy_workflow

sys.path.insert(0, str(ROOT / "benchmarks"))
import paper_grid  # noqa: E402

BIN = Path(sys.executable).parent
ALL_FOUR = ["asym", "depmamba", "caf-mamba", "mdd-net"]     # the study as first written: costed beside the default


def section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    return readme[start:readme.index("\n## ", start + 1)]


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def commands(text: str) -> list[str]:
    """The commands of a section's bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(re.sub(r"\s+", " ", line))
    return out


def test_the_readme_states_the_grid_the_registry_and_params_give():
    g = paper_grid.grid()
    p = load_params(ROOT / "params.yaml").at_scale("paper")
    assert g.models == p.models and len(g.models) >= 22
    expected = paper_grid.readme(g, paper_grid.grid(optimism_models=ALL_FOUR))
    text = one_line(section("Paper scale")).replace("×", "x")
    missing = {key: s for key, s in expected.items() if s not in text}
    assert not missing, f"README's Paper scale is stale; `python benchmarks/paper_grid.py --readme " \
                        f"--optimism-models {' '.join(ALL_FOUR)}` prints: {missing}"
    assert g.fits == len(p.models) * len(p.datasets) * len(p.seeds)
    assert g.optimism_fits == len(p.optimism_models) * 2 * p.split.kfold.k * len(p.optimism_seeds) * len(p.datasets)
    readme = (ROOT / "README.md").read_text()
    assert "20 registry models" not in readme and "(20 models" not in readme
    assert "caf-mamba" in expected["GRID_SENTENCE"] and "mdd-net" in expected["GRID_SENTENCE"]


def test_the_paper_scale_commands_are_the_ones_tested_here():
    cmds = commands(section("Paper scale"))
    snakemake = [c for c in cmds if c.startswith(".venv/bin/snakemake")]
    assert len(snakemake) == 4
    assert any("--profile workflow/profiles/gpu" in c and "--resources" in c for c in snakemake)
    assert any("--profile workflow/profiles/slurm" in c and "--retries 5" in c for c in snakemake)
    assert {c for c in cmds if c.startswith("make")} == {"make install", "make gpu-check", "make install DEVICE=cuda"}


@pytest.mark.parametrize("make", ["make install", "make install DEVICE=cuda", "make gpu-check"])
def test_the_make_commands_are_the_makefiles(tmp_path, make):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    proc = subprocess.run([*shlex.split(make), "-n", f"VENV={venv}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    device = "cuda" if "DEVICE=cuda" in make else "auto"
    assert f"install_plan.py --venv {venv} --device {device}" in proc.stdout


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory) -> Path:
    """The workflow with the repository's params.yaml at `scale: paper` (every registry model)."""
    root = tmp_path_factory.mktemp("paper-scale")
    copy_workflow(ROOT, root)
    (root / "profiles").symlink_to("workflow/profiles")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["scale"] = "paper"
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def dry_run(root: Path, command: str) -> str:
    args = shlex.split(command.replace("$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits "
                                       "| head -1)", "81559"))
    assert args[0] == ".venv/bin/snakemake"
    proc = subprocess.run([str(BIN / "snakemake"), *args[1:], "-n"], cwd=root, capture_output=True, text=True,
                          timeout=600, env={"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                            "HOME": str(root)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def job_counts(text: str) -> dict[str, int]:
    table = text.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_the_snakemake_commands_dry_run_the_whole_paper_grid(paper_project):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    p = load_params(paper_project / "params.yaml")
    cmds = [c for c in commands(section("Paper scale")) if c.startswith(".venv/bin/snakemake") and "--report" not in c]
    assert len(cmds) == 3
    for command in cmds:
        counts = job_counts(dry_run(paper_project, command))
        per_seed = p.train_job == "per_seed"     # paper scale: one job per seed, spread over GPUs or nodes
        assert counts["train"] == len(p.models) * len(p.datasets) * (len(p.seeds) if per_seed else 1), command
        assert counts["train_optimism"] == len(p.optimism_models) * 2 * len(p.datasets) * (
            len(p.optimism_seeds) if per_seed else 1), command


def test_the_slurm_request_the_readme_states_is_the_profiles():
    train = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]["train"]
    text = one_line(section("Paper scale"))
    assert (f"one whole GPU (`gres: {train['gres']}`), {train['mem_mb'] // 1000} GB of host memory and "
            f"{train['cpus_per_task']} CPUs, for {train['runtime']} minutes") in text
    gpu = yaml.safe_load((ROOT / "workflow" / "profiles" / "gpu" / "config.yaml").read_text())["resources"]
    assert "gpu_mem_mb=80000" in gpu and "declares an 80 GB card (`gpu_mem_mb=80000`, 4 slots)" in text
    assert "gpu_slots=4" in gpu



@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_each_training_job_asks_for_its_models_gpu_memory(tmp_path, device):
    """Where training holds a GPU, every training rule declares its job's `gpu_mem_mb`, the figure
    asym.train.gpu_memory gives for the job's model and dataset (what the gpu profile's card memory
    is shared by); on the CPU, none."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["scale"] = "paper"
    raw["train"]["device"] = device
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    rules = snakefile.Rules(str(tmp_path / "params.yaml"))
    for model in ("asym", "mean-mlp", "mdd-net"):
        for dataset in ("dvlog", "lmvd"):
            expected = gpu_memory.gpu_mem_mb(model, dataset, "paper", rules.P) if device == "cuda" else 0
            assert rules.gpu_mem_mb(SimpleNamespace(model=model, dataset=dataset)) == expected
    if device == "cuda":
        assert rules.gpu_mem_mb(SimpleNamespace(model="asym", dataset="dvlog")) > \
            rules.gpu_mem_mb(SimpleNamespace(model="mean-mlp", dataset="dvlog")) > 0
    text = (ROOT / "workflow" / "rules" / "train.smk").read_text()
    training = re.findall(r"^rule (train\w*):", text, re.M)
    assert len(training) == 3 and text.count("gpu_mem_mb=S.gpu_mem_mb,") == len(training)


def test_every_training_rule_asks_slurm_for_a_gpu_and_the_cpu_example_names_them_all():
    """A training stage the SLURM profile forgot would run on SLURM's defaults: no GPU, no time."""
    from asym.dag import stages

    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    training = {s.name for s in stages.STAGES if s.seeds is not None}
    assert training == {"train", "train_optimism", "train_cross_gender"}
    assert training <= set(profile["set-resources"])
    assert all(profile["set-resources"][t]["gres"] == "gpu:1" for t in training)
    readme = one_line((ROOT / "README.md").read_text().replace("\\\n", " "))
    cpu_example = re.search(r"--default-resources slurm_partition=cpu [^`]*", readme)
    assert cpu_example, "README's CPU-only SLURM example is missing"
    profile_text = (ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    for t in training:
        assert f"{t}:runtime=" in cpu_example[0] and f"{t}:runtime=" in profile_text
