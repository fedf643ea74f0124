"""Small text formatters for shapes and per-axis numbers, shared by the reports (no JAX import).

>>> fmt_tuple((2, 46, 111)), fmt_tuple(None), fmt_axes((5, 5)), fmt_axes((5, 5, 3), sep="*")
('(2, 46, 111)', '?', '5x5', '5*5*3')
>>> fmt_compact((3, 3)), fmt_compact((3, 2))
('3', '(3, 2)')
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["fmt_tuple", "fmt_axes", "fmt_compact"]


def fmt_tuple(values: Iterable | None, missing: str = "?") -> str:
    """``"(a, b, c)"`` from any iterable (a shape, a ``(lo, hi)`` pair, ``"name=value"`` strings); ``missing`` for None.

    Unlike ``str(tuple)`` a single entry has no trailing comma: ``fmt_tuple([5]) == "(5)"``.
    """
    return missing if values is None else "(" + ", ".join(str(v) for v in values) + ")"


def fmt_axes(values: Iterable, sep: str = "x") -> str:
    """Per-axis numbers joined by ``sep``: ``"5x5"`` (kernel, stride, receptive field), ``sep="*"`` for a product
    written out (``"5*5*3"``)."""
    return sep.join(str(v) for v in values)


def fmt_compact(values: Iterable) -> str:
    """One number when every axis has the same value (``"3"``), else :func:`fmt_tuple` (``"(3, 2)"``)."""
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else fmt_tuple(values)
