"""Small text models built from :mod:`jaxconv.nn`.

:func:`build_model` turns ``config.model`` into a module::

    config.model.name        "text_cnn"
    config.model.embed_dim   D (Kim: 300)
    config.model.widths      filter widths (Kim: (3, 4, 5))
    config.model.filters     feature maps per width (Kim: 100)
    config.model.dropout     dropout rate (Kim: 0.5)
    config.model.embedding   "rand" | "static" | "non-static" | "multichannel"
    config.model.dropout_scaling   "inverted" (default) | "test-time" (Kim's code)
    config.model.classifier_init   "glorot" (default) | "zeros" (Kim's code)
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxconv.models.text_cnn import (CLASSIFIER_INITS, DROPOUT_SCALINGS, EMBEDDINGS, PAD_ID, StaticEmbedding, TextCNN,
                                     load_word_vectors, uniform_embeddings)

__all__ = ["TextCNN", "StaticEmbedding", "EMBEDDINGS", "DROPOUT_SCALINGS", "CLASSIFIER_INITS", "PAD_ID", "build_model",
           "load_word_vectors", "uniform_embeddings", "MODELS"]

MODELS = {"text_cnn": TextCNN}


def build_model(config: Any, vocab_size: int, num_classes: int | None = None, rngs: nnx.Rngs | None = None,
                pretrained: Any = None) -> nnx.Module:
    """Build ``config.model`` (or ``config`` itself when it has no ``model`` field).

    Args:
      config: a ConfigDict (or dict) with the model fields listed in this module's docstring.
      vocab_size: embedding rows ``V``.
      num_classes: output classes; default ``config.model.num_classes``.
      rngs: initialisation randomness; default ``nnx.Rngs(params=config.seed)`` (``config.seed`` or 0).
      pretrained: optional ``(V, D)`` word-vector table for the embedding(s).

    >>> import ml_collections
    >>> cfg = ml_collections.ConfigDict({"seed": 0, "model": {"name": "text_cnn", "embed_dim": 8, "widths": (2, 3),
    ...                                  "filters": 4, "dropout": 0.5, "embedding": "rand"}})
    >>> build_model(cfg, vocab_size=50, num_classes=3).classifier.kernel.shape
    (8, 3)
    """
    m = config.get("model", config) if hasattr(config, "get") else config.model
    name = m.get("name", "text_cnn")
    if name not in MODELS:
        raise ValueError(f"config.model.name={name!r} is not known; expected one of {sorted(MODELS)}.")
    if num_classes is None:
        num_classes = m.get("num_classes", None)
        if num_classes is None:
            raise ValueError("build_model: num_classes was not given and config.model.num_classes is not set.")
    if rngs is None:
        rngs = nnx.Rngs(params=int(config.get("seed", 0)) if hasattr(config, "get") else 0)
    return TextCNN(int(vocab_size), int(num_classes), embed_dim=int(m.get("embed_dim", 300)),
                   widths=tuple(m.get("widths", (3, 4, 5))), filters=int(m.get("filters", 100)),
                   dropout=float(m.get("dropout", 0.5)), embedding=m.get("embedding", "rand"),
                   dropout_scaling=m.get("dropout_scaling", "inverted"),
                   classifier_init=m.get("classifier_init", "glorot"), pretrained=pretrained, rngs=rngs)
