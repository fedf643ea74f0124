"""Which models' predictions decompose exactly into per-filter terms, and the linear read-out that does it.

A model qualifies when every convolution's output is max-pooled over all its positions and the pooled values go,
with nothing else, into one linear output layer whose output is the logits::

    logit_c = sum_j  scale * W[j, c] * pooled_j  +  b_c

(Kim's :class:`jaxconv.models.TextCNN`, whose ``"test-time"`` dropout scaling multiplies ``pooled`` by
``scale = 1 - rate`` at inference; an :class:`jaxconv.models.ImportedModel` whose graph has that shape, a single
sigmoid unit ``z`` read as the logits ``[0, z]``). :func:`readout` returns the terms of that sum, or raises a
ValueError whose one line says why a model does not qualify.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from flax import nnx
from jaxtyping import Float

__all__ = ["Readout", "readout", "SHAPE"]

#: What a model must look like, for the error messages.
SHAPE = ("every convolution max-pooled over all its positions and read, with nothing else, by one linear output "
         "layer (Kim's TextCNN, or an imported model of that shape)")

#: Why the other built-in kinds do not qualify.
_WHY = {
    "CharCNN": "its convolutions are stacked (each reads the previous one's pooled map) and two hidden dense layers "
               "with ReLU lie between them and the output",
    "ConvLM": "it is a language model: its logits are the next token at every position, not a class",
}


@dataclasses.dataclass(frozen=True)
class Readout:
    """The linear read-out of a qualifying model.

    Attributes:
      layers: the conv paths (``"convs/0"``, ``"layers/conv1d_1"``), in the order of the read-out's rows.
      sizes: filters per layer; the rows of ``layers[i]`` follow those of ``layers[:i]``.
      kernel: ``(N, K)`` float32, ``N = sum(sizes)``: ``kernel[j, c]`` is how much filter ``j``'s pooled value
        moves logit ``c`` (the dropout ``scale`` not applied).
      bias: ``(K,)`` float32; scale: what ``pooled`` is multiplied by before the read-out (1, or Kim's ``1 - rate``).
    """

    layers: tuple[str, ...]
    sizes: tuple[int, ...]
    kernel: Float[np.ndarray, "N K"]
    bias: Float[np.ndarray, " K"]
    scale: float

    @property
    def filters(self) -> list[tuple[str, int]]:
        """``(layer, filter)`` per row of :attr:`kernel`."""
        return [(layer, f) for layer, n in zip(self.layers, self.sizes) for f in range(n)]


def _text_cnn(model) -> Readout:
    kernel = np.asarray(model.classifier.kernel[...], np.float32)                      # (W*F, K)
    bias = model.classifier.bias
    bias = np.asarray(bias[...], np.float32) if bias is not None else np.zeros(kernel.shape[1], np.float32)
    rate = float(model.dropout.rate)
    scale = 1.0 - rate if model.dropout_scaling == "test-time" and rate > 0 else 1.0
    return Readout(tuple(f"convs/{i}" for i in range(len(model.convs))), (model.filters,) * len(model.convs),
                   kernel, bias, scale)


def _imported(model) -> Readout:
    from jaxconv.models.imported import _pooled_rows

    g = model.graph
    nodes = {n["name"]: n for n in g["nodes"]}
    convs = [n for n in g["nodes"] if n["op"] in ("conv1d", "conv2d")]
    if not convs:
        raise ValueError(f"this ImportedModel has no convolution; evidence needs {SHAPE}.")
    rows = {}
    for n in convs:
        r = _pooled_rows(g, n["name"]) if n["op"] == "conv1d" else None
        if r is None:
            raise ValueError(f"conv {n['name']!r} of this ImportedModel is not read as evidence needs: its output "
                             f"must go through [a linear activation,] an unmasked global max over positions, [dropout, "
                             f"concatenate or flatten,] into the output dense layer; evidence needs {SHAPE}.")
        rows[n["name"]] = r
    denses = {d for d, _, _ in rows.values()}
    if len(denses) != 1:
        raise ValueError(f"the convs of this ImportedModel feed {len(denses)} dense layers ({', '.join(sorted(denses))}); "
                         f"evidence needs {SHAPE}.")
    dense = nodes[denses.pop()]
    order = sorted(rows, key=lambda name: rows[name][1])
    covered = [(rows[name][1], rows[name][2]) for name in order]
    ends = [0] + [hi for _, hi in covered]                                             # rows back to back from 0
    if [lo for lo, _ in covered] != ends[:-1] or ends[-1] != int(dense["in_features"]):
        raise ValueError(f"dense layer {dense['name']!r} reads {dense['in_features']} features, of which the convs' "
                         f"pooled values are rows {covered}; something else feeds it, and evidence needs {SHAPE}.")
    act = dense.get("activation") or "linear"
    after = nodes[g["output"]] if g["output"] != dense["name"] else None
    linear = act == "linear" and (after is None or after["fn"] == "linear" or model.head is not None)
    if not (linear or (after is None and model.head is not None)):
        raise ValueError(f"dense layer {dense['name']!r} ends in a {act!r} activation"
                         f"{'' if after is None else ' and then ' + repr(after['fn'])}, so the logits are not linear in "
                         f"the pooled values; evidence needs {SHAPE}.")
    layer = model.layers[dense["name"]]
    kernel = np.asarray(layer.kernel[...], np.float32)                                 # (N, units)
    bias = np.asarray(layer.bias[...], np.float32) if layer.bias is not None else np.zeros(kernel.shape[1], np.float32)
    if model.head == "sigmoid":                                                        # one unit z -> logits [0, z]
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)               # (N, 2)
        bias = np.concatenate([np.zeros_like(bias), bias])                             # (2,)
    sizes = tuple(rows[name][2] - rows[name][1] for name in order)
    return Readout(tuple(f"layers/{name}" for name in order), sizes, kernel, bias, 1.0)


def readout(model: nnx.Module) -> Readout:
    """The linear read-out of ``model`` (module docstring).

    Raises:
      ValueError: one line: the model is not of that shape, and why.
    """
    from jaxconv.models.imported import ImportedModel
    from jaxconv.models.text_cnn import TextCNN

    if isinstance(model, TextCNN):
        return _text_cnn(model)
    if isinstance(model, ImportedModel):
        return _imported(model)
    name = type(model).__name__
    why = _WHY.get(name, "it is not a kind whose read-out jaxconv knows")
    tail = "" if hasattr(model, "sample") else " run.predict works for any classifier."      # not for a language model
    raise ValueError(f"evidence needs {SHAPE}; this {name} is not: {why}.{tail}")
