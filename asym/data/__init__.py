"""Dataset readers, the demo generator, Parquet storage and subject-independent splits."""
