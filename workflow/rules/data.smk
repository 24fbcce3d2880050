rule fetch:
    output:
        raw=directory(f"{RAW}/{{dataset}}"),
        provenance=f"{RAW}/{{dataset}}.provenance.json",
    params:
        settings=settings("datasets.{dataset}", "synth"),
    log:
        f"{LOGS}/fetch/{{dataset}}.log",
    message:
        "Fetching the {wildcards.dataset} release"
    shell:
        "{ASYM} fetch --dataset {wildcards.dataset} --output {output.raw} > {log} 2>&1"


rule convert:
    input:
        raw=rules.fetch.output.raw,
        provenance=rules.fetch.output.provenance,
    output:
        parquet=f"{PROCESSED}/{{dataset}}.parquet",
        card=f"{PROCESSED}/{{dataset}}.card.json",
        card_md=f"{PROCESSED}/{{dataset}}.card.md",
    params:
        fmt=lambda w: P.dataset(w.dataset)["format"],
        settings=settings("datasets.{dataset}", "readers"),
    log:
        f"{LOGS}/convert/{{dataset}}.log",
    message:
        "Validating {wildcards.dataset} and writing Parquet"
    shell:
        "{ASYM} convert --format {params.fmt} --dataset {wildcards.dataset} "
        "--input {input.raw} --output {output.parquet} > {log} 2>&1"


rule split:
    input:
        parquet=rules.convert.output.parquet,
    output:
        csv=f"{SPLITS}/{{dataset}}.csv",
        summary=f"{SPLITS}/{{dataset}}.json",
    params:
        settings=settings("datasets.{dataset}", "split"),
    log:
        f"{LOGS}/split/{{dataset}}.log",
    message:
        "Subject-independent split of {wildcards.dataset}"
    shell:
        "{ASYM} split --dataset {wildcards.dataset} --input {input.parquet} --output {output.csv} > {log} 2>&1"
