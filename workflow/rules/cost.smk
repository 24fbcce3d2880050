# asym cost --code-digest <digest>
# Every registered model's parameters, MACs, latency and peak memory per minute of vlog (asym/cost.py);
# no run is read. Its latencies are noise beside training jobs (the table's caption says so).
rule cost:
    input:
        unpack(S.inputs("cost")),
    output:
        **S.outputs("cost"),
    log:
        S.log("cost"),
    params:
        args=S.command("cost"),
        settings=S.settings("cost"),
    message:
        "Costing every model: parameters, MACs, CPU latency and peak memory per minute of vlog"
    threads: lambda wildcards: P.cost.threads      # read only when the `cost` block asks for the job
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
