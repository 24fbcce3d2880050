# asym convert --dataset {dataset} --code-digest <digest>
# The fetched release, validated and written as Parquet with its dataset card; nothing is written
# unless every sample passes (asym/data/convert.py).
rule convert:
    input:
        unpack(S.inputs("convert")),
    output:
        **S.outputs("convert", "{dataset}"),
    log:
        S.log("convert", "{dataset}"),
    params:
        args=S.command("convert"),
        settings=S.settings("convert"),
    message:
        "Validating {wildcards.dataset} and writing Parquet"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
