"""How a convolution is computed: one switch, ``impl=``, with the same maths behind every choice.

Every algorithm takes the same arrays and gives the same values (to float rounding) and gradients:

- ``x``: ``(N, *spatial, C)``, channels-last, one batch axis;
- ``kernel``: ``(*kernel_size, C // groups, F)``; filter ``j`` belongs to group ``j // (F // groups)``;
- ``pads``: ``(lo, hi)`` zeros per spatial axis; ``stride``, ``dilation``: per spatial axis;
- output ``(N, *out, F)`` with ``out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1`` per axis.

The algorithms (:data:`ALGORITHMS`):

- ``"xla"``: ``lax.conv_general_dilated``, XLA's own convolution (cuDNN on a GPU, oneDNN/Eigen on a CPU).
- ``"im2col"``: gathers the ``prod(kernel_size)`` shifted (strided, dilated) views of the padded input into
  ``(N, *out, prod(k), C)`` and contracts them with the kernel in one ``einsum`` (one GEMM per group). It spends
  ``prod(k)`` times the input's memory on the windows.
- ``"fft"``: a cross-correlation is a product in frequency space: ``rfftn`` of the padded input and of the (dilated)
  kernel, a per-frequency contraction over channels, ``irfftn``; other strides subsample the stride-1 result. Its
  cost grows with ``L log L`` and not with ``k``: it wins for long inputs and wide kernels.

``impl="auto"`` (:func:`choose`) picks the fastest for the call's static shapes on the current backend. It times
forward + backward of every algorithm the first time it meets a shape (outside any transform: never while ``jit``
traces) and keeps the answer in an in-memory table per (shapes, options, dtype, backend) for the life of the
process (:func:`measured`). A shape met first under ``jit``, never measured, runs ``"xla"``; call the layer (or the
model) once outside ``jit``, or :func:`measure` it, to let ``auto`` choose. ``jaxconv.explain`` shows the choice.
``auto`` leaves ``"xla"`` only for an algorithm at least 10% faster (:data:`MARGIN`): nearer timings are noise.

>>> import jax.numpy as jnp
>>> x, k = jnp.ones((2, 9, 4)), jnp.ones((3, 4, 5))
>>> ys = [conv_general(x, k, stride=(1,), pads=((1, 1),), dilation=(1,), impl=a) for a in ALGORITHMS]
>>> [y.shape for y in ys], float(abs(ys[1] - ys[0]).max()) < 1e-5, float(abs(ys[2] - ys[0]).max()) < 1e-5
([(2, 9, 5), (2, 9, 5), (2, 9, 5)], True, True)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.conv_costs import FFT_BLOCK, fft_size, next_fast_len

__all__ = ["ALGORITHMS", "IMPLS", "conv_general", "check_impl", "choose", "measure", "measured", "Measurement",
           "next_fast_len", "FFT_BLOCK"]

#: The algorithms that compute a convolution.
ALGORITHMS = ("xla", "im2col", "fft")
#: What ``impl=`` accepts: an algorithm, or ``"auto"`` (the fastest measured for the shapes).
IMPLS = (*ALGORITHMS, "auto")
#: ``auto`` leaves out an algorithm whose working arrays would pass this many bytes.
MEMORY_LIMIT = 1 << 30
#: ``auto`` leaves ``"xla"`` only for an algorithm at least this much faster (a fraction of xla's time): closer
#: timings are within a loaded machine's noise, and a near tie in forward + backward can hide a slower forward.
MARGIN = 0.9


def check_impl(owner: str, impl: str, allowed: Sequence[str] = IMPLS) -> str:
    """``impl`` if it is one of ``allowed``, else ValueError naming ``owner``, the value and the choices."""
    if not isinstance(impl, str) or impl not in allowed:
        raise ValueError(f"{owner}: impl={impl!r} is not known; expected one of {', '.join(map(repr, allowed))} "
                         f"(see jaxconv.nn.algorithms).")
    return impl


# ---------------------------------------------------------------------------------------------------- algorithms


def _conv_xla(x, kernel, stride, pads, dilation, groups, precision):
    n = kernel.ndim - 2
    spatial = "HW" if n == 2 else "W" if n == 1 else "".join(chr(ord("A") + i) for i in range(n))
    dn = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return lax.conv_general_dilated(x, kernel, window_strides=stride, padding=list(pads), rhs_dilation=dilation,
                                    dimension_numbers=dn, feature_group_count=groups, precision=precision)


def _pad(x, pads):
    """Zero padding (lo, hi) on the spatial axes of ``x (N, *spatial, C)``; negative values crop, as XLA's."""
    return lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)])


