"""`asym explain`: what a trained model's depressed-class logit is attributed to (Integrated
Gradients, by Captum), per vlog over time and per model over feature groups, with a
model-randomisation sanity check. Attributions explain a research model, not depression."""
