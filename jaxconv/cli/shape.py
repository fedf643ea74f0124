"""``jaxconv shape``: the arithmetic of one convolution (or a small stack): output shape with the formula, the kernel
shape in each framework's layout, ``(lo, hi)`` padding under each convention, params and FLOPs.

>>> from jaxconv.cli import main
>>> main(["shape", "--input", "5x5x1", "--filters", "1", "--kernel-size", "3", "--stride", "2", "--padding", "1"])
Conv2D: input (height=5, width=5, in=1) -> output (3, 3, 1)
  out_height: 3 = floor((5 + 1 + 1 - 1*(3-1) - 1) / 2) + 1
  out_width:  3 = floor((5 + 1 + 1 - 1*(3-1) - 1) / 2) + 1
  kernel shape:
    jaxconv       (height=3, width=3, in=1, out=1)
    Keras 3       (height=3, width=3, in=1, out=1)
    Keras 1 (tf)  (height=3, width=3, in=1, out=1)
    Keras 1 (th)  (out=1, in=1, height=3, width=3)
    PyTorch       (out=1, in=1, height=3, width=3)
  the filter spans the 1 input channel (groups=1)
  padding (lo, hi) per axis (height, width) under each convention, kernel 3x3, stride 2x2, dilation 1x1:
    valid       (0, 0), (0, 0) -> (2, 2)
    same        (1, 1), (1, 1) -> (3, 3)
    same_lower  (1, 1), (1, 1) -> (3, 3)
    same_torch  n/a: stride > 1
    causal      (2, 0), (2, 0) -> (3, 3)
    full        (2, 2), (2, 2) -> (4, 4)
    given       (1, 1), (1, 1) -> (3, 3)  <- used
  params: 10 = 3*3*1*1 weights + 1 bias
  FLOPs: 171 per example = 3*3 positions * 1 filters * (2*3*3*1 + 1)  (multiply-add = 2, bias add = 1)
0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jaxconv import layouts, shapes
from jaxconv._format import fmt_axes, fmt_tuple, quote
from jaxconv.cli._common import CliError, parse_sizes as _parse_sizes

__all__ = ["add_parser", "shape_report", "LayerSpec"]

_SPATIAL_NAMES = {1: ("length",), 2: ("height", "width")}


def _parse_input(text: str) -> tuple[tuple[int, ...], int]:
    sizes = _parse_sizes(text, "--input", "50x300 (length x channels) or 128x128x3 (height x width x channels)")
    if len(sizes) not in (2, 3):
        raise CliError(f"--input {quote(text)} has {len(sizes)} sizes; expected LENGTHxCHANNELS (1-D, e.g. 50x300) or "
                       f"HEIGHTxWIDTHxCHANNELS (2-D, e.g. 128x128x3).")
    return sizes[:-1], sizes[-1]


def _per_axis(text: str, what: str, n: int) -> tuple[int, ...]:
    sizes = _parse_sizes(str(text), what, "5" if n == 1 else "5 or 5x3")
    if len(sizes) == 1:
        return sizes * n
    if len(sizes) != n:
        raise CliError(f"{what} {quote(text)} has {len(sizes)} sizes; the input has {n} spatial axes, so give one size "
                       f"(all axes) or {n} joined by 'x'.")
    return sizes


def _parse_padding(text: str, what: str = "--padding"):
    t = str(text).strip().lower()
    if t in shapes.PADDING_KINDS:
        return t
    try:
        if "," in t:
            lo, hi = (int(p) for p in t.split(","))
            if lo >= 0 and hi >= 0:
                return (lo, hi)
        elif int(t) >= 0:
            return int(t)
    except ValueError:
        pass
    raise CliError(f"{what} {quote(text)} is not understood; expected one of {', '.join(shapes.PADDING_KINDS)}, an int "
                   f">= 0, or lo,hi (e.g. 2,0).")


class LayerSpec:
    """One conv layer of ``jaxconv shape``: filters, per-axis kernel size / stride / dilation, padding, groups."""

    def __init__(self, filters, kernel_size, stride, dilation, padding, groups=1):
        self.filters, self.kernel_size, self.stride, self.dilation = filters, kernel_size, stride, dilation
        self.padding, self.groups = padding, groups


def _parse_then(text: str, n: int) -> LayerSpec:
    parts = text.split(":")
    if not 2 <= len(parts) <= 5 or not all(parts[:2]):
        raise CliError(f"--then {quote(text)} is not understood; expected FILTERS:KERNEL[:STRIDE[:PADDING[:DILATION]]], "
                       f"e.g. 16:3:1:same.")
    filters = _parse_sizes(parts[0], "--then FILTERS", "16")
    if len(filters) != 1:
        raise CliError(f"--then {quote(text)}: FILTERS must be one int; got {quote(parts[0])}.")
    return LayerSpec(filters[0], _per_axis(parts[1], "--then KERNEL", n),
                     _per_axis(parts[2], "--then STRIDE", n) if len(parts) > 2 and parts[2] else (1,) * n,
                     _per_axis(parts[4], "--then DILATION", n) if len(parts) > 4 and parts[4] else (1,) * n,
                     _parse_padding(parts[3], "--then PADDING") if len(parts) > 3 and parts[3] else "valid")


def _layout_shape(kernel_shape: tuple[int, ...], layout: str, n: int) -> tuple[int, ...]:
    """The shape of a jaxconv-layout kernel of shape ``kernel_shape`` in ``layout`` (no array, so any size works)."""
    return layouts.convert_shape(kernel_shape, "jaxconv", layout, spatial_dims=n)


def _layer_lines(spatial: tuple[int, ...], channels: int, spec: LayerSpec) -> tuple[list[str], tuple[int, ...], int, int]:
    """Report lines for one layer, its output spatial shape, params and FLOPs (one example)."""
    n = len(spatial)
    names = _SPATIAL_NAMES[n]
    ks, st, dl, pad, g, f = spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.groups, spec.filters
    if channels % g or f % g:
        raise CliError(f"--groups {g} must divide both the input channels ({channels}) and --filters ({f}).")
    # The padding in use (raises the library's ValueError with the formula when the kernel does not fit).
    out = []
    for a, L, k, s, d in zip(names, spatial, ks, st, dl):
        try:
            out.append(shapes.conv_output_length(L, k, stride=s, dilation=d, padding=pad))
        except ValueError as e:
            raise ValueError(f"on the {a} axis, {e}" if n > 1 else str(e)) from None
    out = tuple(out)
    conv = "Conv1D" if n == 1 else "Conv2D"
    axes_in = ", ".join(f"{a}={L}" for a, L in zip(names, spatial))
    lines = [f"{conv}: input ({axes_in}, in={channels}) -> output {fmt_tuple((*out, f))}"]
    labels = ["out_" + a for a in names]
    width = max(len(lab) for lab in labels) + 1
    for lab, L, k, s, d in zip(labels, spatial, ks, st, dl):
        lines.append(f"  {(lab + ':').ljust(width)} "
                     f"{shapes.output_length_formula(L, k, stride=s, dilation=d, padding=pad)}")
    kernel = (*ks, channels // g, f)                       # jaxconv layout
    rows = [("jaxconv", layouts.describe(kernel, "jaxconv", n)), ("Keras 3", layouts.describe(kernel, "keras", n))]
    if n == 1:
        rows.append(("Keras 1", layouts.describe(_layout_shape(kernel, "keras1", n), "keras1", n)))
    else:
        rows.append(("Keras 1 (tf)", layouts.describe(_layout_shape(kernel, "keras1", n), "keras1", n)))
        rows.append(("Keras 1 (th)", layouts.describe(_layout_shape(kernel, "keras1_th", n), "keras1_th", n)))
    rows.append(("PyTorch", layouts.describe(_layout_shape(kernel, "torch", n), "torch", n)))
    lines.append("  kernel shape:")
    w = max(len(r[0]) for r in rows) + 2
    lines += [f"    {name.ljust(w)}{desc}" for name, desc in rows]
    if g == 1:
        chans = f"all {channels} input channels" if channels > 1 else "the 1 input channel"
        lines.append(f"  each of the {f} filters spans {chans} (groups=1)" if f > 1 else
                     f"  the filter spans {chans} (groups=1)")
    else:
        lines.append(f"  each filter spans {channels // g} of the {channels} input channels (groups={g}: filter j "
                     f"reads channels of group j // {f // g})")
    geom = f"kernel {fmt_axes(ks)}, stride {fmt_axes(st)}, dilation {fmt_axes(dl)}"
    if n == 1:
        lines.append(f"  padding (lo, hi) under each convention, for length {spatial[0]}, {geom}:")
    else:
        lines.append(f"  padding (lo, hi) per axis ({', '.join(names)}) under each convention, {geom}:")
    given = not isinstance(pad, str)
    for kind in (*shapes.PADDING_KINDS, *(["given"] if given else [])):
        p = pad if kind == "given" else kind
        mark = "  <- used" if (kind == "given" or (not given and kind == pad)) else ""
        try:
            pads = [shapes.resolve_padding(L, k, stride=s, dilation=d, padding=p) for L, k, s, d in zip(spatial, ks, st, dl)]
        except ValueError:
            lines.append(f"    {kind.ljust(10)}  n/a: stride > 1")
            continue
        try:
            outs = [shapes.conv_output_length(L, k, stride=s, dilation=d, padding=p) for L, k, s, d in zip(spatial, ks, st, dl)]
            res = str(outs[0]) if n == 1 else fmt_tuple(outs)
        except ValueError:  # the padded input is shorter than the dilated kernel
            res = "n/a (output < 1)"
        lines.append(f"    {kind.ljust(10)}  {', '.join(fmt_tuple(p_) for p_ in pads)} -> {res}{mark}")
    params = shapes.conv_params(channels, f, ks, groups=g)
    in_per = channels // g
    lines.append(f"  params: {params:,} = {fmt_axes(ks, '*')}*{in_per}*{f} weights + {f} bias{'es' if f != 1 else ''}")
    flops = shapes.conv_flops(spatial, channels, f, ks, stride=st, dilation=dl, padding=pad, groups=g)
    lines.append(f"  FLOPs: {flops:,} per example = {fmt_axes(out, '*')} positions * {f} filters * "
                 f"(2*{fmt_axes(ks, '*')}*{in_per} + 1)  (multiply-add = 2, bias add = 1)")
    return lines, out, params, flops


def shape_report(input_spatial: tuple[int, ...], channels: int, layers: Sequence[LayerSpec]) -> str:
    """The text ``jaxconv shape`` prints for a stack of conv layers (one layer: no stack summary)."""
    out_lines: list[str] = []
    spatial, ch = tuple(input_spatial), channels
    shapes_seen = [(*spatial, ch)]
    total_params = total_flops = 0
    for i, spec in enumerate(layers):
        try:
            lines, spatial_out, params, flops = _layer_lines(spatial, ch, spec)
        except ValueError as e:
            where = f"layer {i + 1}: " if len(layers) > 1 else ""
            raise CliError(f"{where}{e}") from None
        if len(layers) > 1:
            lines[0] = f"layer {i + 1} of {len(layers)}: {lines[0]}"
        out_lines += lines
        spatial, ch = spatial_out, spec.filters
        shapes_seen.append((*spatial, ch))
        total_params += params
        total_flops += flops
    if len(layers) > 1:
        n = len(spatial)
        rfs = [shapes.receptive_field([shapes.ConvSpec(s.kernel_size[a], s.stride[a], s.dilation[a], s.padding)
                                       for s in layers], input_spatial[a]) for a in range(n)]
        out_lines.append("stack: " + " -> ".join(fmt_tuple(s) for s in shapes_seen))
        out_lines.append(f"  receptive field of one output position: {fmt_axes(r.size for r in rfs)} input positions, "
                         f"jump {fmt_axes(r.jump for r in rfs)}")
        out_lines.append(f"  params: {total_params:,}; FLOPs: {total_flops:,} per example")
    return "\n".join(out_lines)


def _cmd_shape(args) -> int:
    spatial, channels = _parse_input(args.input)
    n = len(spatial)
    if args.filters < 1:
        raise CliError(f"--filters must be >= 1; got {args.filters}.")
    if args.groups < 1:
        raise CliError(f"--groups must be >= 1; got {args.groups}.")
    first = LayerSpec(args.filters, _per_axis(args.kernel_size, "--kernel-size", n),
                      _per_axis(args.stride, "--stride", n), _per_axis(args.dilation, "--dilation", n),
                      _parse_padding(args.padding), args.groups)
    layers = [first, *(_parse_then(t, n) for t in args.then or ())]
    print(shape_report(spatial, channels, layers))
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv shape`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "shape", help="output shape, kernel layouts, padding, params and FLOPs of a convolution",
        description="Shapes of a 1-D or 2-D convolution (and optionally more layers after it).",
        epilog="examples:\n  jaxconv shape --input 50x300 --filters 111 --kernel-size 5\n"
               "  jaxconv shape --input 5x5x1 --filters 1 --kernel-size 3 --stride 2 --padding 1\n"
               "  jaxconv shape --input 28x28x1 --filters 8 --kernel-size 5 --then 16:3:1:same",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, metavar="SIZES",
                   help="LENGTHxCHANNELS (1-D, e.g. 50x300) or HEIGHTxWIDTHxCHANNELS (2-D, e.g. 128x128x3)")
    p.add_argument("--filters", required=True, type=int, help="number of filters (output channels)")
    p.add_argument("--kernel-size", required=True, metavar="K", help="kernel size: 5, or 5x3 in 2-D")
    p.add_argument("--stride", default="1", metavar="S", help="stride: 2, or 2x1 in 2-D (default 1)")
    p.add_argument("--padding", default="valid", metavar="P",
                   help=f"one of {', '.join(shapes.PADDING_KINDS)}, an int, or lo,hi (default valid)")
    p.add_argument("--dilation", default="1", metavar="D", help="dilation: 2, or 2x1 in 2-D (default 1)")
    p.add_argument("--groups", default=1, type=int, help="channel groups (default 1)")
    p.add_argument("--then", action="append", metavar="F:K[:S[:P[:D]]]",
                   help="another conv layer after this one: FILTERS:KERNEL[:STRIDE[:PADDING[:DILATION]]] (repeatable)")
    p.set_defaults(func=_cmd_shape)
