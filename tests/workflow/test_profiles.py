"""The Snakemake profiles as Snakemake reads them: what survives the documented overrides.

Snakemake replaces a whole top-level block of a profile that the command line or a later profile
sets, and the workflow's `profiles/default` wins over `--profile` key by key; these tests pin the
settings that must survive both.
"""

from __future__ import annotations

import shlex

import pytest
import yaml

from tests.project import ROOT
from tests.workflow.slurm_profile import PROFILE, cpu_only_override

snakemake_cli = pytest.importorskip("snakemake.cli")
pytest.importorskip("snakemake_executor_plugin_slurm")   # `executor: slurm` is checked on parsing
CLUSTER = ["--default-resources", "slurm_partition=cpu", "slurm_account=my-lab"]


def parse(args: list[str], monkeypatch) -> object:
    monkeypatch.chdir(ROOT)
    _parser, parsed = snakemake_cli.parse_args(["--profile", "workflow/profiles/slurm", *args])
    return parsed


def raw(resources: dict) -> dict:
    return {name: res.raw for name, res in resources.items()}


def test_partition_and_account_are_the_only_change(monkeypatch):
    profile = yaml.safe_load(PROFILE.read_text())
    plain, overridden = parse([], monkeypatch), parse(CLUSTER, monkeypatch)
    assert raw(overridden.default_resources)["slurm_partition"] == "cpu"
    assert raw(overridden.default_resources)["slurm_account"] == "my-lab"
    assert raw(plain.default_resources) | {"slurm_partition": "cpu", "slurm_account": "my-lab"} == raw(
        overridden.default_resources)
    assert {r: raw(v) for r, v in overridden.set_resources.items()} == {
        r: raw(v) for r, v in plain.set_resources.items()}
    assert raw(overridden.set_resources["train"])["gres"] == profile["set-resources"]["train"]["gres"]
    # The workflow's default profile is read too, and must not undo the cluster settings.
    assert overridden.latency_wait == profile["latency-wait"]
    assert overridden.executor == "slurm" and overridden.jobs == profile["jobs"]


def test_own_profile_overrides_partition_and_account(tmp_path, monkeypatch):
    own = tmp_path / "my-cluster"
    own.mkdir()
    (own / "config.yaml").write_text(yaml.safe_dump(
        {"default-resources": {"slurm_partition": "cpu", "slurm_account": "my-lab"}}))
    from_profile, from_cli = parse(["--profile", str(own)], monkeypatch), parse(CLUSTER, monkeypatch)
    assert raw(from_profile.default_resources) == raw(from_cli.default_resources)
    assert {r: raw(v) for r, v in from_profile.set_resources.items()} == {
        r: raw(v) for r, v in from_cli.set_resources.items()}


def test_cpu_only_override_drops_only_the_gpu(monkeypatch):
    profile = yaml.safe_load(PROFILE.read_text())
    cpu = parse([*CLUSTER, *cpu_only_override(profile)], monkeypatch)
    for rule, wanted in profile["set-resources"].items():
        got = raw(cpu.set_resources[rule])
        assert "gres" not in got
        assert got == {k: v for k, v in wanted.items() if k != "gres"}


def test_readme_and_profile_show_the_override_the_test_runs():
    expected = shlex.join(cpu_only_override(yaml.safe_load(PROFILE.read_text())))
    readme = (ROOT / "README.md").read_text()
    cluster = readme[readme.index("## On a cluster"):]
    assert expected in cluster.replace("\\\n  ", "")
    assert f"#   {expected}" in PROFILE.read_text()
