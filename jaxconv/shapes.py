"""Convolution arithmetic in plain Python ints. No JAX import.

Every function states its formula. Notation used throughout:

- ``L``: input length along one spatial axis; ``k``: kernel size; ``s``: stride; ``d``: dilation;
- ``lo``, ``hi``: padding added before / after the input (see :func:`resolve_padding`);
- ``k_eff = d*(k-1) + 1``: the dilated kernel's extent, in input positions.

The output length of a convolution (XLA, Keras, PyTorch all agree given the same ``lo``, ``hi``)::

    out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1

The seed example: a width-5 kernel over 50 tokens, valid padding, stride 1::

    >>> conv_output_length(50, 5)
    46
    >>> resolve_padding(50, 5, padding="same")
    (2, 2)
    >>> resolve_padding(10, 4, stride=2, padding="same")   # extra on the right
    (1, 1)
    >>> resolve_padding(10, 3, stride=2, padding="same")
    (0, 1)
    >>> resolve_padding(50, 5, dilation=2, padding="causal")
    (8, 0)
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Union

__all__ = [
    "PADDING_KINDS",
    "Padding",
    "ConvSpec",
    "ReceptiveField",
    "resolve_padding",
    "conv_output_length",
    "conv_output_shape",
    "transposed_output_length",
    "receptive_field",
    "input_span",
    "field_span",
    "compose_field",
    "conv_params",
    "conv_flops",
    "conv_cost",
    "output_length_formula",
    "is_integral",
    "per_axis_ints",
]

#: Named padding conventions understood by :func:`resolve_padding`.
PADDING_KINDS = ("valid", "same", "same_lower", "same_torch", "causal", "full")

#: What ``padding`` may be for one spatial axis: a named kind, an int (both sides), or a (lo, hi) pair.
Padding = Union[str, int, tuple[int, int]]


def _check_int(name: str, value, minimum: int) -> int:
    if not is_integral(value):  # numpy ints are fine; bools, floats and anything else are not.
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {name}={value}.")
    return value


def is_integral(x) -> bool:
    """Whether ``x`` is an integer: a Python int or a numpy integer scalar, but not a bool.

    >>> import numpy as np
    >>> is_integral(3), is_integral(np.int64(3)), is_integral(True), is_integral(3.0), is_integral((3,))
    (True, True, False, False, False)
    """
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _as_index(x) -> int | None:
    """``x`` as an int when it is one (an int, a numpy integer, a 0-d integer array); None otherwise (bools too)."""
    if isinstance(x, bool):
        return None
    try:
        return operator.index(x)
    except TypeError:
        return None


def per_axis_ints(value, n: int | None = None, *, name: str = "value", minimum: int | None = None) -> tuple[int, ...]:
    """An int-or-sequence argument (``kernel_size``, ``stride``, ``dilation``, a spatial shape) as a tuple of ints.

    An int (or a numpy integer, or a 0-d integer array) is repeated ``n`` times (once when ``n`` is None); a
    sequence gives one int per entry, and must have ``n`` entries when ``n`` is given. Bools and floats are refused.

    Args:
      value: an int or a sequence of ints.
      n: the number of spatial axes, or None to take a sequence at its own length (and an int as one axis).
      name: the argument's name, for the error messages.
      minimum: when given, every entry must be ``>= minimum``.

    Returns:
      A tuple of Python ints, of length ``n`` (or ``len(value)``, or 1 for an int when ``n`` is None).

    >>> per_axis_ints(3, 2)
    (3, 3)
    >>> per_axis_ints((5, 3), 2, name="kernel_size")
    (5, 3)
    >>> per_axis_ints(50)
    (50,)
    >>> per_axis_ints((3, 3, 3), 2, name="stride")
    Traceback (most recent call last):
    ...
    ValueError: stride must be an int or a sequence of 2 ints (one per spatial axis); got stride=(3, 3, 3).

    Raises:
      TypeError: ``value`` is a bool, a float, or neither an int nor a sequence of ints (names ``name`` and the value).
      ValueError: a sequence without ``n`` entries, or an entry below ``minimum``.
    """
    expected = f"{name} must be an int or a sequence of {'' if n is None else f'{n} '}ints"
    one = _as_index(value)
    if one is not None:
        out = (one,) * (1 if n is None else n)
    else:
        try:
            out = tuple(_as_index(v) for v in value)
        except TypeError:
            raise TypeError(f"{expected}; got {value!r}.") from None
        if None in out:
            raise TypeError(f"{expected}; got {value!r}.")
        if n is not None and len(out) != n:
            raise ValueError(f"{expected} (one per spatial axis); got {name}={value!r}.")
    if minimum is not None and any(v < minimum for v in out):
        raise ValueError(f"{name} must be >= {minimum} on every axis; got {name}={value!r}.")
    return out


def resolve_padding(length: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                    padding: Padding = "valid") -> tuple[int, int]:
    """Resolve a padding convention to the explicit ``(lo, hi)`` pair for one spatial axis.

    Conventions (``k_eff = d*(k-1) + 1``):

    - ``"valid"``: ``(0, 0)``.
    - ``"same"``: the XLA / TensorFlow / Keras split. ``out = ceil(L / s)``,
      ``total = max((out - 1)*s + k_eff - L, 0)``, ``lo = total // 2``, ``hi = total - lo``
      (the odd extra position goes on the right). Depends on ``L`` when ``s > 1``.
    - ``"same_lower"``: as ``"same"`` but the extra position goes on the left:
      ``hi = total // 2``, ``lo = total - hi``.
    - ``"same_torch"``: PyTorch's ``padding='same'``: ``total = d*(k-1)`` independent of ``L``,
      ``lo = total // 2``, ``hi = total - lo``. Stride 1 only, like PyTorch.
    - ``"causal"``: ``(d*(k-1), 0)``: output ``t`` sees inputs ``t - d*(k-1) .. t`` only.
    - ``"full"``: ``(d*(k-1), d*(k-1))``: every partial overlap of kernel and input.
    - an int ``p >= 0``: ``(p, p)``.
    - a pair ``(lo, hi)`` of ints ``>= 0``: returned as given.

    Args:
      length: input length ``L`` along this axis (>= 1).
      kernel_size: ``k`` (>= 1).
      stride: ``s`` (>= 1).
      dilation: ``d`` (>= 1).
      padding: one of the conventions above.

    Returns:
      ``(lo, hi)``: positions padded before and after the input.

    Raises:
      ValueError: unknown padding string, negative padding, ``"same_torch"`` with ``stride > 1``,
        or a non-positive length, kernel size, stride or dilation.
    """
    length = _check_int("length", length, 1)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    dilation = _check_int("dilation", dilation, 1)
    span = dilation * (kernel_size - 1)  # d*(k-1)
    if isinstance(padding, str):
        kind = padding.lower()
        if kind == "valid":
            return (0, 0)
        if kind in ("same", "same_lower"):
            out = -(-length // stride)  # ceil(L / s)
            total = max((out - 1) * stride + span + 1 - length, 0)
            small, big = total // 2, total - total // 2
            return (small, big) if kind == "same" else (big, small)
        if kind == "same_torch":
            if stride != 1:
                raise ValueError(
                    f"padding='same_torch' supports stride=1 only (as PyTorch's padding='same'); got stride={stride}. "
                    f"Use padding='same' for the XLA/Keras split, which depends on the input length when stride > 1.")
            return (span // 2, span - span // 2)
        if kind == "causal":
            return (span, 0)
        if kind == "full":
            return (span, span)
        raise ValueError(
            f"padding={padding!r} is not a known padding convention; expected one of "
            f"{', '.join(repr(p) for p in PADDING_KINDS)}, an int >= 0, or a (lo, hi) pair of ints >= 0.")
    if isinstance(padding, bool):
        raise TypeError(f"padding must be a string, an int or a (lo, hi) pair; got {padding!r}.")
    if is_integral(padding):
        p = int(padding)
        if p < 0:
            raise ValueError(f"padding must be >= 0; got padding={p}.")
        return (p, p)
    if isinstance(padding, Sequence) and len(padding) == 2 and all(is_integral(p) for p in padding):
        lo, hi = int(padding[0]), int(padding[1])
        if lo < 0 or hi < 0:
            raise ValueError(f"padding (lo, hi) must both be >= 0; got padding={tuple(padding)!r}.")
        return (lo, hi)
    raise ValueError(
        f"padding={padding!r} is not understood; expected one of {', '.join(repr(p) for p in PADDING_KINDS)}, "
        f"an int >= 0, or a (lo, hi) pair of ints >= 0.")


def output_length_formula(length: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                          padding: Padding = "valid") -> str:
    """The output-length formula filled in with numbers, e.g.
    ``'46 = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1'``.

    The left side is the value of the right side, even when it is not a valid length (<= 0).

    >>> output_length_formula(50, 5)
    '46 = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1'
    """
    lo, hi = resolve_padding(length, kernel_size, stride=stride, dilation=dilation, padding=padding)
    out = (length + lo + hi - dilation * (kernel_size - 1) - 1) // stride + 1
    return (f"{out} = floor(({length} + {lo} + {hi} - {dilation}*({kernel_size}-1) - 1) / {stride}) + 1")


def conv_output_length(length: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                       padding: Padding = "valid") -> int:
    """Output length of a convolution along one axis.

    Formula, with ``(lo, hi) = resolve_padding(...)``::

        out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1

    >>> conv_output_length(50, 5)                        # the seed example
    46
    >>> conv_output_length(5, 3, stride=2, padding=1)    # 5x5 image, 3x3 kernel, stride 2, pad 1 -> 3x3
    3
    >>> conv_output_length(7, 3, stride=2, padding="same")
    4

    Raises:
      ValueError: when the result would be < 1 (the padded input is shorter than the dilated kernel),
        showing the formula with the given numbers; or any argument error of :func:`resolve_padding`.
    """
    lo, hi = resolve_padding(length, kernel_size, stride=stride, dilation=dilation, padding=padding)
    out = (length + lo + hi - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        formula = output_length_formula(length, kernel_size, stride=stride, dilation=dilation, padding=padding)
        raise ValueError(
            f"input length {length} is shorter than the dilated kernel d*(k-1)+1 = {dilation}*({kernel_size}-1)+1 = "
            f"{dilation * (kernel_size - 1) + 1} under padding={padding!r} (lo={lo}, hi={hi}): "
            f"out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1 gives {formula}; expected out >= 1.")
    return out


def normalize_padding(padding, ndim: int) -> tuple:
    """Per-axis padding for ``ndim`` spatial axes.

    - A string or an int applies to every axis.
    - For ``ndim == 1``, a pair of ints is ``(lo, hi)``.
    - For ``ndim >= 2``, a sequence of ``ndim`` entries, each a string, an int or a ``(lo, hi)`` pair
      (so ``(1, 2)`` for 2-D means 1 on both sides of the height axis and 2 on both sides of the width axis,
      as in PyTorch; write ``((1, 1), (2, 2))`` for explicit pairs).
    """
    if isinstance(padding, str) or is_integral(padding):
        return (padding,) * ndim
    if ndim == 1:
        if isinstance(padding, Sequence) and len(padding) == 2 and all(is_integral(p) for p in padding):
            return (tuple(int(p) for p in padding),)
        if isinstance(padding, Sequence) and len(padding) == 1:
            return (padding[0] if isinstance(padding[0], (str, int)) else tuple(padding[0]),)
        raise ValueError(f"padding={padding!r} is not understood for 1 spatial axis; expected a string, an int, or a "
                         f"(lo, hi) pair of ints.")
    if not isinstance(padding, Sequence) or len(padding) != ndim:
        raise ValueError(f"padding={padding!r} is not understood for {ndim} spatial axes; expected a string, an int, or a "
                         f"sequence of {ndim} entries (each a string, an int or a (lo, hi) pair).")
    return tuple(p if isinstance(p, (str, int)) or is_integral(p) else tuple(p) for p in padding)


def conv_output_shape(spatial_shape: Sequence[int], kernel_size, *, stride=1, dilation=1, padding="valid") -> tuple[int, ...]:
    """Output spatial shape of an N-D convolution: :func:`conv_output_length` on each axis.

    ``spatial_shape`` is one size per spatial axis, or an int for a 1-D input; ``kernel_size``, ``stride`` and
    ``dilation`` are an int (all axes) or one value per axis; ``padding`` as in :func:`normalize_padding`.

    >>> conv_output_shape((128, 128), 5)
    (124, 124)
    >>> conv_output_shape((5, 5), 3, stride=2, padding=1)
    (3, 3)
    >>> conv_output_shape(10, 3)      # 1-D: an int length
    (8,)
    """
    spatial_shape = per_axis_ints(spatial_shape, name="spatial_shape")
    n = len(spatial_shape)
    if n < 1:
        raise ValueError(f"spatial_shape must have at least one axis; got spatial_shape={spatial_shape!r}.")
    ks = per_axis_ints(kernel_size, n, name="kernel_size")
    ss = per_axis_ints(stride, n, name="stride")
    ds = per_axis_ints(dilation, n, name="dilation")
    ps = normalize_padding(padding, n)
    return tuple(conv_output_length(L, k, stride=s, dilation=d, padding=p) for L, k, s, d, p in zip(spatial_shape, ks, ss, ds, ps))


def transposed_output_length(length: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                             padding: Padding = "valid", output_padding: int = 0) -> int:
    """Output length of a transposed convolution (the gradient of a convolution w.r.t. its input).

    PyTorch's formula, with ``(lo, hi)`` the padding of the forward convolution being transposed::

        out = (L - 1)*s - (lo + hi) + d*(k-1) + output_padding + 1

    ``padding`` here is ``"valid"`` (``lo = hi = 0``), ``"same"`` (``out = L*s``, as Flax/Keras
    ``ConvTranspose(padding='SAME')``), an int, or a ``(lo, hi)`` pair.

    >>> transposed_output_length(3, 3, stride=2, padding=1)   # inverts 5 -> 3 of conv_output_length
    5
    >>> transposed_output_length(4, 3, stride=2, padding="same")
    8
    """
    length = _check_int("length", length, 1)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    dilation = _check_int("dilation", dilation, 1)
    output_padding = _check_int("output_padding", output_padding, 0)
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding must be smaller than stride or dilation; got output_padding={output_padding} "
                         f"with stride={stride}, dilation={dilation}.")
    if isinstance(padding, str):
        kind = padding.lower()
        if kind == "same":
            return length * stride + output_padding
        if kind != "valid":
            raise ValueError(f"padding={padding!r} is not supported for transposed convolutions; expected 'valid', 'same', "
                             f"an int >= 0 or a (lo, hi) pair.")
        lo = hi = 0
    else:
        lo, hi = resolve_padding(1, 1, padding=padding)
    out = (length - 1) * stride - (lo + hi) + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"transposed output length would be {out}: out = (L - 1)*s - (lo + hi) + d*(k-1) + output_padding + 1 = "
            f"({length} - 1)*{stride} - ({lo} + {hi}) + {dilation}*({kernel_size}-1) + {output_padding} + 1 = {out}; "
            f"expected out >= 1.")
    return out


def conv_params(in_channels: int, filters: int, kernel_size, *, groups: int = 1, use_bias: bool = True) -> int:
    """Number of parameters of a convolution.

    Formula: ``prod(kernel_size) * (in_channels / groups) * filters + (filters if use_bias else 0)``.

    >>> conv_params(300, 111, 5)            # the seed: 5*300*111 + 111
    166611
    >>> conv_params(3, 40, (5, 5))          # 128x128x3 image, 40 filters of 5x5
    3040
    """
    in_channels = _check_int("in_channels", in_channels, 1)
    filters = _check_int("filters", filters, 1)
    groups = _check_int("groups", groups, 1)
    if in_channels % groups or filters % groups:
        raise ValueError(f"in_channels and filters must both be divisible by groups; got in_channels={in_channels}, "
                         f"filters={filters}, groups={groups}.")
    ks = per_axis_ints(kernel_size, name="kernel_size")
    return math.prod(ks) * (in_channels // groups) * filters + (filters if use_bias else 0)


def conv_flops(spatial_shape, in_channels: int, filters: int, kernel_size, *, stride=1, dilation=1, padding="valid",
               groups: int = 1, use_bias: bool = True, batch: int = 1) -> int:
    """FLOPs of one forward pass, counting a multiply-add as 2 FLOPs.

    Formula, with ``out_positions = prod(conv_output_shape(...))``::

        flops = batch * out_positions * filters * (2 * prod(kernel_size) * in_channels / groups  + (1 if use_bias else 0))

    The bias add counts 1 FLOP per output element. Taps that land on padding positions are counted as real
    multiply-adds (the work of a dense implementation); XLA's ``cost_analysis()`` counts only taps on real input
    positions, so it reports fewer FLOPs whenever there is padding. Activations are not counted.

    >>> conv_flops((50,), 300, 111, 5, use_bias=False)   # 46 positions * 111 filters * 5*300 MACs * 2
    15318000
    """
    spatial_shape = per_axis_ints(spatial_shape, name="spatial_shape")
    out = conv_output_shape(spatial_shape, kernel_size, stride=stride, dilation=dilation, padding=padding)
    ks = per_axis_ints(kernel_size, len(spatial_shape), name="kernel_size")
    conv_params(in_channels, filters, ks, groups=groups)  # validates channels / groups
    batch = _check_int("batch", batch, 1)
    per_out = 2 * math.prod(ks) * (in_channels // groups) + (1 if use_bias else 0)
    return batch * math.prod(out) * filters * per_out


# The receptive-field arithmetic has its own module; its names stay reachable here (jaxconv.shapes.receptive_field).
from jaxconv.receptive import (ConvSpec, ReceptiveField, compose_field, field_span, input_span,
                               receptive_field)
# FLOPs and bytes per algorithm have their own module too (jaxconv.shapes.conv_cost).
from jaxconv.conv_costs import conv_cost, fused_cost  # noqa: F401
