"""Argument checks shared by the nn modules: errors that name the module, the argument and what was expected, raised
by jaxconv before JAX sees the value (JAX's own messages name neither)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_rngs", "check_float_dtype", "check_numeric_input", "check_rate"]

#: numpy dtype kinds that are not numbers: object, bytes, str, void (records), datetime, timedelta.
_NON_NUMERIC_KINDS = {"O": "objects", "S": "bytes", "U": "strings", "V": "records", "M": "datetimes", "m": "timedeltas"}


def check_rngs(owner: str, rngs: Any) -> None:
    """Raise TypeError unless ``rngs`` can seed the initialisers (an ``nnx.Rngs``, which has a ``params`` stream)."""
    if not callable(getattr(rngs, "params", None)):
        raise TypeError(f"{owner}: rngs must be an nnx.Rngs for the initialisers, e.g. rngs=nnx.Rngs(0); got "
                        f"rngs={rngs!r}.")


def check_float_dtype(owner: str, name: str, value: Any, *, optional: bool) -> None:
    """Raise TypeError unless ``value`` names a floating (or complex) dtype; ``None`` passes when ``optional``."""
    if value is None and optional:
        return
    expected = f"{'None (promote from the input and parameters) or ' if optional else ''}a floating dtype such as " \
               f"jnp.float32, 'bfloat16' or 'float16'"
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        raise TypeError(f"{owner}: {name}={value!r} is not a dtype; expected {expected}.") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(f"{owner}: {name}={value!r} is not a floating dtype; expected {expected}.")


def check_rate(owner: str, name: str, value: Any) -> float:
    """``value`` as a float when it is a rate in ``[0, 1)`` (a dropout rate); ValueError naming it otherwise.

    >>> check_rate("TextCNN", "dropout", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: TextCNN: dropout must be a float in [0, 1); got dropout=1.0.
    """
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if isinstance(value, bool) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{owner}: {name} must be a float in [0, 1); got {name}={value!r}.")
    return rate


def _what(x: Any) -> str:
    return "a numpy array" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"


def check_numeric_input(owner: str, x: Any, expected_shape: str) -> Any:
    """``x`` unchanged when it is (or converts to) an array of numbers; TypeError naming its dtype otherwise.

    JAX arrays and tracers pass untouched; anything else goes through ``np.asarray`` first (a list of strings
    becomes a ``<U`` array and is refused here, with the shape expected).
    """
    if isinstance(x, jax.Array):
        return x
    if hasattr(x, "dtype"):
        try:
            dtype = np.dtype(x.dtype)
        except TypeError:          # a dtype numpy does not name (a torch tensor's): JAX converts it
            return x
    else:
        try:
            dtype = np.asarray(x).dtype
        except ValueError as e:    # ragged nested lists
            raise TypeError(f"{owner}: x must be an array of numbers of shape {expected_shape}; got {_what(x)} "
                            f"that is not one ({e}).") from None
    if dtype.kind in _NON_NUMERIC_KINDS:
        raise TypeError(f"{owner}: x must be an array of numbers of shape {expected_shape}; got {_what(x)} of dtype "
                        f"{dtype} ({_NON_NUMERIC_KINDS[dtype.kind]}).")
    return x
