"""Look inside a model: the explain table, receptive fields, feature maps and saliency.

- :func:`explain` traces ``model(x)`` with ``jax.eval_shape`` (no FLOPs spent) and returns an :class:`Explanation`:
  one row per module call with shapes, kernel shape with axis names, padding ``(lo, hi)``, stride, dilation, groups,
  params, FLOPs and the receptive field in input positions (tokens).
- :func:`feature_maps` / :func:`feature_map` read conv activations through ``nnx.capture`` (the convs sow them).
- :func:`receptive_spans` maps each output position of a conv to the ``[start, end)`` input range it sees.
- :func:`saliency` differentiates one filter's pooled activation w.r.t. the embedding output.

A small stacked model::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxconv import Conv1D, explain
    >>> class Stack(nnx.Module):
    ...     def __init__(self, rngs):
    ...         self.convs = nnx.List([Conv1D(8, 8, 3, dilation=d, padding="causal", rngs=rngs) for d in (1, 2)])
    ...     def __call__(self, x):
    ...         for conv in self.convs:
    ...             x = conv(x)
    ...         return x
    >>> e = explain(Stack(nnx.Rngs(0)), (1, 20, 8))
    >>> [(r.path, r.output_shape, r.rf_size) for r in e.rows if r.is_conv]
    [('convs/0', (1, 20, 8), (3,)), ('convs/1', (1, 20, 8), (7,))]
    >>> e.formula("convs/1")
    '20 = floor((20 + 4 + 0 - 2*(3-1) - 1) / 1) + 1'
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import html
import inspect as _pyinspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv import layouts, shapes
from jaxconv._format import fmt_axes, fmt_tuple
from jaxconv.nn.conv import ConvND, PostActivation, PreActivation

__all__ = ["LayerRow", "Explanation", "explain", "feature_maps", "feature_map", "receptive_spans", "Saliency",
           "saliency", "conv_paths"]


# ----------------------------------------------------------------------------------------------------------------
# Paths, params and patched __call__
# ----------------------------------------------------------------------------------------------------------------


def _path_str(path: Sequence) -> str:
    return "/".join(str(p) for p in path)


def _modules_by_path(model: nnx.Module) -> dict[str, nnx.Module]:
    return {_path_str(path): m for path, m in nnx.iter_modules(model)}


def conv_paths(model: nnx.Module) -> list[str]:
    """Paths (``'/'``-joined nnx paths, e.g. ``"convs/0"``) of the jaxconv convolutions in ``model``, in graph order."""
    return [p for p, m in _modules_by_path(model).items() if isinstance(m, ConvND)]


def _owned_params(model: nnx.Module) -> dict[str, int]:
    """Number of ``nnx.Param`` entries owned directly by each module (not by its submodules), by path."""
    module_paths = {tuple(path) for path, _ in nnx.iter_modules(model)}
    owned = {_path_str(p): 0 for p in module_paths}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        path = tuple(path)
        for cut in range(len(path) - 1, -1, -1):
            if path[:cut] in module_paths:
                owned[_path_str(path[:cut])] += int(np.size(var.get_value()))
                break
    return owned


def _total_params(model: nnx.Module) -> int:
    return sum(int(np.size(v)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


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


def _conv_view(m) -> _ConvView | None:
    """A :class:`_ConvView` for jaxconv convs, ``flax.nnx.Conv``, and pooling-like modules that expose
    ``kernel_size``, ``stride`` and ``padding_for(spatial)`` (as jaxconv convs do). None for anything else."""
    if isinstance(m, ConvND):
        n = m.num_spatial

        def pads(spatial, m=m, n=n):
            p = m.padding_for(spatial[0] if n == 1 else spatial)
            return [tuple(p)] if n == 1 else [tuple(a) for a in p]

        return _ConvView(n, tuple(m.kernel_size), tuple(m.stride), tuple(m.dilation), m.data_format == "channels_last",
                         pads, in_channels=m.in_channels, filters=m.filters, groups=m.groups, use_bias=m.use_bias,
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

        def pads(spatial, m=m, n=n):
            p = m.padding_for(spatial[0] if n == 1 else spatial)
            return [tuple(p)] if n == 1 else [tuple(a) for a in p]

        return _ConvView(n, ks, _per_axis(m.stride, n, "stride"), _per_axis(getattr(m, "dilation", 1), n, "dilation"),
                         getattr(m, "data_format", "channels_last") == "channels_last", pads)
    return None


# ----------------------------------------------------------------------------------------------------------------
# Explanation
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One module call in an :class:`Explanation`.

    Attributes:
      path: ``'/'``-joined nnx path (``""`` for the model itself).
      type: class name.
      call: 0 for the first call of this module, 1 for the second, ...
      depth: nesting depth of the call (0 for the model).
      input_shape, output_shape: shapes of the first array argument / first array output (None if none).
      input_dtype, output_dtype: their dtypes, as strings.
      kernel: the kernel shape with axis names, e.g. ``"(width=5, in=300, out=111)"`` (convs only).
      padding: ``(lo, hi)`` per spatial axis, resolved for this call's input size (convs and pools).
      stride, dilation: per spatial axis; groups: int (convs only).
      params: ``nnx.Param`` entries owned directly by this module (0 on repeated calls: counted once).
      flops: FLOPs of this call, multiply-add = 2 and bias add = 1 per output element, activations not counted;
        None where not counted (user modules, dropout, ...). Children's FLOPs are in their own rows.
      rf_size, rf_jump, rf_start: receptive field of the output per spatial axis, in model-input positions (tokens):
        output position ``t`` sees inputs ``[rf_start + t*rf_jump, rf_start + t*rf_jump + rf_size)``. None when it
        cannot be traced back to the input (e.g. after pooling over time), and shown for conv/pool rows only.
      formula: the output-length formula with numbers, per spatial axis (convs and pools).
      is_conv: whether this row is a convolution.
      output_spatial: the output's sizes on the spatial axes (conv and pool rows).
    """

    path: str
    type: str
    call: int
    depth: int
    input_shape: tuple[int, ...] | None
    input_dtype: str | None
    output_shape: tuple[int, ...] | None
    output_dtype: str | None
    kernel: str | None = None
    kernel_shape: tuple[int, ...] | None = None
    padding: tuple[tuple[int, int], ...] | None = None
    stride: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    groups: int | None = None
    params: int = 0
    flops: int | None = None
    rf_size: tuple[int, ...] | None = None
    rf_jump: tuple[int, ...] | None = None
    rf_start: tuple[int, ...] | None = None
    formula: tuple[str, ...] | None = None
    is_conv: bool = False
    output_spatial: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        base = self.path or "(model)"
        return base if self.call == 0 else f"{base} (call {self.call + 1})"


