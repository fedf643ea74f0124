"""Conv1D and Conv2D: explicit, channels-last convolution modules; ``impl=`` picks how they are computed.

One N-D core (:class:`ConvND`) serves both. Arrays are channels-last unless ``data_format="channels_first"``:

- Conv1D input ``(..., length, in_channels)``, kernel ``(kernel_size, in_channels // groups, filters)`` with axes
  ``("width", "in", "out")``, output ``(..., out_length, filters)``.
- Conv2D input ``(..., height, width, in_channels)``, kernel ``(kh, kw, in_channels // groups, filters)`` with axes
  ``("height", "width", "in", "out")``, output ``(..., out_height, out_width, filters)``.

Output length per axis: ``out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1`` (see :mod:`jaxconv.shapes`).

``impl`` is ``"xla"`` (``lax.conv_general_dilated``, the default), ``"im2col"``, ``"fft"`` or ``"auto"`` (the fastest
measured for the shapes): the same values and gradients by another algorithm (:mod:`jaxconv.nn.algorithms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import shapes
from jaxconv._args import check_index
from jaxconv._format import fmt_compact, fmt_tuple
from jaxconv.nn import algorithms
from jaxconv.nn._activations import resolve_activation
from jaxconv.nn._validation import check_float_dtype, check_numeric_input, check_rngs
from jaxconv.nn.interop import FrameworkWeights

__all__ = ["ConvND", "Conv1D", "Conv2D", "PreActivation", "PostActivation", "resolve_activation", "PADDING_MODES"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_JNP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

default_kernel_init = nnx.initializers.lecun_normal()
default_bias_init = nnx.initializers.zeros_init()


class PreActivation(nnx.Intermediate):
    """Sown conv output before the activation, read with ``nnx.capture(model, PreActivation)``."""


class PostActivation(nnx.Intermediate):
    """Sown conv output after the activation, read with ``nnx.capture(model, PostActivation)``."""


class ConvND(FrameworkWeights, nnx.Module):
    """N-D convolution core shared by :class:`Conv1D` and :class:`Conv2D`. Use those."""

    #: Axis names of the kernel, set by the subclasses.
    kernel_axes: tuple[str, ...] = ()
    _spatial_names: tuple[str, ...] = ()
    num_spatial: int = 0

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = "valid",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        activation: str | Callable | None = None,
        padding_mode: str = "zeros",
        data_format: str = "channels_last",
        kernel_init: Callable = default_kernel_init,
        bias_init: Callable = default_bias_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        impl: str = "xla",
        rngs: nnx.Rngs,
    ):
        n = self.num_spatial
        name = type(self).__name__
        check_rngs(name, rngs)
        check_float_dtype(name, "dtype", dtype, optional=True)
        check_float_dtype(name, "param_dtype", param_dtype, optional=False)
        for arg, val in (("in_channels", in_channels), ("filters", filters), ("groups", groups)):
            if not shapes.is_integral(val) or val < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1; got {arg}={val!r}.")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} is not divisible by groups={groups}; each group needs "
                             f"in_channels / groups input channels (expected in_channels % groups == 0).")
        if filters % groups:
            raise ValueError(f"{name}: filters={filters} is not divisible by groups={groups}; each group needs "
                             f"filters / groups output channels (expected filters % groups == 0).")
        self.in_channels = int(in_channels)
        self.filters = int(filters)
        self.kernel_size = shapes.per_axis_ints(kernel_size, n, name="kernel_size", minimum=1)
        self.stride = shapes.per_axis_ints(stride, n, name="stride", minimum=1)
        self.dilation = shapes.per_axis_ints(dilation, n, name="dilation", minimum=1)
        self.groups = int(groups)
        self.padding = self._check_padding(padding)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode={padding_mode!r} is not known; expected one of "
                             f"{', '.join(repr(m) for m in PADDING_MODES)}.")
        self.padding_mode = padding_mode
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{name}: data_format={data_format!r} is not known; expected 'channels_last' or "
                             f"'channels_first'.")
        self.data_format = data_format
        self.use_bias = bool(use_bias)
        self.activation = resolve_activation(activation)
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.impl = algorithms.check_impl(name, impl)

        kernel_shape = (*self.kernel_size, self.in_channels // self.groups, self.filters)
        self.kernel = nnx.Param(kernel_init(rngs.params(), kernel_shape, param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (self.filters,), param_dtype)) if self.use_bias else None

    # ---------------------------------------------------------------- validation

    def _check_padding(self, padding):
        n = self.num_spatial
        name = type(self).__name__
        try:
            per_axis = shapes.normalize_padding(padding, n)
            for ax, (p, k, s, d) in enumerate(zip(per_axis, self.kernel_size, self.stride, self.dilation)):
                # Length-free checks: string known, same_torch only with stride 1, ints non-negative.
                shapes.resolve_padding(max(d * (k - 1) + 1, 1), k, stride=s, dilation=d, padding=p)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: {e}") from None
        return per_axis

    def _expected_input(self) -> str:
        """The input shape as the errors show it, e.g. ``"(..., length, in_channels=300)"``."""
        axes = ", ".join(self._spatial_names)
        if self.data_format == "channels_last":
            return f"(..., {axes}, in_channels={self.in_channels})"
        return f"(..., in_channels={self.in_channels}, {axes})"

    def _spatial_of(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial sizes of ``input_shape``, after checking rank and channels. No compute."""
        n = self.num_spatial
        name = type(self).__name__
        input_shape = tuple(int(s) for s in input_shape)
        expect = self._expected_input()
        if len(input_shape) < n + 1:
            raise ValueError(f"{name}: input must have shape {expect} (rank >= {n + 1}); got shape {input_shape} of rank "
                             f"{len(input_shape)}.")
        if self.data_format == "channels_last":
            channels, spatial = input_shape[-1], input_shape[-n - 1:-1]
        else:
            channels, spatial = input_shape[-n - 1], input_shape[-n:]
        if channels != self.in_channels:
            where = "last axis" if self.data_format == "channels_last" else f"axis {-n - 1}"
            raise ValueError(f"{name}: input has {channels} channels on its {where} (shape {input_shape}); expected "
                             f"in_channels={self.in_channels}, i.e. shape {expect}.")
        return spatial

    # Public shape methods are thin wrappers over private ones: __call__ must not call a public method, since
    # nnx.tabulate (and similar tools) wrap every public method of every module class in a transform.

    def padding_for(self, length):
        """Explicit padding for an input of the given spatial size. No compute.

        Conv1D: ``padding_for(length) -> (lo, hi)``; Conv2D: ``padding_for((h, w)) -> ((lo, hi), (lo, hi))``.
        """
        spatial = shapes.per_axis_ints(length, name="length")
        if len(spatial) != self.num_spatial:
            raise ValueError(f"{type(self).__name__}: padding_for expects {self.num_spatial} spatial sizes; got {length!r}.")
        pads = self._pads(spatial)
        return pads[0] if self.num_spatial == 1 else pads

    def _pads(self, spatial: Sequence[int]) -> tuple[tuple[int, int], ...]:
        return tuple(shapes.resolve_padding(int(L), k, stride=s, dilation=d, padding=p)
                     for L, k, s, d, p in zip(spatial, self.kernel_size, self.stride, self.dilation, self.padding))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Output shape for an input of shape ``input_shape`` (leading batch axes kept). No compute.

        Raises the same errors as the forward pass: wrong rank, wrong channel count, input shorter than the
        dilated kernel (with the formula and numbers).
        """
        return self._output_shape(input_shape)

    def _output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        input_shape = tuple(int(s) for s in input_shape)
        spatial = self._spatial_of(input_shape)
        out = []
        for ax, (L, k, s, d, p) in enumerate(zip(spatial, self.kernel_size, self.stride, self.dilation, self.padding)):
            try:
                out.append(shapes.conv_output_length(L, k, stride=s, dilation=d, padding=p))
            except ValueError as e:
                axis = self._spatial_names[ax]
                raise ValueError(f"{type(self).__name__}: on the {axis} axis, {e}") from None
        n = self.num_spatial
        if self.data_format == "channels_last":
            return (*input_shape[: -n - 1], *out, self.filters)
        return (*input_shape[: -n - 1], self.filters, *out)

    def filter_kernel(self, j: int) -> jax.Array:
        """Filter ``j``'s weights: Conv1D ``(kernel_size, in_channels // groups)``, Conv2D ``(kh, kw, in // groups)``.

        Output channel ``j`` is the correlation of this array with the input channels of ``j``'s group
        (``group = j // (filters // groups)``), plus ``bias[j]``. ``j`` is an int in ``[0, filters)``, never
        negative (:mod:`jaxconv._args`): TypeError for a float or a bool, IndexError (also a ValueError) outside.
        """
        j = check_index(f"{type(self).__name__}.filter_kernel", "j", j, self.filters,
                        what=f"filters={self.filters}")
        return self.kernel[..., j]

    # ---------------------------------------------------------------- compute

    def __call__(self, x: jax.Array, *, conv_output: jax.Array | None = None) -> jax.Array:
        """Apply the convolution. Shapes are in the class docstring.

        ``conv_output``: the correlation of ``x`` with this layer's kernel ``(N, *out, F)`` (batch axes flattened,
        channels-last, no bias), already computed elsewhere, e.g. for several layers at once by
        :func:`jaxconv.nn.multi_width.apply_parallel`; the layer adds its bias, sows and activates it as its own.
        """
        x, kernel, bias, pads, batch_shape = self._prepare(x)
        if conv_output is None:
            y = algorithms.conv_general(x, kernel, stride=self.stride, pads=pads, dilation=self.dilation,
                                        groups=self.groups, precision=self.precision, impl=self.impl)
        else:
            n = self.num_spatial
            expect = (x.shape[0], *self._output_shape((1, *x.shape[1:]))[1:n + 1], self.filters)
            if tuple(conv_output.shape) != expect:
                raise ValueError(f"{type(self).__name__}: conv_output has shape {tuple(conv_output.shape)}; expected "
                                 f"{expect} (N, *out, filters) for an input of shape {tuple(x.shape)}.")
            y = conv_output
        return self._finish(y, bias, batch_shape)

    def _prepare(self, x):
        """Checked input -> ``(x (N, *spatial, C) channels-last, kernel, bias, zero pads, batch_shape)``, in the
        computation dtype, with non-zero padding modes already applied."""
        x = jnp.asarray(check_numeric_input(type(self).__name__, x, self._expected_input()))
        n = self.num_spatial
        self._output_shape(x.shape)  # validates rank, channels and length with readable errors, before XLA sees it
        if self.data_format == "channels_first":
            x = jnp.moveaxis(x, -n - 1, -1)
        batch_shape = x.shape[: -n - 1]
        x = x.reshape((math.prod(batch_shape), *x.shape[-n - 1:]))
        pads = list(self._pads(x.shape[1:-1]))

        kernel = self.kernel[...]
        bias = self.bias[...] if self.bias is not None else None
        x, kernel, bias = nnx.nn.dtypes.promote_dtype((x, kernel, bias), dtype=self.dtype)

        if self.padding_mode != "zeros" and any(lo or hi for lo, hi in pads):
            x = self._pad_nonzero(x, pads)
            pads = [(0, 0)] * n
        return x, kernel, bias, tuple(pads), batch_shape

    def _finish(self, y, bias, batch_shape):
        """Convolution output ``(N, *out, F)`` -> bias, the sown stages, the activation, the caller's layout."""
        n = self.num_spatial
        if bias is not None:
            y = y + bias
        self._sow_if_capturing(PreActivation, y)
        if self.activation is not None:
            y = self.activation(y)
        self._sow_if_capturing(PostActivation, y)

        y = y.reshape((*batch_shape, *y.shape[1:]))
        if self.data_format == "channels_first":
            y = jnp.moveaxis(y, -1, -n - 1)
        return y

    def _pad_nonzero(self, x, pads):
        name = type(self).__name__
        for ax, (L, (lo, hi)) in enumerate(zip(x.shape[1:-1], pads)):
            limit = L - 1 if self.padding_mode == "reflect" else L if self.padding_mode == "circular" else None
            if limit is not None and max(lo, hi) > limit:
                raise ValueError(
                    f"{name}: padding_mode={self.padding_mode!r} needs padding <= {limit} on the "
                    f"{self._spatial_names[ax]} axis of length {L}; got (lo, hi)=({lo}, {hi}).")
        widths = [(0, 0), *pads, (0, 0)]
        return jnp.pad(x, widths, mode=_JNP_PAD_MODE[self.padding_mode])

    def _sow_if_capturing(self, kind, y):
        # Sow only inside nnx.capture(...) and only for the layers asked for: outside capture, Module.sow would
        # store the value on the module itself (and keep it alive). `capture_stages` is set by jaxconv.inspection.
        stages = getattr(self, "capture_stages", ())
        if hasattr(self, "__captures__") and kind in stages:
            self.sow(kind, "feature_map", y)

    # ---------------------------------------------------------------- conversions

    def __repr__(self) -> str:  # short and explicit; nnx's tree repr stays available via nnx.display
        args = [f"{self.in_channels} -> {self.filters}", f"kernel_size={fmt_compact(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            args.append(f"stride={fmt_compact(self.stride)}")
        pad = self.padding[0] if len(set(map(str, self.padding))) == 1 else self.padding
        args.append(f"padding={pad!r}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={fmt_compact(self.dilation)}")
        if self.groups != 1:
            args.append(f"groups={self.groups}")
        if self.padding_mode != "zeros":
            args.append(f"padding_mode={self.padding_mode!r}")
        if self.impl != "xla":
            args.append(f"impl={self.impl!r}")
        kshape = fmt_tuple(f"{a}={s}" for a, s in zip(self.kernel_axes, self.kernel.shape))
        return f"{type(self).__name__}({', '.join(args)}; kernel {kshape})"


class Conv1D(ConvND):
    """1-D convolution over ``(..., length, in_channels)``, as used over word vectors.

    Shapes:

    - input ``x``: ``(..., length, in_channels)`` (``(..., in_channels, length)`` with ``data_format="channels_first"``);
      one or more leading batch axes, or none.
    - ``kernel``: ``nnx.Param`` of shape ``(kernel_size, in_channels // groups, filters)``, axes
      ``kernel_axes = ("width", "in", "out")``: ``kernel[i, c, j]`` multiplies input channel ``c`` at offset
      ``i*dilation`` for filter ``j``.
    - ``bias``: ``nnx.Param`` of shape ``(filters,)`` (``None`` when ``use_bias=False``).
    - output: ``(..., out_length, filters)`` with ``out_length = floor((L + lo + hi - d*(k-1) - 1) / s) + 1``;
      ``out[..., t, j]`` is filter ``j``'s feature map at position ``t``.

    It computes a cross-correlation (no kernel flip), as Keras, PyTorch and Flax do::

        out[b, t, j] = bias[j] + sum_{i, c} x[b, t*s + i*d - lo, c_of(j, c)] * kernel[i, c, j]

    The seed example: Keras 1 ``Convolution1D(nb_filter=111, filter_length=5)`` over 300-d word vectors is::

        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxconv import Conv1D
        >>> conv = Conv1D(300, 111, 5, activation="relu", rngs=nnx.Rngs(0))
        >>> conv.kernel.shape, conv.kernel_axes
        ((5, 300, 111), ('width', 'in', 'out'))
        >>> conv(jnp.ones((2, 50, 300))).shape
        (2, 46, 111)
        >>> conv.output_shape((2, 50, 300)), conv.padding_for(50)
        ((2, 46, 111), (0, 0))
        >>> conv.filter_kernel(7).shape       # filter 7's weights: (width, in)
        (5, 300)

    Args:
      in_channels: channels of the input (300 for 300-d word vectors).
      filters: number of filters = output channels.
      kernel_size: filter width ``k``.
      stride: step ``s`` between output positions.
      padding: ``"valid"``, ``"same"``, ``"same_lower"``, ``"same_torch"``, ``"causal"``, ``"full"``, an int, or a
        ``(lo, hi)`` pair; see :func:`jaxconv.shapes.resolve_padding`.
      dilation: gap ``d`` between kernel taps.
      groups: split channels into this many independent groups (``in_channels`` and ``filters`` divisible by it).
      use_bias: add a learned ``bias`` of shape ``(filters,)``.
      activation: ``None``, a callable, or a name such as ``"relu"``.
      padding_mode: what fills the padding: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
      data_format: ``"channels_last"`` (default) or ``"channels_first"``.
      kernel_init, bias_init: initialisers ``(key, shape, dtype) -> array``.
      dtype: computation dtype (default: promoted from input and parameters).
      param_dtype: parameter dtype.
      precision: passed to ``lax.conv_general_dilated`` (and to the einsums of the other algorithms).
      impl: how the convolution is computed: ``"xla"`` (default), ``"im2col"``, ``"fft"`` or ``"auto"`` (the
        fastest measured for the call's shapes, measured outside ``jit``); see :mod:`jaxconv.nn.algorithms`.
      rngs: ``nnx.Rngs`` for the initialisers.
    """

    kernel_axes = ("width", "in", "out")
    _spatial_names = ("length",)
    num_spatial = 1

    @classmethod
    def from_keras1(cls, kernel, bias=None, *, theano: bool = False, rngs=None, **layer_args):
        """Build from a Keras 1 ``Convolution1D`` kernel of shape ``(filter_length, 1, input_dim, nb_filter)``.

        ``theano=True`` flips the width axis: Keras 1 on Theano computed a true convolution (flipped filters), so
        its stored kernels are the reverse of the cross-correlation kernels used here.

        >>> import numpy as np
        >>> conv = Conv1D.from_keras1(np.zeros((5, 1, 300, 111), np.float32), np.zeros(111, np.float32))
        >>> conv.kernel.shape
        (5, 300, 111)
        """
        return cls._from_kernel(kernel, bias, "keras1", theano=theano, rngs=rngs, **layer_args)


class Conv2D(ConvND):
    """2-D convolution over ``(..., height, width, in_channels)``.

    Shapes:

    - input ``x``: ``(..., height, width, in_channels)`` (``(..., in_channels, height, width)`` channels-first).
    - ``kernel``: ``(kh, kw, in_channels // groups, filters)``, axes ``("height", "width", "in", "out")``.
    - ``bias``: ``(filters,)``.
    - output: ``(..., out_height, out_width, filters)``, each axis by
      ``out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1``.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> conv = Conv2D(3, 40, 5, rngs=nnx.Rngs(0))      # 128x128 RGB, 40 filters of 5x5
    >>> conv.kernel.shape, conv(jnp.ones((1, 128, 128, 3))).shape
    ((5, 5, 3, 40), (1, 124, 124, 40))
    >>> Conv2D(1, 1, 3, stride=2, padding=1, rngs=nnx.Rngs(0)).output_shape((5, 5, 1))
    (3, 3, 1)

    ``padding`` is as for :class:`Conv1D`, applied to both axes, or per axis: ``(1, 2)`` pads height by 1 and width
    by 2 on both sides (as PyTorch); ``((lo_h, hi_h), (lo_w, hi_w))`` is explicit. Other arguments as :class:`Conv1D`,
    with ``kernel_size``, ``stride`` and ``dilation`` an int or an ``(h, w)`` pair.
    """

    kernel_axes = ("height", "width", "in", "out")
    _spatial_names = ("height", "width")
    num_spatial = 2
