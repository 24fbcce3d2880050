# The asym DAG: fetch -> convert -> split -> train -> evaluate -> report -> track (MLflow).
# A table of contents only: every rule is one `asym` command, read off the stage table
# (asym/dag/stages.py) by workflow/rules/stages.smk; every path comes from asym/layout.py.
#   snakemake --cores 8 all                      # params.yaml
#   snakemake --cores 8 all --config params=my.yaml
#   snakemake --report reports/report.html       # the self-contained HTML report


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.track.output,
