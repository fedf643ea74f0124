"""Which filters the model needs: zero each filter's output and measure what the predictions lose
(:func:`ablate`, ``jaxconv ablate``).

For every filter ``j`` of the chosen convolutions, the forward pass runs again with ``j``'s feature map set to zero
(after its activation: for Kim's CNN that zeroes its max-pooled value), over a whole split. All filters run in one
compiled program: the filter masks ``(M, filters)`` are an axis of ``jax.vmap``, so ``M`` masked forward passes share
one dispatch per batch. Per filter the records hold:

- ``delta_accuracy``: accuracy with the filter zeroed minus the model's accuracy;
- ``delta_logit``: the mean change of the true class's logit (how much the filter pushed examples towards their
  own class; negative means it helped).

>>> records = jaxconv.ablate(jaxconv.load_run("runs/demo"), split="test")       # doctest: +SKIP
>>> sorted(records, key=lambda r: r.delta_logit)[:3]   # doctest: +SKIP

The results are written beside the run's dump of the same split (``RUN/dumps/<name>/ablation.json``), where
:meth:`jaxconv.dump.Dump.ablation` and the report read them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv._args import check_count, check_index, check_texts

__all__ = ["Ablation", "ablate", "ablation_path", "read_ablation", "masked_logits"]


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One filter zeroed: ``layer``, ``filter``, ``delta_accuracy`` (accuracy change, a fraction) and
    ``delta_logit`` (mean change of the true class's logit); ``accuracy`` and ``logit``: the ablated values."""

    layer: str
    filter: int
    delta_accuracy: float
    delta_logit: float
    accuracy: float
    logit: float


def ablation_path(workdir, name: str):
    """``RUN/dumps/<name>/ablation.json``."""
    from jaxconv.dump.store import dump_dir

    return dump_dir(workdir, name) / "ablation.json"


def _conv_modules(model: nnx.Module, layers: Sequence[str]) -> dict[str, nnx.Module]:
    from jaxconv.inspection._trace import _modules_by_path

    mods = _modules_by_path(model)
    return {layer: mods[layer] for layer in layers}


def masked_logits(model: nnx.Module, tokens: jax.Array, layers: Sequence[str], mask: jax.Array) -> jax.Array:
    """``model(tokens)`` ``(B, K)`` with every filter ``j`` of ``layers`` multiplied by ``mask[j]`` after its
    activation; ``mask`` ``(sum of the layers' filters,)``, the layers' filters in order."""
    from jaxconv.inspection._trace import _patched_calls

    convs = _conv_modules(model, layers)
    slices, start = {}, 0
    for layer, conv in convs.items():
        slices[id(conv)] = (start, start + conv.filters, conv.data_format == "channels_last", conv.num_spatial)
        start += conv.filters

    def hook(orig, module, args, kwargs):
        y = orig(module, *args, **kwargs)
        where = slices.get(id(module))
        if where is None:
            return y
        lo, hi, last, n = where
        m = mask[lo:hi].astype(y.dtype)                                            # (F,)
        return y * (m if last else m.reshape((-1,) + (1,) * n))

    with _patched_calls(list(convs.values()), hook):
        return model(tokens)


@functools.lru_cache(maxsize=16)
def _program(graphdef, layers: tuple[str, ...]):
    """``(masks (M, Ftot), state, tokens (B, L), labels (B,), valid (B,)) -> (correct (M,), true logit sum (M,))``,
    the masks as a vmapped axis: one compiled program for M ablations of a batch."""

    def one(mask, state, tokens, labels, valid):
        model = nnx.merge(graphdef, state)
        logits = masked_logits(model, tokens, layers, mask).astype(jnp.float32)      # (B, K)
        correct = (logits.argmax(-1) == labels) & valid                              # (B,)
        true = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]           # (B,)
        return correct.sum(), jnp.where(valid, true, 0.0).sum()

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


def _batches(tokens: np.ndarray, labels: np.ndarray, batch_size: int):
    """Batches of ``batch_size`` rows of the encoded split ``(N, L)``; the last one filled with copies of its first
    row (masked out by ``valid``), so every batch has one shape."""
    for i in range(0, len(tokens), batch_size):
        real = min(batch_size, len(tokens) - i)
        rows = np.concatenate([np.arange(i, i + real), np.full(batch_size - real, i)])
        lab = np.zeros(batch_size, np.int32)
        lab[:real] = labels[i:i + real]
        yield tokens[rows], lab, np.arange(batch_size) < real


