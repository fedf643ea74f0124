"""Named kernel layouts and conversion between frameworks.

A layout is a string of axis letters. ``W``/``H``: kernel width/height; ``I``: input channels per group;
``O``: filters (output channels); ``1``: a unit axis.

=================================  ===========  ===============  =========================================
layout name                        1-D          2-D              where it comes from
=================================  ===========  ===============  =========================================
``"jaxconv"``, ``"flax"``,         ``WIO``      ``HWIO``         jaxconv, flax.nnx.Conv, Keras 3
``"keras"``
``"keras1"``                       ``W1IO``     ``HWIO``         Keras 1 ``Convolution1D`` stores
                                                                 ``(filter_length, 1, input_dim, nb_filter)``
                                                                 (a 2-D conv over a width-1 image);
                                                                 ``Convolution2D`` with ``dim_ordering='tf'``
``"keras1_th"``                    --           ``OIHW``         Keras 1 ``Convolution2D``,
                                                                 ``dim_ordering='th'``
``"torch"``, ``"equinox"``         ``OIW``      ``OIHW``         torch.nn.Conv1d/2d ``weight``, equinox
=================================  ===========  ===============  =========================================

Keras 1 on the Theano backend computed a true convolution, i.e. it flipped the kernel's spatial axes; kernels
trained there must be flipped to be used as cross-correlation kernels (as Keras' own ``convert_kernel`` did).
``convert(..., theano=True)`` does that flip when reading from, or writing to, a ``keras1``/``keras1_th`` layout.

>>> import numpy as np
>>> k1 = np.zeros((5, 1, 300, 111))            # the seed's Keras 1 kernel
>>> convert(k1, "keras1", "jaxconv").shape      # (width, in, out)
(5, 300, 111)
>>> convert(k1, "keras1", "torch").shape        # (out, in, width)
(111, 300, 5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LAYOUTS", "layout_axes", "convert", "convert_shape", "describe"]

#: layout name -> {spatial_dims: axis letters}
LAYOUTS: dict[str, dict[int, str]] = {
    "jaxconv": {1: "WIO", 2: "HWIO"},
    "flax": {1: "WIO", 2: "HWIO"},
    "keras": {1: "WIO", 2: "HWIO"},
    "keras1": {1: "W1IO", 2: "HWIO"},
    "keras1_th": {2: "OIHW"},
    "torch": {1: "OIW", 2: "OIHW"},
    "equinox": {1: "OIW", 2: "OIHW"},
}

_AXIS_NAMES = {"W": "width", "H": "height", "I": "in", "O": "out", "1": "1"}


def layout_axes(layout: str, spatial_dims: int = 1) -> tuple[str, ...]:
    """Axis names of a layout, e.g. ``layout_axes("keras1") == ("width", "1", "in", "out")``."""
    letters = _letters(layout, spatial_dims)
    return tuple(_AXIS_NAMES[c] for c in letters)


def describe(shape, layout: str, spatial_dims: int = 1) -> str:
    """``describe((5, 1, 300, 111), "keras1") == "(width=5, 1=1, in=300, out=111)"``."""
    names = layout_axes(layout, spatial_dims)
    if len(names) != len(shape):
        raise ValueError(f"shape {tuple(shape)} has rank {len(shape)}; layout {layout!r} ({spatial_dims}-D) has rank "
                         f"{len(names)}: {names}.")
    return "(" + ", ".join(f"{n}={s}" for n, s in zip(names, shape)) + ")"


def _letters(layout: str, spatial_dims: int) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not known; expected one of {', '.join(repr(k) for k in LAYOUTS)}.")
    table = LAYOUTS[layout]
    if spatial_dims not in table:
        raise ValueError(f"layout={layout!r} has no {spatial_dims}-D form; it has: "
                         f"{', '.join(f'{d}-D ({table[d]})' for d in sorted(table))}.")
    return table[spatial_dims]


def convert_shape(shape, src: str, dst: str, *, spatial_dims: int) -> tuple[int, ...]:
    """The shape that a kernel of shape ``shape`` in layout ``src`` has in layout ``dst``, without making an array
    (so sizes past what memory or numpy can index are fine): :func:`convert` of the shape alone.

    >>> convert_shape((5, 300, 111), "jaxconv", "keras1", spatial_dims=1)
    (5, 1, 300, 111)
    >>> convert_shape((3, 3, 16, 32), "jaxconv", "torch", spatial_dims=2)
    (32, 16, 3, 3)
    """
    s_letters, d_letters = _letters(src, spatial_dims), _letters(dst, spatial_dims)
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(s_letters):
        raise ValueError(f"shape {shape} has rank {len(shape)}; layout {src!r} ({spatial_dims}-D) has rank "
                         f"{len(s_letters)}: {layout_axes(src, spatial_dims)}.")
    size = dict(zip(s_letters, shape))
    size["1"] = 1
    return tuple(size[c] for c in d_letters)


def _to_array(x) -> Any:
    """numpy / jax arrays pass through; torch tensors and lists become numpy arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        return x.detach().cpu().numpy()
    if hasattr(x, "shape") and hasattr(x, "transpose") and hasattr(x, "dtype"):
        return x
    return np.asarray(x)


