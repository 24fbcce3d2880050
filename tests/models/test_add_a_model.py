"""Adding a model is one file and its params.yaml block: in a copy of the project, a GRU written
to asym/models/baselines/gru.py (config, entry and code) and its `model.<scale>.gru` block are
enough for the registry to list it, params.yaml to be checked against its config, the factory to
build it, and both DAGs to train it: Snakemake's (its own job graph) and dvc.yaml (as `asym
dvc-yaml` writes it). Nothing in the registry, the config, the stage table or the tests names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import yaml

from tests.project import ROOT, make_project

GRU = '''\
"""A GRU over both modalities' frames, pooled over the valid ones."""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class GRUConfig(ModelConfig):
    hidden: PositiveInt
    dropout: Rate


register_model("gru", GRUConfig, "GRU", description="A GRU over both modalities, masked mean pooling")

import torch
from torch import nn

from asym.models.layers import Classifier, length_mask, masked_mean


class GRU(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(audio_dim + visual_dim, hidden, batch_first=True)
        self.head = Classifier(hidden, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(torch.cat([audio, visual], dim=-1))
        return self.head(masked_mean(h, length_mask(lengths, audio.shape[1])))
'''

# What the copy's own Python sees (its asym, not this checkout's): run there with the copy first on the path.
CHECK = textwrap.dedent('''
    import json, subprocess, sys
    from pathlib import Path

    import yaml

    from asym.models import registry
    entry = registry.get("gru")
    assert registry.names()[-1] == "gru" and entry.target == "asym.models.baselines.gru:GRU", registry.names()
    assert (entry.kind, entry.family, entry.recipe) == ("baseline", "gru", "asym")

    from asym.config import load_params
    from asym.errors import ConfigError
    p = load_params("params.yaml")
    assert "torch" not in sys.modules, "collecting the models and checking params.yaml imported torch"
    for bad, said in ((dict(hidden="wide"), "model.demo.gru.hidden"), (dict(hiden=8), "model.demo.gru.hiden: unknown key")):
        raw = yaml.safe_load(Path("params.yaml").read_text())
        raw["model"]["demo"]["gru"].update(bad)
        Path("bad.yaml").write_text(yaml.safe_dump(raw))
        try:
            load_params("bad.yaml")
            raise AssertionError(f"{bad} was accepted")
        except ConfigError as exc:
            assert said in str(exc), exc

    import torch
    from asym.models import factory
    model = factory.from_params("gru", p, "dvlog")
    assert model(torch.randn(2, 7, 25), torch.randn(2, 7, 136), torch.tensor([7, 4])).shape == (2,)

    from asym.dag import stages
    train = [w for w in stages.get("train").instances(p) if w["model"] == "gru"]
    from tests.dag.test_stages import snakemake_jobs
    snakemake = sorted(j.rule.name + ":" + j.wildcards["dataset"] for j in snakemake_jobs(Path(".")) if j.wildcards.get("model") == "gru")

    subprocess.run([sys.executable, "-m", "asym", "dvc-yaml"], check=True, capture_output=True)
    dvc = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    print(json.dumps({"train": train, "snakemake": snakemake, "dvc": {k: v for k, v in dvc.items() if "gru" in k},
                      "digest": entry.digest(), "code": stages.get("train").code(p, train[0]),
                      "code_digest": {w["dataset"]: stages.get("train").code_digest(p, w) for w in train}}))
''')


def test_a_model_is_one_file_and_one_params_block(tmp_path):
    project = make_project(tmp_path / "project", models=["mean-mlp", "gru"], seeds=[0], epochs=1, dvc=True)
    (project / "asym" / "models" / "baselines" / "gru.py").write_text(GRU)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for scale in ("demo", "paper"):
        raw["model"][scale]["gru"] = {"hidden": 16 if scale == "demo" else 256, "dropout": 0.1}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}      # `tests` from here; `asym` from the copy (cwd comes first)
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["train"] == [{"dataset": "dvlog", "model": "gru"}, {"dataset": "lmvd", "model": "gru"}]
    assert seen["snakemake"] == ["train:dvlog", "train:lmvd"]
    for dataset in ("dvlog", "lmvd"):
        stage = seen["dvc"][f"train-{dataset}-gru"]
        assert stage["cmd"].endswith(f"--model gru --entry-digest {seen['digest']} "
                                     f"--code-digest {seen['code_digest'][dataset]}")
        assert "model.demo.gru" in stage["params"]
    assert "asym/models/baselines/gru.py" in seen["code"]          # its file is in its jobs' code digest


LOAD = textwrap.dedent('''
    import sys
    from pathlib import Path

    from asym.config import params_schema
    from asym.errors import ConfigError
    from asym.models import registry

    before = params_schema()
    assert registry.load(Path(sys.argv[1])) == ["gru"] and registry.names()[-1] == "gru"
    assert registry.get("gru").target == "gru:GRU" and "torch" not in sys.modules
    fields = params_schema().model_fields["model"].annotation.model_fields["demo"].annotation.model_fields
    assert "gru" in fields and "gru" not in before.model_fields["model"].annotation.model_fields["demo"].annotation.model_fields
    try:
        registry.load(Path(sys.argv[1]).with_name("clash.py"))
        raise AssertionError("a second mean-mlp was accepted")
    except ConfigError as exc:
        assert "clash.py" in str(exc) and "'mean-mlp' is registered twice" in str(exc), exc
    assert "mean-mlp" in registry.names() and registry.get("mean-mlp").target.startswith("asym.models.baselines")
''')


def test_the_registry_loads_a_model_file_from_outside_the_package(tmp_path):
    """What plug-ins will build on: a model file anywhere, read without torch, its family typed in
    params.yaml's schema from then on; a name already taken is refused, naming the file."""
    (tmp_path / "gru.py").write_text(GRU)
    (tmp_path / "clash.py").write_text(GRU.replace('register_model("gru", GRUConfig, "GRU",',
                                                   'register_model("mean-mlp", GRUConfig, "GRU", family="gru2",'))
    out = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "gru.py")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
