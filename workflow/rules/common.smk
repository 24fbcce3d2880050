# Helpers shared by the rules: params.yaml is validated before anything runs, and the model
# list comes from the registry (asym/models/registry.py), the one list of models.
import json
import re
import shlex
import sys

from asym.config import load_params
from asym.models import registry

PARAMS_FILE = config.get("params", "params.yaml")
P = load_params(PARAMS_FILE)
ASYM = f"{shlex.quote(sys.executable)} -m asym --params {shlex.quote(PARAMS_FILE)}"

RAW = str(P.path_of("raw"))
PROCESSED = str(P.path_of("processed"))
SPLITS = str(P.path_of("splits"))
RUNS = str(P.path_of("runs"))
REPORTS = str(P.path_of("reports"))
LOGS = str(P.root / "logs")


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    dataset=_alternatives(P.datasets),
    model=_alternatives(registry.names()),
    seed=r"\d+",


def settings(*keys):
    """A rule's slice of params.yaml; Snakemake reruns a job when its slice changes."""
    def get(wildcards):
        node = {"scale": P.scale}
        for key in keys:
            value = P.raw
            for part in key.format(**dict(wildcards.items())).split("."):
                value = value[part]
            node[key] = value
        return json.dumps(node, sort_keys=True)
    return get
