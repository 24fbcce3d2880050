rule report:
    input:
        metrics=expand(f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json",
                       dataset=P.datasets, model=P.models, seed=P.seeds),
        splits=expand(f"{SPLITS}/{{dataset}}.json", dataset=P.datasets),
    output:
        results=f"{REPORTS}/results.md",
        comparison=f"{REPORTS}/comparison.md",
        summary=f"{REPORTS}/summary.json",
        csv=f"{REPORTS}/summary.csv",
        metrics_plot=f"{REPORTS}/metrics.png",
        confusion_plot=f"{REPORTS}/confusion_matrices.png",
    params:
        settings=settings("run", "report"),
    log:
        f"{LOGS}/report.log",
    message:
        "Aggregating every run into the report tables and plots"
    shell:
        "{ASYM} report > {log} 2>&1"
