"""Keras 3 argument names -> jaxconv modules.

>>> from jaxconv.compat.keras import Conv1D
>>> conv = Conv1D(filters=111, kernel_size=5, activation="relu", input_dim=300)
>>> conv.kernel.shape, conv.output_shape((2, 50, 300))
((5, 300, 111), (2, 46, 111))
"""

from __future__ import annotations

from flax import nnx

from jaxconv.nn import conv as _conv

__all__ = ["Conv1D", "Conv2D"]


def _build(cls, filters, kernel_size, *, strides, padding, dilation_rate, groups, activation, use_bias, data_format,
           input_dim, rngs, kwargs):
    name = cls.__name__
    if input_dim is None:
        raise ValueError(f"{name}: input_dim is required (the input's channel count); Keras infers it when the layer is "
                         f"first called, jaxconv creates the kernel when the layer is built.")
    if isinstance(padding, str) and padding.lower() not in ("valid", "same", "causal"):
        raise ValueError(f"{name}: padding={padding!r} is not a Keras padding; expected 'valid', 'same' or 'causal'.")
    if data_format is None:
        data_format = "channels_last"
    return cls(input_dim, filters, kernel_size, stride=strides, padding=padding.lower() if isinstance(padding, str) else padding,
               dilation=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
               data_format=data_format, rngs=rngs if rngs is not None else nnx.Rngs(0), **kwargs)


def Conv1D(filters: int, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
           activation=None, use_bias=True, *, input_dim: int | None = None, rngs: nnx.Rngs | None = None,
           **kwargs) -> _conv.Conv1D:
    """The :class:`jaxconv.Conv1D` equivalent of ``keras.layers.Conv1D``; ``input_dim`` is the input's channels."""
    return _build(_conv.Conv1D, filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                  groups=groups, activation=activation, use_bias=use_bias, data_format=data_format,
                  input_dim=input_dim, rngs=rngs, kwargs=kwargs)


def Conv2D(filters: int, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
           activation=None, use_bias=True, *, input_dim: int | None = None, rngs: nnx.Rngs | None = None,
           **kwargs) -> _conv.Conv2D:
    """The :class:`jaxconv.Conv2D` equivalent of ``keras.layers.Conv2D``; ``input_dim`` is the input's channels."""
    return _build(_conv.Conv2D, filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                  groups=groups, activation=activation, use_bias=use_bias, data_format=data_format,
                  input_dim=input_dim, rngs=rngs, kwargs=kwargs)
