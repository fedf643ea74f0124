"""What a dump needs to know about a model beyond its convolutions: the small interface :class:`DumpAdapter`.

The dump itself (:mod:`jaxconv.dump`) is model-agnostic: the layers come from :func:`jaxconv.inspection.conv_paths`,
the maps from :func:`jaxconv.feature_maps`, the receptive spans from :func:`jaxconv.receptive_spans`. Four things
depend on the model, and its kind's adapter (:attr:`jaxconv.models.ModelKind.adapter`) supplies them:

- ``logits(model, tokens)``: the classifier's output ``(batch, classes)`` for the stored predictions and
  probabilities (``None``: the model is not a classifier; nothing is stored for them);
- ``embedding_table(model, vocab_size)``: the ``(vocab, channels)`` vectors the first convolutions read, for the
  slot words of Jacovi et al. (2018) (``None``: no slot words);
- ``embedded_layers(model)``: which conv paths read those vectors directly (their kernel rows are dotted with them);
- ``class_weights(model, layer)``: ``(filters, classes)``, how each filter's pooled value moves each class's
  logit, which names a filter's class for the purity threshold (``None``: the class is read from the data).

:class:`DumpAdapter` (the default, for a kind that declares none) works for any token-id model whose ``__call__``
returns logits: it finds the embedding through an ``embed(tokens)`` method (the hook :func:`jaxconv.saliency` uses
too) and knows no class weights. A model that knows more subclasses it in its own module. This module imports
neither zarr nor orbax.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv.inspection import conv_paths

__all__ = ["DumpAdapter"]


class DumpAdapter:
    """The default adapter: logits from ``model(tokens)``, the embedding from ``model.embed``, no class weights."""

    def logits(self, model: nnx.Module, tokens: Int[Array, " batch length"]) -> Float[Array, " batch classes"] | None:
        """The model's logits ``(batch, classes)`` (called inside ``jax.jit``); ``None`` when it has none."""
        out = model(tokens)
        return out if getattr(out, "ndim", 0) == 2 else None

    def embedding_table(self, model: nnx.Module, vocab_size: int) -> Float[np.ndarray, " vocab channels"] | None:
        """``model.embed`` of every token id: ``(vocab_size, channels)`` float32, or ``None`` without ``embed``."""
        embed = getattr(model, "embed", None)
        if not callable(embed):
            return None
        table = embed(jnp.arange(vocab_size, dtype=jnp.int32)[None, :])[0]          # (V, C)
        return np.asarray(table, np.float32)

    def embedded_layers(self, model: nnx.Module) -> list[str]:
        """The conv paths whose input is the embedding: by default the first conv in graph order."""
        return conv_paths(model)[:1]

    def class_weights(self, model: nnx.Module, layer: str) -> Float[np.ndarray, " filters classes"] | None:
        """How each filter's pooled value moves each class's logit, ``(filters, classes)``; ``None``: unknown."""
        return None
