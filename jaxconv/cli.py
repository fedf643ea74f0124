"""The ``jaxconv`` command.

Subcommands:

- ``jaxconv shape``: the arithmetic of one convolution (or a small stack): output shape with the formula, the
  kernel shape in each framework's layout, ``(lo, hi)`` padding under each convention, params and FLOPs.
- ``jaxconv explain CONFIG[:PRESET]``: build a config's model and print :func:`jaxconv.explain`'s table.

Bad arguments give one line on stderr and exit status 2, never a traceback.

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
import importlib.util
import inspect as _pyinspect
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from jaxconv import layouts, shapes

__all__ = ["main", "shape_report", "LayerSpec"]


class CliError(Exception):
    """A bad argument: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit status 2."""

    def error(self, message):
        raise CliError(message)


# ----------------------------------------------------------------------------------------------------------------
# jaxconv shape
# ----------------------------------------------------------------------------------------------------------------

_SPATIAL_NAMES = {1: ("length",), 2: ("height", "width")}


def _parse_sizes(text: str, what: str, example: str) -> tuple[int, ...]:
    parts = text.lower().split("x")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise CliError(f"{what} {text!r} is not understood; expected positive ints joined by 'x', e.g. {example}.")
    return sizes


def _parse_input(text: str) -> tuple[tuple[int, ...], int]:
    sizes = _parse_sizes(text, "--input", "50x300 (length x channels) or 128x128x3 (height x width x channels)")
    if len(sizes) not in (2, 3):
        raise CliError(f"--input {text!r} has {len(sizes)} sizes; expected LENGTHxCHANNELS (1-D, e.g. 50x300) or "
                       f"HEIGHTxWIDTHxCHANNELS (2-D, e.g. 128x128x3).")
    return sizes[:-1], sizes[-1]


def _per_axis(text: str, what: str, n: int) -> tuple[int, ...]:
    sizes = _parse_sizes(str(text), what, "5" if n == 1 else "5 or 5x3")
    if len(sizes) == 1:
        return sizes * n
    if len(sizes) != n:
        raise CliError(f"{what} {text!r} has {len(sizes)} sizes; the input has {n} spatial axes, so give one size "
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
    raise CliError(f"{what} {text!r} is not understood; expected one of {', '.join(shapes.PADDING_KINDS)}, an int "
                   f">= 0, or lo,hi (e.g. 2,0).")


class LayerSpec:
    """One conv layer of ``jaxconv shape``: filters, per-axis kernel size / stride / dilation, padding, groups."""

    def __init__(self, filters, kernel_size, stride, dilation, padding, groups=1):
        self.filters, self.kernel_size, self.stride, self.dilation = filters, kernel_size, stride, dilation
        self.padding, self.groups = padding, groups


def _parse_then(text: str, n: int) -> LayerSpec:
    parts = text.split(":")
    if not 2 <= len(parts) <= 5 or not all(parts[:2]):
        raise CliError(f"--then {text!r} is not understood; expected FILTERS:KERNEL[:STRIDE[:PADDING[:DILATION]]], "
                       f"e.g. 16:3:1:same.")
    filters = _parse_sizes(parts[0], "--then FILTERS", "16")
    if len(filters) != 1:
        raise CliError(f"--then {text!r}: FILTERS must be one int; got {parts[0]!r}.")
    return LayerSpec(filters[0], _per_axis(parts[1], "--then KERNEL", n),
                     _per_axis(parts[2], "--then STRIDE", n) if len(parts) > 2 and parts[2] else (1,) * n,
                     _per_axis(parts[4], "--then DILATION", n) if len(parts) > 4 and parts[4] else (1,) * n,
                     _parse_padding(parts[3], "--then PADDING") if len(parts) > 3 and parts[3] else "valid")


def _fmt(t: Sequence) -> str:
    return "(" + ", ".join(str(v) for v in t) + ")"


def _x(t: Sequence) -> str:
    return "x".join(str(v) for v in t)


def _star(t: Sequence) -> str:
    return "*".join(str(v) for v in t)


def _layout_shape(kernel_shape: tuple[int, ...], layout: str, n: int) -> tuple[int, ...]:
    """The shape of a jaxconv-layout kernel of shape ``kernel_shape`` in ``layout`` (no kernel is allocated)."""
    import numpy as np

    fake = np.broadcast_to(np.zeros((), np.int8), kernel_shape)
    return tuple(layouts.convert(fake, "jaxconv", layout, spatial_dims=n).shape)


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
    lines = [f"{conv}: input ({axes_in}, in={channels}) -> output {_fmt((*out, f))}"]
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
    geom = f"kernel {_x(ks)}, stride {_x(st)}, dilation {_x(dl)}"
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
            res = str(outs[0]) if n == 1 else _fmt(outs)
        except ValueError:  # the padded input is shorter than the dilated kernel
            res = "n/a (output < 1)"
        lines.append(f"    {kind.ljust(10)}  {', '.join(_fmt(p_) for p_ in pads)} -> {res}{mark}")
    params = shapes.conv_params(channels, f, ks, groups=g)
    in_per = channels // g
    lines.append(f"  params: {params:,} = {_star(ks)}*{in_per}*{f} weights + {f} bias{'es' if f != 1 else ''}")
    flops = shapes.conv_flops(spatial, channels, f, ks, stride=st, dilation=dl, padding=pad, groups=g)
    lines.append(f"  FLOPs: {flops:,} per example = {_star(out)} positions * {f} filters * "
                 f"(2*{_star(ks)}*{in_per} + 1)  (multiply-add = 2, bias add = 1)")
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
        out_lines.append("stack: " + " -> ".join(_fmt(s) for s in shapes_seen))
        out_lines.append(f"  receptive field of one output position: {_x(r.size for r in rfs)} input positions, "
                         f"jump {_x(r.jump for r in rfs)}")
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


# ----------------------------------------------------------------------------------------------------------------
# jaxconv explain
# ----------------------------------------------------------------------------------------------------------------

EXPLAIN_CONTRACT = """\
CONFIG is a Python file defining get_config(preset) -> ml_collections.ConfigDict (PRESET is passed as a string,
or None when omitted), as configs/text_cnn.py.

