"""Datasets of the monitoring models, one module per model."""
