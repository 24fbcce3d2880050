# The asym DAG: fetch -> convert -> split -> train -> evaluate -> report -> track (MLflow).
# A table of contents only; every rule is one `asym` command (see workflow/rules/), every path
# comes from asym/layout.py.
#   snakemake --cores 8 all                      # params.yaml
#   snakemake --cores 8 all --config params=my.yaml
#   snakemake --report reports/report.html       # the self-contained HTML report

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/optimism.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.track.output,
