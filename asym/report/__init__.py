"""Step 6 of the DAG, the report: every run aggregated (`aggregate`) into tables (`tables`) and
figures (`plots`) with bootstrap CIs and paired tests (`stats`), the optimism study's table
(`optimism`) and a model card per (dataset, model) (`model_card`)."""
