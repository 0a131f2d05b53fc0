"""Datasets of the energy-flow models, one module per model (see gridtwin_lib.models.registry)."""
