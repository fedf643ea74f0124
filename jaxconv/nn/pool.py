"""MaxPool1D: max over windows of positions, with the same shape arithmetic as the convolutions.

Input ``(..., length, channels)`` -> output ``(..., out_length, channels)`` with
``out_length = floor((L + lo + hi - (k - 1) - 1) / s) + 1`` (:func:`jaxconv.shapes.conv_output_length`; the default
stride is the window, so windows do not overlap: Zhang et al. 2015's "max-pooling 3").

It exposes ``kernel_size``, ``stride``, ``dilation`` and ``padding_for(length)`` as the convolutions do, so
:func:`jaxconv.explain` shows its row, its formula, and carries receptive fields through it (the field of an output
position grows by ``(k - 1) * jump`` and the jump multiplies by the stride).

>>> import jax.numpy as jnp
>>> pool = MaxPool1D(3)
>>> pool(jnp.arange(8.0).reshape(1, 8, 1))[0, :, 0]                      # windows [0,3) [3,6); 6..7 dropped
Array([2., 5.], dtype=float32)
>>> pool.output_shape((4, 1008, 256))
(4, 336, 256)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jaxconv import shapes

__all__ = ["MaxPool1D", "AvgPool1D"]


class MaxPool1D(nnx.Module):
    """Max over windows of ``kernel_size`` positions every ``stride`` positions, per channel.

    Args:
      kernel_size: window length ``k`` (>= 1).
      stride: step ``s`` between windows (default ``kernel_size``: non-overlapping windows).
      padding: ``"valid"`` (default), ``"same"``, ``"causal"``, an int or ``(lo, hi)``; padded positions hold
        ``-inf``, so they never win the max.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: Any = "valid"):
        self.kernel_size = shapes.per_axis_ints(kernel_size, 1, name="kernel_size", minimum=1)
        self.stride = shapes.per_axis_ints(kernel_size if stride is None else stride, 1, name="stride", minimum=1)
        self.dilation = (1,)
        self.padding = shapes.normalize_padding(padding, 1)
        shapes.resolve_padding(self.kernel_size[0], self.kernel_size[0], stride=self.stride[0],
                               padding=self.padding[0])  # a bad padding fails here, not at call time

    def padding_for(self, length) -> tuple[int, int]:
        """``(lo, hi)`` for an input of ``length`` positions. No compute."""
        (L,) = shapes.per_axis_ints(length, 1, name="length", minimum=1)
        return shapes.resolve_padding(L, self.kernel_size[0], stride=self.stride[0], padding=self.padding[0])

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(..., length, channels)`` -> ``(..., out_length, channels)``. No compute; the formula on error."""
        shape = tuple(int(s) for s in input_shape)
        if len(shape) < 2:
            raise ValueError(f"MaxPool1D: input must have shape (..., length, channels); got shape {shape}.")
        out = shapes.conv_output_length(shape[-2], self.kernel_size[0], stride=self.stride[0],
                                        padding=self.padding[0])
        return (*shape[:-2], out, shape[-1])

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x`` ``(..., length, channels)`` -> ``(..., out_length, channels)``."""
        self.output_shape(x.shape)                                                    # checks, with the formula
        lo, hi = self.padding_for(x.shape[-2])
        nd = x.ndim
        window = (1,) * (nd - 2) + (self.kernel_size[0], 1)
        strides = (1,) * (nd - 2) + (self.stride[0], 1)
        pads = ((0, 0),) * (nd - 2) + ((lo, hi), (0, 0))
        # A Python scalar init: JAX recognises (value, max) as a max pool and differentiates it.
        init = -float("inf") if jnp.issubdtype(x.dtype, jnp.floating) else int(jnp.iinfo(x.dtype).min)
        return lax.reduce_window(x, init, lax.max, window, strides, pads)

    def __repr__(self) -> str:
        return f"MaxPool1D(kernel_size={self.kernel_size[0]}, stride={self.stride[0]}, padding={self.padding[0]!r})"


class AvgPool1D(MaxPool1D):
    """Mean over windows of ``kernel_size`` positions every ``stride`` positions, per channel (same shape arithmetic
    and receptive fields as :class:`MaxPool1D`).

    Args:
      kernel_size, stride, padding: as :class:`MaxPool1D`; padded positions hold zeros.
      count_include_pad: divide by the whole window (PyTorch's default) or only by the positions inside the input
        (Keras' ``padding="same"``). Equal without padding.

    >>> import jax.numpy as jnp
    >>> AvgPool1D(2, padding=(0, 1), count_include_pad=False)(jnp.arange(3.0).reshape(1, 3, 1))[0, :, 0]
    Array([0.5, 2. ], dtype=float32)
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: Any = "valid", *,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x`` ``(..., length, channels)`` -> ``(..., out_length, channels)``."""
        self.output_shape(x.shape)
        lo, hi = self.padding_for(x.shape[-2])
        nd = x.ndim
        window = (1,) * (nd - 2) + (self.kernel_size[0], 1)
        strides = (1,) * (nd - 2) + (self.stride[0], 1)
        pads = ((0, 0),) * (nd - 2) + ((lo, hi), (0, 0))
        total = lax.reduce_window(x, 0.0, lax.add, window, strides, pads)
        if self.count_include_pad:
            return total / self.kernel_size[0]
        ones = jnp.ones(x.shape[-2:-1] + (1,), x.dtype)                               # (L, 1)
        count = lax.reduce_window(ones, 0.0, lax.add, window[-2:], strides[-2:], pads[-2:])
        return total / count

    def __repr__(self) -> str:
        return (f"AvgPool1D(kernel_size={self.kernel_size[0]}, stride={self.stride[0]}, padding={self.padding[0]!r}, "
                f"count_include_pad={self.count_include_pad})")
