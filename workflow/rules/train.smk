# asym train --dataset {dataset} --model {model} --entry-digest <digest> --code-digest <digest>
# asym train --dataset {dataset} --model {model} --seeds {seed} --entry-digest <digest> --code-digest <digest>
# The model trained on the dataset, every seed of `run.seeds` in turn (asym/train/job.py), or under
# `train.job: per_seed` one job per seed (the second command; `S.seed` adds the `{seed}` wildcard).
# A seed's resume.pt sits beside its outputs and is none of them, so a killed job goes on where it stopped.
rule train:
    input:
        unpack(S.inputs("train")),
    output:
        **S.outputs("train", "{dataset}", "{model}", *S.seed("train")),
    log:
        S.log("train", "{dataset}", "{model}", *S.seed("train")),
    params:
        args=S.command("train"),
        settings=S.settings("train"),
    message:
        S.message("train", "Training {wildcards.model} on {wildcards.dataset}")
    threads: P.train.threads
    resources:
        gpu_slots=S.gpu_slots,
        gpu_mem_mb=S.gpu_mem_mb,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"


# asym train --dataset {dataset} --model {model} --protocol {protocol} --entry-digest <digest> --code-digest <digest>
# asym train --dataset {dataset} --model {model} --protocol {protocol} --seeds {seed} --entry-digest <digest> --code-digest <digest>
# The optimism study: each of its models trained again under each of its protocols, with its own
# seeds, in the study's own folders (each run also keeps every epoch's predictions).
rule train_optimism:
    input:
        unpack(S.inputs("train_optimism")),
    output:
        **S.outputs("train_optimism", "{protocol}", "{dataset}", "{model}", *S.seed("train_optimism")),
    log:
        S.log("train_optimism", "{protocol}", "{dataset}", "{model}", *S.seed("train_optimism")),
    params:
        args=S.command("train_optimism"),
        settings=S.settings("train_optimism"),
    message:
        S.message("train_optimism", "Training {wildcards.model} on {wildcards.dataset} under {wildcards.protocol} (optimism study)")
    threads: P.train.threads
    resources:
        gpu_slots=S.gpu_slots,
        gpu_mem_mb=S.gpu_mem_mb,
    wildcard_constraints:
        protocol=S.protocols,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"


# asym train --dataset {dataset} --model {model} --protocol {protocol} --entry-digest <digest> --code-digest <digest>
# asym train --dataset {dataset} --model {model} --protocol {protocol} --seeds {seed} --entry-digest <digest> --code-digest <digest>
# The cross-gender study: each of its models trained on one gender and tested on the other (or on
# the same, for the reference), with its own seeds, in the study's own folders.
rule train_cross_gender:
    input:
        unpack(S.inputs("train_cross_gender")),
    output:
        **S.outputs("train_cross_gender", "{protocol}", "{dataset}", "{model}", *S.seed("train_cross_gender")),
    log:
        S.log("train_cross_gender", "{protocol}", "{dataset}", "{model}", *S.seed("train_cross_gender")),
    params:
        args=S.command("train_cross_gender"),
        settings=S.settings("train_cross_gender"),
    message:
        S.message("train_cross_gender", "Training {wildcards.model} on {wildcards.dataset} under {wildcards.protocol} (cross-gender study)")
    threads: P.train.threads
    resources:
        gpu_slots=S.gpu_slots,
        gpu_mem_mb=S.gpu_mem_mb,
    wildcard_constraints:
        protocol=S.gender_protocols,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
