"""A trained model from elsewhere (Keras 1/2/3, PyTorch) as jaxconv layers: :class:`ImportedModel`, kind ``"imported"``.

The importers (:mod:`jaxconv.imports`) read a source model into a *layer graph*: a JSON-able dict that names each
layer, what it reads and its settings, plus the weights by layer. :class:`ImportedModel` builds that graph from
jaxconv's own blocks (:class:`jaxconv.Conv1D`, :class:`jaxconv.Conv2D`, :class:`jaxconv.nn.MaxPool1D`, ...), so
:func:`jaxconv.explain`, :func:`jaxconv.feature_maps` and :func:`jaxconv.saliency` work on it as on a model trained
here. The graph is stored as a JSON string in ``config.model.graph`` of the run folder that ``jaxconv import``
writes; the weights are the run's checkpoint.

The graph (every array channels-last, batch axis 0)::

    {"input": "ids",                      # the token ids, int (B, L)
     "output": "dense_1",                 # the node whose value the source model returns
     "nodes": [{"name": "embedding", "op": "embedding", "inputs": ["ids"], "vocab_size": 500, "dim": 300,
                "mask_zero": False}, ...]}  # in an order where every input comes before its reader

Ops and their settings (``params``: the weights a node needs, by name, with their shapes):

=====================  ==========================================================  =================================
op                     settings                                                    params
=====================  ==========================================================  =================================
``embedding``          ``vocab_size``, ``dim``, ``mask_zero`` (Keras: later        ``table`` (V, D); row 0 is used
                       mask-aware layers skip id-0 positions)                      as stored (never zeroed)
``conv1d``             ``in_channels``, ``filters``, ``kernel_size``, ``stride``,  ``kernel`` (k, in/groups, F),
                       ``dilation``, ``groups``, ``padding`` ("valid", "same"      ``bias`` (F,) when ``use_bias``
                       (the Keras/TF split), "causal", or [lo, hi]),
                       ``use_bias``, ``activation``
``conv2d``             as conv1d, per axis: ``kernel_size`` [kh, kw], ``stride``,  ``kernel`` (kh, kw, in/groups, F),
                       ``dilation`` [., .]; ``padding`` "valid", "same" or         ``bias``
                       [[lo, hi], [lo, hi]]
``dense``              ``in_features``, ``units``, ``use_bias``, ``activation``;   ``kernel`` (in, units), ``bias``
                       over the last axis
``activation``         ``fn`` (:data:`ACTIVATIONS`), ``axis`` (softmax; -1)        --
``max_pool1d``,        ``pool_size``, ``stride``, ``padding`` ("valid", "same",    --
``avg_pool1d``         [lo, hi]); avg: ``count_include_pad`` (torch: True;
                       Keras "same": False) over (B, L, C)
``global_max_pool``,   ``axis`` (1: the positions of (B, L, C)), ``keepdims``,     --
``global_avg_pool``    ``masked`` (skip the positions whose token id is 0, as
                       Keras does after ``mask_zero``; needs axis 1 of length L)
``concatenate``        ``axis``                                                    --
``flatten``            (B, ...) -> (B, prod(...)), row-major                       --
``reshape``            ``shape``: the shape after the batch axis (one -1 allowed)  --
``transpose``          ``perm``: every axis, ``perm[0] == 0``                      --
``identity``           (dropout at inference, an input layer)                      --
=====================  ==========================================================  =================================

``ACTIVATIONS``: ``linear``, ``relu``, ``tanh``, ``sigmoid``, ``elu``, ``selu``, ``gelu`` (exact, with erf: Keras'
and PyTorch's default), ``gelu_tanh`` (the tanh approximation), ``softplus``, ``silu``, ``relu6``, ``softmax``,
``log_softmax``.

The model's logits: :meth:`ImportedModel.__call__` returns what a classifier's loss and argmax read: the output
node's value, with a final ``softmax`` / ``log_softmax`` left off (the same argmax and the same softmax), and a
single ``sigmoid`` unit ``z`` as the two logits ``[0, z]`` (softmax of which is ``[1 - sigmoid(z), sigmoid(z)]``).
:meth:`ImportedModel.source_output` returns exactly what the source model returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv.models._graph import (ACTIVATIONS, HEADS, axis_of, infer_shapes, min_length, pad, parse_graph,
                                   parsed)
from jaxconv.models.adapter import DumpAdapter
from jaxconv.models.registry import ModelKind, register
from jaxconv.nn.conv import Conv1D, Conv2D
from jaxconv.nn.pool import AvgPool1D, MaxPool1D

__all__ = ["ImportedModel", "TokenEmbedding", "ImportedAdapter"]

class TokenEmbedding(nnx.Module):
    """A lookup table: ids ``(B, L)`` int -> vectors ``(B, L, D)``. Every row is used as stored (the source's pad
    row included); an id outside ``[0, V)`` reads the nearest row, as XLA's gather clips."""

    def __init__(self, vocab_size: int, dim: int, *, rngs: nnx.Rngs):
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.table = nnx.Param(jax.random.normal(rngs.params(), (self.vocab_size, self.dim)) * 0.05)   # (V, D)

    def __call__(self, ids: Int[Array, "B L"]) -> Float[Array, "B L D"]:
        return jnp.take(self.table[...], ids, axis=0, mode="clip")                    # (B, L, D)

    def __repr__(self) -> str:
        return f"TokenEmbedding(vocab_size={self.vocab_size}, dim={self.dim}; table (vocab={self.vocab_size}, " \
               f"dim={self.dim}))"


