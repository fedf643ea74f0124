"""What computes each conv of a model: :func:`algorithm_of` for ``explain``'s table, and :func:`measure_algorithms`,
which lets ``impl="auto"`` (and a model's ``conv_impl="auto"``) measure every shape a call will meet, before ``jit``.

Both read a conv's input as the layer computes it: batch axes flattened, channels-last ``(N, *spatial, C)``, in the
promoted dtype, with non-zero padding modes applied (their padding becomes part of the input).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

from jaxconv.nn import algorithms, multi_width

__all__ = ["algorithm_of", "measure_algorithms", "uses_auto"]


def _auto_spec(model: nnx.Module, conv, input_shape, input_dtype, pads):
    """``("fused" | "parallel" | "conv" | <algorithm>, kwargs)``: how ``conv`` is computed in ``model`` for this input,
    with what ``auto`` looks up (kwargs of :func:`multi_width.measure_parallel` or :func:`algorithms.measure`)."""
    n = conv.num_spatial
    shape = tuple(input_shape)
    if conv.data_format == "channels_first":
        shape = (*shape[:-n - 1], *shape[-n:], shape[-n - 1])
    x_shape = (math.prod(shape[:-n - 1]), *shape[-n - 1:])                     # (N, *spatial, C) as the layer sees it
    dtype = jnp.dtype(conv.dtype) if conv.dtype is not None else jnp.result_type(input_dtype, conv.kernel.dtype)
    parallel = getattr(model, "convs", None)
    model_impl = getattr(model, "conv_impl", None)
    if model_impl in ("fused", "auto") and parallel is not None and any(c is conv for c in parallel) \
            and multi_width.fusable(list(parallel)) is None:
        if model_impl == "fused":
            return "fused", {}
        return "parallel", dict(x_shape=x_shape, kernel_shapes=tuple(tuple(c.kernel.shape) for c in parallel),
                                dtype=dtype, precision=conv.precision)
    if conv.impl != "auto":
        return conv.impl, {}
    if conv.padding_mode != "zeros":
        x_shape = (x_shape[0], *(L + lo + hi for L, (lo, hi) in zip(x_shape[1:-1], pads)), x_shape[-1])
        pads = ((0, 0),) * n
    return "conv", dict(x_shape=x_shape, kernel_shape=tuple(conv.kernel.shape), dtype=dtype, stride=conv.stride,
                        pads=tuple(tuple(p) for p in pads), dilation=conv.dilation, groups=conv.groups,
                        precision=conv.precision)


def _lookup(kind: str, spec: dict):
    if kind == "parallel":
        return algorithms.lookup(multi_width._key(spec["x_shape"], spec["kernel_shapes"], spec["dtype"],
                                                  spec["precision"]))
    return algorithms.measured(**spec)


def algorithm_of(model: nnx.Module, conv, input_shape, input_dtype, pads) -> str | None:
    """What computes ``conv`` for an input of this shape and dtype (``LayerRow.algorithm``); no compute."""
    if getattr(conv, "impl", None) is None:
        return None
    kind, spec = _auto_spec(model, conv, input_shape, input_dtype, pads)
    if kind not in ("parallel", "conv"):
        return kind
    hit = _lookup(kind, spec)
    return f"auto: {hit.choice}" if hit is not None else "auto: not measured (xla under jit)"


def uses_auto(model: nnx.Module) -> bool:
    """Whether a conv of ``model`` (or the model's ``conv_impl``) computes by ``"auto"``: the static attributes only."""
    return getattr(model, "conv_impl", None) == "auto" or any(
        getattr(m, "impl", None) == "auto" for _, m in nnx.iter_graph(model))


def measure_algorithms(model: nnx.Module, x_or_shape, *, dtype=None) -> dict[str, algorithms.Measurement]:
    """Measure now, outside ``jit``, every choice ``auto`` will make when ``model`` is called on inputs like
    ``x_or_shape`` (an array, a ``jax.ShapeDtypeStruct``, or a shape with ``dtype``): ``{conv path: measurement}``
    for the convs that ``auto`` computes (already measured shapes are not measured again). The trainer calls it for
    every shape it compiles; without it a shape met first under ``jit`` runs ``"xla"``."""
    from jaxconv.inspection._explain import explain
    from jaxconv.inspection._trace import _modules_by_path

    if not uses_auto(model):
        return {}
    modules = _modules_by_path(model)
    out = {}
    rows = [r for r in explain(model, x_or_shape, dtype=dtype).rows if r.is_conv and r.padding is not None]
    for r in rows:
        kind, spec = _auto_spec(model, modules[r.path], r.input_shape, r.input_dtype, r.padding)
        if kind == "parallel":
            out[r.path] = multi_width.measure_parallel(**spec)
        elif kind == "conv":
            out[r.path] = _lookup(kind, spec) or algorithms.measure(**spec)
    return out
