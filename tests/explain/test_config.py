"""The `explain` block of params.yaml: typed, a typo refused with the key named, and required by
`asym explain` alone."""

from __future__ import annotations

import copy

import pytest
import yaml

from asym.cli import main
from asym.config import load_params
from asym.errors import ConfigError
from tests.conftest import ROOT

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def _write(tmp_path, raw):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp_path / "params.yaml"


def test_params_yaml_configures_explain():
    cfg = load_params(ROOT / "params.yaml").explain
    assert cfg.n_steps >= 2 and cfg.internal_batch_size >= 1 and cfg.timelines >= 0


@pytest.mark.parametrize(("change", "message"), [
    ({"n_step": 16}, r"explain\.n_step: unknown key"),
    ({"n_steps": 1}, r"explain\.n_steps: Input should be greater than or equal to 2"),
    ({"max_vlogs": 0}, r"explain\.max_vlogs"),
    ({"models": {"demo": ["no-such-model"], "paper": ["asym"]}}, r"explain\.models\.demo names unknown models"),
])
def test_a_bad_explain_key_is_refused_by_name(tmp_path, change, message):
    raw = copy.deepcopy(BASE)
    raw["explain"].update(change)
    with pytest.raises(ConfigError, match=message):
        load_params(_write(tmp_path, raw))


def test_without_the_block_only_explain_is_refused(tmp_path, capsys):
    raw = copy.deepcopy(BASE)
    del raw["explain"]
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match="no `explain` block"):
        _ = load_params(path).explain
    assert main(["--params", str(path), "explain"]) == 2
    assert "no `explain` block" in capsys.readouterr().err
