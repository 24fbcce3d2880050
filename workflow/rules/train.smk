rule train:
    input:
        data=rules.convert.output.parquet,
        split=rules.split.output.csv,
        code=code("train"),
    # Each seed's resume.pt (asym.train.resume) sits beside these files and is not an output: Snakemake
    # removes a job's outputs before it runs the job again (--rerun-incomplete), never that file, so
    # a killed job goes on inside its seeds.
    output:
        **L.train_outputs("{dataset}", "{model}", P.seeds),
    params:
        settings=settings("train"),
        entry=lambda w: registry.get(w.model).digest(),
    threads: P.train.threads
    resources:
        # One slot of the GPU per training job: the gpu profile shares a GPU among several jobs.
        gpu_slots=1 if USES_GPU else 0,
    log:
        L.log("train", "{dataset}", "{model}"),
    message:
        "Training {wildcards.model} on {wildcards.dataset} (seeds {P.seeds})"
    shell:
        "{ASYM} train --dataset {wildcards.dataset} --model {wildcards.model} > {log} 2>&1"


rule evaluate:
    input:
        predictions=[L.run_file(d, m, s, "predictions") for d, m, s in RUNS],
        summaries=[L.run_file(d, m, s, "summary") for d, m, s in RUNS],
        code=code("evaluate"),
    output:
        metrics=[L.run_file(d, m, s, "metrics") for d, m, s in RUNS],
        confusion=[L.run_file(d, m, s, "confusion") for d, m, s in RUNS],
    log:
        L.log("evaluate"),
    message:
        "Evaluating every run from its saved predictions"
    shell:
        "{ASYM} evaluate > {log} 2>&1"
