# asym explain --dataset {dataset} --model {model} --seeds {seed} --code-digest <digest>
# One run of explain.models and explain.seeds explained on its test vlogs by Integrated Gradients
# (asym/explain/): tables, a group chart and a folder of timelines. They explain a research model, not depression.
rule explain:
    input:
        unpack(S.inputs("explain")),
    output:
        **S.outputs("explain", "{dataset}", "{model}", "{seed}"),
    log:
        S.log("explain", "{dataset}", "{model}", "{seed}"),
    params:
        args=S.command("explain"),
        settings=S.settings("explain"),
    message:
        "Explaining {wildcards.model} on {wildcards.dataset}, seed {wildcards.seed}"
    threads: P.train.threads
    resources:
        gpu_slots=S.gpu_slots,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
