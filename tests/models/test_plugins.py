"""Plug-ins: a params file's `plugins` (model files of the user's project, or importable modules)
join the registry before the file is validated, typed like built-ins, in both DAGs (the plug-in
file a dependency of its own training jobs only); every way a plug-in can be wrong is refused
before any job runs, naming its file; `asym predict` refuses a checkpoint whose plug-in file is
missing and warns when its sha256 changed. The whole pipeline with a plug-in (Snakemake, tables,
model card, MLflow Model, predict) is tests/workflow/test_plugin_pipeline.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asym.errors import ConfigError
from tests.models.test_add_a_model import GRU
from tests.project import ROOT, plugin_project, registry_restored

# a plug-in's block under model.<scale>
BLOCKS = {"demo": {"gru": {"hidden": 8, "dropout": 0.1}}, "paper": {"gru": {"hidden": 64, "dropout": 0.1}}}


@pytest.fixture(autouse=True)
def _registry():
    """Each test's plug-ins leave the registry (and sys.modules) as they found it."""
    with registry_restored():
        yield


def _load(path: Path):
    from asym.config import load_params

    return load_params(path)


def test_a_plugin_is_typed_listed_and_a_dependency_of_its_own_jobs_only(tmp_path):
    from asym.dag import dvc_yaml, stages
    from asym.dag.snakefile import Rules
    from asym.layout import Layout
    from asym.models import registry

    params = plugin_project(tmp_path, GRU, models="all")
    p = _load(params)
    plugin = tmp_path / "models" / "gru.py"
    builtins = [m for m in registry.names(modules=registry.builtins())
                if registry.get(m).kind != registry.PEER_ABLATION_KIND]      # `all` leaves the peers' own ablations out
    assert p.plugins == ["gru"] and p.models[-1] == "gru" and p.models[:-1] == builtins
    assert p.model_config("gru", "dvlog").kwargs() == {"hidden": 8, "dropout": 0.1}
    assert registry.plugin_of("gru")["file"] == str(plugin.resolve())
    assert registry.plugin_of("mean-mlp") is None

    train = stages.get("train")
    w = {"dataset": "dvlog", "model": "gru"}
    assert w in train.instances(p)
    assert train.data(p, w, True) == [str(plugin.resolve())]
    assert "asym/models/layers.py" in train.code(p, w)      # what the plug-in imports from the package
    # dvc.yaml: relative to Params.root (the default's folder, which the project extends)
    stage_of = yaml.safe_load(dvc_yaml.render(p))["stages"]
    rel = Path(__import__("os").path.relpath(plugin.resolve(), ROOT)).as_posix()
    holders = sorted(name for name, s in stage_of.items() if rel in s.get("deps", []))
    assert holders == ["train-dvlog-gru"], holders
    # Snakemake: the same file among the job's inputs, and nowhere else
    rules = Rules(str(params))
    assert str(plugin.resolve()) in rules.inputs("train")(_Wild(w))["data_deps"]
    assert rules.inputs("train")(_Wild({"dataset": "dvlog", "model": "asym"}))["data_deps"] == []
    assert Layout.of(p).model_card("dvlog", "gru").endswith("dvlog-gru.md")


class _Wild(dict):
    """Snakemake's wildcards object, as much of it as Rules reads."""


def test_plugin_paths_are_relative_to_the_file_that_lists_them(tmp_path):
    params = plugin_project(tmp_path, GRU)
    (tmp_path / "elsewhere").mkdir()
    inner = tmp_path / "elsewhere" / "inner.yaml"          # extends the project's file, lists no plug-ins
    inner.write_text(yaml.safe_dump({"extends": "../params.yaml"}))
    from asym.config import plugins_folder

    assert plugins_folder(params) == tmp_path and plugins_folder(inner) == tmp_path


def test_a_plugin_may_be_an_importable_module(tmp_path, monkeypatch):
    pkg = tmp_path / "mylab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gru_model.py").write_text(GRU)
    monkeypatch.syspath_prepend(str(tmp_path))
    params = plugin_project(tmp_path, None, plugins=["mylab.gru_model"])
    p = _load(params)
    from asym.models import registry

    assert p.plugins == ["mylab.gru_model"] and registry.plugin_of("gru")["loaded_as"] == "module"
    assert registry.plugin_code("gru") == pkg


