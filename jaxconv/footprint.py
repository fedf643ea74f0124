"""Memory up front: does a training run or a dump fit the device, before anything is allocated?

A size far beyond memory (``--config.train.batch_size=1000000000000``, ``--config.model.filters=1000000000``, a
5 MB line without ``--config.data.max_length``, ``jaxconv dump --batch-size 1000000000``) would otherwise end in
XLA's ``RESOURCE_EXHAUSTED`` or a trace after minutes. The estimate is simple and a lower bound, so nothing that
fits is refused:

- parameters: counted from the model's abstract shapes (``nnx.eval_shape``, nothing allocated), 4 copies when
  training (the values, their gradients, two optimizer slots as Adam and Adadelta keep), 1 for a dump;
- activations per batch: ``batch x length x channels`` values, ``channels`` the embedding width plus every conv's
  output channels (the feature maps of one position), twice when training (the values kept for the backward pass
  and their gradients);
- every value at its dtype's size (``float32``: 4 bytes).

It is compared with the memory there is: the device's free memory (``jax.devices()[0].memory_stats()``:
``bytes_limit - bytes_in_use``) on GPU and TPU, else the host's available RAM (``MemAvailable`` of
``/proc/meminfo``, or ``os.sysconf``). Where neither is known the check is skipped.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

__all__ = ["Footprint", "OutOfMemoryError", "available_memory", "model_footprint", "check_fits", "TRAIN_COPIES"]

#: Copies of every parameter while training: the values, the gradients and two optimizer slots.
TRAIN_COPIES = 4
#: Copies of every activation while training: the forward values kept for the backward pass, and their gradients.
TRAIN_ACTIVATION_COPIES = 2


class OutOfMemoryError(ValueError):
    """A size whose estimated memory exceeds what the device has; the message names the field to lower."""


@dataclasses.dataclass(frozen=True)
class Footprint:
    """A model's sizes: ``params`` (parameter count), ``channels`` (values per position: the embedding width plus
    every conv's output channels), ``width_field`` (the config field of the conv widths, e.g. ``model.filters``)."""

    params: int
    channels: int
    width_field: str


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**27 else f"{n / 2**20:,.1f} MiB"


def available_memory() -> tuple[int, str] | None:
    """``(bytes free, where)``: the first device's free memory, else the host's available RAM; None if unknown."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # backends without the call
        stats = None
    if stats and stats.get("bytes_limit"):
        device = jax.devices()[0]
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"free on {device.platform} {device.id}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available host RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available host RAM"
    except (ValueError, OSError, AttributeError):
        return None


def model_footprint(config, vocab_size: int = 0, num_classes: int = 0, *, model=None) -> Footprint:
    """The parameter count and the channels per position of ``model`` (an ``nnx.Module``), or of ``config.model``
    built from abstract shapes only (``vocab_size``, ``num_classes``; nothing allocated).

    A conv kernel is a rank-3 (Conv1D: ``(width, in, out)``) or rank-4 parameter: its last axis counts as channels;
    an embedding table (rank 2, named ``embedding``) its width."""
    from flax import nnx

    from jaxconv.models import build_model

    if model is None:
        model = nnx.eval_shape(lambda: build_model(config, int(vocab_size), int(num_classes), rngs=nnx.Rngs(0)))
    params = channels = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)):
        shape = tuple(int(s) for s in leaf.shape)
        params += int(np.prod(shape, dtype=object))
        name = jax.tree_util.keystr(path)
        if len(shape) >= 3 or (len(shape) == 2 and "embedding" in name):
            channels += shape[-1]
    width = next((f"model.{k}" for k in ("filters", "features", "channels") if k in config.model), "model")
    return Footprint(params=params, channels=max(channels, 1), width_field=width)


def check_fits(fp: Footprint, *, batch: int, length: int, batch_field: str, length_field: str, training: bool,
               devices: int = 1, itemsize: int = 4, prefix: str = "--config.", length_fix: str | None = None) -> None:
    """Refuse a batch of ``batch x length`` positions through a model of footprint ``fp`` that cannot fit.

    Args:
      batch_field, length_field: the fields that set the batch and the length (``--batch-size`` for a dump;
        ``train.batch_size``, ``data.max_length`` under ``prefix``).
      training: 4 copies of the parameters and 2 of the activations (:data:`TRAIN_COPIES`), else 1 and 1.
      devices: the devices the batch is split over by rows (each holds ``batch / devices`` of it).
      length_fix: what to do when the length is to blame (default: cut the texts with ``length_field=N``).

    Raises:
      OutOfMemoryError: the estimate exceeds :func:`available_memory`; one line naming the largest of the batch,
        the length and the conv width (or the width, when the parameters outweigh the activations), the estimate
        with its terms, and the memory.
    """
    have = available_memory()
    if have is None:
        return
    free, where = have
    copies, act_copies = (TRAIN_COPIES, TRAIN_ACTIVATION_COPIES) if training else (1, 1)
    param_bytes = fp.params * itemsize * copies
    rows = -(-int(batch) // max(int(devices), 1))
    act_bytes = rows * int(length) * fp.channels * itemsize * act_copies
    need = param_bytes + act_bytes
    if need <= free:
        return
    def named(field):
        return field if field.startswith("--") else f"{prefix}{field}"

    width = named(fp.width_field)
    if param_bytes >= act_bytes:
        field, value = width, f"{fp.params:,} parameters"
    else:
        field, value = max([(named(batch_field), int(batch)), (named(length_field), int(length)),
                            (width, fp.channels)], key=lambda item: item[1])
        value = {named(batch_field): f"a batch of {int(batch):,} rows",
                 named(length_field): f"texts {int(length):,} positions long",
                 width: f"{fp.channels:,} channels per position"}[field]
    fix = ((length_fix or f"cut the texts with {field}=N (tokens)") if field == named(length_field)
           else f"lower {field}")
    raise OutOfMemoryError(
        f"{field}: {value} would need about {_gib(need)} ({fp.params:,} parameters x {copies} x {itemsize} B + batch "
        f"{rows:,}{' per device' if devices > 1 else ''} x length {int(length):,} x {fp.channels:,} channels x {act_copies} x {itemsize} B), more "
        f"than the {_gib(free)} {where}; {fix}.")
