"""Convolution weights from and to other frameworks: what :class:`jaxconv.nn.conv.ConvND` (and so ``Conv1D``,
``Conv2D``) inherits as ``from_keras``, ``from_torch`` and ``to_torch`` (``Conv1D.from_keras1`` too).

The kernel layouts and their conversion are :mod:`jaxconv.layouts`; here a converted kernel becomes a module's
initial value, and a module becomes a ``torch.nn.Conv1d`` / ``Conv2d`` with the same weights and configuration.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxconv import shapes

__all__ = ["FrameworkWeights"]


class FrameworkWeights:
    """Constructors from Keras and PyTorch weights, and the PyTorch module of a conv (a mixin of ``ConvND``)."""

    @classmethod
    def _from_kernel(cls, kernel, bias, layout: str, *, theano: bool = False, rngs=None, **layer_args):
        from jaxconv import layouts

        kernel = layouts.convert(kernel, layout, "jaxconv", spatial_dims=cls.num_spatial, theano=theano)
        *ks, in_per_group, filters = kernel.shape
        groups = layer_args.get("groups", 1)
        layer_args.setdefault("use_bias", bias is not None)
        # The given kernel is the initial value: no random initialiser to compile and throw away.
        layer_args.setdefault("kernel_init", lambda key, shape, dtype: jnp.asarray(kernel, dtype).reshape(shape))
        conv = cls(in_per_group * groups, filters, tuple(ks), rngs=rngs if rngs is not None else nnx.Rngs(0),
                   **layer_args)
        conv.kernel[...] = jnp.asarray(kernel, dtype=conv.param_dtype)
        if bias is not None:
            if not conv.use_bias:
                raise ValueError(f"{cls.__name__}: a bias was given but use_bias=False.")
            bias = layouts._to_array(bias)
            if tuple(bias.shape) != (filters,):
                raise ValueError(f"{cls.__name__}: bias must have shape (filters,) = ({filters},); got {tuple(bias.shape)}.")
            conv.bias[...] = jnp.asarray(bias, dtype=conv.param_dtype)
        return conv

    @classmethod
    def from_keras(cls, kernel, bias=None, *, rngs=None, **layer_args):
        """Build from a Keras 3 kernel (same layout as jaxconv) and bias. ``layer_args`` are this class's keywords
        (``stride``, ``padding``, ``dilation``, ``groups``, ``activation``, ...)."""
        return cls._from_kernel(kernel, bias, "keras", rngs=rngs, **layer_args)

    @classmethod
    def from_torch(cls, weight, bias=None, *, rngs=None, **layer_args):
        """Build from a PyTorch ``weight`` of shape ``(out, in // groups, *kernel)`` and ``bias`` ``(out,)``.

        PyTorch's ``padding='same'`` is ``padding="same_torch"`` here; its ``padding_mode`` names carry over."""
        return cls._from_kernel(weight, bias, "torch", rngs=rngs, **layer_args)

    def to_torch(self):
        """A ``torch.nn.Conv1d`` / ``Conv2d`` with the same weights and configuration (channels-first, as PyTorch).

        Raises ValueError when the padding has no PyTorch equivalent (asymmetric padding such as ``"causal"``,
        or ``"same"`` where the XLA split is uneven); pad the input yourself in that case.
        """
        import numpy as np
        import torch

        from jaxconv import layouts

        name = type(self).__name__
        torch_padding = []
        for ax, (p, k, s, d) in enumerate(zip(self.padding, self.kernel_size, self.stride, self.dilation)):
            if isinstance(p, str) and p in ("same", "same_lower") and s > 1:
                raise ValueError(f"{name}.to_torch: padding={p!r} with stride={s} depends on the input length; PyTorch has "
                                 f"no equivalent. Use explicit (lo, hi) padding.")
            lo, hi = shapes.resolve_padding(d * (k - 1) + 1, k, stride=s, dilation=d, padding=p)
            if lo != hi:
                raise ValueError(f"{name}.to_torch: padding={p!r} is asymmetric (lo={lo}, hi={hi}) on the "
                                 f"{self._spatial_names[ax]} axis; torch.nn.Conv{self.num_spatial}d pads both sides "
                                 f"equally. Pad the input with torch.nn.functional.pad instead.")
            torch_padding.append(lo)
        cls = torch.nn.Conv1d if self.num_spatial == 1 else torch.nn.Conv2d
        mode = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[self.padding_mode]
        m = cls(self.in_channels, self.filters, self.kernel_size, stride=self.stride, padding=tuple(torch_padding),
                dilation=self.dilation, groups=self.groups, bias=self.use_bias, padding_mode=mode)
        w = layouts.convert(np.asarray(self.kernel[...]), "jaxconv", "torch", spatial_dims=self.num_spatial)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if self.use_bias:
                m.bias.copy_(torch.from_numpy(np.array(self.bias[...])))
        return m
