"""Small text models built from :mod:`jaxconv.nn`, each built by name from ``config.model.name``:

- ``"text_cnn"``: :class:`TextCNN`, Kim (2014)'s word-level sentence classifier;
- ``"char_cnn"``: :class:`CharCNN`, Zhang, Zhao and LeCun (2015)'s character-level classifier;
- ``"conv_lm"``: :class:`ConvLM`, a gated dilated causal-conv language model (Dauphin et al. 2017; WaveNet's
  dilations).

:func:`build_model` turns ``config.model`` into a module; :data:`TASKS` says what the trainer does with it
(``"classify"`` or ``"next_token"``, :mod:`jaxconv.train.tasks`). Kim's CNN's fields::

    config.model.name        "text_cnn"
    config.model.embed_dim   D (Kim: 300)
    config.model.widths      filter widths (Kim: (3, 4, 5))
    config.model.filters     feature maps per width (Kim: 100)
    config.model.dropout     dropout rate (Kim: 0.5)
    config.model.embedding   "rand" | "static" | "non-static" | "multichannel"
    config.model.dropout_scaling   "inverted" (default) | "test-time" (Kim's code)
    config.model.classifier_init   "glorot" (default) | "zeros" (Kim's code)
    config.model.compute_dtype     "float32" (default) | "bfloat16": activations and convolutions

The other models' fields are their constructors' keyword arguments (:data:`MODEL_FIELDS`). A field the config
leaves out keeps the module's own default (its signature); the experiment defaults live in the built-in configs
(:mod:`jaxconv.configs`).
"""

from __future__ import annotations

from typing import Any

import ml_collections
from flax import nnx

from jaxconv.models.char_cnn import CHAR_EMBEDDINGS, CharCNN
from jaxconv.models.conv_lm import BYTE_VOCAB_SIZE, ConvLM, decode_bytes, encode_bytes
from jaxconv.models.text_cnn import (CLASSIFIER_INITS, COMPUTE_DTYPES, DROPOUT_SCALINGS, EMBEDDINGS, PAD_ID,
                                     StaticEmbedding, TextCNN, load_word_vectors, uniform_embeddings)

__all__ = ["TextCNN", "StaticEmbedding", "EMBEDDINGS", "DROPOUT_SCALINGS", "CLASSIFIER_INITS", "COMPUTE_DTYPES", "PAD_ID",
           "build_model", "load_word_vectors", "uniform_embeddings", "MODELS", "MODEL_FIELDS", "TASKS",
           "input_length_rule", "CharCNN", "CHAR_EMBEDDINGS", "ConvLM", "BYTE_VOCAB_SIZE", "encode_bytes",
           "decode_bytes"]

MODELS = {"text_cnn": TextCNN, "char_cnn": CharCNN, "conv_lm": ConvLM}
#: The constructor arguments each model takes from ``config.model`` (the rest of its fields are for the trainer).
MODEL_FIELDS = {
    "text_cnn": ("embed_dim", "widths", "filters", "dropout", "embedding", "dropout_scaling", "classifier_init",
                 "compute_dtype"),
    "char_cnn": ("length", "kernels", "pool_after", "pool_size", "features", "hidden", "dropout", "embedding",
                 "embed_dim", "init_std"),
    "conv_lm": ("embed_dim", "channels", "kernel_size", "dilations", "stacks", "dropout"),
}
#: What the trainer does with each model (:mod:`jaxconv.train.tasks`): a label per example, or the next token.
TASKS = {"text_cnn": "classify", "char_cnn": "classify", "conv_lm": "next_token"}


def input_length_rule(config: Any) -> tuple[int, int | None]:
    """``(min_length, fixed_length or None)`` of ``config.model``'s inputs: Kim's CNN needs ``max(widths)`` tokens;
    the character CNN reads exactly ``length`` characters; the language model reads windows of any length >= 1."""
    m = config.model
    if m.name == "text_cnn":
        return max(m.widths), None
    if m.name == "char_cnn":
        return int(m.length), int(m.length)
    return 1, None


def build_model(config: Any, vocab_size: int, num_classes: int | None = None, rngs: nnx.Rngs | None = None,
                pretrained: Any = None) -> nnx.Module:
    """Build ``config.model`` (or ``config`` itself when it has no ``model`` field).

    Args:
      config: a ConfigDict with the model fields listed in this module's docstring (``name`` required).
      vocab_size: embedding rows ``V``.
      num_classes: output classes; default ``config.model.num_classes``.
      rngs: initialisation randomness; default ``nnx.Rngs(params=config.seed)`` (0 without a seed field).
      pretrained: optional ``(V, D)`` word-vector table for the embedding(s).

    >>> import ml_collections
    >>> cfg = ml_collections.ConfigDict({"seed": 0, "model": {"name": "text_cnn", "embed_dim": 8, "widths": (2, 3),
    ...                                  "filters": 4, "dropout": 0.5, "embedding": "rand"}})
    >>> build_model(cfg, vocab_size=50, num_classes=3).classifier.kernel.shape
    (8, 3)
    """
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    m = config.model if "model" in config else config
    if m.name not in MODELS:
        raise ValueError(f"config.model.name={m.name!r} is not known; expected one of {sorted(MODELS)}.")
    if num_classes is None and TASKS[m.name] == "classify":
        if "num_classes" not in m:
            raise ValueError("build_model: num_classes was not given and config.model.num_classes is not set.")
        num_classes = m.num_classes
    if rngs is None:
        rngs = nnx.Rngs(params=int(config.seed) if "seed" in config else 0)
    cls = MODELS[m.name]
    # The fields the config has; the others keep the module's own defaults (no second copy of them here).
    kwargs = {k: (tuple(m[k]) if isinstance(m[k], (list, tuple)) else m[k]) for k in MODEL_FIELDS[m.name] if k in m}
    if TASKS[m.name] == "next_token":                 # the vocabulary is the output: no separate class count
        return cls(int(vocab_size), rngs=rngs, **kwargs)
    if pretrained is not None:
        kwargs["pretrained"] = pretrained
    return cls(int(vocab_size), int(num_classes), rngs=rngs, **kwargs)
