"""Step 4 of the DAG, training: one job per (dataset, model) trains every seed (`job`), each seed
through the epoch loop (`loop`) on batches from the feed (`feed`), with the recipe's loss,
optimiser, normaliser and threshold, and resumes inside a seed after a kill (`resume`)."""
