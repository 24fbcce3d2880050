"""The split protocols that choose the checkpoint on the fold they report (asym.data.splits): a
module of its own, light enough for the DAG's start-up and the params schema to import."""

SELECT_ON_TEST = ("kfold_select_on_test",)
