from __future__ import annotations

import pytest
import yaml

from asym.config import load_params
from asym.errors import ConfigError
from asym.models import registry


def test_default_params_are_valid_and_scale_switches_in_one_place(params, tmp_path):
    assert params.scale == "demo" and params.models == registry.names()
    raw = yaml.safe_load(params.path.read_text())
    raw["scale"] = "paper"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    paper = load_params(tmp_path / "p.yaml")
    assert paper.train["epochs"] == 120 and paper.train["lr"] == 1e-4
    assert paper.model_family("depmamba", "dvlog")["d_state"] == 12
    assert paper.model_family("depmamba", "lmvd")["d_state"] == 16
    assert registry.resolve_config("asym-no-gate", paper, "dvlog")["use_gate"] is False


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(scale="huge"), "scale must be one of"),
    (lambda r: r["run"].update(models=["asym", "nope"]), "unknown models"),
    (lambda r: r["datasets"]["dvlog"].update(split="random"), "split must be one of"),
    (lambda r: r["split"].update(ratios=[0.5, 0.5, 0.5]), "ratios"),
    (lambda r: r.pop("train"), "missing top-level keys"),
])
def test_invalid_params_are_refused(params, tmp_path, change, message):
    raw = yaml.safe_load(params.path.read_text())
    change(raw)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        _ = load_params(tmp_path / "p.yaml").models


def test_dvc_yaml_is_generated_from_the_registry(params):
    from asym.dvc_yaml import render

    committed = (params.root / "dvc.yaml").read_text()
    assert committed == render(params), "dvc.yaml is stale: run `asym dvc-yaml`"
    stages = yaml.safe_load(committed)["stages"]
    assert stages["train"]["matrix"]["model"] == registry.names()
    assert set(stages) == {"fetch", "convert", "split", "train", "evaluate", "report"}
