"""Builders of config validation rules (no JAX import): each returns ``(check(value) -> bool, what it expects)``.

A rule is ``(dotted key, (check, expected), what the field is)``; :func:`jaxconv.configs.validate` reports a value
that fails its check as ``config.<key>=<value>: expected <expected> (<what>)``. The run's rules are
:data:`jaxconv.configs._validate.RULES`; each model kind adds its own (:attr:`jaxconv.models.ModelKind.rules`):

>>> check, expected = real(0.0, 1.0)
>>> check(0.5), check(1.0), expected
(True, False, 'a float in [0, 1)')
>>> int_min(1)[1], ints_min(1, optional=True)[1]
('an int >= 1', 'None or a non-empty tuple of ints >= 1')
>>> int_range(0, 2**63 - 1, "2**63 - 1")[1]
'an int in [0, 2**63 - 1]'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["is_int", "is_real", "int_min", "int_range", "ints_min", "real", "one_of"]

Check = tuple[Callable[[Any], bool], str]


def is_int(v) -> bool:
    """An int, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_min(minimum: int) -> Check:
    """An int ``>= minimum``."""
    return (lambda v: is_int(v) and v >= minimum), f"an int >= {minimum}"


def int_range(lo: int, hi: int, text: str | None = None) -> Check:
    """An int in ``[lo, hi]`` (both ends included); ``text`` names ``hi`` when its digits say little."""
    return (lambda v: is_int(v) and lo <= v <= hi), f"an int in [{lo}, {text or hi}]"


def ints_min(minimum: int, *, optional: bool = False) -> Check:
    """A non-empty tuple (or list) of ints ``>= minimum``; also ``None`` when ``optional``."""
    def ok(v):
        if v is None:
            return optional
        return isinstance(v, (tuple, list)) and len(v) > 0 and all(is_int(x) and x >= minimum for x in v)

    return ok, ("None or " if optional else "") + f"a non-empty tuple of ints >= {minimum}"


def real(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = True) -> Check:
    """A finite number in ``[lo, hi)`` (the ends per ``lo_open`` / ``hi_open``; no upper end when ``hi`` is None)."""
    def ok(v):
        if not is_real(v):
            return False
        above = v > lo if lo_open else v >= lo
        below = True if hi is None else (v < hi if hi_open else v <= hi)
        return above and below

    if hi is None:
        text = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a float in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return ok, text


def one_of(values: tuple) -> Check:
    """One of ``values``."""
    return (lambda v: v in values), "one of " + ", ".join(map(repr, values))
