"""Parallel Conv1D layers over one input, computed as one: one window extraction and one GEMM for all widths.

Kim's CNN runs widths 3, 4 and 5 over the same word vectors. The fused algorithm pads the input on the right with
``max(w) - min(w)`` zeros, takes the width-``max(w)`` windows at the ``L - min(w) + 1`` positions of the narrowest
filter, and multiplies them by one matrix that holds every kernel, each zero-padded at its end to ``max(w)`` taps::

    x (N, L, C) -> windows (N, L - min(w) + 1, max(w), C)
    kernels (w_i, C, F_i) -> zero-padded (max(w), C, F_i) -> concatenated (max(w), C, sum F_i)
    windows x kernels -> (N, L - min(w) + 1, sum F_i) -> per layer i: filters F_i, positions [0, L - w_i + 1)

The padded taps multiply zeros, so layer ``i`` gets exactly its own convolution (to float rounding); it does
``max(w) / w_i`` times that layer's FLOPs, in one large GEMM instead of one small one per layer. Each layer then adds
its bias, sows its feature maps and applies its activation as when called alone (:meth:`ConvND._finish`), so
feature maps, receptive spans and dumps see the same per-width layers.

:func:`apply_parallel` runs a list of layers by any of :data:`PARALLEL_IMPLS`: an algorithm of
:mod:`jaxconv.nn.algorithms` applied layer by layer, ``"fused"``, or ``"auto"``: the fastest of them, measured
forward + backward the first time a shape is met outside ``jit`` and kept in ``auto``'s table (under ``jit`` an
unmeasured shape runs ``"xla"``).

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from jaxconv import Conv1D
>>> convs = [Conv1D(8, 4, w, rngs=nnx.Rngs(w)) for w in (3, 4, 5)]
>>> x = jnp.ones((2, 10, 8))
>>> [y.shape for y in apply_parallel(convs, x, "fused")]
[(2, 8, 4), (2, 7, 4), (2, 6, 4)]
>>> all(bool(jnp.allclose(a, c(x), atol=1e-5)) for a, c in zip(apply_parallel(convs, x, "fused"), convs))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxconv.nn import algorithms
from jaxconv.nn.conv import Conv1D

__all__ = ["PARALLEL_IMPLS", "apply_parallel", "fused_conv1d", "fusable", "choose_parallel", "measure_parallel"]

#: How :func:`apply_parallel` may compute a list of layers.
PARALLEL_IMPLS = (*algorithms.ALGORITHMS, "fused", "auto")


def fusable(convs: Sequence) -> str | None:
    """None when ``convs`` can run fused; else why not (a sentence naming the layer and the setting)."""
    if not convs:
        return "there are no layers"
    first = convs[0]
    for i, c in enumerate(convs):
        if not isinstance(c, Conv1D):
            return f"layer {i} is a {type(c).__name__}, not a Conv1D"
        for attr, want in (("stride", (1,)), ("dilation", (1,)), ("groups", 1), ("padding", ("valid",)),
                           ("data_format", "channels_last")):
            if getattr(c, attr) != want:
                return f"layer {i} has {attr}={getattr(c, attr)!r}; the fused conv needs {attr}={want!r}"
        for attr in ("in_channels", "dtype", "param_dtype", "precision"):
            if getattr(c, attr) != getattr(first, attr):
                return (f"layer {i} has {attr}={getattr(c, attr)!r} and layer 0 has {getattr(first, attr)!r}; "
                        f"fused layers share them")
    return None


def fused_conv1d(x: jax.Array, kernels: Sequence[jax.Array], precision=None) -> list[jax.Array]:
    """``x (N, L, C)`` and kernels ``(w_i, C, F_i)`` -> ``[(N, L - w_i + 1, F_i)]``: valid, stride-1 correlations
    by one window extraction and one GEMM. ``L >= max(w_i)``."""
    widths = [int(k.shape[0]) for k in kernels]
    wmax, wmin = max(widths), min(widths)
    positions = x.shape[1] - wmin + 1                                          # T: the narrowest layer's outputs
    xp = jnp.pad(x, ((0, 0), (0, wmax - wmin), (0, 0)))                       # (N, L + wmax - wmin, C)
    windows = jnp.stack([xp[:, i:i + positions] for i in range(wmax)], axis=2)  # (N, T, wmax, C)
    kernel = jnp.concatenate([jnp.pad(k, ((0, wmax - w), (0, 0), (0, 0))) for k, w in zip(kernels, widths)],
                             axis=-1)                                          # (wmax, C, sum F)
    y = jnp.einsum("ntwc,wcf->ntf", windows, kernel, precision=precision)     # (N, T, sum F)
    outs, start = [], 0
    for k, w in zip(kernels, widths):
        f = k.shape[-1]
        outs.append(y[:, :x.shape[1] - w + 1, start:start + f])               # (N, L - w + 1, F_i)
        start += f
    return outs


def _parallel_fn(impl: str, precision):
    """``(x, kernels) -> [y_i]`` computing the layers' correlations (no bias, no activation) by ``impl``."""
    if impl == "fused":
        return lambda x, kernels: fused_conv1d(x, kernels, precision)
    return lambda x, kernels: [algorithms.conv_general(x, k, stride=(1,), pads=((0, 0),), dilation=(1,),
                                                       precision=precision, impl=impl) for k in kernels]


