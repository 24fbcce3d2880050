# asym split --dataset {dataset} --code-digest <digest>
# The dataset's partitions by the protocol its entry in params.yaml names (asym/data/splits.py).
rule split:
    input:
        unpack(S.inputs("split")),
    output:
        **S.outputs("split", "{dataset}"),
    log:
        S.log("split", "{dataset}"),
    params:
        args=S.command("split"),
        settings=S.settings("split"),
    message:
        "Splitting {wildcards.dataset} by its protocol"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"


# asym split --dataset {dataset} --protocol {protocol} --code-digest <digest>
# The optimism study (params.yaml `optimism`): the dataset split again under each of its protocols,
# into the study's own folders.
rule split_optimism:
    input:
        unpack(S.inputs("split_optimism")),
    output:
        **S.outputs("split_optimism", "{protocol}", "{dataset}"),
    log:
        S.log("split_optimism", "{protocol}", "{dataset}"),
    params:
        args=S.command("split_optimism"),
        settings=S.settings("split_optimism"),
    message:
        "Splitting {wildcards.dataset} by {wildcards.protocol} (optimism study)"
    threads: 1
    resources:
        gpu_slots=0,
    wildcard_constraints:
        protocol=S.protocols,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"


# asym split --dataset {dataset} --protocol {protocol} --code-digest <digest>
# The cross-gender study (params.yaml `cross_gender`): the dataset's own folds split again by
# gender under each by-gender protocol, into the study's own folders.
rule split_cross_gender:
    input:
        unpack(S.inputs("split_cross_gender")),
    output:
        **S.outputs("split_cross_gender", "{protocol}", "{dataset}"),
    log:
        S.log("split_cross_gender", "{protocol}", "{dataset}"),
    params:
        args=S.command("split_cross_gender"),
        settings=S.settings("split_cross_gender"),
    message:
        "Splitting {wildcards.dataset} by {wildcards.protocol} (cross-gender study)"
    threads: 1
    resources:
        gpu_slots=0,
    wildcard_constraints:
        protocol=S.gender_protocols,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
