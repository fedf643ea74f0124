"""What the one training loop does differently per kind of model, and every metric it reports: a :class:`Task`.

- ``"classify"`` (sentence classifiers): one label per example; the best dev epoch is the one with the highest
  accuracy (ties: the lower loss).
- ``"next_token"`` (language models): one label per position, the next token; the best dev epoch is the one with
  the lowest loss, and every record adds bits per token (``loss / ln 2``; bits per byte for a byte-level model).

Metrics travel as named fields. A compiled step returns the sums of :data:`SUMS` (``loss_sum``, ``correct``,
``count``: a dict of arrays through ``lax.scan`` and ``jax.vmap``); the host adds them up and :meth:`Task.metrics`
turns sums into the fields of a record (``loss``, ``accuracy``, and ``bits_per_byte`` for a byte-level language
model). A new metric is a new sum in :func:`jaxconv.train.steps.loss_terms` and its field here.
Which task a model has: its :class:`jaxconv.models.registry.ModelKind` (``config.model.name``).

>>> TASKS["next_token"].metrics({"loss_sum": 6.0, "correct": 1.0, "count": 4.0}, "bytes")
{'loss': 1.5, 'accuracy': 0.25, 'bits_per_byte': 2.1640425613334453}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Task", "TASKS", "task_of", "SUMS"]

#: The per-step sums every compiled step returns, by name (:func:`jaxconv.train.steps.loss_terms`).
SUMS = ("loss_sum", "correct", "count")


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

    def unit(self, tokenizer: str) -> str:
        """``"byte"`` for a byte-level model, else ``"token"`` (what a language model's bits are per)."""
        return "byte" if tokenizer == "bytes" else "token"

    def metrics(self, sums: Mapping[str, float], tokenizer: str) -> dict[str, float]:
        """The record fields of summed :data:`SUMS`: ``loss`` and ``accuracy`` per label, and for ``next_token``
        ``bits_per_byte`` (or ``bits_per_token``)."""
        count = max(float(sums["count"]), 1.0)
        out = {"loss": float(sums["loss_sum"]) / count, "accuracy": float(sums["correct"]) / count}
        if self.name == "next_token":
            out[f"bits_per_{self.unit(tokenizer)}"] = out["loss"] / math.log(2.0)
        return out

    def improved(self, metrics: Mapping[str, float], best_accuracy: float, best_loss: float) -> bool:
        """Whether a dev evaluation beats the best so far, by the task's own rule (:attr:`select_by`)."""
        accuracy, loss = metrics["accuracy"], metrics["loss"]
        if self.select_by == "loss":
            return loss < best_loss
        return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss)

    def summary(self, split: str, metrics: Mapping[str, float]) -> dict:
        """The fields a final result adds for ``split`` beyond its loss and accuracy (``test_bits_per_byte``)."""
        return {f"{split}_{k}": v for k, v in metrics.items() if k not in ("loss", "accuracy")}

    def describe(self, metrics: Mapping[str, float], tokenizer: str, *, long: bool = False) -> str:
        """``"acc 0.8125"`` (``long``: ``"accuracy 0.8125"``) or ``"1.834 bits/byte, next-token acc 0.4512"`` for a
        log line."""
        if self.name != "next_token":
            return f"{'accuracy' if long else 'acc'} {metrics['accuracy']:.4f}"
        unit = self.unit(tokenizer)
        return f"{metrics[f'bits_per_{unit}']:.3f} bits/{unit}, next-token acc {metrics['accuracy']:.4f}"


def _classify_data(config):
    from jaxconv.data.pipeline import build_data
    from jaxconv.models import input_length_rule

    min_length, fixed = input_length_rule(config)
    if fixed is not None and tuple(config.data.bucket_lengths or ()) != (fixed,):
        # A fixed-length model (its dense layer's size depends on the length) reads every text padded or cut to
        # that one length: one bucket of it.
        config = config.copy_and_resolve_references()
        config.data.bucket_lengths = (fixed,)
    return build_data(config, min_length=min_length)


def _next_token_data(config):
    from jaxconv.data.lm import build_lm_data

    return build_lm_data(config)


TASKS: dict[str, Task] = {
    "classify": Task("classify", "accuracy", _classify_data),
    "next_token": Task("next_token", "loss", _next_token_data),
}


def task_of(config) -> Task:
    """The :class:`Task` of ``config.model.name`` (its registered model kind's ``task``)."""
    from jaxconv.models.registry import model_kind

    return TASKS[model_kind(config.model.name).task]
