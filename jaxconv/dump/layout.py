"""What a dump's store holds besides the streamed maps: each layer's facts and receptive spans, the arrays, their
shards and chunks, and the arrays held once (vocabulary, kernels, class weights, the embedding).

Two sizes shape the store (:func:`rows_per_chunk`, :func:`inner_rows`):

- the *block*: the rows the writer commits at once, one shard of every per-example array. ``maps/<layer>``
  ``(examples, positions, filters)`` is sharded ``(block, positions, filters)``: one object holds every filter of
  those rows. The other per-example arrays are chunked ``(block, ...)``: one object per block as well. So a dump
  writes about ``arrays x ceil(examples / block)`` objects (MR's 10,662 sentences through Kim's CNN: 17 arrays x
  2 blocks of float16 maps; a million such sentences: 17 x 163). The block aims at :data:`BLOCK_BYTES` of maps,
  which bounds the writer's memory.
- the *inner chunk* of a map: ``(chunk, positions, 1)``, one filter, about :data:`CHUNK_BYTES`: reading one filter
  reads the shard indexes and that filter's byte ranges, never another filter's.

A shard is written whole (a partial shard write would read, decode and rewrite it), which is why the block is the
shard's rows: the writer (:mod:`jaxconv.dump.runner`) buffers one block and writes it in one go.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.dump import store as dstore

__all__ = ["CHUNK_BYTES", "BLOCK_BYTES", "layer_facts", "rows_per_chunk", "inner_rows", "array_specs", "constants"]

#: Bytes one filter's inner chunk of a map aims at (chunk rows = this / (positions x itemsize), a power of two).
CHUNK_BYTES = 256 * 1024
#: Bytes of maps (every dumped layer, every filter) one write block aims at: the writer's buffer, and the shard.
BLOCK_BYTES = 256 * 1024 * 1024


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


def inner_rows(facts: dict, dtype: str) -> int:
    """Rows of a map's default inner chunk: :data:`CHUNK_BYTES` / (the most positions x itemsize), rounded down to a
    power of two, within [64, 8192]."""
    most = max(f["positions"] for f in facts.values()) * np.dtype(dtype).itemsize
    rows = 2 ** int(math.log2(max(CHUNK_BYTES // most, 1)))
    return min(max(rows, 64), 8192)


def rows_per_chunk(facts: dict, dtype: str, n: int, chunk_rows: int | None) -> int:
    """Rows per write block, which is also the rows of one shard (module docstring), for ``n`` examples.

    ``chunk_rows`` given: that many (at most ``n``). Default: a whole number of inner chunks (:func:`inner_rows`)
    whose maps come to about :data:`BLOCK_BYTES` (at least one inner chunk), no more than ``n`` needs (``n`` itself
    when it fits in one inner chunk)."""
    if chunk_rows is not None:
        if isinstance(chunk_rows, bool) or int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows={chunk_rows!r} must be an int >= 1.")
        return min(int(chunk_rows), n)
    inner = inner_rows(facts, dtype)
    if n <= inner:
        return n
    per_row = sum(f["positions"] * f["filters"] * np.dtype(dtype).itemsize for f in facts.values())
    chunks = max(BLOCK_BYTES // (per_row * inner), 1)
    return min(chunks, -(-n // inner)) * inner


def _inner(rows: int, facts: dict, dtype: str) -> int:
    """The inner chunk rows of a block of ``rows``: the default when it divides the block, else the block."""
    inner = inner_rows(facts, dtype)
    return inner if rows % inner == 0 else rows


def array_specs(n: int, length: int, rows: int, layers: list[str], facts: dict, dtype: str,
                 has_labels: bool) -> dict[str, dstore.ArraySpec]:
    """The per-example arrays of a dump of ``n`` examples padded to ``length``, written in blocks of ``rows``
    examples (:func:`rows_per_chunk`): a map is sharded ``(rows, P, F)`` in inner chunks of one filter
    ``(chunk, P, 1)``; every other array is chunked ``(rows, ...)``."""
    specs = {"tokens": dstore.ArraySpec((n, length), "int32", (rows, length), ("example", "token")),
             "starts": dstore.ArraySpec((n,), "int32", (rows,), ("example",)),
             "lengths": dstore.ArraySpec((n,), "int32", (rows,), ("example",)),
             "texts": dstore.ArraySpec((n,), str, (rows,), ("example",)),
             "words": dstore.ArraySpec((n,), str, (rows,), ("example",))}
    if has_labels:
        specs["labels"] = dstore.ArraySpec((n,), "int32", (rows,), ("example",))
    for layer in layers:
        P, F = facts[layer]["positions"], facts[layer]["filters"]
        specs[f"maps/{layer}"] = dstore.ArraySpec((n, P, F), dtype, (_inner(rows, facts, dtype), P, 1),
                                                  ("example", f"position[{layer}]", f"filter[{layer}]"),
                                                  shards=(rows, P, F))
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
