# params.yaml is validated against its schema before anything runs (a mistake stops the DAG with
# its dotted key named, without a traceback); everything else is read off the stage table.
import sys

from asym.dag import snakefile
from asym.errors import ConfigError

try:
    S = snakefile.Rules(snakefile.params_file(config), conda=snakefile.conda_enabled(workflow))
except ConfigError as exc:
    sys.stderr.write(f"{exc}\n")
    sys.exit(2)

shell.prefix(S.snakemake_prefix)


wildcard_constraints:
    **S.constraints(),
