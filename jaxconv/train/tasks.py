"""What the one training loop does differently per kind of model: a :class:`Task`.

- ``"classify"`` (sentence classifiers: :class:`~jaxconv.models.TextCNN`, :class:`~jaxconv.models.CharCNN`): one
  label per example; the best dev epoch is the one with the highest accuracy (ties: the lower loss).
- ``"next_token"`` (language models: :class:`~jaxconv.models.ConvLM`): one label per position, the next token;
  the best dev epoch is the one with the lowest loss, and the results add bits per token (``loss / ln 2``; bits per
  byte for a byte-level model).

The steps are the same for both: :func:`jaxconv.train.steps.loss_terms` sums the cross-entropy over every labelled
position a batch's weights mark (one per example, or one per token), so the loss is a mean per label either way.
Which task a model has: :data:`jaxconv.models.TASKS`, by ``config.model.name``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

__all__ = ["Task", "TASKS", "task_of"]


@dataclasses.dataclass(frozen=True)
class Task:
    """Attributes:
      name: ``"classify"`` or ``"next_token"``.
      select_by: ``"accuracy"`` (higher is better; ties go to the lower loss) or ``"loss"`` (lower is better).
      build_data: ``config -> DataPipeline``, the run's data.
    """

    name: str
    select_by: str
    build_data: Callable[[Any], Any]

    def summary(self, split: str, metrics: dict, tokenizer: str) -> dict:
        """Fields a result adds for ``split``'s ``{"loss", "accuracy"}``: bits per token (per byte) for
        ``next_token``, nothing for ``classify``."""
        if self.name != "next_token":
            return {}
        unit = "byte" if tokenizer == "bytes" else "token"
        return {f"{split}_bits_per_{unit}": metrics["loss"] / math.log(2.0)}

    def describe(self, metrics: dict, tokenizer: str, *, long: bool = False) -> str:
        """``"acc 0.8125"`` (``long``: ``"accuracy 0.8125"``) or ``"1.834 bits/byte, next-token acc 0.4512"`` for a
        log line."""
        if self.name != "next_token":
            return f"{'accuracy' if long else 'acc'} {metrics['accuracy']:.4f}"
        unit = "byte" if tokenizer == "bytes" else "token"
        return f"{metrics['loss'] / math.log(2.0):.3f} bits/{unit}, next-token acc {metrics['accuracy']:.4f}"


def _classify_data(config):
    from jaxconv.models import input_length_rule
    from jaxconv.train.input_pipeline import build_data

    min_length, fixed = input_length_rule(config)
    if fixed is not None and tuple(config.data.bucket_lengths or ()) != (fixed,):
        # A fixed-length model (the character CNN: its dense layer's size depends on the length) reads every text
        # padded or cut to that one length: one bucket of it.
        config = config.copy_and_resolve_references()
        config.data.bucket_lengths = (fixed,)
    return build_data(config, min_length=min_length)


def _next_token_data(config):
    from jaxconv.train.lm_pipeline import build_lm_data

    return build_lm_data(config)


TASKS: dict[str, Task] = {
    "classify": Task("classify", "accuracy", _classify_data),
    "next_token": Task("next_token", "loss", _next_token_data),
}


def task_of(config) -> Task:
    """The :class:`Task` of ``config.model.name`` (:data:`jaxconv.models.TASKS`)."""
    from jaxconv.models import TASKS as MODEL_TASKS

    name = config.model.name
    if name not in MODEL_TASKS:
        raise ValueError(f"config.model.name={name!r} is not known; expected one of {sorted(MODEL_TASKS)}.")
    return TASKS[MODEL_TASKS[name]]
