"""Tracing machinery shared by the inspection tools (no public names).

- paths: ``'/'``-joined nnx paths of a model's modules (:func:`_modules_by_path`);
- :func:`_patched_calls`: route a module class's ``__call__`` (or another method) through a hook;
- :class:`_ConvView` / :func:`_conv_view`: one view of jaxconv convs, ``flax.nnx.Conv`` and pooling windows;
- :class:`_Recorder` / :func:`_trace`: every module call of ``model(x)`` under ``jax.eval_shape``, with the input and
  output shapes and the receptive field propagated through the calls (:func:`_input_rf`);
- :func:`_as_struct`: an example input, a ``jax.ShapeDtypeStruct`` or a shape tuple, as a ``jax.ShapeDtypeStruct``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import shapes
from jaxconv.nn.conv import ConvND


# ----------------------------------------------------------------------------------------------------------------
# Paths and patched __call__
# ----------------------------------------------------------------------------------------------------------------


def _path_str(path: Sequence) -> str:
    return "/".join(str(p) for p in path)


def _takes_token_ids(model: nnx.Module) -> bool:
    """Whether ``model`` reads token ids: an ``nnx.Embed`` inside, or an ``embed(tokens)`` method (as TextCNN)."""
    return callable(getattr(model, "embed", None)) or any(isinstance(m, nnx.Embed) for _, m in nnx.iter_modules(model))


def _modules_by_path(model: nnx.Module) -> dict[str, nnx.Module]:
    return {_path_str(path): m for path, m in nnx.iter_modules(model)}


def _method_owner(cls: type, name: str = "__call__") -> type | None:
    """The class in ``cls``'s MRO that defines method ``name`` (None when no class but ``object`` does)."""
    for klass in cls.__mro__:
        if klass is object:
            return None
        if name in vars(klass):
            return klass
    return None


@contextlib.contextmanager
def _patched_calls(modules: Iterable[nnx.Module], hook: Callable, method: str = "__call__"):
    """Temporarily route ``method`` (default ``__call__``) of these modules' classes through
    ``hook(orig, self, args, kwargs)``.

    The classes are patched (instances cannot override dunder methods), so the hook must pass calls of other
    instances straight to ``orig``. Restored on exit, in reverse order, so patches nest.
    """
    owners = []
    for m in modules:
        owner = _method_owner(type(m), method)
        if owner is not None and owner not in owners:
            owners.append(owner)
    originals = [(owner, vars(owner)[method]) for owner in owners]
    for owner, orig in originals:
        def make(orig):
            @functools.wraps(orig)
            def wrapper(self, *args, **kwargs):
                return hook(orig, self, args, kwargs)
            return wrapper
        setattr(owner, method, make(orig))
    try:
        yield
    finally:
        for owner, orig in reversed(originals):
            setattr(owner, method, orig)


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _arrays(tree) -> list:
    return [leaf for leaf in jax.tree.leaves(tree) if _is_array(leaf)]


# ----------------------------------------------------------------------------------------------------------------
# A uniform view of convolution-like modules
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ConvView:
    num_spatial: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    channels_last: bool
    pads_fn: Callable[[tuple[int, ...]], list[tuple[int, int]] | None]
    # Only for convolutions (modules with a kernel); None for pooling windows.
    in_channels: int | None = None
    filters: int | None = None
    groups: int = 1
    use_bias: bool = False
    kernel_axes: tuple[str, ...] | None = None
    kernel_shape: tuple[int, ...] | None = None

    @property
    def is_conv(self) -> bool:
        return self.kernel_shape is not None

    def spatial_axes(self, ndim: int) -> tuple[int, ...]:
        n = self.num_spatial
        first = ndim - n - 1 if self.channels_last else ndim - n
        return tuple(range(first, first + n))


def _per_axis(v, n: int | None, name: str) -> tuple[int, ...]:
    """A module's int-or-tuple attribute per spatial axis; None (flax's default for strides, dilations) means 1."""
    return shapes.per_axis_ints(1 if v is None else v, n, name=name)