def _key(x_shape, kernel_shapes, dtype, precision):
    return algorithms._key(x_shape, kernel_shapes, dtype, (1,), ((0, 0),), (1,), 1, precision, kind="parallel")


def measure_parallel(x_shape, kernel_shapes, dtype=jnp.float32, *, precision=None,
                     candidates: Sequence[str] = ("xla", "im2col", "fused"), again: bool = False
                     ) -> algorithms.Measurement:
    """Time forward + backward of the layers' correlations by each candidate on zeros of these shapes, keep the
    result in ``auto``'s table and return it (the table's entry, unless ``again``, when there is one already).
    Outside any transform only."""
    x_shape, kernel_shapes = tuple(x_shape), tuple(tuple(s) for s in kernel_shapes)
    key = _key(x_shape, kernel_shapes, dtype, precision)
    if not again and algorithms.lookup(key) is not None:
        return algorithms.lookup(key)
    fns = {}
    for impl in candidates:
        fn = _parallel_fn(impl, precision)

        def loss(x, kernels, fn=fn):
            return sum(y.astype(jnp.float32).sum() for y in fn(x, kernels))

        fns[impl] = jax.grad(loss, argnums=(0, 1))
    args = (jnp.zeros(x_shape, dtype), [jnp.zeros(s, dtype) for s in kernel_shapes])
    return algorithms.record(key, algorithms.fastest(algorithms.time_candidates(fns, args)))


def choose_parallel(x, kernels, precision=None) -> str:
    """What ``"auto"`` runs for this input and these kernels: the table's choice, measured now if ``x`` is concrete
    and the shapes are new, ``"xla"`` for new shapes under a transform."""
    shapes = tuple(tuple(k.shape) for k in kernels)
    hit = algorithms.lookup(_key(x.shape, shapes, x.dtype, precision))
    if hit is not None:
        return hit.choice
    if isinstance(x, jax.core.Tracer) or any(isinstance(k, jax.core.Tracer) for k in kernels):
        return "xla"
    return measure_parallel(x.shape, shapes, x.dtype, precision=precision).choice


def apply_parallel(convs: Sequence[Conv1D], x: jax.Array, impl: str = "auto") -> list[jax.Array]:
    """Every layer of ``convs`` applied to the same ``x (..., L, C)``, computed by ``impl``: a list of
    ``(..., L_i', F_i)``, each equal to ``convs[i](x)`` (bias, activation and sown feature maps included).

    ``"fused"`` and ``"auto"`` need layers that :func:`fusable` accepts (``"auto"`` falls back to each layer's own
    ``impl`` otherwise); an algorithm name runs the layers one by one with it.
    """
    impl = algorithms.check_impl("apply_parallel", impl, PARALLEL_IMPLS)
    reason = fusable(convs)
    if impl in ("fused", "auto") and reason is not None:
        if impl == "fused":
            raise ValueError(f"apply_parallel: impl='fused' needs parallel Conv1D layers with stride 1, dilation 1, "
                             f"groups 1 and valid padding; {reason}.")
        return [c(x) for c in convs]
    if impl == "auto":
        xs, kernels = _inputs(convs, x)
        impl = choose_parallel(xs, kernels, convs[0].precision)
    if impl != "fused" and all(c.impl == impl for c in convs):
        return [c(x) for c in convs]                          # each layer as it is
    xs, kernels = _inputs(convs, x)
    ys = _parallel_fn(impl, convs[0].precision)(xs, kernels)
    return [c(x, conv_output=y) for c, y in zip(convs, ys)]   # each layer adds its bias, sows, activates


def _inputs(convs, x):
    """The layers' input ``(N, L, C)`` and kernels as they compute them (dtype promoted, batch axes flattened)."""
    prepared = [c._prepare(x) for c in convs]
    return prepared[0][0], [p[1] for p in prepared]