def _module(node: Mapping, rngs: nnx.Rngs) -> nnx.Module | None:
    op = node["op"]
    act = ACTIVATIONS[node.get("activation") or "linear"]
    if op == "embedding":
        return TokenEmbedding(node["vocab_size"], node["dim"], rngs=rngs)
    if op in ("conv1d", "conv2d"):
        cls = Conv1D if op == "conv1d" else Conv2D
        return cls(int(node["in_channels"]), int(node["filters"]), pad(node["kernel_size"]) if
                   isinstance(node["kernel_size"], list) else int(node["kernel_size"]),
                   stride=pad(node.get("stride", 1)) if isinstance(node.get("stride"), list) else node.get("stride", 1),
                   dilation=pad(node.get("dilation", 1)) if isinstance(node.get("dilation"), list)
                   else node.get("dilation", 1), groups=int(node.get("groups", 1)),
                   padding=pad(node.get("padding", "valid")), use_bias=bool(node.get("use_bias", True)),
                   activation=act, rngs=rngs)
    if op == "dense":
        return nnx.Linear(int(node["in_features"]), int(node["units"]), use_bias=bool(node.get("use_bias", True)),
                          rngs=rngs)
    if op == "max_pool1d":
        return MaxPool1D(int(node["pool_size"]), node.get("stride"), pad(node.get("padding", "valid")))
    if op == "avg_pool1d":
        return AvgPool1D(int(node["pool_size"]), node.get("stride"), pad(node.get("padding", "valid")),
                         count_include_pad=bool(node.get("count_include_pad", True)))
    return None


