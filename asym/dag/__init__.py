"""The DAG itself: its one stage table (`stages`), read by Snakemake (`snakefile`, through
workflow/rules/stages.smk) and written out for DVC (`dvc_yaml`), and the code each step runs
(`code`)."""