def _examples(run, split: str | None, input, texts, labels, format=None) -> tuple[str, list[str], np.ndarray]:
    """``(name, texts, labels)``: given texts, a labelled file, or a split of the run's dataset."""
    from jaxconv.dump.runner import _source

    if texts is not None:
        texts = check_texts("ablate", "texts", texts)
        if labels is None or len(labels) != len(texts):
            raise ValueError(f"ablate: texts= needs labels= of the same length (one class per text); got "
                             f"{None if labels is None else len(labels)} labels for {len(texts)} texts.")
        labels = [check_index("ablate", f"labels[{i}]", x, run.num_classes) for i, x in enumerate(labels)]
        return "texts", list(texts), np.asarray(labels, np.int32)
    if format is not None and input is None:
        raise ValueError(f"ablate: format={format!r} reads an input file; give input=FILE (--input), or leave "
                         f"format out.")
    source = _source(run, split or "test", input, format)
    source.scan(run.tokenize, run.num_classes)
    pairs = list(source.examples())
    if any(label is None for _, label in pairs):
        raise ValueError(f"ablate: {source.description} has no labels; accuracy needs one per example (a file of "
                         f"'<label> <text>' lines).")
    return source.name, [t for t, _ in pairs], np.array([label for _, label in pairs], np.int32)


def ablate(run, split: str | None = None, *, input=None, format: str | None = None, texts: Sequence[str] | None = None,
           labels: Sequence[int] | None = None, layers: str | Sequence[str] | None = None,
           batch_size: int | None = None, masks_per_call: int = 128, write: bool = True) -> list[Ablation]:
    """Zero each filter of ``layers`` in turn over a labelled split; returns one :class:`Ablation` per filter.

    Args:
      run: a :class:`jaxconv.Run` (``jaxconv.load_run`` or ``jaxconv.import_model``) of a classifier.
      split: ``"test"`` (default), ``"dev"`` or ``"train"`` of the run's dataset; or ``input``: a labelled file read
        as training reads its files (``<label> <text>`` lines, TSV, CSV, JSON lines: ``format``, default the run's
        ``config.data.format``; :mod:`jaxconv.dump.sources`); or ``texts`` (one str is one text) with ``labels``
        (class indices in ``[0, num_classes)``, one per text).
      layers: conv paths (default every conv).
      batch_size: examples per call (default the run's eval batch size).
      masks_per_call: filters ablated per compiled call (the vmapped axis; bounds memory).
      write: write ``ablation.json`` beside the dump of the same name, when the run has a workdir.

    Raises:
      ValueError: an unknown layer, no labels, or a model that is not a classifier.
    """
    from jaxconv.dump.runner import resolve_layers
    from jaxconv.paths import write_text

    t0 = time.perf_counter()
    masks_per_call = check_count("ablate", "masks_per_call", masks_per_call)
    if batch_size is not None:
        batch_size = check_count("ablate", "batch_size", batch_size)
    layers = tuple(resolve_layers(run.model, layers))
    name, texts, labels = _examples(run, split, input, texts, labels, format)
    convs = _conv_modules(run.model, layers)
    names = [(layer, j) for layer, conv in convs.items() for j in range(conv.filters)]
    total = len(names)
    masks = np.ones((total + 1, total), np.float32)                                  # row 0: nothing zeroed
    masks[np.arange(1, total + 1), np.arange(total)] = 0.0
    batch_size = int(batch_size or run.config.train.eval_batch_size or run.config.train.batch_size)
    encoded = run.encode(texts)                     # (N, L): the run's fixed length, else the longest text's
    graphdef, state = nnx.split(run.model)
    program = _program(graphdef, layers)
    correct, logit = np.zeros(total + 1), np.zeros(total + 1)
    for tokens, lab, valid in _batches(encoded, labels, batch_size):
        for m in range(0, total + 1, masks_per_call):
            c, s = program(jnp.asarray(masks[m:m + masks_per_call]), state, tokens, lab, valid)
            correct[m:m + masks_per_call] += np.asarray(c)
            logit[m:m + masks_per_call] += np.asarray(s)
    n = len(texts)
    acc, mean = correct / n, logit / n
    records = [Ablation(layer, int(j), float(acc[i + 1] - acc[0]), float(mean[i + 1] - mean[0]),
                        float(acc[i + 1]), float(mean[i + 1])) for i, (layer, j) in enumerate(names)]
    if write and run.workdir is not None:
        out = {"name": name, "examples": n, "accuracy": float(acc[0]), "mean_true_logit": float(mean[0]),
               "layers": list(layers), "seconds": round(time.perf_counter() - t0, 3),
               "rule": "each filter's feature map zeroed after its activation, one at a time",
               "filters": [dataclasses.asdict(r) for r in records]}
        write_text(ablation_path(run.workdir, name), json.dumps(out, indent=1) + "\n", what="the ablation")
    return records


def read_ablation(path) -> dict | None:
    """The ``ablation.json`` at ``path`` as a dict (``"filters"``: :class:`Ablation` records), or None."""
    from jaxconv.paths import as_path

    path = as_path(path)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data["filters"] = [Ablation(**r) for r in data["filters"]]
    return data
