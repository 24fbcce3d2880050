# asym robustness --code-digest <digest>
# The runs of robustness.models on their test folds under evaluation-time perturbations, never
# retrained (asym/robustness.py): tables and one figure per dataset, shown by `snakemake --report`.
rule robustness:
    input:
        unpack(S.inputs("robustness")),
    output:
        **S.outputs("robustness"),
    log:
        S.log("robustness"),
    params:
        args=S.command("robustness"),
        settings=S.settings("robustness"),
    message:
        "Evaluating the runs of robustness.models under missing modalities, noise and shortened vlogs"
    threads: P.train.threads
    resources:
        gpu_slots=S.gpu_slots,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