class ImportedModel(nnx.Module):
    """A layer graph (module docstring) built from jaxconv's blocks.

    Args:
      vocab_size: rows of the embedding that reads the token ids (checked against the graph).
      num_classes: classes of the logits (:meth:`__call__`): the output's last axis, or 2 for one sigmoid unit.
      graph: the layer graph, JSON text or dict.
      rngs: ``nnx.Rngs`` for the initial weights (replaced by :meth:`load_params` or a checkpoint).

    Attributes:
      layers: ``nnx.Dict`` of the nodes with weights or windows, by node name: ``layers/<name>`` is the path that
        :func:`jaxconv.feature_maps` and :func:`jaxconv.explain` show (e.g. ``"layers/conv1d_1"``).
      graph: the parsed graph; ``min_length``: the shortest input every conv accepts.
    """

    def __init__(self, vocab_size: int, num_classes: int, *, graph: str | Mapping, max_length: int = 0,
                 rngs: nnx.Rngs):
        g = parse_graph(graph)
        self.graph_json = json.dumps(g, sort_keys=True)                               # static and hashable
        self.min_length = min_length(g)
        self.max_length = int(max_length or 0)
        shapes_at = infer_shapes(g, max(self.max_length, self.min_length))
        embeds = [n for n in g["nodes"] if n["op"] == "embedding" and n["inputs"] == [g["input"]]]
        if not embeds:
            raise ValueError("layer graph: no embedding reads the token ids; an imported model starts with one.")
        self.embedding_name = embeds[0]["name"]
        if int(embeds[0]["vocab_size"]) != int(vocab_size):
            raise ValueError(f"ImportedModel: vocab_size={vocab_size} but the embedding {self.embedding_name!r} has "
                             f"{embeds[0]['vocab_size']} rows.")
        out = shapes_at[g["output"]]
        self.head = self._head(g)
        k = 2 if self.head == "sigmoid" else out[-1]
        if len(out) != 1 or int(num_classes) != k:
            raise ValueError(f"ImportedModel: the output {g['output']!r} has shape {out} after the batch axis; "
                             f"expected (num_classes,) = ({num_classes},) ({k} classes).")
        self.num_classes = int(num_classes)
        self.layers = nnx.Dict({n["name"]: m for n in g["nodes"] if (m := _module(n, rngs)) is not None})

    @staticmethod
    def _head(g: Mapping) -> str | None:
        """What :meth:`__call__` leaves off the output node: ``"softmax"``, ``"log_softmax"``, ``"sigmoid"`` (one
        unit), or None."""
        last = next(n for n in g["nodes"] if n["name"] == g["output"])
        fn = last.get("fn") if last["op"] == "activation" else last.get("activation") if last["op"] == "dense" \
            else None
        if fn in HEADS and last.get("axis", -1) == -1:
            return fn
        if fn == "sigmoid" and infer_shapes(g, min_length(g))[g["output"]] == (1,):
            return "sigmoid"
        return None

    @property
    def graph(self) -> dict:
        """The parsed layer graph (module docstring)."""
        return parsed(self.graph_json)

    # ------------------------------------------------------------------------------------------ weights

    def load_params(self, params: Mapping[str, Mapping[str, Any]]) -> None:
        """Set the weights: ``{node: {"table" | "kernel" | "bias": array}}`` in the shapes of the module docstring.

        Raises:
          ValueError: a node or weight the graph lacks, or an array of the wrong shape (naming both shapes).
        """
        for name, arrays in params.items():
            if name not in self.layers:
                raise ValueError(f"load_params: {name!r} is not a layer with weights; those are {list(self.layers)}.")
            module = self.layers[name]
            for key, value in arrays.items():
                target = getattr(module, key, None)
                if not isinstance(target, nnx.Param):
                    raise ValueError(f"load_params: layer {name!r} ({type(module).__name__}) has no weight {key!r}.")
                value = np.asarray(value, np.float32)
                if value.shape != tuple(target.shape):
                    raise ValueError(f"load_params: {name}/{key} has shape {value.shape}; the layer needs "
                                     f"{tuple(target.shape)}.")
                target[...] = jnp.asarray(value)

    # ------------------------------------------------------------------------------------------ compute

    def embed(self, tokens: Int[Array, "B L"]) -> Float[Array, "B L D"]:
        """The vectors of the embedding that reads the token ids ``(B, L)`` -> ``(B, L, D)``."""
        return self.layers[self.embedding_name](tokens)

    def _run(self, tokens: jax.Array) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Every node's value, and every dense/activation output node's value before its activation."""
        g = self.graph
        tokens = jnp.asarray(tokens)
        env: dict[str, jax.Array] = {g["input"]: tokens}
        pre: dict[str, jax.Array] = {}
        mask = tokens != 0                                                            # (B, L)
        for node in g["nodes"]:
            name, op = node["name"], node["op"]
            xs = [env[s] for s in node.get("inputs", [])]
            x = xs[0] if xs else None
            if op == "embedding":
                y = self.embed(x) if name == self.embedding_name else self.layers[name](x)
            elif op in ("conv1d", "conv2d", "max_pool1d", "avg_pool1d"):
                y = self.layers[name](x)
            elif op == "dense":
                pre[name] = self.layers[name](x)
                fn = ACTIVATIONS[node.get("activation") or "linear"]
                y = pre[name] if fn is None else fn(pre[name])
            elif op == "activation":
                fn = ACTIVATIONS[node["fn"]]
                pre[name] = x
                y = x if fn is None else fn(x, axis=node.get("axis", -1)) if node["fn"] in HEADS else fn(x)
            elif op in ("global_max_pool", "global_avg_pool"):
                y = self._global_pool(node, x, mask)
            elif op == "concatenate":
                y = jnp.concatenate(xs, axis=int(node["axis"]))
            elif op == "flatten":
                y = x.reshape(x.shape[0], -1)
            elif op == "reshape":
                y = x.reshape(x.shape[0], *[int(s) for s in node["shape"]])
            elif op == "transpose":
                y = jnp.transpose(x, [int(p) for p in node["perm"]])
            else:                                                                     # identity
                y = x
            env[name] = y
        return env, pre

    @staticmethod
    def _global_pool(node: Mapping, x: jax.Array, mask: jax.Array) -> jax.Array:
        axis = axis_of(node.get("axis", 1), x.ndim, f"node {node['name']!r}")
        keep = bool(node.get("keepdims", False))
        if node.get("masked"):
            if axis != 1 or x.shape[1] != mask.shape[1]:
                raise ValueError(f"layer graph: node {node['name']!r} is masked but pools axis {axis} of shape "
                                 f"{x.shape}; the mask covers axis 1 of the {mask.shape[1]} token positions.")
            m = mask.reshape(mask.shape + (1,) * (x.ndim - 2))                        # (B, L, 1...)
            if node["op"] == "global_max_pool":
                return jnp.where(m, x, -jnp.inf).max(axis=1, keepdims=keep)
            m = m.astype(x.dtype)                                                     # a row of padding alone: 0 / 0,
            return (x * m).sum(axis=1, keepdims=keep) / m.sum(axis=1, keepdims=keep)  # NaN, as Keras computes it
        return x.max(axis=axis, keepdims=keep) if node["op"] == "global_max_pool" else x.mean(axis=axis, keepdims=keep)

    def __call__(self, tokens: Int[Array, "B L"], *, deterministic: bool = True,
                 dropout_key: jax.Array | None = None) -> Float[Array, "B K"]:
        """Logits ``(B, num_classes)`` of token ids ``(B, L)``: the output with a final softmax left off (see the
        module docstring). Dropout is the identity (an imported model is used for inference)."""
        env, pre = self._run(tokens)
        out = self.graph["output"]
        if self.head in HEADS:
            return pre[out]
        if self.head == "sigmoid":
            z = pre[out]                                                              # (B, 1)
            return jnp.concatenate([jnp.zeros_like(z), z], axis=-1)                   # (B, 2)
        return env[out]

    def source_output(self, tokens: Int[Array, "B L"]) -> Float[Array, "B K"]:
        """Exactly what the source model returns for token ids ``(B, L)`` (probabilities after a softmax)."""
        env, _ = self._run(tokens)
        return env[self.graph["output"]]

    def check_tokens(self, tokens) -> None:
        """Raise ValueError when concrete ids lie outside ``[0, vocab_size)`` or the input is shorter than
        :attr:`min_length` (the model's shortest input)."""
        t = np.asarray(tokens)
        V = self.layers[self.embedding_name].vocab_size
        bad = np.argwhere((t < 0) | (t >= V))
        if bad.size:
            pos = tuple(int(i) for i in bad[0])
            raise ValueError(f"tokens{list(pos)} = {int(t[pos])} is outside the vocabulary [0, {V}).")
        if t.shape[-1] < self.min_length:
            infer_shapes(self.graph, t.shape[-1])


class ImportedAdapter(DumpAdapter):
    """The dump adapter of :class:`ImportedModel`: the convs that read the embedding (through identity layers), and
    class weights where a conv's max-pooled values go straight (through a concatenation, dropout or flatten) into
    the output dense layer."""

    def embedded_layers(self, model: nnx.Module) -> list[str]:
        g = model.graph
        by_name = {n["name"]: n for n in g["nodes"]}

        def source(name):
            while name in by_name and by_name[name]["op"] == "identity":
                name = by_name[name]["inputs"][0]
            return name

        return [f"layers/{n['name']}" for n in g["nodes"]
                if n["op"] == "conv1d" and source(n["inputs"][0]) == model.embedding_name]

    def class_weights(self, model: nnx.Module, layer: str) -> np.ndarray | None:
        rows = _pooled_rows(model.graph, layer.split("/", 1)[1])
        if rows is None:
            return None
        dense, start, stop = rows
        kernel = np.asarray(model.layers[dense].kernel[...], np.float32)[start:stop]   # (F, units)
        if model.head == "sigmoid":
            kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)          # (F, 2), as the logits [0, z]
        return kernel


