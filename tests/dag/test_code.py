"""A job's code digest (asym.dag.code): it moves with an edit that can change the job's outputs, and
only then, in the stage table both DAGs are written from."""

from __future__ import annotations

from pathlib import Path

import pytest

from asym import cli
from asym.config import load_params
from asym.dag import code, stages
from tests.project import MODEL_FILE, REAL_EDIT, ROOT, edit, edit_comments, own_package


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A copy of the package that asym.dag.code reads in place of this one."""
    monkeypatch.setattr(code, "PACKAGE", own_package(tmp_path))
    code._module_file.cache_clear()
    yield tmp_path
    code._module_file.cache_clear()


def _digests(scale: str = "demo") -> dict[str, str]:
    p = load_params(ROOT / "params.yaml").at_scale(scale)
    return {s.dvc_name(w): s.code_digest(p, w) for s in stages.STAGES for w in s.instances(p)}


def test_comments_and_docstrings_change_no_digest_and_a_real_edit_only_its_models(package):
    before = _digests()
    edit_comments(package)
    assert _digests() == before            # no job of the default DAG reruns
    edit(package, *REAL_EDIT)
    after = _digests()
    # and the two steps that build bilstm besides its training: the cost of every model, and the
    # robustness of robustness.models (bilstm, its reference, among them)
    assert {k for k in before if before[k] != after[k]} == {"train-dvlog-bilstm", "train-lmvd-bilstm", "cost",
                                                            "robustness"}


def test_a_real_edit_of_a_model_reruns_exactly_its_per_seed_jobs(package):
    """At paper scale params.yaml trains per seed (`train.job`): every seed's job of the model, and no other."""
    before = _digests("paper")
    edit(package, *REAL_EDIT)
    after = _digests("paper")
    seeds = load_params(ROOT / "params.yaml").at_scale("paper").seeds
    assert {k for k in before if before[k] != after[k]} == {f"train-{d}-bilstm-seed{s}" for d in ("dvlog", "lmvd")
                                                            for s in seeds} | {"cost", "robustness"}
    assert len(seeds) > 1


def test_modules_that_change_no_output_are_not_a_training_jobs_code():
    p = load_params(ROOT / "params.yaml")
    train = stages.get("train").code(p, {"dataset": "dvlog", "model": "bilstm"})
    for rel in ("asym/config.py", "asym/layout.py", "asym/grid.py", "asym/io.py", "asym/errors.py", "asym/schema.py",
                "asym/dag/code.py", "asym/models/registry.py", "asym/models/families.py", "asym/cli.py"):
        assert rel not in train, rel
    assert not [f for f in train if f.startswith(("asym/report/", "asym/tracking/"))], train
    for rel in (MODEL_FILE, "asym/models/layers.py", "asym/train/loop.py", "asym/nn/ssm.py", "asym/metrics.py",
                "asym/data/parquet.py"):
        assert rel in train, rel
    assert "asym/models/asym.py" not in train           # another model's file
    assert "asym/report/build.py" in stages.get("report").code(p, {})
    convert = stages.get("convert")         # the dataset's format's reader, named by the format table
    assert "asym/data/dvlog.py" in convert.code(p, {"dataset": "dvlog"})
    assert "asym/data/lmvd.py" in convert.code(p, {"dataset": "lmvd"})
    assert not {"asym/data/lmvd.py", "asym/data/synthetic.py"} & set(convert.code(p, {"dataset": "dvlog"}))
    assert "asym/data/synthetic.py" in stages.get("fetch").code(p, {"dataset": "dvlog"})     # the demo's writer


def test_a_real_datasets_jobs_do_not_run_the_demo_writers(tmp_path):
    """A manifest of the user's: its fetch copies what the manifest names (the reader's code), its
    convert reads it; neither runs a demo writer, so editing one reruns neither."""
    params = tmp_path / "params.yaml"
    params.write_text(f"extends: {ROOT / 'params.yaml'}\n"
                      "datasets: {mine: {format: manifest, source: /data/mine/manifest.csv, "
                      "protocol: {demo: official, paper: official}}}\nrun: {datasets: [mine], models: [mean-mlp]}\noptimism: null\n")
    p = load_params(params)
    w = {"dataset": "mine"}
    fetch, convert = stages.get("fetch").code(p, w), stages.get("convert").code(p, w)
    assert "asym/data/manifest.py" in fetch and "asym/data/manifest.py" in convert
    demos = {"asym/data/manifest_demo.py", "asym/data/synthetic.py", "asym/data/daic_woz_demo.py"}
    assert not demos & (set(fetch) | set(convert)), (fetch, convert)
    assert stages.get("fetch").data(p, w, True) == ["/data/mine/manifest.csv"]      # the manifest, a dependency


