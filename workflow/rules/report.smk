REPORT = L.report_outputs(P.models, study=bool(STUDY))
CAPTIONS = "../report"   # relative to this file


def _captioned(name, path):
    """Snakemake's HTML report (`snakemake --report`) shows these outputs with their caption."""
    caption = f"{CAPTIONS}/{name.rsplit('_', 1)[0]}.rst"
    return report(path, caption=caption, category="Tables" if name.endswith("_md") else "Figures") \
        if name.endswith("_md") or name.endswith("_plot") else path


rule report:
    input:
        metrics=rules.evaluate.output.metrics,
        predictions=[L.run_file(d, m, s, "predictions") for d, m, s in RUNS],
        summaries=[L.run_file(d, m, s, "summary") for d, m, s in RUNS],
        splits=[L.split_json(d) for d in P.datasets] + [L.split_csv(d) for d in P.datasets],
        cards=[L.card_json(d) for d in P.datasets],         # the model cards' training-data section
        study=STUDY_INPUTS,
        data=data_deps("report"),
        code=code("report"),
    output:
        **{name: _captioned(name, path) for name, path in REPORT.items()},
    params:
        settings=settings("report"),
    log:
        L.log("report"),
    message:
        "Aggregating every run into the report tables and plots"
    shell:
        "{ASYM} report > {log} 2>&1"


rule track:
    input:
        runs=[L.run_file(d, m, s, k) for d, m, s in RUNS
              for k in ("checkpoint", "predictions", "history", "summary", "metrics", "confusion")],
        data=[L.parquet(d) for d in P.datasets],            # each run's input dataset, by digest
        report=list(REPORT.values()),
        code=code("track"),
    output:
        record=L.tracking_record(),
    params:
        settings=settings("track"),
    log:
        L.log("track"),
    message:
        "Logging every finished run and the report to MLflow"
    shell:
        "{ASYM} track > {log} 2>&1"
