# asym cost-plot --code-digest <digest>
# Test F1 (the report's summary) against MACs per minute (the cost table): reports/cost.png
# (asym/report/cost.py).
rule cost_plot:
    input:
        unpack(S.inputs("cost_plot")),
    output:
        **S.outputs("cost_plot"),
    log:
        S.log("cost_plot"),
    params:
        args=S.command("cost_plot"),
        settings=S.settings("cost_plot"),
    message:
        "Plotting test F1 against MACs per minute"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
