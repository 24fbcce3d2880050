"""Models: ASYM, its ablation variants and the published baselines, all behind one registry."""
