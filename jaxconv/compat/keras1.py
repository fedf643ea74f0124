"""Keras 1 argument names -> :class:`jaxconv.Conv1D`.

The seed's Keras 1 layer::

    Convolution1D(nb_filter=111, filter_length=5, border_mode='valid', activation='relu', subsample_length=1,
                  input_dim=300)

becomes::

    >>> from jaxconv.compat.keras1 import Convolution1D
    >>> conv = Convolution1D(nb_filter=111, filter_length=5, border_mode="valid", activation="relu",
    ...                      subsample_length=1, input_dim=300)
    >>> conv.kernel.shape, conv.output_shape((2, 50, 300))
    ((5, 300, 111), (2, 46, 111))
"""

from __future__ import annotations

from flax import nnx

from jaxconv.nn.conv import Conv1D

__all__ = ["Convolution1D"]

_BORDER_MODES = {"valid": "valid", "same": "same", "full": "full", "causal": "causal"}


def Convolution1D(nb_filter: int, filter_length: int, *, border_mode: str = "valid", subsample_length: int = 1,
                  activation=None, input_dim: int | None = None, bias: bool = True, weights=None,
                  theano: bool = False, rngs: nnx.Rngs | None = None, **kwargs) -> Conv1D:
    """Build the :class:`~jaxconv.Conv1D` equivalent of Keras 1's ``Convolution1D``.

    Args:
      nb_filter: number of filters (``filters``).
      filter_length: kernel width (``kernel_size``).
      border_mode: ``"valid"``, ``"same"`` (XLA/TF split), ``"full"`` or ``"causal"``.
      subsample_length: stride.
      activation: name (``"relu"``, ``"linear"``, ...) or callable.
      input_dim: channels of the input (300 for 300-d word vectors). Required: jaxconv creates parameters eagerly.
      bias: add a bias.
      weights: optional ``[W, b]`` as Keras 1 stored them: ``W`` of shape ``(filter_length, 1, input_dim, nb_filter)``.
      theano: ``weights`` come from the Theano backend (flipped kernels): flip the width axis.
      rngs: ``nnx.Rngs`` for initialisation (default ``nnx.Rngs(0)``).
      kwargs: other :class:`~jaxconv.Conv1D` keywords (``dilation``, ``dtype``, ...).

    Shapes: input ``(batch, steps, input_dim)``, kernel ``(filter_length, input_dim, nb_filter)``,
    output ``(batch, new_steps, nb_filter)``.
    """
    if input_dim is None:
        raise ValueError("Convolution1D: input_dim is required (e.g. input_dim=300 for 300-d word vectors); Keras infers "
                         "it when the layer is first called, jaxconv creates the kernel when the layer is built.")
    if border_mode not in _BORDER_MODES:
        raise ValueError(f"Convolution1D: border_mode={border_mode!r} is not known; expected one of "
                         f"{', '.join(repr(b) for b in _BORDER_MODES)}.")
    layer_args = dict(stride=subsample_length, padding=_BORDER_MODES[border_mode], activation=activation,
                      use_bias=bias, **kwargs)
    if weights is not None:
        if len(weights) != (2 if bias else 1):
            raise ValueError(f"Convolution1D: weights must be [W, b] (or [W] with bias=False); got {len(weights)} arrays.")
        conv = Conv1D.from_keras1(weights[0], weights[1] if bias else None, theano=theano, rngs=rngs, **layer_args)
        if conv.in_channels != input_dim or conv.filters != nb_filter or conv.kernel_size != (filter_length,):
            raise ValueError(f"Convolution1D: weights[0] has shape {tuple(weights[0].shape)}; expected "
                             f"(filter_length={filter_length}, 1, input_dim={input_dim}, nb_filter={nb_filter}).")
        return conv
    return Conv1D(input_dim, nb_filter, filter_length, rngs=rngs if rngs is not None else nnx.Rngs(0), **layer_args)
