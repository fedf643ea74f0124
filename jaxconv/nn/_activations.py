"""Activations by name, as Keras names them: ``resolve_activation("relu")`` -> ``jax.nn.relu``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

_ACTIVATIONS = {
    "linear": None, "identity": None, "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu, "elu": jax.nn.elu, "selu": jax.nn.selu, "softplus": jax.nn.softplus, "silu": jax.nn.silu,
    "swish": jax.nn.silu, "leaky_relu": jax.nn.leaky_relu, "relu6": jax.nn.relu6, "hard_sigmoid": jax.nn.hard_sigmoid,
}


def resolve_activation(activation: str | Callable | None) -> Callable | None:
    """``None``, a callable, or a Keras-style name (``"relu"``, ``"tanh"``, ``"linear"``, ...) -> callable or None."""
    if activation is None or callable(activation):
        return activation
    if isinstance(activation, str) and activation.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[activation.lower()]
    raise ValueError(f"activation={activation!r} is not known; expected None, a callable, or one of "
                     f"{', '.join(repr(a) for a in _ACTIVATIONS)}.")