def _out_sizes(padded, kernel_size, stride, dilation):
    return tuple((L - d * (k - 1) - 1) // s + 1 for L, k, s, d in zip(padded, kernel_size, stride, dilation))


def _group_kernel(kernel, groups):
    """``(*k, C // G, F)`` -> ``(*k, C // G, G, F // G)``: filter ``g * F/G + j`` of group ``g`` at ``[..., g, j]``."""
    *lead, f = kernel.shape
    return kernel.reshape(*lead, groups, f // groups)


def _conv_im2col(x, kernel, stride, pads, dilation, groups, precision):
    n = kernel.ndim - 2
    ks = kernel.shape[:n]
    x = _pad(x, pads)
    out = _out_sizes(x.shape[1:-1], ks, stride, dilation)
    taps = []
    for offset in itertools.product(*(range(k) for k in ks)):                 # kernel taps, row-major as the kernel
        start = (0, *(o * d for o, d in zip(offset, dilation)), 0)
        limit = (x.shape[0], *(o * d + (m - 1) * s + 1 for o, d, m, s in zip(offset, dilation, out, stride)),
                 x.shape[-1])
        taps.append(lax.slice(x, start, limit, (1, *stride, 1)))              # (N, *out, C)
    windows = jnp.stack(taps, axis=-2)                                        # (N, *out, K, C), K = prod(k)
    cg = kernel.shape[-2]
    if groups == 1:                                                           # one plain GEMM: (M, K*C) @ (K*C, F)
        flat = windows.reshape(-1, math.prod(ks) * cg)
        y = jnp.matmul(flat, kernel.reshape(-1, kernel.shape[-1]), precision=precision)
        return y.reshape(*windows.shape[:-2], kernel.shape[-1])
    windows = windows.reshape(*windows.shape[:-1], groups, cg)                # (N, *out, K, G, C/G)
    w = _group_kernel(kernel.reshape(math.prod(ks), cg, kernel.shape[-1]), groups)   # (K, C/G, G, F/G)
    y = jnp.einsum("...kgc,kcgf->...gf", windows, w, precision=precision)    # (N, *out, G, F/G)
    return y.reshape(*y.shape[:-2], kernel.shape[-1])                         # (N, *out, F)


def _conv_fft(x, kernel, stride, pads, dilation, groups, precision):
    n = kernel.ndim - 2
    dtype = x.dtype
    work = jnp.promote_types(dtype, jnp.float32)                              # float16/bfloat16 transform in float32
    x = _pad(x.astype(work), pads)
    kernel = kernel.astype(work)
    if any(d > 1 for d in dilation):                                          # the dilated kernel: d-1 zeros between taps
        kernel = lax.pad(kernel, jnp.zeros((), work), [*((0, 0, d - 1) for d in dilation), (0, 0, 0), (0, 0, 0)])
    keff = kernel.shape[:n]
    full = tuple(L - k + 1 for L, k in zip(x.shape[1:-1], keff))              # stride-1 output sizes
    size, blocks = fft_size(x.shape[1:-1], keff)                              # >= L: no wrap-around reaches 0..full-1
    if blocks > 1:                                                            # 1-D overlap-save
        y = _fft_blocks(x, kernel, size[0], groups, precision)                # (N, F, >= full)
    else:
        y = _fft_correlate(x, kernel, size, groups, precision)                # (N, F, *size)
    y = y[(slice(None), slice(None), *(slice(0, m, s) for m, s in zip(full, stride)))]  # (N, F, *out)
    return jnp.moveaxis(y, 1, -1).astype(dtype)                               # (N, *out, F)


def _fft_blocks(x, kernel, size, groups, precision):
    """Overlap-save: ``x (N, L, C)`` cut into frames of ``size`` positions that overlap by ``k - 1``; each frame's
    first ``size - k + 1`` outputs are exact. -> ``(N, F, blocks * (size - k + 1))``."""
    k = kernel.shape[0]
    step = size - k + 1                                                       # exact outputs per frame
    blocks = -(-(x.shape[1] - k + 1) // step)
    x = _pad(x, ((0, (blocks + 1) * step - x.shape[1]),))                     # (N, (blocks + 1) * step, C)
    head = x[:, :blocks * step].reshape(x.shape[0], blocks, step, x.shape[2])  # (N, blocks, step, C)
    tail = x[:, step:].reshape(x.shape[0], blocks, step, x.shape[2])[:, :, :k - 1]   # the next k - 1 positions
    frames = jnp.concatenate([head, tail], axis=2).reshape(-1, size, x.shape[2])      # (N * blocks, S, C)
    y = _fft_correlate(frames, kernel, (size,), groups, precision)[:, :, :step]       # (N * blocks, F, step)
    y = y.reshape(x.shape[0], blocks, -1, step).transpose(0, 2, 1, 3)         # (N, F, blocks, step)
    return y.reshape(x.shape[0], y.shape[1], blocks * step)


def _fft_correlate(x, kernel, size, groups, precision):
    """``x (N, *S, C)``, ``kernel (*k, C/G, F)`` -> the circular correlation ``(N, F, *size)`` (FFTs of ``size >= S``,
    so positions ``0 .. S - k`` are the exact valid correlation)."""
    n = kernel.ndim - 2
    cg, f = kernel.shape[-2], kernel.shape[-1]
    fft, ifft = (jnp.fft.rfft, jnp.fft.irfft) if n == 1 else (jnp.fft.rfftn, jnp.fft.irfftn)
    opts = {"n": size[0], "axis": -1} if n == 1 else {"s": size, "axes": tuple(range(-n, 0))}
    xf = fft(jnp.moveaxis(x, -1, 1), **opts)                                  # (N, C, *freq); FFTs on the last axes
    freq = xf.shape[2:]
    xf = xf.reshape(x.shape[0], groups, cg, math.prod(freq))                 # (N, G, C/G, Q)
    if n == 1:                                                                # conj(K) by two real matmuls, in the
        kf = _conj_spectrum_1d(kernel, size[0], xf.shape[-1], groups, precision)  # layout the contraction reads
    else:
        kf = jnp.conj(fft(jnp.moveaxis(kernel, (-2, -1), (0, 1)), **opts))   # (C/G, F, *freq)
        kf = kf.reshape(cg, groups, f // groups, -1).transpose(3, 1, 0, 2)    # (Q, G, C/G, F/G)
    # correlation = X * conj(K), summed over the group's channels, per frequency and group. The barriers keep
    # XLA from giving the FFTs the contraction's layouts.
    xf, kf = lax.optimization_barrier((xf, kf))
    yf = lax.dot_general(xf, kf, (((2,), (2,)), ((3, 1), (0, 1))), precision=precision)  # (Q, G, N, F/G)
    yf = lax.optimization_barrier(yf)
    yf = yf.transpose(2, 1, 3, 0).reshape(x.shape[0], f, *freq)               # (N, F, *freq)
    return ifft(yf, **opts)                                                   # (N, F, *size)


def _conj_spectrum_1d(kernel, size, freqs, groups, precision):
    """``conj(rfft(kernel, size))`` for ``kernel (k, C/G, F)`` as ``cos @ kernel + i sin @ kernel``, laid out
    ``(Q, G, C/G, F/G)``. A short kernel's FFT over the whole length costs more than this, and complex transposes
    are slow on CPU, so the real parts are arranged first."""
    k, cg, f = kernel.shape
    angle = 2 * np.pi * np.outer(np.arange(freqs), np.arange(k)) / size     # (Q, k), exact in float64

    def part(table):
        y = jnp.matmul(jnp.asarray(table, kernel.dtype), kernel.reshape(k, cg * f), precision=precision)  # (Q, C/G*F)
        return y.reshape(freqs, cg, groups, f // groups).transpose(0, 2, 1, 3)   # (Q, G, C/G, F/G)

    return lax.complex(part(np.cos(angle)), part(np.sin(angle)))


_ALGORITHM_FNS: dict[str, Callable] = {"xla": _conv_xla, "im2col": _conv_im2col, "fft": _conv_fft}


def conv_general(x: jax.Array, kernel: jax.Array, *, stride: Sequence[int], pads: Sequence[tuple[int, int]],
                 dilation: Sequence[int], groups: int = 1, precision: Any = None, impl: str = "xla") -> jax.Array:
    """``x (N, *spatial, C)``, ``kernel (*k, C // groups, F)`` -> ``(N, *out, F)`` by the algorithm ``impl``.

    ``impl="auto"`` resolves through :func:`choose` (measured once per shape, outside ``jit``). Shapes and the
    output-length formula are in the module docstring; callers (``Conv1D``, ``Conv2D``) check them first.
    """
    stride, dilation = tuple(int(s) for s in stride), tuple(int(d) for d in dilation)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if impl == "auto":
        impl = choose(x, kernel, stride=stride, pads=pads, dilation=dilation, groups=groups, precision=precision)
    return _ALGORITHM_FNS[check_impl("conv_general", impl, ALGORITHMS)](x, kernel, stride, pads, dilation, groups,
                                                                       precision)


# ---------------------------------------------------------------------------------------------------- auto


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What ``auto`` measured for one key: seconds of forward + backward per algorithm, and the fastest.

    Attributes:
      choice: the algorithm ``auto`` runs for this key.
      seconds: ``{algorithm: median seconds of one forward + backward}``; algorithms left out (over
        :data:`MEMORY_LIMIT`) are absent.
    """

    choice: str
    seconds: dict[str, float]

    def __str__(self) -> str:
        times = ", ".join(f"{a} {s * 1e3:.3g} ms" for a, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        return f"{self.choice} (measured fwd+bwd: {times})"


_TABLE: dict[tuple, Measurement] = {}


def _key(x_shape, kernel_shape, dtype, stride, pads, dilation, groups, precision, kind="conv") -> tuple:
    return (kind, jax.default_backend(), tuple(x_shape), tuple(kernel_shape), str(jnp.dtype(dtype)), tuple(stride),
            tuple(pads), tuple(dilation), int(groups), str(precision))


def measured(x_shape, kernel_shape, dtype, *, stride, pads, dilation, groups=1, precision=None,
             kind: str = "conv") -> Measurement | None:
    """The table's entry for these static shapes on the current backend, or None if never measured."""
    return _TABLE.get(_key(x_shape, kernel_shape, dtype, stride, pads, dilation, groups, precision, kind))


def _bytes_needed(algorithm, x_shape, kernel_shape, stride, pads, dilation, itemsize) -> int:
    n = len(kernel_shape) - 2
    padded = [L + lo + hi for L, (lo, hi) in zip(x_shape[1:-1], pads)]
    out = _out_sizes(padded, kernel_shape[:n], stride, dilation)
    if algorithm == "im2col":
        return x_shape[0] * math.prod(out) * math.prod(kernel_shape[:n]) * x_shape[-1] * itemsize
    if algorithm == "fft":
        freq = math.prod(padded) // 2 + 1
        return 8 * freq * (x_shape[0] * (x_shape[-1] + kernel_shape[-1]) + kernel_shape[-2] * kernel_shape[-1])
    return 0


def time_candidates(fns: dict[str, Callable], args: Sequence, *, rounds: int = 7, warmup: int = 3,
                    budget_s: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each ``fns[name](*args)`` (compiled and warmed up first: the first calls of a
    program can be slower, e.g. an FFT's plan), timed in interleaved rounds so that load from elsewhere falls on all
    alike. Each call's outputs are waited for."""
    jitted = {name: jax.jit(fn) for name, fn in fns.items()}
    reps, first = {}, {}
    for name, fn in jitted.items():                       # compile, warm up, size the repeats to about budget_s
        for _ in range(warmup):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
        first[name] = max(time.perf_counter() - t0, 1e-6)
        reps[name] = max(1, min(20, int(budget_s / first[name])))
    # A candidate over twice the best warm time is out; it is not timed in the rounds, where its memory traffic
    # (im2col's windows) would slow the others' calls beside it.
    best = min(first.values())
    timed = {name: fn for name, fn in jitted.items() if first[name] <= 2 * best}
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, fn in timed.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                out = fn(*args)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: statistics.median(samples[name]) if name in samples else first[name] for name in fns}


def measure(x_shape, kernel_shape, dtype=jnp.float32, *, stride, pads, dilation, groups=1, precision=None,
            algorithms: Sequence[str] = ALGORITHMS) -> Measurement:
    """Time forward + backward (w.r.t. input and kernel) of each algorithm on zeros of these shapes, keep the result
    in ``auto``'s table, and return it. Must run outside any transform (it compiles and runs programs)."""
    stride, dilation = tuple(stride), tuple(dilation)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    key = _key(x_shape, kernel_shape, dtype, stride, pads, dilation, groups, precision)
    itemsize = jnp.dtype(dtype).itemsize
    fns = {}
    for a in algorithms:
        if _bytes_needed(a, x_shape, kernel_shape, stride, pads, dilation, itemsize) > MEMORY_LIMIT:
            continue
        fn = _ALGORITHM_FNS[a]

        def loss(x, k, fn=fn):
            return fn(x, k, stride, pads, dilation, groups, precision).astype(jnp.float32).sum()

        fns[a] = jax.grad(loss, argnums=(0, 1))
    args = (jnp.zeros(x_shape, dtype), jnp.zeros(kernel_shape, dtype))
    result = fastest(time_candidates(fns, args))
    _TABLE[key] = result
    return result


def fastest(seconds: dict[str, float], default: str = "xla") -> Measurement:
    """The :class:`Measurement` of these timings: the fastest, unless ``default`` is within :data:`MARGIN` of it."""
    best = min(seconds, key=seconds.get)
    if default in seconds and seconds[best] > MARGIN * seconds[default]:
        best = default
    return Measurement(choice=best, seconds=seconds)


def record(key: tuple, result: Measurement) -> Measurement:
    """Keep ``result`` in ``auto``'s table under ``key`` (for choices measured elsewhere, e.g. a fused model path)."""
    _TABLE[key] = result
    return result


def lookup(key: tuple) -> Measurement | None:
    return _TABLE.get(key)


def choose(x, kernel, *, stride, pads, dilation, groups=1, precision=None) -> str:
    """The algorithm ``auto`` runs for ``x`` and ``kernel`` (arrays or tracers; only shapes and dtypes are read).

    Known shapes return the table's choice. An unknown shape is measured when ``x`` is concrete (outside ``jit``);
    under a transform it is never measured and runs ``"xla"``.
    """
    hit = measured(x.shape, kernel.shape, x.dtype, stride=stride, pads=pads, dilation=dilation, groups=groups,
                   precision=precision)
    if hit is not None:
        return hit.choice
    if isinstance(x, jax.core.Tracer) or isinstance(kernel, jax.core.Tracer):
        return "xla"
    return measure(x.shape, kernel.shape, x.dtype, stride=stride, pads=pads, dilation=dilation, groups=groups,
                   precision=precision).choice
