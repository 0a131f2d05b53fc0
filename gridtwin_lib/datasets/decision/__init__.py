"""Datasets of the decision models, one module per model (see gridtwin_lib.models.registry)."""
