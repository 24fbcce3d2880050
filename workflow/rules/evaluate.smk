# asym evaluate --code-digest <digest>
# Every run's metrics and confusion matrix, from the predictions its training saved (no model is
# loaded: asym/evaluate.py).
rule evaluate:
    input:
        unpack(S.inputs("evaluate")),
    output:
        **S.outputs("evaluate"),
    log:
        S.log("evaluate"),
    params:
        args=S.command("evaluate"),
        settings=S.settings("evaluate"),
    message:
        "Evaluating every run from its saved predictions"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