The model is built by, in order of preference:
  1. build_model(config) defined in the config file, returning a model or (model, example_input); example_input
     is an array, a jax.ShapeDtypeStruct, a shape tuple (float32) or a (shape, dtype) pair;
  2. jaxconv.models.build_model(config, vocab_size=V, num_classes=K), with V from --vocab-size,
     config.model.vocab_size, config.data.vocab_size or config.data.synthetic.vocab_size (else 20000), and K from
     --num-classes, config.model.num_classes, config.data.num_classes or config.data.synthetic.num_classes
     (else 2); its input is token ids (1, L) int32 with L from --input-shape, config.data.max_length or
     max(config.data.bucket_lengths) (else 64).
--input-shape/--dtype override the example input. The model is built abstractly (nnx.eval_shape) when it can be,
so no parameter memory is spent; explain itself only traces shapes (jax.eval_shape).
"""


def _load_config_module(path_and_preset: str):
    path, preset = path_and_preset, None
    if ":" in path_and_preset:
        head, _, tail = path_and_preset.rpartition(":")
        if head and not tail.startswith(("/", "\\")):
            path, preset = head, tail
    file = pathlib.Path(path)
    if not file.is_file():
        raise CliError(f"config file {path!r} does not exist (expected CONFIG_FILE[:PRESET], e.g. "
                       f"configs/text_cnn.py:mr).")
    spec = importlib.util.spec_from_file_location(f"_jaxconv_config_{abs(hash(str(file.resolve())))}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - reported as one line
        raise CliError(f"could not load config file {path!r}: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, "get_config", None)):
        raise CliError(f"config file {path!r} defines no get_config(preset) function.")
    try:
        params = [p for p in _pyinspect.signature(module.get_config).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        config = module.get_config(preset) if (params or preset is not None) else module.get_config()
    except (ValueError, KeyError, TypeError) as e:
        raise CliError(f"{path}: get_config({preset!r}) failed: {e}") from None
    return module, config, preset


def _find(config, *dotted):
    for key in dotted:
        node = config
        try:
            for part in key.split("."):
                node = node[part] if isinstance(node, dict) else getattr(node, part)
        except (AttributeError, KeyError, TypeError):
            continue
        if node is not None and node != "" and node != ():
            return node
    return None


def _build(module, config, args):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    example: list = []
    if callable(getattr(module, "build_model", None)):
        def build():
            out = module.build_model(config)
            if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nnx.Module):
                example.append(out[1])
                return out[0]
            return out
    else:
        try:
            from jaxconv.models import build_model
        except ImportError:
            raise CliError("the config file defines no build_model(config) and jaxconv.models.build_model is not "
                           "available.") from None
        synthetic = _find(config, "data.name") == "synthetic"
        vocab = args.vocab_size or _find(config, "model.vocab_size", "data.vocab_size",
                                         *(["data.synthetic.vocab_size"] if synthetic else []))
        classes = args.num_classes or _find(config, "model.num_classes", "data.num_classes",
                                            *(["data.synthetic.num_classes"] if synthetic else []))
        if classes is None:  # a built-in sentence benchmark knows its class count without reading the files
            from jaxconv.data.readers import SENTENCE_DATASETS

            classes = SENTENCE_DATASETS.get(str(_find(config, "data.name") or ""), {}).get("num_classes")
        length = _find(config, "data.max_length")
        if length is None and _find(config, "data.bucket_lengths"):
            length = max(_find(config, "data.bucket_lengths"))
        for what, value, default, flag in (("vocab_size", vocab, 20000, "--vocab-size"),
                                           ("num_classes", classes, 2, "--num-classes"),
                                           ("input length", length if not args.input_shape else 1, 64, "--input-shape")):
            if value is None:
                print(f"note: {what} is not in the config; using {default} ({flag} sets it)", file=sys.stderr)
        example.append(((1, int(length or 64)), jnp.int32))
        build = lambda: build_model(config, vocab_size=int(vocab or 20000), num_classes=int(classes or 2))  # noqa: E731

    try:
        try:
            model = nnx.eval_shape(build)
        except CliError:
            raise
        except Exception:  # noqa: BLE001 - some builders need concrete arrays; build for real then
            example.clear()
            model = build()
    except CliError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CliError(f"building the model failed: {type(e).__name__}: {e}") from None
    if not isinstance(model, nnx.Module):
        raise CliError(f"build_model returned {type(model).__name__}, not an nnx.Module.")

    if args.input_shape:
        dtype = jnp.dtype(args.dtype or "int32")
        return model, jax.ShapeDtypeStruct(_parse_sizes(args.input_shape, "--input-shape", "2x64"), dtype)
    if not example:
        raise CliError("no example input: give --input-shape (e.g. 1x64) and --dtype, or return (model, example_input) "
                       "from the config's build_model.")
    ex = example[0]
    if isinstance(ex, tuple) and len(ex) == 2 and isinstance(ex[0], (tuple, list)):
        ex = jax.ShapeDtypeStruct(tuple(ex[0]), jnp.dtype(ex[1]))
    if args.dtype:
        ex = jax.ShapeDtypeStruct(tuple(ex.shape) if hasattr(ex, "shape") else tuple(ex), jnp.dtype(args.dtype))
    return model, ex


def _cmd_explain(args) -> int:
    from jaxconv.inspection import explain

    module, config, _ = _load_config_module(args.config)
    model, example = _build(module, config, args)
    try:
        e = explain(model, example)
    except (ValueError, TypeError) as err:
        raise CliError(f"explain failed: {err}") from None
    if args.rich:
        import rich.console

        # On a terminal rich fits the table to its width; into a pipe or file, print it whole.
        console = rich.console.Console(width=None if sys.stdout.isatty() else 400)
        console.print(e.rich())
    else:
        print(e)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------


def _parser() -> _Parser:
    parser = _Parser(prog="jaxconv", description="Convolution arithmetic and model inspection.")
    sub = parser.add_subparsers(dest="command", metavar="{shape,explain}")

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

    q = sub.add_parser("explain", help="build a config's model and print its explain table",
                       description="Print jaxconv.explain's table for the model of a config file.",
                       epilog=EXPLAIN_CONTRACT, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("config", metavar="CONFIG_FILE[:PRESET]", help="e.g. configs/text_cnn.py:mr")
    q.add_argument("--input-shape", metavar="SIZES", help="example input shape, e.g. 1x64")
    q.add_argument("--dtype", help="example input dtype (default: int32 with --input-shape)")
    q.add_argument("--vocab-size", type=int, help="vocabulary size for jaxconv.models.build_model")
    q.add_argument("--num-classes", type=int, help="number of classes for jaxconv.models.build_model")
    q.add_argument("--rich", action="store_true", help="print a rich table instead of plain text")
    q.set_defaults(func=_cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxconv`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in ("shape", "explain")), None)
    prog = f"jaxconv {command}" if command else "jaxconv"
    try:
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            raise CliError("choose a command: shape or explain (jaxconv --help)")
        return args.func(args)
    except CliError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a library error about the arguments (shapes, padding, ...)
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `jaxconv shape ... | head`
        sys.stdout = open(__import__("os").devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
