"""jaxconv.layouts: every pair of layouts round-trips; each layout holds the right element at the right index."""

from __future__ import annotations

import itertools
import re

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import require_torch
from jaxconv import layouts

K, I, O = 5, 3, 4  # width, in, out
KH = 2  # height (2-D)


def jaxconv_kernel(spatial_dims: int) -> np.ndarray:
    shape = (K, I, O) if spatial_dims == 1 else (KH, K, I, O)
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every element distinct


def layouts_with(spatial_dims: int) -> list[str]:
    return [name for name, forms in layouts.LAYOUTS.items() if spatial_dims in forms]


def expected(kernel: np.ndarray, layout: str, theano: bool = False) -> np.ndarray:
    """``kernel`` (jaxconv layout) in ``layout``, written element by element."""
    if kernel.ndim == 3:
        k = kernel.shape[0]
        src = (lambda w, i, o: kernel[k - 1 - w, i, o]) if theano else (lambda w, i, o: kernel[w, i, o])
        if layout in ("jaxconv", "flax", "keras"):
            out = np.empty((K, I, O), np.float32)
            for w, i, o in np.ndindex(K, I, O):
                out[w, i, o] = src(w, i, o)
        elif layout == "keras1":
            out = np.empty((K, 1, I, O), np.float32)
            for w, i, o in np.ndindex(K, I, O):
                out[w, 0, i, o] = src(w, i, o)
        else:  # torch, equinox: (out, in, width)
            out = np.empty((O, I, K), np.float32)
            for w, i, o in np.ndindex(K, I, O):
                out[o, i, w] = src(w, i, o)
        return out
    kh, kw = kernel.shape[:2]
    src = ((lambda h, w, i, o: kernel[kh - 1 - h, kw - 1 - w, i, o]) if theano else (lambda h, w, i, o: kernel[h, w, i, o]))
    if layout in ("jaxconv", "flax", "keras", "keras1"):
        out = np.empty((KH, K, I, O), np.float32)
        for h, w, i, o in np.ndindex(KH, K, I, O):
            out[h, w, i, o] = src(h, w, i, o)
    else:  # torch, equinox, keras1_th: (out, in, height, width)
        out = np.empty((O, I, KH, K), np.float32)
        for h, w, i, o in np.ndindex(KH, K, I, O):
            out[o, i, h, w] = src(h, w, i, o)
    return out


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_each_layout_by_index(spatial_dims):
    kernel = jaxconv_kernel(spatial_dims)
    for layout in layouts_with(spatial_dims):
        got = layouts.convert(kernel, "jaxconv", layout, spatial_dims=spatial_dims)
        np.testing.assert_array_equal(got, expected(kernel, layout))
        if layout.startswith("keras1"):
            theano = layouts.convert(kernel, "jaxconv", layout, spatial_dims=spatial_dims, theano=True)
            np.testing.assert_array_equal(theano, expected(kernel, layout, theano=True))


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_every_pair_round_trips(spatial_dims):
    kernel = jaxconv_kernel(spatial_dims)
    names = layouts_with(spatial_dims)
    for src, dst in itertools.product(names, names):
        for theano in (False, True):
            if theano and not (src.startswith("keras1") or dst.startswith("keras1")):
                continue
            a = expected(kernel, src)
            b = layouts.convert(a, src, dst, spatial_dims=spatial_dims, theano=theano)
            # theano=True flips once, whichever side is Keras 1; keras1 -> keras1 is then Keras' convert_kernel
            # (Theano <-> TensorFlow kernels), and converting back flips again.
            np.testing.assert_array_equal(b, expected(kernel, dst, theano=theano), err_msg=f"{src} -> {dst}")
            back = layouts.convert(b, dst, src, spatial_dims=spatial_dims, theano=theano)
            np.testing.assert_array_equal(back, a, err_msg=f"{src} -> {dst} -> {src}")


