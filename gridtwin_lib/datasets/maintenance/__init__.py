"""Datasets of the maintenance models, one module per model."""