def _padding_for(m, n: int, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(lo, hi)`` per spatial axis from a module's ``padding_for`` (an int and a pair for 1-D, tuples for N-D)."""
    p = m.padding_for(spatial[0] if n == 1 else spatial)
    return [tuple(p)] if n == 1 else [tuple(a) for a in p]


def _conv_view(m) -> _ConvView | None:
    """A :class:`_ConvView` for jaxconv convs, ``flax.nnx.Conv``, and pooling-like modules that expose
    ``kernel_size``, ``stride`` and ``padding_for(spatial)`` (as jaxconv convs do). None for anything else."""
    if isinstance(m, ConvND):
        n = m.num_spatial
        return _ConvView(n, tuple(m.kernel_size), tuple(m.stride), tuple(m.dilation), m.data_format == "channels_last",
                         functools.partial(_padding_for, m, n), in_channels=m.in_channels, filters=m.filters, groups=m.groups, use_bias=m.use_bias,
                         kernel_axes=tuple(m.kernel_axes), kernel_shape=tuple(m.kernel.shape))
    if isinstance(m, nnx.Conv):
        ks = _per_axis(m.kernel_size, None, "kernel_size")
        n = len(ks)
        stride, dil = _per_axis(m.strides, n, "strides"), _per_axis(m.kernel_dilation, n, "kernel_dilation")

        def pads(spatial, m=m, n=n, ks=ks, stride=stride, dil=dil):
            if _per_axis(m.input_dilation, n, "input_dilation") != (1,) * n:
                return None
            p = m.padding
            if isinstance(p, str):
                kind = {"SAME": "same", "VALID": "valid", "CAUSAL": "causal"}.get(p.upper())
                if kind is None:  # CIRCULAR / REFLECT: the padded values are not zeros; no receptive field here.
                    return None
                return [shapes.resolve_padding(L, k, stride=s, dilation=d, padding=kind)
                        for L, k, s, d in zip(spatial, ks, stride, dil)]
            if isinstance(p, int):
                return [(p, p)] * n
            return [(int(lo), int(hi)) for lo, hi in p]

        axes = ("width", "in", "out") if n == 1 else ("height", "width", "in", "out") if n == 2 else (
            *(f"s{i}" for i in range(n)), "in", "out")
        return _ConvView(n, ks, stride, dil, True, pads, in_channels=m.in_features, filters=m.out_features,
                         groups=m.feature_group_count, use_bias=m.use_bias, kernel_axes=axes,
                         kernel_shape=tuple(m.kernel.shape))
    # Duck-typed pooling window (no kernel parameter).
    ks = getattr(m, "kernel_size", None)
    if ks is not None and hasattr(m, "stride") and callable(getattr(m, "padding_for", None)):
        ks = _per_axis(ks, None, "kernel_size")
        n = len(ks)
        return _ConvView(n, ks, _per_axis(m.stride, n, "stride"), _per_axis(getattr(m, "dilation", 1), n, "dilation"),
                         getattr(m, "data_format", "channels_last") == "channels_last",
                         functools.partial(_padding_for, m, n))
    return None


# ----------------------------------------------------------------------------------------------------------------
# Tracing: record every module call under jax.eval_shape
# ----------------------------------------------------------------------------------------------------------------


def _as_struct(x_or_shape, dtype=None) -> jax.ShapeDtypeStruct:
    if isinstance(x_or_shape, jax.ShapeDtypeStruct):
        return x_or_shape if dtype is None else jax.ShapeDtypeStruct(x_or_shape.shape, dtype)
    if _is_array(x_or_shape):
        return jax.ShapeDtypeStruct(tuple(x_or_shape.shape), dtype or x_or_shape.dtype)
    if isinstance(x_or_shape, Sequence) and all(shapes.is_integral(s) for s in x_or_shape):
        return jax.ShapeDtypeStruct(tuple(int(s) for s in x_or_shape), dtype or jnp.float32)
    raise TypeError(f"x_or_shape must be an array, a jax.ShapeDtypeStruct or a shape tuple of ints; got {x_or_shape!r}.")


# A receptive field state: {axis index of the array: (size, jump, start)}, one entry per tracked spatial axis.
_RF = dict


class _Recorder:
    def __init__(self, paths: dict[int, str], model_input):
        self.paths = paths          # id(module copy) -> path string
        self.input_rf = _input_rf(model_input)
        self.input_prefix = tuple(model_input.shape[: max(self.input_rf, default=0) + 1])
        self.active: list[int] = []
        self.calls: dict[str, int] = {}
        self.records: list[dict] = []
        self.known: list[tuple[Any, tuple, _RF]] = []  # (array, shape, rf); arrays kept alive so ids stay unique
        self.by_id: dict[int, _RF] = {}

    def remember(self, arr, rf: _RF | None):
        """Note an array's rf (None = known to have none, which stops the shape fallbacks)."""
        if not _is_array(arr):
            return
        self.known.append((arr, tuple(arr.shape), rf))
        self.by_id[id(arr)] = rf

    def lookup(self, arr) -> _RF | None:
        """The rf of an array: by identity; else (it was made outside any module: relu, a mask, a residual add, a
        gated unit that halves the channels) the rf of the most recent module output with the same shape on every
        axis but the last (the same batch and positions, any channel count); else, when its leading axes equal the
        model input's batch and position axes (an embedding lookup or a channel concat done in plain jnp), the
        identity field of the input; else None.

        The most recent output is the right one for residual stacks: in ``h + glu(conv(h))`` the gated term comes
        from the conv, whose field contains its input's, so the sum's field is the conv's."""
        if arr is None:
            return None
        if id(arr) in self.by_id:
            return self.by_id[id(arr)]
        if not _is_array(arr):
            return None
        shape = tuple(arr.shape)
        for _, s, rf in reversed(self.known):
            if s[:-1] == shape[:-1] and len(s) == len(shape):
                return rf
        if self.input_rf and len(shape) > len(self.input_prefix) and shape[: len(self.input_prefix)] == self.input_prefix:
            return self.input_rf
        return None

    def hook(self, orig, module, args, kwargs):
        path = self.paths.get(id(module))
        if path is None or id(module) in self.active:
            return orig(module, *args, **kwargs)
        call = self.calls.get(path, 0)
        self.calls[path] = call + 1
        ins = _arrays((args, kwargs))
        x = ins[0] if ins else None
        rec = dict(module=module, path=path, call=call, depth=len(self.active), x=x, n_before=len(self.records))
        self.records.append(rec)
        in_rf = self.lookup(x)
        self.active.append(id(module))
        try:
            out = orig(module, *args, **kwargs)
        finally:
            self.active.pop()
        outs = _arrays(out)
        y = outs[0] if outs else None
        rec["y"] = y
        has_children = len(self.records) > rec["n_before"] + 1
        view = _conv_view(module)
        out_rf = None
        if view is not None and x is not None and y is not None and x.ndim >= view.num_spatial + 1:
            axes = view.spatial_axes(x.ndim)
            spatial = tuple(int(x.shape[a]) for a in axes)
            pads = view.pads_fn(spatial)
            rec["view"], rec["pads"], rec["spatial"] = view, pads, spatial
            if pads is not None and in_rf is not None and set(in_rf) == set(axes) and y.ndim == x.ndim:
                out_rf = {}
                for a, k, s, d, (lo, _) in zip(axes, view.kernel_size, view.stride, view.dilation, pads):
                    out_rf[a] = tuple(shapes.compose_field(shapes.ReceptiveField(*in_rf[a]), k, stride=s, dilation=d,
                                                           lo=lo))
        elif has_children:
            out_rf = self.lookup(y)
        elif in_rf is not None and x is not None and y is not None:
            top = max(in_rf) + 1
            if y.ndim >= x.ndim and tuple(y.shape[:top]) == tuple(x.shape[:top]):
                out_rf = in_rf
        rec["rf"] = out_rf
        self.remember(y, out_rf)
        return out


def _input_rf(x) -> _RF:
    """Positions of the model input: every axis after the batch axis for integer (token id) inputs, every axis
    between the batch axis and the channel axis for float inputs."""
    last = x.ndim if jnp.issubdtype(x.dtype, jnp.integer) else x.ndim - 1
    return {a: (1, 1, 0) for a in range(1, max(last, 1))}


def _trace(model: nnx.Module, struct: jax.ShapeDtypeStruct) -> list[dict]:
    graphdef, state = nnx.split(model)
    recorded: list[list[dict]] = []

    def run(state, x):
        m = nnx.merge(graphdef, state)
        pairs = list(nnx.iter_modules(m))
        rec = _Recorder({id(mod): _path_str(path) for path, mod in pairs}, x)
        rec.remember(x, rec.input_rf)
        with _patched_calls([mod for _, mod in pairs], rec.hook):
            out = rec.hook(lambda mod, *a, **k: mod(*a, **k), m, (x,), {})
        recorded.append(_finish(rec.records))
        return out

    jax.eval_shape(run, state, struct)
    return recorded[0]


def _finish(records: list[dict]) -> list[dict]:
    """Turn tracer-holding records into plain data (called inside the trace)."""
    out = []
    for r in records:
        x, y = r["x"], r.get("y")
        rf = r.get("rf")
        view = r.get("view")
        info = dict(path=r["path"], call=r["call"], depth=r["depth"], type=type(r["module"]).__name__,
                    module_type=type(r["module"]),
                    input_shape=None if x is None else tuple(int(s) for s in x.shape),
                    input_dtype=None if x is None else str(x.dtype),
                    output_shape=None if y is None else tuple(int(s) for s in y.shape),
                    output_dtype=None if y is None else str(y.dtype),
                    view=view, pads=r.get("pads"), spatial=r.get("spatial"), rf=None, output_spatial=None)
        if view is not None and y is not None and y.ndim >= view.num_spatial + 1:
            axes = view.spatial_axes(y.ndim)
            info["output_spatial"] = tuple(int(y.shape[a]) for a in axes)
            if rf is not None:
                info["rf"] = tuple(rf[a] for a in axes)
        out.append(info)
    return out
