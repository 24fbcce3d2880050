"""Published baselines, one file each, and two simple floors (mean-mlp, bilstm)."""
