rule train:
    input:
        data=rules.convert.output.parquet,
        split=rules.split.output.csv,
    output:
        checkpoint=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/checkpoint.pt",
        predictions=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/predictions.parquet",
        history=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/history.csv",
        summary=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/train.json",
    params:
        run_dir=lambda w: f"{RUNS}/{w.dataset}/{w.model}/seed{w.seed}",
        settings=settings("train", "model"),
    threads: int(P.train["threads"])
    resources:
        gpu=1 if P.train["device"] == "cuda" else 0,
    log:
        f"{LOGS}/train/{{dataset}}/{{model}}/seed{{seed}}.log",
    message:
        "Training {wildcards.model} on {wildcards.dataset} (seed {wildcards.seed})"
    shell:
        "{ASYM} train --dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed} "
        "--data {input.data} --split {input.split} --output {params.run_dir} > {log} 2>&1"


rule evaluate:
    input:
        predictions=rules.train.output.predictions,
        summary=rules.train.output.summary,
    output:
        metrics=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json",
        confusion=f"{RUNS}/{{dataset}}/{{model}}/seed{{seed}}/confusion.png",
    params:
        run_dir=lambda w: f"{RUNS}/{w.dataset}/{w.model}/seed{w.seed}",
    log:
        f"{LOGS}/evaluate/{{dataset}}/{{model}}/seed{{seed}}.log",
    message:
        "Evaluating {wildcards.model} on {wildcards.dataset} (seed {wildcards.seed})"
    shell:
        "{ASYM} evaluate --run {params.run_dir} --output {output.metrics} > {log} 2>&1"
