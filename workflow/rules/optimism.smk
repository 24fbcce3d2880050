# The optimism study (params.yaml `optimism`): the split and train steps again, under `kfold` and
# under `kfold_select_on_test`, each in its own folders (asym.layout.study_folder); the report's
# `protocol_optimism` table sets the two side by side. Off (no jobs) when its model list is empty.
from asym.config import STUDY_PROTOCOLS
from asym.data.splits import SELECT_ON_TEST

STUDY = list(STUDY_PROTOCOLS) if P.study_models else []
SL = {protocol: L.for_protocol(protocol) for protocol in STUDY}
PL = L.for_protocol("{protocol}")          # Snakemake's patterns
STUDY_RUNS = [(pr, d, m, s) for pr in STUDY for d in P.datasets for m in P.study_models for s in P.study_seeds]
# What the report reads of the study: predictions and train.json of every run, each select-on-test
# run's epochs (its selection is made again inside the bootstrap: asym.report.optimism), the splits.
STUDY_READS = {pr: ("predictions", "summary", *(("epochs",) if pr in SELECT_ON_TEST else ())) for pr in STUDY}
STUDY_INPUTS = sorted({SL[pr].run_file(d, m, s, k) for pr, d, m, s in STUDY_RUNS for k in STUDY_READS[pr]}
                      | {f for pr in STUDY for d in P.datasets for f in (SL[pr].split_csv(d), SL[pr].split_json(d))})


def study_settings(stage):
    """The study's slice of params.yaml (asym.layout.stage_params with its protocol)."""
    def get(wildcards):
        w = dict(wildcards.items())
        keys = stage_params(P, stage, w.get("dataset"), w.get("model"), protocol=w["protocol"])
        return json.dumps({k: P.slice(k) for k in keys}, sort_keys=True)
    return get


rule split_protocol:
    input:
        parquet=rules.convert.output.parquet,
        code=code("split"),
    output:
        csv=PL.split_csv("{dataset}"),
        summary=PL.split_json("{dataset}"),
    wildcard_constraints:
        protocol=_alternatives(STUDY_PROTOCOLS),
    params:
        settings=study_settings("split"),
    log:
        L.log("split", "{protocol}", "{dataset}"),
    message:
        "Splitting {wildcards.dataset} by {wildcards.protocol} (optimism study)"
    shell:
        "{ASYM} split --dataset {wildcards.dataset} --protocol {wildcards.protocol} > {log} 2>&1"


rule train_protocol:
    input:
        data=rules.convert.output.parquet,
        split=rules.split_protocol.output.csv,
        code=code("train"),
    output:
        **PL.train_outputs("{dataset}", "{model}", P.study_seeds),
    wildcard_constraints:
        protocol=_alternatives(STUDY_PROTOCOLS),
    params:
        settings=study_settings("train"),
        entry=lambda w: registry.get(w.model).digest(),
    threads: P.train.threads
    resources:
        gpu_slots=1 if USES_GPU else 0,
    log:
        L.log("train", "{protocol}", "{dataset}", "{model}"),
    message:
        "Training {wildcards.model} on {wildcards.dataset} under {wildcards.protocol} (optimism study)"
    shell:
        "{ASYM} train --dataset {wildcards.dataset} --model {wildcards.model} --protocol {wildcards.protocol} "
        "> {log} 2>&1"
