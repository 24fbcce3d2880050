rule fetch:
    output:
        raw=directory(L.raw_dir("{dataset}")),
        provenance=L.provenance("{dataset}"),
    input:
        code=code("fetch"),
    params:
        settings=settings("fetch"),
    log:
        L.log("fetch", "{dataset}"),
    message:
        "Fetching the {wildcards.dataset} release"
    shell:
        "{ASYM} fetch --dataset {wildcards.dataset} > {log} 2>&1"


rule convert:
    input:
        raw=rules.fetch.output.raw,
        provenance=rules.fetch.output.provenance,
        data=data_deps("convert"),
        code=code("convert"),
    output:
        parquet=L.parquet("{dataset}"),
        card=L.card_json("{dataset}"),
        card_md=L.card_md("{dataset}"),
    params:
        settings=settings("convert"),
    log:
        L.log("convert", "{dataset}"),
    message:
        "Validating {wildcards.dataset} and writing Parquet"
    shell:
        "{ASYM} convert --dataset {wildcards.dataset} > {log} 2>&1"


rule split:
    input:
        parquet=rules.convert.output.parquet,
        data=data_deps("split"),
        code=code("split"),
    output:
        csv=L.split_csv("{dataset}"),
        summary=L.split_json("{dataset}"),
    params:
        settings=settings("split"),
    log:
        L.log("split", "{dataset}"),
    message:
        "Splitting {wildcards.dataset} by its protocol"
    shell:
        "{ASYM} split --dataset {wildcards.dataset} > {log} 2>&1"
