"""Training: a model-agnostic loop, pickle-free resume checkpoints and the runs that make the shipped models."""
