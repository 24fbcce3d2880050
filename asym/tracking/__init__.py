"""Step 7 of the DAG: every finished run and the report logged to MLflow (`track`), each
checkpoint as an MLflow Model (`mlflow_model`, whose code at load is `mlflow_pyfunc`)."""
