"""The aten ops that only move, reshape, join or pass values, for the PyTorch importer (:mod:`jaxconv.imports.torch`).

Handlers as in :mod:`jaxconv.imports._torch_ops` (``(lw, node, a) -> (value, what it became)``). Most change only
the map of a :class:`~jaxconv.imports._torch_layout.Val` and emit nothing; ``view``/``reshape``/``flatten`` that
merge or split axes materialise torch's order first, and ``cat``/``stack`` emit one ``concatenate``.
:data:`TENSOR_HANDLERS` maps the aten op's base name to its handler.
"""

from __future__ import annotations

import numpy as np

from jaxconv.imports._torch_layout import Val

__all__ = ["TENSOR_HANDLERS", "NOOPS", "ASSERTS"]

#: ops that leave the value as it is at inference (dropout is checked to be off).
NOOPS = ("alias", "clone", "contiguous", "detach", "dropout", "lift_fresh_copy", "to", "_to_copy")
#: ops with no value that the graph needs (export's checks).
ASSERTS = ("_assert_tensor_metadata", "_assert_scalar", "_assert_async", "sym_constrain_range",
           "sym_constrain_range_for_size")


def _noop(lw, node, a):
    if lw.op_name(node) == "dropout" and a.get("train"):
        raise lw.fail(node, f"dropout with train=True runs even in eval mode (p={a.get('p')}); expected dropout that "
                            f"is off at inference (nn.Dropout, or F.dropout(x, p, training=self.training))")
    dtype = a.get("dtype")
    x = lw.value(a["self"] if "self" in a else a["input"])
    if dtype is not None and isinstance(x, Val) and x.name != lw.input_name and str(dtype) != "torch.float32":
        raise lw.fail(node, f"casts to dtype={dtype}; the graph computes in float32")
    return x, "nothing (a no-op at inference)"


def _sym_size(lw, node, a):
    v = lw.tensor(node, a["self"])
    return int(v.shape[v.dim(a["dim"])]), "nothing (a size, fixed by the example input)"


# ---------------------------------------------------------------------------------------------------- axes only
def _transpose(lw, node, a):
    x = lw.value(a["self"])
    if isinstance(x, np.ndarray):
        return np.swapaxes(x, a["dim0"], a["dim1"]), "a transposed weight"
    d0, d1 = x.dim(a["dim0"]), x.dim(a["dim1"])
    if 0 in (d0, d1) and d0 != d1:
        raise lw.fail(node, f"swaps dims {a['dim0']} and {a['dim1']}, moving the batch axis; expected dims >= 1")
    return x.transposed(d0, d1), "nothing (layout only)"


def _t(lw, node, a):
    x = lw.const(node, a["self"], "self")
    return x.T, "a transposed weight"


def _permute(lw, node, a):
    x = lw.value(a["self"])
    if isinstance(x, np.ndarray):
        return np.transpose(x, a["dims"]), "a permuted weight"
    perm = [x.dim(d) for d in a["dims"]]
    if perm[0] != 0:
        raise lw.fail(node, f"dims={list(a['dims'])} moves the batch axis; expected dims[0] == 0")
    return x.permuted(perm), "nothing (layout only)"


def _unsqueeze(lw, node, a):
    x = lw.tensor(node, a["self"])
    d = a["dim"] % (x.rank + 1)
    if d == 0:
        raise lw.fail(node, f"dim={a['dim']} adds an axis before the batch axis; expected dim >= 1")
    return x.unsqueezed(d), "nothing (layout only)"


def _squeeze(lw, node, a):
    x = lw.tensor(node, a["self"])
    dims = a.get("dim", range(x.rank))                              # squeeze.dim: an int; squeeze.dims: a list
    dims = list(dims) if isinstance(dims, (list, tuple, range)) else [dims]
    dims = [d for d in (x.dim(d) for d in dims) if x.shape[d] == 1]
    if 0 in dims:
        raise lw.fail(node, f"squeezes the batch axis (batch {x.shape[0]} in the example input); export with an "
                            f"example batch of 2 or more, or squeeze only the other axes")
    return x.dropped(dims), "nothing (layout only)"