def test_known_shapes_and_inference():
    k1 = np.zeros((5, 1, 300, 111), np.float32)  # the seed's Keras 1 kernel
    assert layouts.convert(k1, "keras1", "jaxconv").shape == (5, 300, 111)
    assert layouts.convert(k1, "keras1", "torch").shape == (111, 300, 5)
    assert layouts.convert(np.zeros((5, 300, 111)), "jaxconv", "keras1").shape == (5, 1, 300, 111)
    # A rank-4 keras1 kernel whose second axis is not 1 is a Convolution2D ('tf') kernel.
    assert layouts.convert(np.zeros((3, 2, 4, 6)), "keras1", "torch").shape == (6, 4, 3, 2)
    assert layouts.convert(np.zeros((6, 4, 3, 2)), "keras1_th", "jaxconv").shape == (3, 2, 4, 6)
    assert layouts.layout_axes("keras1") == ("width", "1", "in", "out")
    assert layouts.layout_axes("torch", 2) == ("out", "in", "height", "width")


def test_array_types():
    kernel = jaxconv_kernel(1)
    j = layouts.convert(jnp.asarray(kernel), "jaxconv", "torch")
    assert isinstance(j, type(jnp.zeros(1))) and j.shape == (O, I, K)  # JAX in, JAX out
    torch = require_torch()
    t = torch.from_numpy(expected(kernel, "torch"))
    out = layouts.convert(t, "torch", "jaxconv")
    assert type(out) is np.ndarray  # torch in, numpy out
    np.testing.assert_array_equal(out, kernel)
    # And a real torch.nn.Conv1d weight has the "torch" layout: (out, in // groups, width).
    assert layouts.convert(torch.nn.Conv1d(6, 4, 5, groups=2).weight, "torch", "jaxconv").shape == (5, 3, 4)


def test_describe():
    assert layouts.describe((5, 1, 300, 111), "keras1") == "(width=5, 1=1, in=300, out=111)"
    assert layouts.describe((111, 300, 5), "torch") == "(out=111, in=300, width=5)"
    assert layouts.describe((3, 3, 3, 40), "jaxconv", 2) == "(height=3, width=3, in=3, out=40)"
    with pytest.raises(ValueError, match=re.escape(
            "shape (5, 300, 111) has rank 3; layout 'keras1' (1-D) has rank 4: ('width', '1', 'in', 'out').")):
        layouts.describe((5, 300, 111), "keras1")


def test_errors():
    with pytest.raises(ValueError, match=re.escape(
            "kernel has shape (5, 2, 300, 111); layout 'keras1' expects 1 on axis 1 (('width', '1', 'in', 'out')), "
            "got 2.")):
        layouts.convert(np.zeros((5, 2, 300, 111)), "keras1", "jaxconv", spatial_dims=1)
    with pytest.raises(ValueError, match=re.escape(
            "kernel has shape (5, 300, 111) (rank 3); layout 'keras1' (1-D) expects rank 4: "
            "('width', '1', 'in', 'out').")):
        layouts.convert(np.zeros((5, 300, 111)), "keras1", "jaxconv")
    with pytest.raises(ValueError, match=re.escape(
            "theano=True flips Keras 1 (Theano backend) kernels; neither src='keras' nor dst='torch' is a Keras 1 "
            "layout.")):
        layouts.convert(np.zeros((5, 300, 111)), "keras", "torch", theano=True)
    with pytest.raises(ValueError, match=re.escape(
            "layout='kerass' is not known; expected one of 'jaxconv', 'flax', 'keras', 'keras1', 'keras1_th', "
            "'torch', 'equinox'.")):
        layouts.convert(np.zeros((5, 300, 111)), "kerass", "torch")
    with pytest.raises(ValueError, match=re.escape("layout='keras1_th' has no 1-D form; it has: 2-D (OIHW).")):
        layouts.convert(np.zeros((5, 300, 111)), "keras1_th", "torch")
    with pytest.raises(ValueError, match=re.escape(
            "kernel of shape (5, 300) (rank 2) is not a 1-D or 2-D kernel in layout 'torch'; expected rank 3 (1-D) or "
            "4 (2-D).")):
        layouts.convert(np.zeros((5, 300)), "torch", "keras")
