"""After the DAG: a trained model on new vlogs (`predict`), from features extracted the way the
release extracted them (`extract`)."""
