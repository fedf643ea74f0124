"""The dump adapter of a run's model: :func:`get_adapter` reads it from the model registry.

What an adapter supplies, and the default one, are in :mod:`jaxconv.models.adapter` (:class:`DumpAdapter`); each
model kind names its own (:attr:`jaxconv.models.ModelKind.adapter`).
"""

from __future__ import annotations

from jaxconv.models.adapter import DumpAdapter

__all__ = ["DumpAdapter", "get_adapter"]


def get_adapter(config) -> DumpAdapter:
    """The adapter of ``config.model.name`` (a ConfigDict or dict): its kind's, or :class:`DumpAdapter` when the
    kind declares none or the name is not registered (an imported model's config)."""
    from jaxconv.models import model_kinds

    model = config["model"] if "model" in config else {}
    kind = model_kinds().get(model["name"] if "name" in model else "")
    return kind.adapter if kind is not None and kind.adapter is not None else DumpAdapter()
