"""The code of every asym MLflow Model (MLflow's models-from-code): MLflow copies this file into
the model folder and runs it to build the model, so loading or serving one unpickles nothing.
It is never imported by asym itself (`set_model` is for MLflow's loader)."""

from mlflow.models import set_model

from asym.tracking.mlflow_model import AsymPyfunc

set_model(AsymPyfunc())
