# asym track --code-digest <digest>
# Every finished run and the report logged to MLflow, each exactly once (asym/tracking/track.py).
rule track:
    input:
        unpack(S.inputs("track")),
    output:
        **S.outputs("track"),
    log:
        S.log("track"),
    params:
        args=S.command("track"),
        settings=S.settings("track"),
    message:
        "Logging every finished run and the report to MLflow"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