_COLUMNS = ("path", "type", "input -> output", "kernel", "padding (lo, hi)", "stride", "dilation", "groups", "params",
            "FLOPs", "RF size / jump")
_NUMERIC = {"params", "FLOPs"}


@dataclasses.dataclass(frozen=True, repr=False)
class Explanation:
    """What :func:`explain` found: one :class:`LayerRow` per module call, in call order, plus totals.

    ``str(e)`` is a plain-text table, ``e.rich()`` a ``rich.table.Table``, and notebooks show ``e._repr_html_()``.
    A module called several times gets one row per call; its params are counted on the first.

    Attributes:
      model: class name of the model.
      input_shape, input_dtype: what the model was traced with.
      rows: the calls, in the order they started (parents before children).
      total_params: every ``nnx.Param`` entry in the model (also those of modules that were not called).
      total_flops: sum of the rows' FLOPs (rows whose FLOPs are not counted add 0).
    """

    model: str
    input_shape: tuple[int, ...]
    input_dtype: str
    rows: tuple[LayerRow, ...]
    total_params: int
    total_flops: int

    # -------------------------------------------------------------- lookup

    @property
    def conv_paths(self) -> list[str]:
        """Paths of the convolution rows (first calls), in call order."""
        return [r.path for r in self.rows if r.is_conv and r.call == 0]

    def row(self, path: str, call: int = 0) -> LayerRow:
        """The row of ``path`` (``'/'``-joined, ``""`` for the model) for its ``call``-th call (0-based)."""
        for r in self.rows:
            if r.path == path and r.call == call:
                return r
        paths = sorted({r.path for r in self.rows})
        raise ValueError(f"path={path!r} (call {call}) is not a module call of this {self.model}; the calls are on "
                         f"{', '.join(repr(p) for p in paths)}.")

    def formula(self, path: str, call: int = 0) -> str:
        """The output-length formula of the conv (or pool) at ``path``, filled in with this call's numbers.

        1-D: ``'46 = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1'``; 2-D: one formula per axis,
        ``'height: 124 = ...; width: 124 = ...'``.
        """
        r = self.row(path, call)
        if r.formula is None:
            raise ValueError(f"path={path!r} is a {r.type}, which has no output-length formula; convolution rows are "
                             f"{', '.join(repr(p) for p in self.conv_paths) or '(none)'}.")
        if len(r.formula) == 1:
            return r.formula[0]
        names = ("height", "width") if len(r.formula) == 2 else tuple(f"axis {i}" for i in range(len(r.formula)))
        return "; ".join(f"{n}: {f}" for n, f in zip(names, r.formula))

    # -------------------------------------------------------------- rendering

    def _cells(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            rf = ""
            if r.kernel is not None or r.formula is not None:
                rf = "?" if r.rf_size is None else f"{fmt_axes(r.rf_size)} / {fmt_axes(r.rf_jump)}"
            io = f"{fmt_tuple(r.input_shape)} -> {fmt_tuple(r.output_shape)}"
            pad = "" if r.padding is None else ", ".join(fmt_tuple(p) for p in r.padding)
            out.append([
                r.label, r.type, io, r.kernel or "", pad,
                "" if r.stride is None else fmt_axes(r.stride),
                "" if r.dilation is None else fmt_axes(r.dilation),
                "" if r.groups is None else str(r.groups),
                f"{r.params:,}" if r.params or r.call == 0 else "",
                "-" if r.flops is None else f"{r.flops:,}",
                rf,
            ])
        return out

    def _title(self) -> str:
        return f"{self.model}: input {fmt_tuple(self.input_shape)} {self.input_dtype}"

    def _total_cells(self) -> list[str]:
        return ["total", "", "", "", "", "", "", "", f"{self.total_params:,}", f"{self.total_flops:,}", ""]

    _NOTE = ("FLOPs: multiply-add = 2, bias add = 1 per output element, activations not counted; '-' = not counted. "
             "RF = receptive field of one output position, in model-input positions (tokens), per spatial axis.")

    def __str__(self) -> str:
        rows = [list(_COLUMNS), *self._cells(), self._total_cells()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]

        def line(cells):
            parts = [c.rjust(w) if _COLUMNS[i] in _NUMERIC else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        body = [line(r) for r in rows[1:-1]]
        return "\n".join([self._title(), line(rows[0]), rule, *body, rule, line(rows[-1]), self._NOTE])

    def __repr__(self) -> str:
        convs = len(self.conv_paths)
        return (f"Explanation({self.model}, input {fmt_tuple(self.input_shape)} {self.input_dtype}, {len(self.rows)} "
                f"calls, {convs} conv{'s' if convs != 1 else ''}, params={self.total_params:,}, "
                f"flops={self.total_flops:,})")

    def rich(self):
        """A ``rich.table.Table`` of the same rows (print it with ``rich.print``)."""
        import rich.table

        table = rich.table.Table(title=self._title(), caption=self._NOTE, show_footer=True)
        totals = self._total_cells()
        for i, col in enumerate(_COLUMNS):
            table.add_column(col, footer=totals[i], justify="right" if col in _NUMERIC else "left")
        for cells in self._cells():
            table.add_row(*cells)
        return table

    def __rich__(self):
        return self.rich()

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS)
        body = "".join("<tr>" + "".join(
            f"<td style='text-align:{'right' if _COLUMNS[i] in _NUMERIC else 'left'}'>{esc(c)}</td>"
            for i, c in enumerate(cells)) + "</tr>" for cells in self._cells())
        foot = "".join(f"<td style='text-align:right'><b>{esc(c)}</b></td>" if c else "<td></td>"
                       for c in self._total_cells())
        return (f"<table><caption>{esc(self._title())}</caption><thead><tr>{head}</tr></thead><tbody>{body}"
                f"<tr>{foot}</tr></tbody></table><p><small>{esc(self._NOTE)}</small></p>")


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
        """The rf of an array: by identity; else (it was made outside any module: relu, a mask, a residual add)
        the rf of the most recent module output of the same shape; else, when its leading axes equal the model
        input's batch and position axes (an embedding lookup or a channel concat done in plain jnp), the identity
        field of the input; else None."""
        if arr is None:
            return None
        if id(arr) in self.by_id:
            return self.by_id[id(arr)]
        if not _is_array(arr):
            return None
        shape = tuple(arr.shape)
        for _, s, rf in reversed(self.known):
            if s == shape:
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


def _linear_flops(m: nnx.Linear, input_shape) -> int:
    rows = math.prod(input_shape[:-1])
    return rows * (2 * m.in_features * m.out_features + (m.out_features if m.use_bias else 0))


def explain(model: nnx.Module, x_or_shape, *, dtype=None) -> Explanation:
    """Trace ``model(x)`` with ``jax.eval_shape`` (no FLOPs spent) and tabulate every module call.

    Args:
      model: an ``nnx.Module`` called as ``model(x)``.
      x_or_shape: an example input (only its shape and dtype are used), a ``jax.ShapeDtypeStruct``, or a shape tuple.
        Token ids ``(batch, length)`` int32 (an ``nnx.Embed`` first) give receptive fields in tokens.
      dtype: dtype for a shape tuple (default float32), or an override.

    Returns:
      An :class:`Explanation` with one row per module call (a module called twice gets two rows).

    Receptive fields follow the arrays through the calls: the model input has size 1, jump 1 at each position axis
    (axes after the batch axis for integer inputs; between batch and channel axes for float inputs); a conv or pool
    composes ``size += d*(k-1)*jump``, ``start -= lo*jump``, ``jump *= s`` on its spatial axes; a module without
    children that keeps the leading axes (embedding, dropout, dense over channels) passes the field through; a
    container's output keeps what its children produced. An array made outside any module (``relu``, a residual
    add) takes the field of the most recent module output of the same shape, or, when its leading axes are the
    input's batch and position axes (an embedding lookup done with ``jnp.take``), the input's own field. Anything
    else (pooling over time, reshapes) has no receptive field, shown as ``?`` on the conv rows that follow.
    """
    struct = _as_struct(x_or_shape, dtype)
    records = _trace(model, struct)
    owned = _owned_params(model)
    rows = []
    for r in records:
        view: _ConvView | None = r["view"]
        kw: dict[str, Any] = {}
        kw["params"] = owned.get(r["path"], 0) if r["call"] == 0 else 0
        if view is not None and r["pads"] is not None:
            pads = tuple(tuple(int(v) for v in p) for p in r["pads"])
            kw.update(padding=pads, stride=view.stride, dilation=view.dilation,
                      formula=tuple(shapes.output_length_formula(L, k, stride=s, dilation=d, padding=p)
                                    for L, k, s, d, p in zip(r["spatial"], view.kernel_size, view.stride,
                                                             view.dilation, pads)))
        elif view is not None:
            kw.update(stride=view.stride, dilation=view.dilation)
        if view is not None and view.is_conv:
            kw.update(is_conv=True, groups=view.groups, kernel_shape=view.kernel_shape,
                      kernel=fmt_tuple(f"{a}={s}" for a, s in zip(view.kernel_axes, view.kernel_shape)))
            if r["pads"] is not None and r["input_shape"] is not None:
                batch = math.prod(r["input_shape"][: len(r["input_shape"]) - view.num_spatial - 1]) or 1
                kw["flops"] = shapes.conv_flops(r["spatial"], view.in_channels, view.filters, view.kernel_size,
                                                stride=view.stride, dilation=view.dilation, padding=kw["padding"],
                                                groups=view.groups, use_bias=view.use_bias, batch=batch)
        elif issubclass(r["module_type"], nnx.Linear) and r["input_shape"] is not None:
            kw["flops"] = _linear_flops(_modules_by_path(model)[r["path"]], r["input_shape"])
        elif issubclass(r["module_type"], nnx.Embed):
            kw["flops"] = 0
        if r["rf"] is not None:
            kw.update(rf_size=tuple(a[0] for a in r["rf"]), rf_jump=tuple(a[1] for a in r["rf"]),
                      rf_start=tuple(a[2] for a in r["rf"]))
        rows.append(LayerRow(path=r["path"], type=r["type"], call=r["call"], depth=r["depth"],
                             input_shape=r["input_shape"], input_dtype=r["input_dtype"],
                             output_shape=r["output_shape"], output_dtype=r["output_dtype"],
                             output_spatial=r["output_spatial"], **kw))
    return Explanation(model=type(model).__name__, input_shape=tuple(struct.shape), input_dtype=str(struct.dtype),
                       rows=tuple(rows), total_params=_total_params(model),
                       total_flops=sum(r.flops or 0 for r in rows))


# ----------------------------------------------------------------------------------------------------------------
# Feature maps
# ----------------------------------------------------------------------------------------------------------------

_STAGES = {"pre": PreActivation, "post": PostActivation}


def _resolve_layers(model, layers) -> dict[str, ConvND]:
    convs = {p: m for p, m in _modules_by_path(model).items() if isinstance(m, ConvND)}
    if layers is None:
        return convs
    if isinstance(layers, str):
        layers = [layers]
    out = {}
    for name in layers:
        if name not in convs:
            raise ValueError(f"layer {name!r} is not a jaxconv convolution in this {type(model).__name__}; available "
                             f"conv paths: {', '.join(repr(p) for p in convs) or '(none)'}.")
        out[name] = convs[name]
    return out


def _stage(stage: str):
    if stage not in _STAGES:
        raise ValueError(f"stage={stage!r} is not known; expected 'pre' (before the activation) or 'post' (after).")
    return _STAGES[stage]


def feature_maps(model: nnx.Module, x, *, layers: str | Sequence[str] | None = None,
                 stage: str = "post") -> dict[str, Float[Array, "batch *out_spatial filters"]]:
    """Run ``model(x)`` and return the activation maps of its jaxconv convolutions.

    Args:
      model: an ``nnx.Module`` holding jaxconv ``Conv1D`` / ``Conv2D`` layers.
      x: the model input, e.g. token ids ``(batch, length)``.
      layers: conv paths to keep (``'/'``-joined nnx paths such as ``"convs/0"``); default all. Only these convs
        store their output; the others run as usual.
      stage: ``"post"`` (after the activation, default) or ``"pre"`` (before it, bias included).

    Returns:
      ``{path: map}``; a Conv1D map has shape ``(batch, out_length, filters)``, a Conv2D map
      ``(batch, out_height, out_width, filters)``, channels-last whatever the conv's ``data_format`` (leading batch
      axes are flattened into one). A conv called more than once gives ``path`` for its first call and
      ``path@1``, ``path@2``, ... for the later ones.

    Raises:
      ValueError: a path in ``layers`` that is not a jaxconv conv (the message lists the available paths), or an
        unknown ``stage``.

    Works under ``nnx.jit``: ``nnx.jit(lambda m, x: feature_maps(m, x, layers=["convs/0"]))(model, x)``.
    It reads the maps with ``nnx.capture``: each wanted conv gets ``capture_stages = (PostActivation,)`` (or
    ``PreActivation``) for the duration of the call, and sows under the name ``"feature_map"``.
    """
    kind = _stage(stage)
    wanted = _resolve_layers(model, layers)
    missing = object()
    saved = {}
    for p, m in wanted.items():
        saved[p] = vars(m).get("capture_stages", missing)
        m.capture_stages = (kind,)
    try:
        _, state = nnx.capture(model, kind)(x)
    finally:
        for p, m in wanted.items():
            if saved[p] is missing:
                del m.capture_stages
            else:
                m.capture_stages = saved[p]
    out = {}
    for path, var in nnx.to_flat_state(state):
        if not path or path[-1] != "feature_map":
            continue
        p = _path_str(path[:-1])
        if p not in wanted:
            continue
        values = var.get_value()
        values = values if isinstance(values, tuple) else (values,)
        for i, v in enumerate(values):
            out[p if i == 0 else f"{p}@{i}"] = v
    return {p: out[p] for p in wanted if p in out} | {k: v for k, v in out.items() if k not in wanted}


def _check_filter(conv: ConvND, layer: str, filter) -> int:
    if not shapes.is_integral(filter) or not -conv.filters <= filter < conv.filters:
        raise IndexError(f"filter={filter!r} is out of range for layer {layer!r}, which has filters={conv.filters}; "
                         f"expected an int with 0 <= filter < {conv.filters}.")
    return int(filter) % conv.filters


def feature_map(model: nnx.Module, x, layer: str, filter: int, *,
                stage: str = "post") -> Float[Array, "batch *out_spatial"]:
    """One filter's activation map: ``feature_maps(model, x, layers=[layer])[layer][..., filter]``.

    Returns:
      Conv1D: ``(batch, out_length)``; Conv2D: ``(batch, out_height, out_width)``.

    Raises:
      IndexError: ``filter`` outside ``[0, filters)``. ValueError: unknown ``layer`` (lists the conv paths).
    """
    conv = _resolve_layers(model, [layer])[layer]
    j = _check_filter(conv, layer, filter)
    return feature_maps(model, x, layers=[layer], stage=stage)[layer][..., j]


# ----------------------------------------------------------------------------------------------------------------
# Receptive spans
# ----------------------------------------------------------------------------------------------------------------


def _default_input(model: nnx.Module, input_length) -> jax.ShapeDtypeStruct:
    lengths = shapes.per_axis_ints(input_length, name="input_length")
    mods = [m for _, m in nnx.iter_modules(model)]
    # Token-id models: an nnx.Embed inside, or an `embed(tokens)` method (the hook saliency uses, as TextCNN has).
    if any(isinstance(m, nnx.Embed) for m in mods) or callable(getattr(model, "embed", None)):
        return jax.ShapeDtypeStruct((1, *lengths), jnp.int32)
    convs = [m for m in mods if isinstance(m, ConvND)]
    if not convs:
        raise ValueError(f"cannot guess the input of this {type(model).__name__} (no nnx.Embed, no jaxconv conv); "
                         f"pass x_or_shape=.")
    first = convs[0]
    return jax.ShapeDtypeStruct((1, *lengths, first.in_channels), jnp.float32)


def receptive_spans(model: nnx.Module, layer: str, input_length: int | Sequence[int], *, x_or_shape=None,
                    dtype=None) -> Int[np.ndarray, "out_length 2"] | tuple[np.ndarray, ...]:
    """For each output position of ``layer``, the half-open range ``[start, end)`` of input positions it sees.

    Args:
      model: the model; ``layer`` one of its conv (or pool) paths.
      input_length: the model input's length (token count); ``(height, width)`` for 2-D models.
      x_or_shape: the model input to trace with (as in :func:`explain`). Default: token ids ``(1, input_length)``
        int32 when the model has an ``nnx.Embed`` or an ``embed`` method, else ``(1, *input_length, in_channels)`` float32 with the
        ``in_channels`` of the first jaxconv conv in graph order.

    Returns:
      1-D: an int numpy array of shape ``(out_length, 2)``: row ``t`` is ``[start, end)`` from
      :func:`jaxconv.shapes.field_span` (the clipping :func:`jaxconv.shapes.input_span` uses; empty when the output
      sees only padding). N-D: a tuple with one such array per spatial axis.

    Raises:
      ValueError: unknown layer, or a layer whose receptive field cannot be traced back to the input.
    """
    struct = _default_input(model, input_length) if x_or_shape is None else _as_struct(x_or_shape, dtype)
    e = explain(model, struct)
    r = e.row(layer) if any(r.path == layer for r in e.rows) else None
    if r is None or r.formula is None:
        raise ValueError(f"layer {layer!r} is not a convolution or pool called by this {type(model).__name__}; "
                         f"conv paths: {', '.join(repr(p) for p in e.conv_paths) or '(none)'}.")
    if r.rf_size is None:
        raise ValueError(f"layer {layer!r}: its receptive field cannot be traced back to the model input "
                         f"{fmt_tuple(e.input_shape)} (an op between them changes the position axes).")
    in_axes = sorted(_input_rf(struct))
    lengths = [struct.shape[a] for a in in_axes]
    n = len(r.rf_size)
    spans = []
    for size, jump, start, L, out_len in zip(r.rf_size, r.rf_jump, r.rf_start, lengths, r.output_spatial):
        rf = shapes.ReceptiveField(size, jump, start)
        spans.append(np.array([shapes.field_span(rf, t, L) for t in range(out_len)], dtype=np.int64).reshape(out_len, 2))
    return spans[0] if n == 1 else tuple(spans)


# ----------------------------------------------------------------------------------------------------------------
# Saliency
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Saliency:
    """Gradients of one filter's pooled activation w.r.t. the embedding output, per token.

    Attributes:
      grad_norm: ``(batch, length)``: the L2 norm over the embedding dim of ``d pooled / d emb[b, t, :]``.
      grad_x_input: ``(batch, length)``: ``sum_e (d pooled / d emb[b, t, e]) * emb[b, t, e]``.
      pooled: ``(batch,)``: the pooled activation itself.
    """

    grad_norm: Float[Array, "batch length"]
    grad_x_input: Float[Array, "batch length"]
    pooled: Float[Array, " batch"]


_REDUCE = {"max": jnp.max, "mean": jnp.mean, "sum": jnp.sum}


@contextlib.contextmanager
def _intercept_output(target: nnx.Module, method: str, fn: Callable):
    """Replace the output of ``target.<method>(...)`` by ``fn(output)`` for the duration (other instances untouched)."""

    def hook(orig, module, args, kwargs):
        out = orig(module, *args, **kwargs)
        return fn(out) if module is target else out

    with _patched_calls([target], hook, method):
        yield


def _split_embed(model: nnx.Module, embed: str) -> tuple[str, str]:
    """``embed`` -> (module path, method name): a module path means its ``__call__``; otherwise ``"path/method"``
    or ``"method"`` (a method of the model itself, e.g. ``TextCNN.embed``)."""
    mods = _modules_by_path(model)
    if embed in mods:
        return embed, "__call__"
    path, _, method = embed.rpartition("/")
    if path in mods and method and callable(getattr(mods[path], method, None)):
        return path, method
    raise ValueError(f"embed={embed!r} is neither a module path of this {type(model).__name__} nor a method "
                     f"'path/method' (or 'method' of the model); module paths: "
                     f"{', '.join(repr(p) for p in mods if p) or '(none)'}.")


@functools.lru_cache(maxsize=32)
def _saliency_fn(graphdef, embed_path: str, embed_method: str, layer: str, filter: int, reduce: str, stage: str):
    def forward(delta, state, x):
        m = nnx.merge(graphdef, state)
        target = _modules_by_path(m)[embed_path]
        seen = []

        def add_delta(out):
            seen.append(out)
            return out + delta.astype(out.dtype)

        with _intercept_output(target, embed_method, add_delta):
            fmap = feature_maps(m, x, layers=[layer], stage=stage)[layer][..., filter]
        if not seen:
            raise ValueError(f"the embedding {embed_path or '(model)'}.{embed_method} was not called by the forward pass.")
        pooled = _REDUCE[reduce](fmap.reshape(fmap.shape[0], -1), axis=1)  # (batch,)
        return pooled, seen[0]

    def emb_shape(state, x):
        return jax.eval_shape(lambda d: forward(d, state, x)[1], jnp.zeros((), jnp.float32))

    @jax.jit
    def run(state, x):
        emb = emb_shape(state, x)
        delta = jnp.zeros(emb.shape, emb.dtype)

        def objective(delta):
            pooled, emb = forward(delta, state, x)
            return pooled.sum(), (emb, pooled)   # examples are independent: d sum_b pooled[b] / d emb[b] per b

        g, (emb, pooled) = jax.grad(objective, has_aux=True)(delta)
        return jnp.sqrt(jnp.sum(g * g, axis=-1)), jnp.sum(g * emb, axis=-1), pooled

    return run


def saliency(model: nnx.Module, x, layer: str, filter: int, *, reduce: str = "max", embed: str | None = None,
             stage: str = "post") -> Saliency:
    """Which tokens drive filter ``filter`` of conv ``layer``: gradients of its pooled activation per example.

    ``pooled[b] = reduce_t fmap[b, t]`` with ``reduce`` in ``"max"`` (max over time, as Kim's CNN), ``"mean"`` or
    ``"sum"``; its gradient w.r.t. the embedding output ``emb`` (``(batch, length, dim)``) gives, per token,
    ``grad_norm = ||d pooled / d emb[b, t]||_2`` and ``grad_x_input = <d pooled / d emb[b, t], emb[b, t]>``.

    Args:
      model: a model whose token ids go through an embedding (call ``model.eval()`` first if it has dropout).
      x: the model input, token ids ``(batch, length)``.
      layer: a jaxconv conv path, e.g. ``"convs/0"``; filter: its filter index.
      reduce: ``"max"``, ``"mean"`` or ``"sum"`` over output positions.
      embed: where the embedding output comes from: a module path (its ``__call__`` output), or ``"method"`` /
        ``"path/method"`` for a method such as ``TextCNN.embed``. Default: the first ``nnx.Embed`` called, else the
        model's own ``embed`` method if it has one.
      stage: ``"post"`` (after the activation) or ``"pre"``.

    Returns:
      :class:`Saliency` with ``grad_norm`` and ``grad_x_input`` of shape ``(batch, length)`` and ``pooled``
      ``(batch,)``. One jitted gradient, compiled once per model structure, layer, filter, reduce and input shape.

    Raises:
      ValueError: unknown layer / embed / reduce / stage, or no embedding found. IndexError: bad filter index.
    """
    if reduce not in _REDUCE:
        raise ValueError(f"reduce={reduce!r} is not known; expected 'max', 'mean' or 'sum'.")
    _stage(stage)
    conv = _resolve_layers(model, [layer])[layer]
    j = _check_filter(conv, layer, filter)
    x = jnp.asarray(x)
    if embed is None:
        mods = _modules_by_path(model)
        found = [r.path for r in explain(model, x).rows if isinstance(mods.get(r.path), nnx.Embed)]
        if found:
            embed_path, method = found[0], "__call__"
        elif callable(getattr(model, "embed", None)) and not isinstance(getattr(model, "embed"), nnx.Module):
            embed_path, method = "", "embed"
        else:
            raise ValueError(f"this {type(model).__name__} calls no nnx.Embed and has no embed method; pass embed=<module "
                             f"path or 'path/method' whose output is the embedded input>.")
    else:
        embed_path, method = _split_embed(model, embed)
    graphdef, state = nnx.split(model)
    run = _saliency_fn(graphdef, embed_path, method, layer, j, reduce, stage)
    norm, gxi, pooled = run(state, x)
    return Saliency(norm, gxi, pooled)
