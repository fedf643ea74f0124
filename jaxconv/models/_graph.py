"""The layer graph of an imported model, in plain Python: :func:`parse_graph` checks one, :func:`infer_shapes`
gives every node's shape for an input length (the format is in :mod:`jaxconv.models.imported`'s docstring)."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxconv import shapes

__all__ = ["ACTIVATIONS", "OPS", "HEADS", "parse_graph", "parsed", "infer_shapes", "min_length", "pad", "axis_of"]

#: Activation names of the graph -> functions, with the source frameworks' own definitions (``gelu`` is exact).
ACTIVATIONS = {
    "linear": None, "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "elu": jax.nn.elu,
    "selu": jax.nn.selu, "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True), "softplus": jax.nn.softplus, "silu": jax.nn.silu,
    "relu6": jax.nn.relu6, "softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
}
#: Each op's required settings (beyond ``name``, ``op``, ``inputs``).
OPS = {
    "embedding": ("vocab_size", "dim"),
    "conv1d": ("in_channels", "filters", "kernel_size"),
    "conv2d": ("in_channels", "filters", "kernel_size"),
    "dense": ("in_features", "units"),
    "activation": ("fn",),
    "max_pool1d": ("pool_size",), "avg_pool1d": ("pool_size",),
    "global_max_pool": (), "global_avg_pool": (),
    "concatenate": ("axis",), "flatten": (), "reshape": ("shape",), "transpose": ("perm",), "identity": (),
}
_NAME = re.compile(r"[A-Za-z0-9_.\-]+$")
#: Final activations that :meth:`ImportedModel.__call__` leaves off (logits keep their argmax and softmax).
HEADS = ("softmax", "log_softmax")


def parse_graph(graph: str | Mapping) -> dict:
    """A layer graph (JSON text or dict) checked: known ops, their settings, names, inputs before readers.

    Raises:
      ValueError: one line naming the node and what is wrong.
    """
    if isinstance(graph, str):
        try:
            graph = json.loads(graph)
        except json.JSONDecodeError as e:
            raise ValueError(f"config.model.graph is not JSON ({e}); expected the layer graph jaxconv import wrote.") \
                from None
    if not isinstance(graph, Mapping) or not {"input", "output", "nodes"} <= set(graph):
        raise ValueError("config.model.graph must be a dict with 'input', 'output' and 'nodes'; got "
                         f"{type(graph).__name__} with keys {sorted(graph) if isinstance(graph, Mapping) else '-'}.")
    seen = {graph["input"]}
    for node in graph["nodes"]:
        name, op = node.get("name"), node.get("op")
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            raise ValueError(f"layer graph: node name {name!r} is not usable; expected a new name of letters, digits, "
                             f"'_', '.', '-'.")
        if op not in OPS:
            raise ValueError(f"layer graph: node {name!r} has op={op!r}; expected one of {', '.join(OPS)}.")
        missing = [k for k in OPS[op] if k not in node]
        if missing:
            raise ValueError(f"layer graph: node {name!r} ({op}) lacks {', '.join(missing)}.")
        for src in node.get("inputs", []):
            if src not in seen:
                raise ValueError(f"layer graph: node {name!r} reads {src!r}, which no earlier node makes.")
        fn = node.get("fn", node.get("activation"))
        if fn is not None and fn not in ACTIVATIONS:
            raise ValueError(f"layer graph: node {name!r} has activation {fn!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}.")
        seen.add(name)
    if graph["output"] not in seen:
        raise ValueError(f"layer graph: output {graph['output']!r} is not a node.")
    return dict(graph)


def pad(p):
    """A JSON padding (a string, [lo, hi], or per axis [[lo, hi], ...]) as the tuples jaxconv takes."""
    if isinstance(p, str):
        return p
    return tuple(pad(q) if isinstance(q, list) else int(q) for q in p)


def axis_of(axis: int, rank: int, where: str) -> int:
    a = int(axis) + rank if int(axis) < 0 else int(axis)
    if not 1 <= a < rank:
        raise ValueError(f"layer graph: {where}: axis={axis} is not an axis after the batch axis of a rank-{rank} "
                         f"value.")
    return a


def _conv_shape(node, x, where):
    n = 1 if node["op"] == "conv1d" else 2
    if len(x) != n + 1 or x[-1] != node["in_channels"]:
        raise ValueError(f"input shape {x} (after the batch axis); expected {n} position axes and "
                         f"in_channels={node['in_channels']} last.")
    ks = shapes.per_axis_ints(node["kernel_size"], n, name="kernel_size")
    st = shapes.per_axis_ints(node.get("stride", 1), n, name="stride")
    dl = shapes.per_axis_ints(node.get("dilation", 1), n, name="dilation")
    pads = shapes.normalize_padding(pad(node.get("padding", "valid")), n)
    return (*(shapes.conv_output_length(L, k, stride=s, dilation=d, padding=p)
              for L, k, s, d, p in zip(x[:-1], ks, st, dl, pads)), int(node["filters"]))


def _pool_shape(node, x, where):
    k = int(node["pool_size"])
    return (shapes.conv_output_length(x[0], k, stride=int(node.get("stride") or k),
                                      padding=pad(node.get("padding", "valid"))), *x[1:])


def _global_shape(node, x, where):
    a = axis_of(node.get("axis", 1), len(x) + 1, where) - 1
    return tuple(1 if i == a else s for i, s in enumerate(x) if i != a or node.get("keepdims", False))


def _dense_shape(node, x, where):
    if x[-1] != node["in_features"]:
        raise ValueError(f"input shape {x} (after the batch axis); expected in_features={node['in_features']} last.")
    return (*x[:-1], int(node["units"]))


def _concat_shape(node, x, where, ins):
    a = axis_of(node["axis"], len(x) + 1, where) - 1
    if any(len(s) != len(x) or s[:a] + s[a + 1:] != x[:a] + x[a + 1:] for s in ins):
        raise ValueError(f"inputs of shapes {ins} (after the batch axis) differ off axis {a + 1}.")
    return (*x[:a], sum(s[a] for s in ins), *x[a + 1:])


def _reshape_shape(node, x, where):
    shape = [int(s) for s in node["shape"]]
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        shape[shape.index(-1)] = math.prod(x) // max(known, 1)
    if math.prod(shape) != math.prod(x):
        raise ValueError(f"input shape {x} (after the batch axis) cannot become {tuple(node['shape'])}.")
    return tuple(shape)


def _transpose_shape(node, x, where):
    perm = [int(p) for p in node["perm"]]
    if sorted(perm) != list(range(len(x) + 1)) or perm[0] != 0:
        raise ValueError(f"perm={perm} is not a permutation of the {len(x) + 1} axes keeping axis 0.")
    return tuple(x[p - 1] for p in perm[1:])


#: op -> (node, first input's shape, where) -> output shape (after the batch axis); other ops keep the shape.
_SHAPE_RULES = {
    "embedding": lambda node, x, where: (*x, int(node["dim"])),
    "conv1d": _conv_shape, "conv2d": _conv_shape, "max_pool1d": _pool_shape, "avg_pool1d": _pool_shape,
    "global_max_pool": _global_shape, "global_avg_pool": _global_shape, "dense": _dense_shape,
    "flatten": lambda node, x, where: (math.prod(x),), "reshape": _reshape_shape, "transpose": _transpose_shape,
}


def infer_shapes(graph: Mapping, length: int) -> dict[str, tuple[int, ...]]:
    """Every node's output shape after the batch axis, for token ids of ``length`` positions, in plain Python.

    Raises:
      ValueError: the input is too short for a convolution or pool (the formula with its numbers), or the settings
        disagree with the shapes (naming the node).
    """
    out: dict[str, tuple[int, ...]] = {graph["input"]: (int(length),)}
    for node in graph["nodes"]:
        name, op = node["name"], node["op"]
        ins = [out[s] for s in node.get("inputs", [])]
        x = ins[0] if ins else None
        where = f"node {name!r} ({op})"
        try:
            if op == "concatenate":
                y = _concat_shape(node, x, where, ins)
            else:
                y = _SHAPE_RULES[op](node, x, where) if op in _SHAPE_RULES else x
        except ValueError as e:
            raise ValueError(f"layer graph: {where}: {e}") from None
        out[name] = tuple(int(s) for s in y)
    return out


@functools.lru_cache(maxsize=64)
def parsed(text: str) -> dict:
    return parse_graph(text)


def min_length(graph: Mapping, limit: int = 4096) -> int:
    """The shortest token-id length every convolution and pool of the graph accepts (1 when all do)."""
    for L in range(1, limit + 1):
        try:
            infer_shapes(graph, L)
            return L
        except ValueError:
            continue
    infer_shapes(graph, limit)                                                        # raises, with the formula
    return limit
