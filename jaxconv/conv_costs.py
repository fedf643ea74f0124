"""FLOPs and bytes of one convolution, per algorithm, in plain Python ints. No JAX import.

Reached as :func:`jaxconv.shapes.conv_cost`. The algorithms are those of :mod:`jaxconv.nn.algorithms`; counts are
for the forward pass, a multiply-add is 2 FLOPs, a complex multiply-add 8, bias adds and activations are left out:

- ``"xla"`` (direct): ``flops = 2 * N * prod(out) * F * prod(k) * C/G``; bytes = input + kernel + output.
- ``"im2col"``: the same FLOPs; bytes add the window array ``N * prod(out) * prod(k) * C`` written and read once.
- ``"fft"``: for each of the ``N * C`` input and ``F`` output signals a real FFT of ``S`` points
  (``S = prod(size)``) at ``2.5 * S * log2(S)`` FLOPs; the per-frequency contraction ``8 * N * Q * C/G * F`` with
  ``Q = S / 2 + 1`` frequencies (over the whole padded input, or per overlap-save block in 1-D); the kernel's spectrum
  ``2 * Q * prod(k) * C/G * F`` (two real matmuls, 1-D) or an FFT per filter and channel (N-D); bytes = input, kernel,
  output, and the spectra (8 bytes per complex float32).
- ``"fused"``: see :func:`fused_cost`: ``max(w) / w_i`` times each layer's direct FLOPs, in one GEMM.

>>> conv_cost((50,), 300, 111, 5, batch=1)["flops"]          # 46 positions * 111 filters * 5*300 MACs * 2
15318000
>>> conv_cost((50,), 300, 111, 5, impl="im2col")["bytes"] > conv_cost((50,), 300, 111, 5)["bytes"]
True
"""

from __future__ import annotations

import math

__all__ = ["conv_cost", "fused_cost", "fft_size", "next_fast_len", "FFT_BLOCK"]

#: 1-D FFT convolutions run over blocks of about this many positions (overlap-save), so the kernel's spectrum
#: stays small: over the whole length it would hold length/2 x C/G x F complex numbers.
FFT_BLOCK = 256


def next_fast_len(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (FFT libraries are fastest there)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def fft_size(padded: tuple[int, ...], keff: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """``(FFT size per axis, number of blocks)`` that the ``"fft"`` algorithm uses for a padded input and a dilated
    kernel extent: one block over the whole input, or overlap-save blocks of ``FFT_BLOCK`` points in 1-D."""
    if len(padded) == 1 and padded[0] > 2 * FFT_BLOCK and FFT_BLOCK >= 4 * keff[0]:
        size = next_fast_len(FFT_BLOCK)
        step = size - keff[0] + 1
        return (size,), -(-(padded[0] - keff[0] + 1) // step)
    return tuple(next_fast_len(L) for L in padded), 1


def conv_cost(spatial_shape, in_channels: int, filters: int, kernel_size, *, stride=1, dilation=1,
              padding="valid", groups: int = 1, batch: int = 1, impl: str = "xla", itemsize: int = 4) -> dict:
    """``{"flops": int, "bytes": int}`` of one forward convolution by ``impl`` (formulas in the module docstring).

    Arguments as :func:`jaxconv.shapes.conv_flops`; ``itemsize`` is the bytes per element of the arrays.
    """
    from jaxconv import shapes

    spatial = shapes.per_axis_ints(spatial_shape, name="spatial_shape")
    n = len(spatial)
    ks = shapes.per_axis_ints(kernel_size, n, name="kernel_size")
    ds = shapes.per_axis_ints(dilation, n, name="dilation")
    ss = shapes.per_axis_ints(stride, n, name="stride")
    out = shapes.conv_output_shape(spatial, ks, stride=ss, dilation=ds, padding=padding)
    pads = [shapes.resolve_padding(L, k, stride=s, dilation=d, padding=p) for L, k, s, d, p in
            zip(spatial, ks, ss, ds, shapes.normalize_padding(padding, n))]
    padded = tuple(L + lo + hi for L, (lo, hi) in zip(spatial, pads))
    direct = shapes.conv_flops(spatial, in_channels, filters, ks, stride=ss, dilation=ds, padding=padding,
                               groups=groups, use_bias=False, batch=batch)
    cg = in_channels // groups
    io_bytes = itemsize * (batch * math.prod(spatial) * in_channels + math.prod(ks) * cg * filters
                           + batch * math.prod(out) * filters)
    if impl == "xla":
        return {"flops": direct, "bytes": io_bytes}
    if impl == "im2col":
        windows = batch * math.prod(out) * math.prod(ks) * in_channels
        return {"flops": direct, "bytes": io_bytes + 2 * itemsize * windows}
    if impl == "fft":
        keff = tuple(d * (k - 1) + 1 for k, d in zip(ks, ds))
        size, blocks = fft_size(padded, keff)
        points = math.prod(size)
        freqs = points // size[-1] * (size[-1] // 2 + 1)
        transforms = (batch * blocks) * (in_channels + filters) * 2.5 * points * math.log2(max(points, 2))
        contraction = 8 * batch * blocks * freqs * cg * filters
        spectrum = (2 * 2 * freqs * math.prod(keff) * cg * filters if n == 1
                    else cg * filters * 2.5 * points * math.log2(max(points, 2)))
        spectra = 8 * freqs * (batch * blocks * (in_channels + filters) + cg * filters)
        return {"flops": int(transforms + contraction + spectrum), "bytes": io_bytes + spectra}
    raise ValueError(f"conv_cost: impl={impl!r} is not known; expected 'xla', 'im2col' or 'fft' (fused layers: "
                     f"fused_cost).")


def fused_cost(length: int, in_channels: int, filters, widths, *, batch: int = 1, itemsize: int = 4) -> dict:
    """``{"flops", "bytes"}`` of parallel valid Conv1D layers of ``widths`` (``filters``: an int, or one per
    width) computed fused: one GEMM of the width-``max(w)`` windows at ``length - min(w) + 1`` positions.

    >>> fused_cost(64, 300, 100, (3, 4, 5))["flops"] == 2 * 62 * 5 * 300 * 300
    True
    """
    widths = tuple(int(w) for w in widths)
    fs = (int(filters),) * len(widths) if isinstance(filters, int) else tuple(int(f) for f in filters)
    positions = length - min(widths) + 1
    flops = 2 * batch * positions * max(widths) * in_channels * sum(fs)
    windows = batch * positions * max(widths) * in_channels
    data = batch * length * in_channels + max(widths) * in_channels * sum(fs) + batch * positions * sum(fs)
    return {"flops": flops, "bytes": itemsize * (data + 2 * windows)}
