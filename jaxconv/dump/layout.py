"""What a dump's store holds besides the streamed maps: each layer's facts and receptive spans, the arrays and
their chunks, and the arrays held once (vocabulary, kernels, class weights, the embedding)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.dump import store as dstore

__all__ = ["CHUNK_BYTES", "layer_facts", "rows_per_chunk", "array_specs", "constants"]

#: Bytes one filter's chunk of a map aims at (chunk rows = this / (positions x itemsize), a power of two).
CHUNK_BYTES = 256 * 1024


def layer_facts(model, layers, length) -> tuple[dict, dict]:
    """Per layer: its explain facts (attributes) and its receptive spans ``(positions, 2)``."""
    from jaxconv.inspection import explain, receptive_spans

    e = explain(model, jax.ShapeDtypeStruct((1, length), jnp.int32))
    facts, spans = {}, {}
    for layer in layers:
        r = e.row(layer)
        if len(r.kernel_shape) != 3:
            raise ValueError(f"--layers: {layer!r} is a {len(r.kernel_shape) - 2}-D convolution; dumps hold 1-D "
                             f"maps (examples, positions, filters).")
        facts[layer] = dict(kernel_shape=list(r.kernel_shape), kernel_axes=["width", "in", "out"],
                            kernel=r.kernel, stride=r.stride[0], padding=list(r.padding[0]),
                            dilation=r.dilation[0], groups=r.groups, filters=r.output_shape[-1],
                            positions=r.output_spatial[0], rf_size=r.rf_size[0], rf_jump=r.rf_jump[0],
                            rf_start=r.rf_start[0], formula=r.formula[0])
        spans[layer] = np.asarray(receptive_spans(model, layer, length), np.int32)              # (P, 2)
    return facts, spans


def rows_per_chunk(facts: dict, dtype: str, n: int, chunk_rows: int | None) -> int:
    if chunk_rows is not None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows={chunk_rows!r} must be an int >= 1.")
        return min(int(chunk_rows), n)
    most = max(f["positions"] for f in facts.values()) * np.dtype(dtype).itemsize
    rows = 2 ** int(math.log2(max(CHUNK_BYTES // most, 1)))
    return min(max(rows, 64), 8192, n)


def array_specs(n: int, length: int, rows: int, layers: list[str], facts: dict, dtype: str,
                 has_labels: bool) -> dict[str, dstore.ArraySpec]:
    """The per-example arrays of a dump of ``n`` examples padded to ``length``, in chunks of ``rows`` examples (a
    map's chunk holds one filter)."""
    specs = {"tokens": dstore.ArraySpec((n, length), "int32", (rows, length), ("example", "token")),
             "starts": dstore.ArraySpec((n,), "int32", (rows,), ("example",)),
             "lengths": dstore.ArraySpec((n,), "int32", (rows,), ("example",)),
             "texts": dstore.ArraySpec((n,), str, (rows,), ("example",)),
             "words": dstore.ArraySpec((n,), str, (rows,), ("example",))}
    if has_labels:
        specs["labels"] = dstore.ArraySpec((n,), "int32", (rows,), ("example",))
    for layer in layers:
        P, F = facts[layer]["positions"], facts[layer]["filters"]
        specs[f"maps/{layer}"] = dstore.ArraySpec((n, P, F), dtype, (rows, P, 1),
                                                  ("example", f"position[{layer}]", f"filter[{layer}]"))
        specs[f"pooled/{layer}"] = dstore.ArraySpec((n, F), "float32", (rows, F), ("example", f"filter[{layer}]"))
        specs[f"argmax/{layer}"] = dstore.ArraySpec((n, F), "int32", (rows, F), ("example", f"filter[{layer}]"))
    return specs


def constants(run, adapter, layers: list[str], spans: dict) -> tuple[dict, list[str]]:
    """The arrays a dump holds once (vocabulary, spans, kernels, biases, class weights, the embedding table) as
    ``{name: (array, dims)}``, and the dumped layers that read the stored embedding (none without a table)."""
    constants = {"vocab": (np.array(run.vocab.tokens, dtype=object), ("vocab",))}
    by_path = {"/".join(str(p) for p in k): m for k, m in nnx.iter_modules(run.model)}
    for layer in layers:
        conv = by_path[layer]
        constants[f"spans/{layer}"] = (spans[layer], (f"position[{layer}]", "bound"))
        constants[f"kernels/{layer}"] = (np.asarray(conv.kernel[...], np.float32),
                                         (f"width[{layer}]", f"in[{layer}]", f"filter[{layer}]"))
        if conv.bias is not None:
            constants[f"biases/{layer}"] = (np.asarray(conv.bias[...], np.float32), (f"filter[{layer}]",))
        weights = adapter.class_weights(run.model, layer)
        if weights is not None:
            constants[f"class_weights/{layer}"] = (weights, (f"filter[{layer}]", "class"))
    embedded = [layer for layer in adapter.embedded_layers(run.model) if layer in layers]
    table = adapter.embedding_table(run.model, len(run.vocab)) if embedded else None
    if table is None:
        return constants, []
    constants["embedding"] = (table, ("vocab", "channel"))
    return constants, embedded
