# asym fetch --dataset {dataset} --code-digest <digest>
# The dataset's release, copied or unpacked as it is (or its demo, written), with a provenance
# record of what was read (asym/data/fetch.py).
rule fetch:
    input:
        unpack(S.inputs("fetch")),
    output:
        **S.outputs("fetch", "{dataset}"),
    log:
        S.log("fetch", "{dataset}"),
    params:
        args=S.command("fetch"),
        settings=S.settings("fetch"),
    message:
        "Fetching the {wildcards.dataset} release"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
