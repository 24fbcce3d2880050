# The asym DAG: fetch -> convert -> split -> train -> evaluate -> report -> track (MLflow), with
# robustness and explain (after train), cost and cost-plot (after report) beside it.
# A table of contents only: a file of rules per step in workflow/rules/, each rule one `asym`
# command whose files and params slice are its row of the stage table (asym/dag/stages.py); every
# path comes from asym/layout.py.
#   snakemake --cores 8 all                      # params.yaml
#   snakemake --cores 8 all --config params=my.yaml
#   snakemake --report reports/report.html       # the self-contained HTML report


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/cost.smk"
include: "workflow/rules/cost_plot.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/track.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        S.all_outputs("robustness"),
        S.all_outputs("cost"),
        S.all_outputs("cost_plot"),
        S.all_outputs("explain"),
        rules.track.output,
