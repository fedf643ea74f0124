"""The explain table: :func:`explain` traces ``model(x)`` and returns an :class:`Explanation` (one
:class:`LayerRow` per module call), shown as plain text, a ``rich`` table or HTML."""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxconv import shapes
from jaxconv._args import shown
from jaxconv._format import fmt_axes, fmt_tuple
from jaxconv.inspection._algorithms import algorithm_of
from jaxconv.inspection._trace import _as_struct, _ConvView, _modules_by_path, _path_str, _takes_token_ids, _trace


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
      algorithm: how a jaxconv convolution is computed (:mod:`jaxconv.nn.algorithms`): ``"xla"``, ``"im2col"``,
        ``"fft"``, ``"fused"`` (the model runs its parallel convs as one GEMM), or for ``"auto"`` what it chose for
        this call's shapes, e.g. ``"auto: fft"``, or ``"auto: not measured (xla under jit)"``. None otherwise.
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
    algorithm: str | None = None

    @property
    def label(self) -> str:
        base = self.path or "(model)"
        return base if self.call == 0 else f"{base} (call {self.call + 1})"


_COLUMNS = ("path", "type", "input -> output", "kernel", "padding (lo, hi)", "stride", "dilation", "groups", "params",
            "FLOPs", "RF size / jump", "algorithm")
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
                rf, r.algorithm or "",
            ])
        return out

    def _title(self) -> str:
        return f"{self.model}: input {fmt_tuple(self.input_shape)} {self.input_dtype}"

    def _total_cells(self) -> list[str]:
        return ["total", "", "", "", "", "", "", "", f"{self.total_params:,}", f"{self.total_flops:,}", "", ""]

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
# explain
# ----------------------------------------------------------------------------------------------------------------


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

    Raises:
      TypeError: ``model`` is not an ``nnx.Module``; a float input to a model that embeds token ids (an ``nnx.Embed`` or an ``embed`` method) which
        fails on it; the message says to pass integer ids (``dtype=jnp.int32``).

    Receptive fields follow the arrays through the calls: the model input has size 1, jump 1 at each position axis
    (axes after the batch axis for integer inputs; between batch and channel axes for float inputs); a conv or pool
    composes ``size += d*(k-1)*jump``, ``start -= lo*jump``, ``jump *= s`` on its spatial axes; a module without
    children that keeps the leading axes (embedding, dropout, dense over channels) passes the field through; a
    container's output keeps what its children produced. An array made outside any module (``relu``, a residual
    add) takes the field of the most recent module output of the same shape, or, when its leading axes are the
    input's batch and position axes (an embedding lookup done with ``jnp.take``), the input's own field. Anything
    else (pooling over time, reshapes) has no receptive field, shown as ``?`` on the conv rows that follow.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"jaxconv.explain: model={shown(model)} is a {type(model).__name__}; expected an nnx.Module "
                        f"called as model(x) (jaxconv.load_run(workdir).model is one).")
    struct = _as_struct(x_or_shape, dtype)
    try:
        records = _trace(model, struct)
    except (TypeError, ValueError) as e:
        if np.issubdtype(struct.dtype, np.integer) or not _takes_token_ids(model):
            raise
        raise TypeError(f"explain: this {type(model).__name__} embeds token ids, so its input needs an integer dtype; "
                        f"got {struct.dtype} of shape {tuple(struct.shape)} (a shape tuple means float32 unless "
                        f"dtype= says otherwise): pass int token ids, or explain(model, {tuple(struct.shape)}, "
                        f"dtype=jnp.int32). The model raised: {e}") from None
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
                kw["algorithm"] = algorithm_of(model, _modules_by_path(model)[r["path"]], r["input_shape"],
                                               r["input_dtype"], kw["padding"])
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
