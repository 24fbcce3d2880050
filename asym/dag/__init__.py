"""The DAG itself: its one stage table (`stages`), read by Snakemake (`snakefile`, from the rules
written out in workflow/rules/<step>.smk) and written out for DVC (`dvc_yaml`), and the code each
step runs (`code`)."""
