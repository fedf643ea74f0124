"""The aten ops the PyTorch importer reads, each lowered to layer-graph nodes (:mod:`jaxconv.imports.torch`).

Every handler takes the :class:`~jaxconv.imports._torch_lower.Lowering` (``lw``), the fx node and its arguments bound
by name to the op's schema (``a``), and returns ``(value, what it became)``: the torch value as a
:class:`~jaxconv.imports._torch_layout.Val` (or a numpy constant for ops on weights, or a tuple for ops that return
several), and the text for :attr:`SourceModel.layers`. :data:`HANDLERS` maps the aten op's base name to its handler
(the layers and activations here; the ops that only move or join values in :mod:`jaxconv.imports._torch_tensor_ops`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxconv.imports._torch_layout import Val
from jaxconv.imports._torch_tensor_ops import ASSERTS, NOOPS, TENSOR_HANDLERS
from jaxconv.layouts import convert

__all__ = ["HANDLERS", "NOOPS", "ASSERTS", "SUPPORTED"]

ACTIVATION_OPS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "silu": "silu", "selu": "selu",
                  "relu6": "relu6", "gelu": None, "elu": "elu", "softplus": "softplus", "hardtanh": "relu6",
                  "softmax": "softmax", "_softmax": "softmax", "log_softmax": "log_softmax",
                  "_log_softmax": "log_softmax"}


# ---------------------------------------------------------------------------------------------------- layers
def _embedding(lw, node, a):
    table = lw.const(node, a["weight"], "weight")
    ids = lw.tensor(node, a["indices"])
    if ids.name != lw.input_name or table.ndim != 2:
        raise lw.fail(node, f"looks up {ids.name!r} in a table of shape {table.shape}; expected the model's input "
                            f"ids in a (vocab, dim) table")
    n = lw.g.add(lw.base(node), "embedding", [ids.name], params={"table": table}, vocab_size=int(table.shape[0]),
                 dim=int(table.shape[1]), mask_zero=False)
    pad = a.get("padding_idx", -1)
    what = f"embedding {n['name']!r} {tuple(table.shape)}"
    if pad is not None and pad >= 0:
        what += f", padding_idx={pad} (row {pad} used as stored)"
    shape = ids.shape + (int(table.shape[1]),)
    return Val(n["name"], (0, 1, 2), shape, ids.dyn + (False,), 3), what


def _conv(lw, node, a):
    x, w = lw.tensor(node, a["input"]), lw.const(node, a["weight"], "weight")
    b = lw.const(node, a["bias"], "bias") if a.get("bias") is not None else None
    if a.get("transposed"):
        raise lw.fail(node, "is a transposed convolution; jaxconv imports forward convolutions")
    nd = w.ndim - 2
    if nd not in (1, 2) or x.rank != nd + 2:
        raise lw.fail(node, f"has a {nd}-D kernel {w.shape} over an input of shape {x.shape}; expected conv1d over "
                            f"(B, C, L) or conv2d over (B, C, H, W)")
    stride, dilation = _per_axis(a.get("stride"), nd), _per_axis(a.get("dilation"), nd)
    groups = int(a.get("groups") or 1)
    pads = _conv_padding(lw, node, a.get("padding"), w.shape[2:], dilation)
    common = dict(stride=stride, dilation=dilation, groups=groups, use_bias=b is not None, activation="linear")
    params = {"kernel": None, **({"bias": b} if b is not None else {})}
    if nd == 2 and _kim_conv(x, w, stride, dilation, groups, pads):
        # Kim's Conv2d(1, F, (k, D)) over emb.unsqueeze(1): a conv1d over the embedding's D channels.
        xin = lw.g.arrange(x, [0, 2, 3], lw.base(node))
        params["kernel"] = np.transpose(w[:, 0], (1, 2, 0))
        n = lw.g.add(lw.base(node), "conv1d", [xin.name], params=params, in_channels=int(w.shape[3]),
                     filters=int(w.shape[0]), kernel_size=int(w.shape[2]), **{**common, "stride": stride[0],
                     "dilation": dilation[0]}, padding=_pad_setting(pads[:1]))
        out = Val(n["name"], (0, 2, 1, None), lw.out_shape(node), (False, False, x.dyn[2], False), 3)
        return out, (f"conv1d {n['name']!r} ({w.shape[3]} -> {w.shape[0]}, width {w.shape[2]}): the (k, D) kernel "
                     f"spans the whole embedding")
    order = [0] + list(range(2, nd + 2)) + [1]
    xin = lw.g.arrange(x, order, lw.base(node))
    params["kernel"] = convert(w, "torch", "jaxconv", spatial_dims=nd)
    if nd == 1:
        common.update(stride=stride[0], dilation=dilation[0])
    n = lw.g.add(lw.base(node), f"conv{nd}d", [xin.name], params=params, in_channels=int(w.shape[1]) * groups,
                 filters=int(w.shape[0]), kernel_size=int(w.shape[2]) if nd == 1 else [int(k) for k in w.shape[2:]],
                 padding=_pad_setting(pads), **common)
    axes = (0, nd + 1) + tuple(range(1, nd + 1))
    dyn = (False, False) + tuple(x.dyn[2:])
    what = f"conv{nd}d {n['name']!r} ({w.shape[1] * groups} -> {w.shape[0]}, kernel {tuple(w.shape[2:])})"
    return Val(n["name"], axes, lw.out_shape(node), dyn, nd + 2), what


def _kim_conv(x: Val, w, stride, dilation, groups, pads) -> bool:
    """A Conv2d(1, F, (k, W)) whose kernel spans the whole (fixed) width W, unpadded there."""
    return (groups == 1 and w.shape[1] == 1 and x.shape[1] == 1 and w.shape[3] == x.shape[3] and not x.dyn[3]
            and pads[1] == [0, 0] and (dilation[1] == 1 or w.shape[3] == 1))


def _per_axis(v, nd: int) -> list[int]:
    v = [1] if v is None or v == [] else list(v) if isinstance(v, (list, tuple)) else [v]
    return [int(s) for s in (v * nd if len(v) == 1 else v)]


def _conv_padding(lw, node, padding, kernel, dilation) -> list[list[int]]:
    """``[[lo, hi]]`` per spatial axis; torch's ``"same"`` puts an odd extra on the right."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [[0, 0]] * nd
        if padding == "same":
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return [[t // 2, t - t // 2] for t in totals]
        raise lw.fail(node, f"padding={padding!r}; expected 'valid', 'same' or ints")
    return [[p, p] for p in _per_axis(padding if padding is not None else [0], nd)]


def _pad_setting(pads):
    if all(p == [0, 0] for p in pads):
        return "valid"
    return pads[0] if len(pads) == 1 else pads


def _pad(lw, node, a):
    module = lw.module_of(node)
    mode = a.get("mode") or {"reflection_pad1d": "reflect", "replication_pad1d": "replicate"}.get(
        lw.op_name(node), "circular")
    if module and "Conv" in module[1]:
        raise lw.fail(node, f"pads with mode {mode!r} before the convolution (padding_mode={mode!r}); jaxconv's "
                            f"convolutions pad with zeros (expected padding_mode='zeros')")
    raise lw.fail(node, "pads a tensor outside a convolution; not supported")


def _linear(lw, node, a):
    x = lw.tensor(node, a["input"])
    w = lw.const(node, a["weight"], "weight").T
    b = lw.const(node, a["bias"], "bias") if a.get("bias") is not None else None
    return _dense(lw, node, x, w, b)


def _addmm(lw, node, a):
    if a.get("beta", 1) != 1 or a.get("alpha", 1) != 1:
        raise lw.fail(node, f"beta={a.get('beta')}, alpha={a.get('alpha')}; expected 1 and 1 (a linear layer)")
    x = lw.tensor(node, a["mat1"])
    return _dense(lw, node, x, lw.const(node, a["mat2"], "mat2"), lw.const(node, a["self"], "self"))


def _matmul(lw, node, a):
    other = a.get("mat2", a.get("other"))
    return _dense(lw, node, lw.tensor(node, a["self"]), lw.const(node, other, "weight"), None)


def _dense(lw, node, x: Val, kernel, bias):
    """``x @ kernel + bias`` over torch's last axis, ``kernel (in, units)``: a ``dense`` node."""
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1] or x.rank < 2:
        raise lw.fail(node, f"multiplies an input of shape {x.shape} by a weight of shape {kernel.shape}; expected "
                            f"(in={x.shape[-1]}, units) over the last axis")
    last = x.rank - 1
    xin = x if x.axes[last] == x.grank - 1 else lw.g.arrange(x, [i for i in x.order() if i != last] + [last],
                                                           lw.base(node))
    units = int(kernel.shape[1])
    if bias is not None and np.size(bias) != units:
        raise lw.fail(node, f"has a bias of shape {np.shape(bias)}; expected ({units},)")
    params = {"kernel": kernel, **({"bias": np.reshape(bias, (units,))} if bias is not None else {})}
    n = lw.g.add(lw.base(node), "dense", [xin.name], params=params, in_features=int(kernel.shape[0]), units=units,
                 use_bias=bias is not None, activation="linear")
    out = dataclasses.replace(xin, name=n["name"], shape=xin.shape[:-1] + (units,), dyn=xin.dyn[:-1] + (False,))
    return out, f"dense {n['name']!r} ({kernel.shape[0]} -> {units})"


# ---------------------------------------------------------------------------------------------------- pools
def _reduce(lw, node, x: Val, dims, keepdim: bool, kind: str) -> Val:
    """Global ``kind`` ("max"/"avg") pools over torch axes ``dims``, each a ``global_{kind}_pool`` node."""
    dims = sorted({x.dim(d) for d in dims})
    if not dims or 0 in dims:
        raise lw.fail(node, f"reduces over dims={dims or 'all'} (shape {x.shape}), including the batch axis; "
                            f"expected a reduction over the positions (or channels) only")
    for d in dims:
        if x.axes[d] is None:
            continue                                                  # a torch-only unit axis: nothing to reduce
        n = lw.g.add(lw.base(node), f"global_{kind}_pool", [x.name], axis=int(x.axes[d]), keepdims=False,
                     masked=False)
        x = dataclasses.replace(x.reduced(d), name=n["name"])
    return x if keepdim else x.dropped(dims)


def _max_dim(lw, node, a):
    if lw.overload(node) != "dim":
        raise lw.fail(node, "takes the max of the whole tensor; expected max(dim=...) over the positions")
    x = lw.tensor(node, a["self"])
    v = _reduce(lw, node, x, [a["dim"]], bool(a.get("keepdim")), "max")
    return (v, None), f"global_max_pool over dim {a['dim']} (values)"


def _amax_mean(lw, node, a):
    x = lw.tensor(node, a["self"])
    kind = "max" if lw.op_name(node) == "amax" else "avg"
    if kind == "avg" and lw.overload(node) != "dim":
        raise lw.fail(node, "takes the mean of the whole tensor; expected mean(dim=...) over the positions")
    if a.get("dtype") is not None:
        raise lw.fail(node, f"dtype={a['dtype']}; expected the default")
    dims = list(a.get("dim") or [])
    return _reduce(lw, node, x, dims, bool(a.get("keepdim")), kind), f"global_{kind}_pool over dims {dims}"


def _adaptive(lw, node, a):
    x = lw.tensor(node, a["self"])
    kind = "max" if "max" in lw.op_name(node) else "avg"
    if list(a["output_size"]) != [1] or x.rank != 3:
        raise lw.fail(node, f"output_size={list(a['output_size'])} over shape {x.shape}; expected output_size 1 "
                            f"over (B, C, L) (a global pool)")
    v = _reduce(lw, node, x, [2], True, kind)
    return ((v, None) if kind == "max" else v), f"global_{kind}_pool (adaptive, output size 1)"


def _pool1d(lw, node, a):
    x = lw.tensor(node, a["self"])
    kind = "max" if lw.op_name(node) == "max_pool1d" else "avg"
    k = int(a["kernel_size"][0])
    s = int(a["stride"][0]) if a.get("stride") else k
    p = int(_per_axis(a.get("padding"), 1)[0])
    if x.rank != 3:
        raise lw.fail(node, f"pools an input of shape {x.shape}; expected (B, C, L)")
    if a.get("ceil_mode") or _per_axis(a.get("dilation"), 1)[0] != 1:
        raise lw.fail(node, f"ceil_mode={a.get('ceil_mode')}, dilation={a.get('dilation')}; expected "
                            f"ceil_mode=False and dilation 1")
    if p == 0 and k == x.shape[2]:
        v = _reduce(lw, node, x, [2], True, kind)
        return v, f"global_{kind}_pool (the window {k} is the whole length, so it pools any length)"
    xin = lw.g.arrange(x, [0, 2, 1], lw.base(node))
    extra = {"count_include_pad": bool(a.get("count_include_pad", True))} if kind == "avg" else {}
    n = lw.g.add(lw.base(node), f"{kind}_pool1d", [xin.name], pool_size=k, stride=s,
                 padding="valid" if p == 0 else [p, p], **extra)
    out = Val(n["name"], (0, 2, 1), lw.out_shape(node), (False, False, x.dyn[2]), 3)
    return out, f"{kind}_pool1d {n['name']!r} (window {k}, stride {s}, padding {p})"


def _activation(lw, node, a):
    op = lw.op_name(node)
    x = lw.tensor(node, a["self"] if "self" in a else a["input"])
    fn = ACTIVATION_OPS[op]
    if op == "gelu":
        fn = {"none": "gelu", "tanh": "gelu_tanh"}[a.get("approximate", "none")]
    bad = {"elu": ("alpha", "scale", "input_scale"), "softplus": ("beta",)}.get(op, ())
    if any(float(a.get(k, 1)) != 1.0 for k in bad) or (op == "hardtanh" and (a["min_val"], a["max_val"]) != (0, 6)):
        raise lw.fail(node, f"has {', '.join(f'{k}={a[k]}' for k in a if k != 'self')}; the graph's {fn} has the "
                            f"defaults (elu alpha 1, softplus beta 1, hardtanh only as relu6 (0, 6))")
    if fn in ("softmax", "log_softmax"):
        d = x.dim(a["dim"])
        if x.axes[d] is None:
            x = lw.g.materialise(x, lw.base(node))
        axis = int(x.axes[d])
        n = lw.g.add(lw.base(node), "activation", [x.name], fn=fn, axis=-1 if axis == x.grank - 1 else axis)
        return dataclasses.replace(x, name=n["name"]), f"activation {fn} over dim {d}"
    producer = lw.g.by_name.get(x.name)
    if (producer is not None and producer["op"] in ("conv1d", "conv2d", "dense")
            and producer["activation"] == "linear" and lw.sole_reader(node, a["self"])):
        producer["activation"] = fn
        return x, f"folded into {x.name!r} (activation={fn!r})"
    n = lw.g.add(lw.base(node), "activation", [x.name], fn=fn)
    return dataclasses.replace(x, name=n["name"]), f"activation {fn}"


HANDLERS = {
    **TENSOR_HANDLERS, **{op: _activation for op in ACTIVATION_OPS},
    "embedding": _embedding, "conv1d": _conv, "conv2d": _conv, "convolution": _conv, "pad": _pad,
    "reflection_pad1d": _pad, "replication_pad1d": _pad, "_pad_circular": _pad, "linear": _linear, "addmm": _addmm,
    "mm": _matmul, "matmul": _matmul, "max": _max_dim, "amax": _amax_mean, "mean": _amax_mean,
    "adaptive_max_pool1d": _adaptive, "adaptive_avg_pool1d": _adaptive, "max_pool1d": _pool1d, "avg_pool1d": _pool1d,
}

#: what the error messages list as supported (the pad ops are handled only to name padding_mode in the error).
SUPPORTED = "; ".join([
    "layers: embedding, conv1d, conv2d, convolution, linear, addmm, mm, matmul, max_pool1d, avg_pool1d, "
    "adaptive_max_pool1d/adaptive_avg_pool1d (size 1), max.dim, amax, mean.dim, cat, stack",
    "activations: " + ", ".join(op for op in ACTIVATION_OPS if not op.startswith("_")),
    "layout: transpose, t, permute, unsqueeze, squeeze, view, reshape, flatten, getitem",
    "no-ops: " + ", ".join(NOOPS) + ", sym_size, _assert_*",
])
