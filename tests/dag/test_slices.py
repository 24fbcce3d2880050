"""Each step reads no params key outside its slice (the keys its stage declares to both DAGs):
every step of a small demo DAG, the optimism study's included, runs in-process, with every read of
the typed params recorded by its dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from asym import cli
from asym.config import ByScale, Params, load_params
from asym.dag import stages
from tests.project import ROOT, make_project

# Where the steps' files live and what a params file extends: the DAGs depend on those through the
# files themselves, never through a params slice.
EVERYWHERE = ("paths", "extends")
# Keys a stage's step reads and leaves out of its slice, since they change none of its files (so
# editing them reruns nothing): with `mlflow.live`, training logs every epoch to MLflow as it goes.
LEFT_OUT = {"train": ("mlflow",)}


class Reads:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.paused = False
        # The optimism study's view of the file (Params.for_optimism) puts the study's models and
        # seeds where the run's are, and the protocol of its command line in every dataset's.
        self.optimism: dict[str, str | None] = {}

    def add(self, key: str) -> None:
        if self.paused:
            return
        for prefix, meant in self.optimism.items():
            if key == prefix or key.startswith(prefix + "."):
                if meant is None:
                    return
                key = meant + key[len(prefix):]
        self.keys.add(key)

    def wrap(self, value: Any, key: str) -> Any:
        if isinstance(value, BaseModel):
            return _Model(value, key, self)
        if isinstance(value, dict):
            return _Mapping(value, key, self)
        self.add(key)
        return value


class _Model:
    """A params block: a field read is recorded by its key; a method or property of the block reads it all."""

    def __init__(self, obj: BaseModel, key: str, reads: Reads) -> None:
        self._obj, self._key, self._reads = obj, key, reads

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if name in type(self._obj).model_fields:
            return self._reads.wrap(value, f"{self._key}.{name}".lstrip("."))
        if name == "at" and isinstance(self._obj, ByScale):
            return lambda scale: self._reads.wrap(value(scale), f"{self._key}.{scale}")
        self._reads.add(self._key)
        return value


class _Mapping:
    def __init__(self, obj: dict, key: str, reads: Reads) -> None:
        self._obj, self._key, self._reads = obj, key, reads

    def __getitem__(self, name: str) -> Any:
        return self._reads.wrap(self._obj[name], f"{self._key}.{name}")

    def __contains__(self, name: str) -> bool:
        return name in self._obj

    def __getattr__(self, name: str) -> Any:     # items(), keys(), ...: the whole mapping is read
        self._reads.add(self._key)
        return getattr(self._obj, name)

    def __iter__(self):
        self._reads.add(self._key)
        return iter(self._obj)


def _outside(read: str, allowed: list[str]) -> bool:
    return not any(read == k or read.startswith(k + ".") for k in [*allowed, *EVERYWHERE])


@pytest.fixture(scope="module", params=["per_model", "per_seed"])
def project(tmp_path_factory, request) -> Path:
    """A small DAG with both studies on, its training jobs per model or per seed (`train.job`)."""
    kfold = yaml.safe_load((ROOT / "params.yaml").read_text())["split"]["kfold"]
    return make_project(tmp_path_factory.mktemp("slices"), ["mean-mlp", "asym"], [0], epochs=1,
                        train={"job": {"demo": request.param, "paper": request.param}},
                        # enough D-Vlog vlogs for each (fold, gender, class) the cross-gender study needs
                        synth={"dvlog": {"n_samples": 120, "seconds": [8, 12]},
                               "lmvd": {"n_samples": 20, "n_subjects": 14, "seconds": [8, 14]}},
                        optimism={"models": {"demo": ["mean-mlp"], "paper": ["mean-mlp"]},
                                  "seeds": {"demo": [0], "paper": [0]}},
                        cross_gender={"models": {"demo": ["mean-mlp"], "paper": ["mean-mlp"]},
                                      "seeds": {"demo": [0], "paper": [0]}, "datasets": ["dvlog"]},
                        split={"kfold": {**kfold, "k": 2},         # the study's fits: 2 folds are enough here
                               "gender": {"validation": "target", "min_test_per_class": 1}})


@pytest.mark.slow          # every step of a small DAG, run in this process: 20 s a job layout
def test_every_step_reads_only_its_slice(project, monkeypatch):
    params_file = str(project / "params.yaml")
    p = load_params(params_file)
    reads = Reads()
    original = Params.__init__

    def recording(self, data, *args, **kwargs):
        original(self, data, *args, **kwargs)
        self.data = reads.wrap(data, "")

    monkeypatch.setattr(Params, "__init__", recording)
    original_view = Params.for_optimism

    def optimism_view(self, protocol):
        """What the view reads of the file to build itself is the study's: the keys of its slice are
        checked through the reads the step makes of the view."""
        reads.paused = True
        try:
            view = original_view(self, protocol)
            scale, datasets = self.scale, self.datasets
        finally:
            reads.paused = False
        reads.optimism = {f"run.seeds.{scale}": f"optimism.seeds.{scale}", "run.models": f"optimism.models.{scale}",
                          **{f"datasets.{d}.protocol": None for d in datasets}}
        return view

    monkeypatch.setattr(Params, "for_optimism", optimism_view)
    original_gender_view = Params.for_cross_gender

    def cross_gender_view(self, protocol):
        """As `optimism_view`, for the cross-gender study's view (its datasets too are the study's)."""
        reads.paused = True
        try:
            view = original_gender_view(self, protocol)
            scale, datasets = self.scale, self.datasets
        finally:
            reads.paused = False
        reads.optimism = {f"run.seeds.{scale}": f"cross_gender.seeds.{scale}",
                          "run.models": f"cross_gender.models.{scale}", "run.datasets": "cross_gender.datasets",
                          **{f"datasets.{d}.protocol": None for d in datasets}}
        return view

    monkeypatch.setattr(Params, "for_cross_gender", cross_gender_view)
    outside: dict[str, list[str]] = {}
    unused: dict[str, list[str]] = {}
    ran = 0
    for stage in stages.STAGES:
        for w in stage.instances(p):
            reads.keys.clear()
            reads.optimism = {}
            assert cli.main(["--params", params_file, *stage.command(p, w)]) == 0, stage.dvc_name(w)
            declared = stage.reads(p, w)
            wrong = sorted(k for k in reads.keys if _outside(k, [*declared, *LEFT_OUT.get(stage.name, ())]))
            if wrong:
                outside[stage.dvc_name(w)] = wrong
            unread = [k for k in declared if not any(r == k or r.startswith(k + ".") or k.startswith(r + ".")
                                                     for r in reads.keys)]
            if unread:
                unused[stage.dvc_name(w)] = unread
            ran += 1
    assert ran == sum(len(s.instances(p)) for s in stages.STAGES) > 7
    assert {s.name for s in stages.STAGES if s.instances(p)} == set(stages.BY_NAME)   # the study's too
    assert not outside, f"steps read params keys outside their stage's slice: {outside}"
    assert not unused, f"stages declare params keys their step never reads: {unused}"
