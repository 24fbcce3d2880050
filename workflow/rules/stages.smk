# One rule per stage of the stage table (asym/dag/stages.py), the one the DVC stages are written
# from too: each rule is one `asym` command, its arguments and its params slice in `params:`.
for stage in S.stages:

    rule:
        name:
            stage.name
        input:
            unpack(S.inputs(stage)),
        output:
            **S.outputs(stage),
        params:
            **S.params(stage),
        log:
            S.log(stage),
        message:
            S.message(stage)
        threads: S.threads(stage)
        resources:
            **S.resources(stage),
        wildcard_constraints:
            **S.wildcard_constraints(stage),
        conda:
            snakefile.CONDA_ENV
        shell:
            "python -m asym {params.args} > {log} 2>&1"
