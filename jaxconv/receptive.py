"""Receptive fields of conv and pooling stacks, in plain Python ints (no JAX import): which input positions an
output position sees. Re-exported by :mod:`jaxconv.shapes`, whose padding and length arithmetic it uses.

>>> receptive_field([(3, 1, 1, "causal"), (3, 1, 2, "causal")])
ReceptiveField(size=7, jump=1, start=-6)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from jaxconv.shapes import Padding, _check_int, conv_output_length, is_integral, resolve_padding

__all__ = ["ConvSpec", "ReceptiveField", "receptive_field", "compose_field", "input_span", "field_span"]


class ConvSpec(NamedTuple):
    """One step of a stack, for receptive-field arithmetic: a convolution or a pooling window."""

    kernel_size: int
    stride: int = 1
    dilation: int = 1
    padding: Padding = "valid"


class ReceptiveField(NamedTuple):
    """Receptive field of a stack, in input positions.

    Attributes:
      size: how many consecutive input positions one output position depends on (holes included).
      jump: the effective stride: moving one output position moves the field this many input positions.
      start: the input position where output 0's field begins (negative: it starts in the left padding).

    Output position ``t`` sees the input positions ``[start + t*jump, start + t*jump + size)``.
    """

    size: int
    jump: int
    start: int


def _as_spec(layer) -> ConvSpec:
    if isinstance(layer, ConvSpec):
        return layer
    if isinstance(layer, dict):
        return ConvSpec(**layer)
    if isinstance(layer, Sequence) and not isinstance(layer, str):
        return ConvSpec(*layer)
    # Anything with conv-like attributes, e.g. a jaxconv Conv1D.
    try:
        ks, st, dl = layer.kernel_size, layer.stride, layer.dilation
        pd = layer.padding
    except AttributeError:
        raise TypeError(f"each layer must be a ConvSpec, a (kernel_size, stride, dilation, padding) tuple, a dict or a "
                        f"1-D conv module; got {layer!r}.") from None
    unwrap = lambda v: v[0] if isinstance(v, tuple) and len(v) == 1 else v
    return ConvSpec(unwrap(ks), unwrap(st), unwrap(dl), unwrap(pd) if isinstance(pd, tuple) and len(pd) == 1 else pd)


def _needs_length(spec: ConvSpec) -> bool:
    return isinstance(spec.padding, str) and spec.padding.lower() in ("same", "same_lower") and spec.stride > 1


def receptive_field(layers: Sequence, length: int | None = None) -> ReceptiveField:
    """Receptive field of a stack of 1-D convolution / pooling steps.

    Each layer is a :class:`ConvSpec`, a ``(kernel_size, stride, dilation, padding)`` tuple (trailing entries
    optional), a dict with those keys, or a 1-D conv module. The recurrence, layer by layer
    (``k_eff = d*(k-1) + 1``, ``lo`` from :func:`resolve_padding`)::

        size  <- size + (k_eff - 1) * jump
        start <- start - lo * jump
        jump  <- jump * s

    starting from ``size = 1, jump = 1, start = 0``.

    ``length`` (the input length) is needed only when a layer uses ``"same"``/``"same_lower"`` with stride > 1,
    whose padding depends on the length it sees.

    >>> receptive_field([(3, 1, 1, "causal"), (3, 1, 2, "causal"), (3, 1, 4, "causal")])
    ReceptiveField(size=15, jump=1, start=-14)
    >>> receptive_field([(5,)])
    ReceptiveField(size=5, jump=1, start=0)
    """
    specs = [_as_spec(layer) for layer in layers]
    if not specs:
        raise ValueError("layers must hold at least one (kernel_size, stride, dilation, padding) step; got an empty stack.")
    size, jump, start = 1, 1, 0
    cur = length
    for i, spec in enumerate(specs):
        k = _check_int(f"layers[{i}].kernel_size", spec.kernel_size, 1)
        s = _check_int(f"layers[{i}].stride", spec.stride, 1)
        d = _check_int(f"layers[{i}].dilation", spec.dilation, 1)
        if cur is None:
            if _needs_length(spec):
                raise ValueError(f"layers[{i}] uses padding={spec.padding!r} with stride={s}, whose padding depends on the "
                                 f"input length; pass length=<input length>.")
            lo, _ = resolve_padding(max(k, 1) * d, k, stride=s, dilation=d, padding=spec.padding)
        else:
            lo, _ = resolve_padding(cur, k, stride=s, dilation=d, padding=spec.padding)
            cur = conv_output_length(cur, k, stride=s, dilation=d, padding=spec.padding)
        size, jump, start = compose_field(ReceptiveField(size, jump, start), k, stride=s, dilation=d, lo=lo)
    return ReceptiveField(size, jump, start)


def compose_field(rf: ReceptiveField, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                  lo: int = 0) -> ReceptiveField:
    """The receptive field after one more conv / pool step whose input has field ``rf``
    (``lo``: that step's left padding)::

        size  = rf.size + d*(k-1) * rf.jump
        start = rf.start - lo * rf.jump
        jump  = rf.jump * s

    >>> compose_field(ReceptiveField(3, 1, -2), 3, dilation=2, lo=4)
    ReceptiveField(size=7, jump=1, start=-6)
    """
    return ReceptiveField(rf.size + dilation * (kernel_size - 1) * rf.jump, rf.jump * stride, rf.start - lo * rf.jump)


def input_span(layers: Sequence, out_index: int, length: int) -> tuple[int, int]:
    """The half-open range ``[start, end)`` of input positions that output position ``out_index`` sees.

    With ``rf = receptive_field(layers, length)``::

        start = min(max(rf.start + out_index*rf.jump, 0), length)
        end   = max(min(rf.start + out_index*rf.jump + rf.size, length), start)

    i.e. clipped to the real input (padding positions are not tokens); an output that sees only padding gets an
    empty range (``start == end``). Every input position that can affect the output lies in the range. It is the
    receptive-field arithmetic, so it can be wider than the set of positions actually reached: with stride or
    dilation the range has holes, and an end that was clipped can fall in a hole or come from a path through a
    later layer's padding. An end that was not clipped is reached whenever its path (the first / last tap of
    every layer) runs over real positions only.

    >>> input_span([(5,)], 0, 50)      # output 0 of the seed's width-5 filter sees tokens 0..4
    (0, 5)
    >>> input_span([(3, 1, 1, "causal")], 0, 10)
    (0, 1)

    Raises:
      ValueError: ``out_index`` outside ``[0, out_length)``.
    """
    length = _check_int("length", length, 1)
    specs = [_as_spec(layer) for layer in layers]
    out_len = length
    for spec in specs:
        out_len = conv_output_length(out_len, spec.kernel_size, stride=spec.stride, dilation=spec.dilation,
                                     padding=spec.padding)
    if not is_integral(out_index) or not 0 <= out_index < out_len:
        raise ValueError(f"out_index must be in [0, {out_len}) for an input of length {length} (the stack's output "
                         f"length); got out_index={out_index!r}.")
    return field_span(receptive_field(specs, length), out_index, length)


def field_span(rf: ReceptiveField, out_index: int, length: int) -> tuple[int, int]:
    """The input range ``[start, end)`` that output ``out_index`` of a stack with receptive field ``rf`` sees,
    clipped to an input of ``length`` positions (empty, ``start == end``, when it sees only padding)::

        begin = rf.start + out_index*rf.jump;  start = clip(begin, 0, L);  end = max(min(begin + rf.size, L), start)

    >>> field_span(ReceptiveField(size=5, jump=1, start=-2), 0, 50)
    (0, 3)
    """
    begin = rf.start + out_index * rf.jump
    start = min(max(begin, 0), length)
    return (start, max(min(begin + rf.size, length), start))
