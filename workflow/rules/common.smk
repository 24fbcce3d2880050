# Shared by the rules: params.yaml is validated against its schema before anything runs, the
# model list comes from the registry (asym/models/registry.py) and every path from asym/layout.py.
import json
import re
import shlex
import shutil
import sys

from asym.config import load_params
from asym.errors import ConfigError
from asym.layout import Layout, code_deps, stage_data_deps, stage_params
from asym.models import registry

PARAMS_FILE = config.get("params", "params.yaml")
try:
    P = load_params(PARAMS_FILE)
except ConfigError as exc:   # the dotted key and the problem, without a traceback of this file
    sys.stderr.write(f"{exc}\n")
    sys.exit(2)
L = Layout.from_cwd(P)
ASYM = f"{shlex.quote(sys.executable)} -m asym --params {shlex.quote(PARAMS_FILE)}"
PACKAGE_ROOT = str(registry.__file__).rsplit("/asym/", 1)[0]


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    dataset=_alternatives(P.datasets),
    model=_alternatives(registry.names()),


def settings(stage):
    """A rule's slice of params.yaml (asym.layout.stage_params): Snakemake's params trigger
    reruns a job when, and only when, its own slice changes."""
    def get(wildcards):
        w = dict(wildcards.items())
        keys = stage_params(P, stage, w.get("dataset"), w.get("model"))
        return json.dumps({k: P.slice(k) for k in keys}, sort_keys=True)
    return get


def code(stage):
    """The package files a rule runs, as inputs: editing them reruns exactly the jobs that run them."""
    def get(wildcards):
        return [f"{PACKAGE_ROOT}/{f}" for f in code_deps(stage, dict(wildcards.items()).get("model"))]
    return get


def data_deps(stage):
    def get(wildcards):
        return stage_data_deps(P, stage, dict(wildcards.items()).get("dataset"), absolute=True)
    return get


RUNS = [(d, m, s) for d in P.datasets for m in P.models for s in P.seeds]
# Whether training jobs will hold a GPU (without importing torch into the DAG's start-up).
USES_GPU = P.train.device == "cuda" or (P.train.device == "auto" and shutil.which("nvidia-smi") is not None)
