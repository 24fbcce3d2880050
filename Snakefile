# The asym DAG: fetch -> convert -> split -> train -> evaluate -> report.
# A table of contents only; every rule is one `asym` command (see workflow/rules/).
#   snakemake --cores 8 all                      # params.yaml
#   snakemake --cores 8 all --config params=my.yaml

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
