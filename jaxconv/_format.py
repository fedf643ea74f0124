"""Small text formatters for shapes and per-axis numbers, shared by the reports (no JAX import).

>>> fmt_tuple((2, 46, 111)), fmt_tuple(None), fmt_axes((5, 5)), fmt_axes((5, 5, 3), sep="*")
('(2, 46, 111)', '?', '5x5', '5*5*3')
>>> fmt_compact((3, 3)), fmt_compact((3, 2))
('3', '(3, 2)')
>>> quote("x" * 100, limit=5), quote(["a", "b"])
("'xxxxx...'", "['a', 'b']")
>>> cut_quoted("argument --top: '" + "a" * 200 + "' is not an int") == f"argument --top: '{'a' * 80}...' is not an int"
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["fmt_tuple", "fmt_axes", "fmt_compact", "quote", "cut_quoted", "QUOTE_LIMIT"]

#: How many characters of a user's input an error message quotes.
QUOTE_LIMIT = 80


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


def quote(value, limit: int = QUOTE_LIMIT) -> str:
    """A user's input quoted in a message: ``repr`` of a string cut to ``limit`` characters (then ``...``) inside the
    quotes; any other value's ``repr`` cut to ``limit`` characters. One rule for every message that quotes input, so a
    line of raw bytes never makes a message of thousands of characters."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


_LONG_QUOTED = re.compile(r"(['\"])([^'\"\n]{%d})[^'\"\n]+\1" % QUOTE_LIMIT)


def cut_quoted(message: str) -> str:
    """``message`` with every quoted run longer than :data:`QUOTE_LIMIT` characters cut to it (then ``...``): the
    last guard for messages that quote input they did not cut themselves (argparse's ``invalid int value: '...'``)."""
    return _LONG_QUOTED.sub(lambda m: f"{m[1]}{m[2]}...{m[1]}", message)