# --- refused before any job runs, naming the file -----------------------------------------------------
UNTYPED_FIELD = GRU.replace("    dropout: Rate\n", "    dropout: Rate\n    depth: Any\n").replace(
    "from pydantic import PositiveInt", "from typing import Any\n\nfrom pydantic import PositiveInt")
NOT_A_MODELCONFIG = GRU.replace("class GRUConfig(ModelConfig):", "class GRUConfig:")
RAISES = GRU.replace("register_model(", "import no_such_package  # noqa\nregister_model(")
SYNTAX = GRU.replace("class GRUConfig(ModelConfig):", "class GRUConfig(ModelConfig)")
UNKNOWN_KIND = GRU.replace('description="A GRU', 'kind="peer", description="A GRU')
CLASH = GRU.replace('register_model("gru", GRUConfig, "GRU",', 'register_model("bilstm", GRUConfig, "GRU", family="gru",')


@pytest.mark.parametrize(("source", "said"), [
    (RAISES, "declaring its models failed: ModuleNotFoundError"),
    (SYNTAX, "SyntaxError"),
    (CLASH, "'bilstm' is registered twice"),
    (UNTYPED_FIELD, "leaves ['depth'] untyped"),
    (NOT_A_MODELCONFIG, "must be a class deriving from asym.models.ModelConfig"),
    (UNKNOWN_KIND, "model 'gru': kind 'peer' is not one of asym, ablation, baseline"),
], ids=["import-error", "syntax-error", "clashes-with-a-built-in", "untyped-field", "not-a-ModelConfig", "unknown-kind"])
def test_a_bad_plugin_file_is_refused_naming_it(tmp_path, source, said):
    params = plugin_project(tmp_path, source)
    with pytest.raises(ConfigError) as exc:
        _load(params)
    assert str((tmp_path / "models" / "gru.py").resolve()) in str(exc.value) and said in str(exc.value), exc.value
    from asym.models import registry

    assert "gru" not in registry.names() and registry.get("bilstm").target.startswith("asym.models")


@pytest.mark.parametrize(("blocks", "said"), [
    ({"demo": {}, "paper": BLOCKS["paper"]}, "model.demo.gru: Field required"),
    ({"demo": {"gru": {"hidden": "wide", "dropout": 0.1}}, "paper": BLOCKS["paper"]}, "model.demo.gru.hidden"),
    ({"demo": {"gru": {"hidden": 8, "dropout": 0.1, "layers": 2}}, "paper": BLOCKS["paper"]},
     "model.demo.gru.layers: unknown key"),
], ids=["missing", "wrong-type", "unknown-key"])
def test_a_missing_or_bad_params_block_is_refused_naming_the_plugin(tmp_path, blocks, said):
    params = plugin_project(tmp_path, GRU, blocks=blocks)
    with pytest.raises(ConfigError) as exc:
        _load(params)
    assert said in str(exc.value) and str((tmp_path / "models" / "gru.py").resolve()) in str(exc.value), exc.value


def test_a_plugin_whose_recipe_is_missing_is_refused_naming_it(tmp_path):
    params = plugin_project(tmp_path, GRU.replace('description="A GRU', 'recipe="mine", description="A GRU'))
    with pytest.raises(ConfigError, match=r"no recipe 'mine' \(named by model 'gru', declared by plug-in .*gru\.py"):
        _load(params)


@pytest.mark.parametrize(("plugins", "said"), [
    (["models/nothing.py"], "nothing.py: no such model file"),
    (["no_such_package.model"], "no_such_package.model: no such module"),
    ("models/gru.py", "plugins: expected a list"),
    (["models/json.py"], "its module name 'json' is taken"),
], ids=["missing-file", "missing-module", "not-a-list", "stdlib-name"])
def test_a_plugin_that_cannot_be_found_is_refused_naming_it(tmp_path, plugins, said):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "json.py").write_text(GRU)
    params = plugin_project(tmp_path, None, plugins=plugins)
    with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace("[", r"\[")):
        _load(params)


