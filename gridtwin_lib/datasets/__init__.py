"""Training and evaluation datasets, built from the store (measurements + truth).

This is the one place where ground truth meets measurements: each builder reads
measurements and features, reads labels from ``store.truth``, splits them
chronologically and returns a :class:`gridtwin_lib.models.base.Dataset`. Models
never read the store themselves.

One module per model, in folders by catalogue module (``monitoring``, ``maintenance``,
``energy``, ``decision``), named as the model's module under :mod:`gridtwin_lib.models`;
the simulator runs each needs, per pipeline size, are configuration
(``conf/base/models/<module>/<model>.yaml``, read by :mod:`gridtwin_lib.settings`). The registry
(:mod:`gridtwin_lib.models.registry`) names each model's builder; :func:`simulations` collects the runs. Helpers several builders share: :mod:`.common`
(grid readings) and :mod:`.maintenance.transformer_fleet`.
"""

from __future__ import annotations

from typing import Any

from ..models.registry import SIZES


def simulations(size: str = "full", model_ids: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The simulator runs the datasets of ``model_ids`` (all registered models if None) need,
    one per source (first wins); see :func:`gridtwin_lib.models.registry.simulations`."""
    from ..models import registry

    return registry.simulations(size, model_ids)


__all__ = ["simulations", "SIZES"]
