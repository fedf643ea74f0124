"""The Python API's rule for counts, indices and texts: one place, used by every public function that takes them.

- **A count** (``k``, ``n``: how many to return): an int >= 1. Numpy integers are ints; bools, floats (``2.7``, and
  ``2.0`` too), ``None`` and strings are not (:func:`check_count`). Nothing is rounded or clipped.
- **An index** (``filter``, ``example``, a class): an int in ``[0, n)``. Negative indices are refused: ``-1`` does
  not mean "the last" anywhere in the API (:func:`check_index`).
- **Texts** (``texts``, ``text``): a sequence of str; one str is one text, never a sequence of characters
  (``run.encode("a b")`` is ``run.encode(["a b"])``) (:func:`check_texts`). ``None``, or an item that is not a str,
  is refused.

Errors name the owner (the function or class), the argument, the value given (its ``repr`` cut to
:data:`SHOWN` characters) and what was expected:

- :class:`TypeError`: the wrong kind of value (``k=2.7``, ``filter=1.0``, ``texts=None``);
- :class:`ArgumentIndexError`: an int outside ``[0, n)``; it is both an ``IndexError`` and a ``ValueError``, as
  numpy's ``AxisError`` is (the command line shows a ``ValueError`` as one line);
- :class:`ValueError`: any other bad value (``k=0``).

>>> check_count("Dump.top_ngrams", "k", 3)
3
>>> try:
...     check_index("jaxconv.feature_map", "filter", -1, 8)
... except ArgumentIndexError as e:
...     print(e)  # doctest: +NORMALIZE_WHITESPACE
jaxconv.feature_map: filter=-1 is out of range; expected an int with 0 <= filter < 8 (negative indices are not
accepted).
>>> check_texts("Run.encode", "texts", "one text")
['one text']
"""

from __future__ import annotations

import numbers

from jaxconv._format import QUOTE_LIMIT, quote

__all__ = ["ArgumentIndexError", "check_count", "check_index", "check_texts", "shown", "SHOWN"]

#: How many characters of a value a message quotes (one limit for every message: :func:`jaxconv._format.quote`).
SHOWN = QUOTE_LIMIT
#: A value quoted in a message: its ``repr``, a string's text cut to :data:`SHOWN` characters (``...`` marks the cut).
shown = quote


class ArgumentIndexError(IndexError, ValueError):
    """An index argument outside its range: an ``IndexError`` and a ``ValueError`` both."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _kind(value) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def check_count(owner: str, name: str, value) -> int:
    """``value`` as an int >= 1, or TypeError (not an int) / ValueError (below 1) naming ``owner`` and ``name``."""
    if not _is_int(value):
        raise TypeError(f"{owner}: {name}={shown(value)} is {_kind(value)}, not an int; expected an int >= 1.")
    if value < 1:
        raise ValueError(f"{owner}: {name}={shown(value)} is below 1; expected an int >= 1.")
    return int(value)


def check_index(owner: str, name: str, value, n: int, *, what: str = "") -> int:
    """``value`` as an int in ``[0, n)``, or TypeError (not an int) / :class:`ArgumentIndexError` (outside).

    ``what`` says what has the ``n`` entries (``"layer 'convs/0', which has filters=8"``), for the message."""
    where = f" for {what}" if what else ""
    if not _is_int(value):
        raise TypeError(f"{owner}: {name}={shown(value)} is {_kind(value)}, not an int; expected an int with "
                        f"0 <= {name} < {n}{where}.")
    if not 0 <= value < n:
        hint = " (negative indices are not accepted)" if value < 0 else ""
        raise ArgumentIndexError(f"{owner}: {name}={shown(value)} is out of range{where}; expected an int with "
                                 f"0 <= {name} < {n}{hint}.")
    return int(value)


def check_texts(owner: str, name: str, value) -> list[str]:
    """``value`` as a list of str: one str is one text; TypeError for ``None``, a non-sequence, or an item that
    is not a str (the message names its position)."""
    if isinstance(value, str):
        return [value]
    try:
        if isinstance(value, (bytes, bytearray)):
            raise TypeError
        texts = list(value)
    except TypeError:
        raise TypeError(f"{owner}: {name}={shown(value)} is {_kind(value)}; expected a str (one text) or a "
                        f"sequence of str.") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{owner}: {name}[{i}]={shown(t)} is {_kind(t)}; expected a str (each text is a str).")
    return texts
