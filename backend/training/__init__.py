"""Training: a model-agnostic loop and pickle-free checkpoints."""