def test_a_digest_ignores_comments_docstrings_and_layout_and_sees_any_code(tmp_path):
    def digest(text: str) -> str:
        f = tmp_path / f"m{len(list(tmp_path.iterdir()))}.py"
        f.write_text(text)
        return code.module_digest(f)

    base = digest('"""Doc."""\nimport os\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    assert digest('"""Other."""\nimport os  # why\n\ndef f(x):\n    return (x\n            + 1)\n') == base
    assert digest('import os\n\n\ndef f(x):\n    "A string statement."\n    return x + 1\n') == base
    assert digest('"""Doc."""\nimport os\n\n\ndef f(x):\n    """Doc."""\n    return x + 2\n') != base
    assert digest('"""Doc."""\nimport os\n\n\ndef f(y):\n    """Doc."""\n    return y + 1\n') != base


def test_a_changed_default_of_config_parsing_reaches_the_stages_reading_its_section():
    assert code.config_defaults("train")["TrainConfig.precision"] == "'fp32'"
    assert "RecipeConfig.threshold" in code.config_defaults("recipes")
    p = load_params(ROOT / "params.yaml")
    w = {"dataset": "dvlog", "model": "bilstm"}
    train = stages.get("train")
    sections = {k.split(".")[0] for k in train.reads(p, w)}
    assert {"train", "recipes"} <= sections and "report" not in sections
    resolved = code.training_values(p, "dvlog", "bilstm")
    assert train.code_digest(p, w) == code.code_digest(train.modules, "bilstm", sections, resolved)
    assert code.code_digest(train.modules, "bilstm", sections) != code.code_digest(train.modules, "bilstm", ())


def test_a_step_refuses_a_digest_that_is_not_its_codes(capsys):
    assert set(cli.DAG_STEPS) == {s.step for s in stages.STAGES}
    status = cli.main(["--params", str(ROOT / "params.yaml"), "evaluate", "--code-digest", "000000000000"])
    assert status == 2 and "run `asym dvc-yaml`" in capsys.readouterr().err


def test_a_parsing_change_that_moves_a_value_training_uses_reruns_training(monkeypatch):
    """asym.config is not training code, but a change in what it resolves (a recipe's learning rate
    for a dataset, a model's config with its entry's overrides) moves every training digest."""
    from asym.config import RecipeConfig
    from asym.models.families import ModelConfig

    before = _digests()
    lr_for = RecipeConfig.lr_for
    monkeypatch.setattr(RecipeConfig, "lr_for", lambda self, dataset: 10 * lr_for(self, dataset))
    moved = _digests()
    trains = {k for k in before if k.startswith("train-")}
    assert trains and {k for k in before if before[k] != moved[k]} == trains
    monkeypatch.undo()
    resolved = ModelConfig.resolved
    monkeypatch.setattr(ModelConfig, "resolved", lambda self, dataset, overrides=None: resolved(self, dataset))
    dropped = _digests()                   # the entries' overrides lost: every ablation becomes asym
    changed = {k for k in before if before[k] != dropped[k]}
    assert "train-dvlog-asym-no-cmim" in changed and "train-dvlog-bilstm" not in changed


def test_a_texts_answer_is_kept_on_disk_for_the_next_job_and_an_edit_is_parsed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "m.py"
    source.write_text("import asym.nn.ssm\nX = 1\n")
    code._parsed.cache_clear()
    imports, digest = code._module(source)
    kept = list((tmp_path / "cache" / "asym" / "code").glob("*.json"))
    assert imports == {"asym.nn.ssm"} and len(kept) == 1
    # A new process (the in-memory cache cleared) takes the kept answer: shown by one written there.
    kept[0].write_text('[["asym.elsewhere"], "kept"]')
    code._parsed.cache_clear()
    assert code._module(source) == (frozenset({"asym.elsewhere"}), "kept")
    source.write_text("import asym.nn.ssm\nX = 2\n")            # another text: parsed, not taken
    code._parsed.cache_clear()
    imports, edited = code._module(source)
    assert imports == {"asym.nn.ssm"} and edited not in (digest, "kept")
    code._parsed.cache_clear()