def _pooled_rows(g: Mapping, conv: str) -> tuple[str, int, int] | None:
    """``(dense node, first row, end row)`` of the output dense kernel that reads conv ``conv``'s max-pooled values,
    or None when the path from the conv to the output is not conv -> [activation] -> global max -> [concatenate,
    identity, flatten] -> dense (the output, or followed only by its final activation)."""
    nodes = {n["name"]: n for n in g["nodes"]}
    readers: dict[str, list[str]] = {}
    for n in g["nodes"]:
        for s in n.get("inputs", []):
            readers.setdefault(s, []).append(n["name"])
    shapes_at = infer_shapes(g, min_length(g))
    name, offset, pooled = conv, 0, False
    while True:
        nxt = readers.get(name, [])
        if len(nxt) != 1:
            return None
        node = nodes[nxt[0]]
        op = node["op"]
        if op == "global_max_pool" and not pooled and int(node.get("axis", 1)) == 1 and not node.get("masked"):
            pooled = True
        elif op == "activation" and not pooled and node["fn"] == "linear":
            pass
        elif op == "identity" or (op == "flatten" and pooled and len(shapes_at[name]) == 1):
            pass
        elif op == "concatenate" and pooled and int(node["axis"]) in (-1, 1):
            offset += sum(shapes_at[s][-1] for s in node["inputs"][:node["inputs"].index(name)])
        elif op == "dense" and pooled:
            tail = readers.get(node["name"], [])
            if node["name"] != g["output"] and not (len(tail) == 1 and tail[0] == g["output"]
                                                    and nodes[tail[0]]["op"] == "activation"):
                return None
            return node["name"], offset, offset + shapes_at[conv][-1]
        else:
            return None
        name = node["name"]


register(ModelKind(
    name="imported",
    cls=ImportedModel,
    fields=("graph", "max_length"),
    task="classify",
    # The shortest input every conv and pool accepts; a source that fixes its length (a Flatten before a Dense,
    # or the length it was exported or padded at) reads only that one.
    input_length=lambda m: (min_length(parse_graph(m.graph)), int(m.max_length) or None),
    adapter=ImportedAdapter(),
))
