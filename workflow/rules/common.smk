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
P = S.P  # params.yaml as asym reads it (asym.config.Params)

shell.prefix(S.snakemake_prefix)


wildcard_constraints:
    **S.constraints(),


# Every rule (workflow/rules/<step>.smk) runs one `asym <step>` command, and names its row of the
# stage table (asym/dag/stages.py, the one dvc.yaml is written from too) wherever a value depends
# on params.yaml:
#   input:   S.inputs("train")      its input files, a function of the job's wildcards, with the
#                                   data it reads besides the DAG's (`data_deps`)
#   output:  S.outputs("train", "{dataset}", "{model}")   its files, by name, as patterns of the
#                                   rule's wildcards (checked against the row's)
#   log:     S.log("train", ...)    logs/<step>/<wildcards>.log
#   params:  args, the command's arguments, its code's digest last; settings, the job's slice of
#            params.yaml. Snakemake reruns a job when either changes.