def test_the_default_params_load_no_plugin():
    from asym.config import load_params

    p = load_params(ROOT / "params.yaml")
    assert p.data.plugins == [] and p.plugins == []


# --- asym predict: the checkpoint's plug-in, found and checked -------------------------------------------
def _meta(plugin: Path, sha: str) -> dict:
    return {"model": "gru", "plugin": {"module": plugin.stem, "file": str(plugin), "sha256": sha, "loaded_as": "file"}}


def test_predict_refuses_a_checkpoint_whose_plugin_file_is_missing(tmp_path):
    from asym.inference.predict import plugin_file

    gone = tmp_path / "gone" / "gru.py"
    with pytest.raises(ConfigError, match=r"trained from plug-in .*gone/gru\.py, which is missing"):
        plugin_file(_meta(gone, "0" * 64), tmp_path / "checkpoint.pt")


def test_predict_loads_the_recorded_plugin_and_warns_when_it_changed(tmp_path, capsys):
    from asym.inference.predict import plugin_file
    from asym.models import registry

    path = tmp_path / "gru.py"
    path.write_text(GRU)
    sha = registry.file_digest(path)
    assert plugin_file(_meta(path, sha), tmp_path / "checkpoint.pt") == path.resolve()
    assert "gru" in registry.names() and capsys.readouterr().err == ""
    assert plugin_file(_meta(path, "f" * 64), tmp_path / "checkpoint.pt") == path.resolve()
    err = capsys.readouterr().err
    assert f"warning: plug-in {path.resolve()} changed since" in err and "ffffffffffff" in err, err


def test_a_built_in_checkpoint_needs_no_plugin(tmp_path):
    from asym.inference.predict import plugin_file

    assert plugin_file({"model": "bilstm"}, tmp_path / "checkpoint.pt") is None


def test_the_mlflow_model_carries_the_plugin_file(tmp_path):
    from asym.models import registry

    params = plugin_project(tmp_path, GRU)
    _load(params)
    assert registry.plugin_code("gru") == (tmp_path / "models" / "gru.py").resolve()
    assert registry.plugin_code("asym") is None


def test_params_yaml_documents_plugins_with_an_example():
    text = (ROOT / "params.yaml").read_text()
    assert "\nplugins: []\n" in text and "#   plugins: [models/gru.py" in text


TORCH_FIRST = '''"""A model written torch first, as in most repositories."""
import torch
from torch import nn

from asym.models import ModelConfig, register_model


class LateConfig(ModelConfig):
    hidden: int


register_model("late", LateConfig, "Late", description="declared below torch")


class Late(nn.Module):
    pass
'''


def test_a_file_that_declares_nothing_before_torch_is_refused_naming_it(tmp_path):
    from asym.models import registry

    path = tmp_path / "late.py"
    path.write_text(TORCH_FIRST)
    with registry_restored(), pytest.raises(ConfigError, match=f"{path}: declares no model above its first torch"):
        registry.load(str(path))
    assert "late" not in registry.names()


BROKEN_TORCH_PART = GRU.replace("from torch import nn\n", "from torch import nn\nimport not_a_module_anywhere\n", 1)


def test_an_error_in_the_torch_part_is_raised_at_every_use_and_threads_wait_for_it(tmp_path):
    import threading

    from asym.models import factory, registry

    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "gru_ok.py"
    path.write_text(GRU.replace('"gru"', '"gru-ok"', 1))
    broken = tmp_path / "models" / "gru_broken.py"
    broken.write_text(BROKEN_TORCH_PART.replace('"gru"', '"gru-broken"', 1))
    with registry_restored():
        registry.load(str(path), str(broken))
        for _ in range(2):                                # the real error, not a missing attribute
            with pytest.raises(ModuleNotFoundError, match="not_a_module_anywhere"):
                factory.model_class("gru-broken")
        found, errors = [], []

        def look() -> None:
            try:
                found.append(factory.model_class("gru-ok"))
            except Exception as exc:                      # noqa: BLE001  (what a thread saw)
                errors.append(exc)

        threads = [threading.Thread(target=look) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(found) == 4 and len(set(found)) == 1
