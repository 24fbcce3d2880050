# asym report --code-digest <digest>
# Every run aggregated into the tables (Markdown, CSV, LaTeX, HTML), figures and model cards
# (asym/report/build.py); its outputs are what `snakemake --report` shows.
rule report:
    input:
        unpack(S.inputs("report")),
    output:
        **S.outputs("report"),
    log:
        S.log("report"),
    params:
        args=S.command("report"),
        settings=S.settings("report"),
    message:
        "Aggregating every run into the report tables and plots"
    threads: 1
    resources:
        gpu_slots=0,
    conda:
        "../../environment.yml"
    shell:
        "python -m asym {params.args} > {log} 2>&1"