def _reshape(lw, node, a):
    x = lw.value(a["self"])
    if isinstance(x, np.ndarray):
        return x.reshape(a.get("shape") or a.get("size")), "a reshaped weight"
    out = tuple(int(s) for s in lw.out_shape(node))
    if out[0] != x.shape[0]:
        raise lw.fail(node, f"reshapes {x.shape} to {out}, changing the batch axis; expected shape[0] == {x.shape[0]}")
    units_only = _units_only(x, out)
    if units_only is not None:
        return units_only, "nothing (adds or removes unit axes)"
    if lw.op_name(node) == "flatten":
        start, end = x.dim(a["start_dim"]), x.dim(a["end_dim"])
        dyn = x.dyn[:start] + (any(x.dyn[start:end + 1]),) + x.dyn[end + 1:]
    else:
        asked = list(a.get("shape") or a.get("size") or ())
        dyn = tuple(k > 0 and k < len(asked) and asked[k] == -1 and any(x.dyn) for k in range(len(out)))
    m = lw.g.materialise(x, lw.base(node))
    if len(out) == 2:
        n = lw.g.add(lw.base(node), "flatten", [m.name])
        what = f"flatten {x.shape} -> {out} (in torch's order)"
    else:
        n = lw.g.add(lw.base(node), "reshape", [m.name], shape=lw.g.reshape_target(out, dyn))
        what = f"reshape {x.shape} -> {out} (in torch's order)"
    return Val(n["name"], tuple(range(len(out))), out, dyn, len(out)), what


def _units_only(x: Val, out) -> Val | None:
    """The reshape as a new map when it only adds or removes unit axes, else None."""
    src = [i for i in range(1, x.rank) if x.shape[i] != 1]
    dst = [j for j in range(1, len(out)) if out[j] != 1]
    if [x.shape[i] for i in src] != [out[j] for j in dst]:
        return None
    axes, dyn = [x.axes[0]] + [None] * (len(out) - 1), [x.dyn[0]] + [False] * (len(out) - 1)
    for i, j in zip(src, dst):
        axes[j], dyn[j] = x.axes[i], x.dyn[i]
    return Val(x.name, tuple(axes), tuple(out), tuple(dyn), x.grank)


# ---------------------------------------------------------------------------------------------------- joins
def _cat(lw, node, a):
    xs = [lw.tensor(node, t) for t in a["tensors"]]
    return _concatenate(lw, node, xs, xs[0].dim(a.get("dim", 0)))


def _stack(lw, node, a):
    xs = [lw.tensor(node, t) for t in a["tensors"]]
    d = a.get("dim", 0) % (xs[0].rank + 1)
    return _concatenate(lw, node, [x.unsqueezed(d) for x in xs], d)


def _concatenate(lw, node, xs: list[Val], d: int):
    """Torch values ``xs`` joined on torch axis ``d``: one ``concatenate`` node, in the first value's layout."""
    first = xs[0]
    if len(xs) == 1:
        return first, "nothing (one tensor)"
    if d == 0:
        raise lw.fail(node, "concatenates along the batch axis; expected dim >= 1")
    order = first.order() if first.axes[d] is not None else list(range(first.rank))
    xs = [lw.g.arrange(x, order, lw.base(node)) for x in xs]
    n = lw.g.add(lw.base(node), "concatenate", [x.name for x in xs], axis=int(xs[0].axes[d]))
    dyn = tuple(any(x.dyn[i] for x in xs) for i in range(first.rank))
    return Val(n["name"], xs[0].axes, lw.out_shape(node), dyn, xs[0].grank), f"concatenate on dim {d}"


def _getitem(lw, node, a):
    parts, i = lw.value(node.args[0]), node.args[1]
    if isinstance(parts, tuple) and parts[i] is None and not node.users:
        return None, "nothing (the indices, unused)"
    if not isinstance(parts, tuple) or parts[i] is None:
        raise lw.fail(node, f"reads item {i} of {node.args[0].name!r}; only the values of max/adaptive_max_pool1d "
                            f"are imported (not their indices)")
    return parts[i], "nothing (the values)"


TENSOR_HANDLERS = {
    **{op: _noop for op in NOOPS},
    "sym_size": _sym_size, "transpose": _transpose, "t": _t, "permute": _permute, "unsqueeze": _unsqueeze,
    "squeeze": _squeeze, "view": _reshape, "reshape": _reshape, "_unsafe_view": _reshape, "flatten": _reshape,
    "cat": _cat, "stack": _stack, "getitem": _getitem,
}