def _infer_spatial_dims(kernel, src: str) -> int:
    rank = len(kernel.shape)
    if src in ("keras1",) and rank == 4:
        # A Keras 1 Convolution1D kernel is (k, 1, in, out); a Convolution2D 'tf' kernel is (kh, kw, in, out).
        # Those with kw == 1 are the same computation either way, so reading them as 1-D loses nothing.
        return 1 if kernel.shape[1] == 1 else 2
    if rank == 3:
        return 1
    if rank == 4:
        return 2
    raise ValueError(f"kernel of shape {tuple(kernel.shape)} (rank {rank}) is not a 1-D or 2-D kernel in layout {src!r}; "
                     f"expected rank {len(_letters(src, 1)) if 1 in LAYOUTS.get(src, {}) else 4} (1-D) or 4 (2-D).")


def convert(kernel, src: str, dst: str, *, spatial_dims: int | None = None, theano: bool = False):
    """Convert a kernel from layout ``src`` to layout ``dst``.

    Args:
      kernel: numpy, JAX or torch array in layout ``src`` (torch tensors come back as numpy arrays).
      src, dst: layout names, see the module docstring.
      spatial_dims: 1 or 2; inferred from the rank when omitted (a ``keras1`` rank-4 kernel is 1-D when its second
        axis is 1).
      theano: the Keras 1 side (``src`` or ``dst``) holds Theano-flipped kernels: flip the spatial axes (once; with
        both sides Keras 1 this is Keras' ``convert_kernel`` between Theano and TensorFlow kernels).

    Returns:
      The kernel in layout ``dst``, of the same array type (numpy or JAX).

    Raises:
      ValueError: unknown layout, wrong rank for the layout, a ``keras1`` 1-D kernel whose second axis is not 1, or
        ``theano=True`` with neither side a Keras 1 layout.
    """
    kernel = _to_array(kernel)
    if spatial_dims is None:
        spatial_dims = _infer_spatial_dims(kernel, src)
    s_letters, d_letters = _letters(src, spatial_dims), _letters(dst, spatial_dims)
    if len(kernel.shape) != len(s_letters):
        raise ValueError(f"kernel has shape {tuple(kernel.shape)} (rank {len(kernel.shape)}); layout {src!r} "
                         f"({spatial_dims}-D) expects rank {len(s_letters)}: {layout_axes(src, spatial_dims)}.")
    if "1" in s_letters and kernel.shape[s_letters.index("1")] != 1:
        raise ValueError(f"kernel has shape {tuple(kernel.shape)}; layout {src!r} expects 1 on axis "
                         f"{s_letters.index('1')} ({layout_axes(src, spatial_dims)}), got {kernel.shape[s_letters.index('1')]}.")
    keras1 = ("keras1", "keras1_th")
    if theano and src not in keras1 and dst not in keras1:
        raise ValueError(f"theano=True flips Keras 1 (Theano backend) kernels; neither src={src!r} nor dst={dst!r} is a "
                         f"Keras 1 layout.")
    # Drop the unit axis, permute, then add the destination's unit axis.
    core = kernel
    if "1" in s_letters:
        core = core.reshape(tuple(d for d, c in zip(kernel.shape, s_letters) if c != "1"))
        s_letters = s_letters.replace("1", "")
    d_core = d_letters.replace("1", "")
    core = core.transpose(tuple(s_letters.index(c) for c in d_core))
    if theano:
        spatial_axes = tuple(i for i, c in enumerate(d_core) if c in "HW")
        core = core[tuple(slice(None, None, -1) if i in spatial_axes else slice(None) for i in range(core.ndim))]
    if "1" in d_letters:
        shape = list(core.shape)
        shape.insert(d_letters.index("1"), 1)
        core = core.reshape(tuple(shape))
    return core
