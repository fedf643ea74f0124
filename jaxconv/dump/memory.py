"""A model in a notebook as the run a dump reads: :func:`memory_run` (``jaxconv.dump_activations(model=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

__all__ = ["memory_run"]


def _kind_name(model: nnx.Module) -> str:
    """The registered kind whose class ``model`` is (its dump adapter applies), or ``""``."""
    from jaxconv.models import model_kinds

    return next((name for name, kind in model_kinds().items() if type(model) is kind.cls), "")


def _vocab(vocab: Any):
    from jaxconv.data import SourceVocab, Vocab

    if isinstance(vocab, Vocab):
        return vocab
    if isinstance(vocab, Sequence) and not isinstance(vocab, str) and vocab:
        return SourceVocab(list(vocab), unk_id=None)
    if isinstance(vocab, dict) and vocab:
        from jaxconv.imports.vocab import vocab_from_index

        return vocab_from_index(vocab, "vocab")[0]
    raise ValueError(f"dump_activations: vocab={type(vocab).__name__} is not a vocabulary; expected a "
                     f"jaxconv.data.Vocab, a list of tokens (id i = item i) or a token -> id dict.")


def memory_run(model: Any, vocab: Any, tokenizer: str = "whitespace", *, padding: str = "post",
               fixed_length: int | None = None):
    """A :class:`jaxconv.Run` around a model held in memory (no workdir, no checkpoint).

    Args:
      model: an ``nnx.Module`` that maps token ids ``(B, L)`` to logits ``(B, K)`` (e.g. ``jaxconv.models.TextCNN``
        or an imported model), or a :class:`jaxconv.Run` (returned as it is).
      vocab: a :class:`jaxconv.data.Vocab` / ``SourceVocab``, a list of tokens (id ``i`` = item ``i``) or a
        token -> id dict.
      tokenizer: a tokenizer name (:func:`jaxconv.data.get_tokenizer`).
      padding: ``"post"`` or ``"pre"``; fixed_length: the one length the model reads (default its
        ``max_length`` when it has one).
    """
    from jaxconv.data import get_tokenizer
    from jaxconv.runs import Run

    if isinstance(model, Run):
        return model
    if not isinstance(model, nnx.Module):
        raise ValueError(f"dump_activations: model={type(model).__name__} is not an nnx.Module; expected a jaxconv "
                         f"model (or a Run from jaxconv.load_run / jaxconv.import_model).")
    vocab = _vocab(vocab)
    min_length = int(getattr(model, "min_length", 1) or 1)
    fixed_length = fixed_length or int(getattr(model, "max_length", 0) or 0) or None
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        out = jax.eval_shape(model, jax.ShapeDtypeStruct((1, fixed_length or min_length), jnp.int32))
        num_classes = int(out.shape[-1])
    config = ml_collections.ConfigDict({"model": {"name": _kind_name(model)},
                                        "train": {"batch_size": 50, "eval_batch_size": 50}})
    model.eval()
    return Run(workdir=None, config=config, vocab=vocab, tokenizer=str(tokenizer), tokenize=get_tokenizer(tokenizer),
               model=model, checkpoint="memory", step=0, num_classes=int(num_classes), label_names=None,
               min_length=min_length, padding=padding, truncating=padding, fixed_length=fixed_length)
