"""Conv1D / Conv2D: parameter shapes, output shapes, values against numpy loops, gradients, jit, error messages.

Reference values come from hand-written numpy loops (``np_conv1d`` / ``np_conv2d``), ``lax.padtype_to_pads`` and
``jax.test_util.check_grads``; shapes of the annotated helpers are checked with jaxtyping.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from jax.test_util import check_grads
from jaxtyping import Array, Float, jaxtyped

from jaxconv import Conv1D, Conv2D

# ---------------------------------------------------------------------------------------------------- references


def np_conv1d(x, w, b=None, *, stride=1, dilation=1, pads=(0, 0), groups=1, mode="constant"):
    """Cross-correlation by explicit loops. x (B, L, C), w (k, C // groups, F) -> (B, out, F)."""
    x = np.pad(x, ((0, 0), pads, (0, 0)), mode=mode)
    B, L, C = x.shape
    k, cg, F = w.shape
    fg = F // groups
    out = (L - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((B, out, F), np.float64)
    for t in range(out):
        for j in range(F):
            g = j // fg
            for i in range(k):
                y[:, t, j] += x[:, t * stride + i * dilation, g * cg:(g + 1) * cg] @ w[i, :, j]
    return y + (0 if b is None else b)


def np_conv2d(x, w, b=None, *, stride=(1, 1), dilation=(1, 1), pads=((0, 0), (0, 0)), groups=1):
    """x (B, H, W, C), w (kh, kw, C // groups, F) -> (B, oh, ow, F), by explicit loops."""
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    B, H, W, C = x.shape
    kh, kw, cg, F = w.shape
    fg = F // groups
    oh = (H - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (W - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((B, oh, ow, F), np.float64)
    for r in range(oh):
        for c in range(ow):
            for j in range(F):
                g = j // fg
                for i in range(kh):
                    for m in range(kw):
                        patch = x[:, r * stride[0] + i * dilation[0], c * stride[1] + m * dilation[1], g * cg:(g + 1) * cg]
                        y[:, r, c, j] += patch @ w[i, m, :, j]
    return y + (0 if b is None else b)


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def np_init(key, shape, dtype=jnp.float32):
    """A kernel initialiser without XLA compiles (the default truncated normal compiles once per shape)."""
    return jnp.asarray(np.random.default_rng(sum(shape)).standard_normal(shape) / np.sqrt(np.prod(shape[:-1])), dtype)


def C1(*args, **kwargs) -> Conv1D:
    return Conv1D(*args, rngs=kwargs.pop("rngs", nnx.Rngs(0)), kernel_init=kwargs.pop("kernel_init", np_init), **kwargs)


def C2(*args, **kwargs) -> Conv2D:
    return Conv2D(*args, rngs=kwargs.pop("rngs", nnx.Rngs(0)), kernel_init=kwargs.pop("kernel_init", np_init), **kwargs)


def set_weights(conv, kernel, bias=None):
    conv.kernel[...] = jnp.asarray(kernel)
    if bias is not None:
        conv.bias[...] = jnp.asarray(bias)
    return conv


# ---------------------------------------------------------------------------------------------------- jaxtyping


def shape_checked(fn):
    """Check every jaxtyping-annotated argument and the return value, with dimension names shared across them."""
    hints = typing.get_type_hints(fn)
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jaxtyped("context"):
            for name, value in sig.bind(*args, **kwargs).arguments.items():
                if name in hints and hasattr(hints[name], "dim_str"):
                    assert isinstance(value, hints[name]), f"{name}: shape {value.shape} is not {hints[name].dim_str!r}"
            out = fn(*args, **kwargs)
            if hasattr(hints.get("return"), "dim_str"):
                assert isinstance(out, hints["return"]), f"return: shape {out.shape} is not {hints['return'].dim_str!r}"
        return out

    return wrapped


@shape_checked
def valid_forward(conv: Conv1D, x: Float[Array, "b l c"], kernel: Float[Array, "k c f"]) -> Float[Array, "b l-k+1 f"]:
    return conv(x)


@shape_checked
def wrong_forward(conv: Conv1D, x: Float[Array, "b l c"], kernel: Float[Array, "k c f"]) -> Float[Array, "b l f"]:
    return conv(x)  # claims the length is kept: only true for 'same'


def test_jaxtyping_shapes():
    conv = C1(300, 111, 5, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 50, 300))
    y = valid_forward(conv, x, conv.kernel[...])
    assert isinstance(y, Float[Array, "2 46 111"])
    with pytest.raises(AssertionError, match=re.escape("return: shape (2, 46, 111) is not 'b l f'")):
        wrong_forward(conv, x, conv.kernel[...])
    same = C1(300, 111, 5, padding="same", rngs=nnx.Rngs(0))
    assert wrong_forward(same, x, same.kernel[...]).shape == (2, 50, 111)
    with pytest.raises(AssertionError, match=re.escape("kernel: shape (5, 300, 111) is not 'k c f'")):
        valid_forward(conv, jnp.ones((2, 50, 299)), conv.kernel[...])  # c=299 bound by x first


# ---------------------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("cls, args, kernel_shape", [
    (Conv1D, dict(in_channels=300, filters=111, kernel_size=5), (5, 300, 111)),
    (Conv1D, dict(in_channels=12, filters=9, kernel_size=3, groups=3), (3, 4, 9)),
    (Conv1D, dict(in_channels=4, filters=4, kernel_size=2, groups=4, use_bias=False), (2, 1, 4)),
    (Conv2D, dict(in_channels=3, filters=40, kernel_size=5), (5, 5, 3, 40)),
    (Conv2D, dict(in_channels=6, filters=4, kernel_size=(3, 2), groups=2), (3, 2, 3, 4)),
])
def test_parameter_shapes(cls, args, kernel_shape):
    conv = cls(**args, rngs=nnx.Rngs(0), kernel_init=np_init)
    assert conv.kernel.shape == kernel_shape
    assert conv.kernel_axes == (("width", "in", "out") if cls is Conv1D else ("height", "width", "in", "out"))
    if args.get("use_bias", True):
        assert conv.bias.shape == (args["filters"],)
    else:
        assert conv.bias is None
        assert [p.shape for p in jax.tree.leaves(nnx.state(conv, nnx.Param))] == [kernel_shape]


def test_filter_kernel():
    conv = C1(6, 4, 3, groups=2, rngs=nnx.Rngs(0))
    assert conv.filter_kernel(3).shape == (3, 3)
    np.testing.assert_array_equal(conv.filter_kernel(1), np.asarray(conv.kernel[...])[:, :, 1])
    conv2 = C2(3, 5, (3, 2))
    assert conv2.filter_kernel(4).shape == (3, 2, 3)
    for j in (4, 7):
        with pytest.raises(IndexError, match=re.escape(
                f"Conv1D.filter_kernel: j={j!r} is out of range for filters=4; expected an int with 0 <= j < 4.")):
            conv.filter_kernel(j)
    with pytest.raises(IndexError, match=re.escape("Conv1D.filter_kernel: j=-1 is out of range for filters=4; "
                                                   "expected an int with 0 <= j < 4 (negative indices are not")):
        conv.filter_kernel(-1)                            # was: the last filter
    for j, kind in ((1.0, "a float"), (True, "a bool")):
        with pytest.raises(TypeError, match=re.escape(f"Conv1D.filter_kernel: j={j!r} is {kind}, not an int")):
            conv.filter_kernel(j)                         # was: "out of range"


def test_filter_kernel_is_what_output_channel_j_computes():
    conv = C1(6, 4, 3, groups=2, rngs=nnx.Rngs(1))
    set_weights(conv, rand((3, 3, 4), 1), rand((4,), 2))
    x = rand((2, 9, 6), 3)
    y = np.asarray(conv(x))
    for j in range(4):
        g = j // 2  # filters // groups = 2 filters per group
        xg = x[..., g * 3:(g + 1) * 3]
        w = np.asarray(conv.filter_kernel(j))
        ref = np.stack([np.einsum("bic,ic->b", xg[:, t:t + 3], w) for t in range(7)], 1) + float(conv.bias[j])
        np.testing.assert_allclose(y[..., j], ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- output shapes


GRID_1D = [
    dict(kernel_size=5), dict(kernel_size=3, padding="same"), dict(kernel_size=4, padding="same", stride=2),
    dict(kernel_size=4, padding="same_lower", stride=3), dict(kernel_size=3, padding="causal", dilation=2),
    dict(kernel_size=2, padding="full"), dict(kernel_size=3, padding=(0, 4)), dict(kernel_size=3, padding=2, stride=2),
    dict(kernel_size=4, padding="same_torch", dilation=3), dict(kernel_size=3, groups=2),
]


@pytest.mark.parametrize("kw", GRID_1D)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_output_shape_matches_forward_1d(kw, data_format, batch):
    conv = C1(4, 6, rngs=nnx.Rngs(0), data_format=data_format, **kw)
    for length in (9, 16):
        shape = (*batch, length, 4) if data_format == "channels_last" else (*batch, 4, length)
        y = jax.eval_shape(conv, jax.ShapeDtypeStruct(shape, jnp.float32))  # the real lax shape rule, no compile
        assert conv.output_shape(shape) == y.shape


GRID_2D = [
    dict(kernel_size=3), dict(kernel_size=(3, 2), padding="same", stride=2), dict(kernel_size=3, padding=(1, 2)),
    dict(kernel_size=3, padding=((0, 1), (2, 2))), dict(kernel_size=(2, 3), padding=("causal", "same"), dilation=(2, 1)),
    dict(kernel_size=3, groups=2, stride=(1, 2)),
]


@pytest.mark.parametrize("kw", GRID_2D)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_output_shape_matches_forward_2d(kw, data_format, batch):
    conv = C2(4, 6, rngs=nnx.Rngs(0), data_format=data_format, **kw)
    shape = (*batch, 9, 8, 4) if data_format == "channels_last" else (*batch, 4, 9, 8)
    y = jax.eval_shape(conv, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert conv.output_shape(shape) == y.shape


def test_leading_axes_and_channels_first_values():
    conv = C1(4, 6, 3, padding="same")
    x = rand((2, 3, 10, 4))
    y = conv(x)
    assert y.shape == (2, 3, 10, 6)
    np.testing.assert_allclose(y[1, 2], conv(x[1, 2]), rtol=1e-6, atol=1e-6)  # unbatched input
    cf = C1(4, 6, 3, padding="same", data_format="channels_first")
    np.testing.assert_allclose(cf(np.moveaxis(x, -1, -2)), np.moveaxis(np.asarray(y), -1, -2), rtol=1e-6, atol=1e-6)


def test_padding_for():
    conv = C1(2, 2, 4, stride=2, padding="same")
    for length in (7, 10, 11):
        assert conv.padding_for(length) == tuple(lax.padtype_to_pads((length,), (4,), (2,), "SAME")[0])
    assert C1(2, 2, 3, dilation=2, padding="causal").padding_for(50) == (4, 0)
    c2 = C2(2, 2, (3, 4), padding="same")
    assert c2.padding_for((9, 9)) == tuple(map(tuple, lax.padtype_to_pads((9, 9), (3, 4), (1, 1), "SAME")))
    assert C2(2, 2, 3, padding=(1, 2)).padding_for((5, 5)) == ((1, 1), (2, 2))
    with pytest.raises(ValueError, match=re.escape("Conv2D: padding_for expects 2 spatial sizes; got 5.")):
        c2.padding_for(5)


# ---------------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("kw, pads", [
    (dict(kernel_size=5), (0, 0)),
    (dict(kernel_size=4, padding="same", stride=2), None),
    (dict(kernel_size=3, padding="causal", dilation=2), (4, 0)),
    (dict(kernel_size=3, padding="full"), (2, 2)),
    (dict(kernel_size=3, padding=(1, 3), stride=3), (1, 3)),
    (dict(kernel_size=3, groups=2), (0, 0)),
    (dict(kernel_size=4, padding="same_torch", dilation=2), (3, 3)),
])
def test_conv1d_values_vs_numpy(kw, pads):
    L = 11
    if pads is None:
        pads = tuple(lax.padtype_to_pads((L,), (kw["kernel_size"],), (kw["stride"],), "SAME")[0])
    groups = kw.get("groups", 1)
    conv = C1(4, 6, rngs=nnx.Rngs(0), **kw)
    w, b = rand(conv.kernel.shape, 1), rand((6,), 2)
    set_weights(conv, w, b)
    x = rand((2, L, 4), 3)
    ref = np_conv1d(x.astype(np.float64), w, b, stride=kw.get("stride", 1), dilation=kw.get("dilation", 1), pads=pads,
                    groups=groups)
    np.testing.assert_allclose(conv(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode, np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_padding_modes(mode, np_mode):
    conv = C1(3, 2, 5, padding="same", padding_mode=mode)
    w, b = rand((5, 3, 2), 1), rand((2,), 2)
    set_weights(conv, w, b)
    x = rand((2, 7, 3), 3)
    y = conv(x)
    assert y.shape == (2, 7, 2)
    np.testing.assert_allclose(y, np_conv1d(x, w, b, pads=(2, 2), mode=np_mode), rtol=1e-5, atol=1e-5)
    c2 = C2(3, 2, 3, padding=(1, 2), padding_mode=mode)
    assert c2(rand((1, 5, 6, 3))).shape == (1, 5, 8, 2)


def test_conv2d_values_and_per_axis_padding():
    x = rand((2, 6, 7, 4), 3)
    w, b = rand((3, 3, 2, 6), 1), rand((6,), 2)
    ref = np_conv2d(x, w, b, pads=((1, 1), (2, 2)), groups=2)
    for padding in ((1, 2), ((1, 1), (2, 2))):
        conv = set_weights(C2(4, 6, 3, padding=padding, groups=2), w, b)
        y = conv(x)
        assert y.shape == (2, 6, 9, 6)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    conv = set_weights(C2(4, 6, 3, stride=(2, 1), dilation=(1, 2), padding="same", groups=2), w, b)
    pads = tuple(map(tuple, lax.padtype_to_pads((6, 7), (3, 5), (2, 1), "SAME")))
    np.testing.assert_allclose(conv(x), np_conv2d(x, w, b, stride=(2, 1), dilation=(1, 2), pads=pads, groups=2),
                               rtol=1e-5, atol=1e-5)


def test_activation_and_no_bias():
    conv = C1(3, 2, 2, activation="relu", use_bias=False)
    w = rand((2, 3, 2), 1)
    set_weights(conv, w)
    x = rand((2, 5, 3), 2)
    np.testing.assert_allclose(conv(x), np.maximum(np_conv1d(x, w), 0), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- jit, gradients


def test_nnx_jit_matches_eager():
    conv = C1(8, 5, 3, padding="same", stride=2, activation="tanh")
    x = rand((3, 13, 8))
    eager = conv(x)

    @nnx.jit
    def forward(m, x):
        return m(x)

    np.testing.assert_allclose(forward(conv, x), eager, rtol=1e-6, atol=1e-6)
    graphdef, params = nnx.split(conv)
    pure = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    np.testing.assert_allclose(pure(params, x), eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls, kw, in_shape", [
    (Conv1D, dict(kernel_size=3, padding="same", stride=2, dilation=1, groups=2), (2, 7, 4)),
    (Conv1D, dict(kernel_size=2, padding="causal", dilation=2, padding_mode="zeros"), (1, 6, 4)),
    (Conv1D, dict(kernel_size=3, padding="same", padding_mode="reflect"), (1, 6, 4)),
    (Conv2D, dict(kernel_size=(2, 3), padding=(1, 0), stride=(2, 1)), (1, 5, 4, 4)),
])
def test_gradients(cls, kw, in_shape):
    """First-order gradients (reverse and forward mode) w.r.t. input and kernel, by finite differences in float64."""
    with jax.enable_x64(True):
        conv = cls(4, 4, rngs=nnx.Rngs(0), kernel_init=np_init, param_dtype=jnp.float64, activation="tanh", **kw)
        x = jnp.asarray(np.random.default_rng(0).standard_normal(in_shape))
        assert conv(x).dtype == jnp.float64
        check_grads(conv, (x,), order=1, modes=("rev", "fwd"))

        graphdef, params, rest = nnx.split(conv, nnx.Param, ...)

        def with_kernel(kernel):  # the layer as a pure function of its kernel
            p = jax.tree.map(lambda v: v, params)
            p["kernel"] = kernel
            return nnx.merge(graphdef, p, rest)(x)

        check_grads(with_kernel, (conv.kernel[...],), order=1, modes=("rev", "fwd"))


# ---------------------------------------------------------------------------------------------------- errors


def test_error_groups():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: in_channels=6 is not divisible by groups=4; each group needs in_channels / groups input channels "
            "(expected in_channels % groups == 0).")):
        C1(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D: filters=5 is not divisible by groups=2; each group needs filters / groups output channels "
            "(expected filters % groups == 0).")):
        C2(4, 5, 3, groups=2)


def test_error_rank():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: input must have shape (..., length, in_channels=6) (rank >= 2); got shape (6,) of rank 1.")):
        C1(6, 4, 3)(jnp.ones((6,)))
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D: input must have shape (..., in_channels=6, height, width) (rank >= 3); got shape (6, 5) of "
            "rank 2.")):
        C2(6, 4, 3, data_format="channels_first")(jnp.ones((6, 5)))


def test_error_channels():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: input has 5 channels on its last axis (shape (2, 10, 5)); expected in_channels=6, i.e. shape "
            "(..., length, in_channels=6).")):
        C1(6, 4, 3)(jnp.ones((2, 10, 5)))
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: input has 10 channels on its axis -2 (shape (2, 10, 5)); expected in_channels=6, i.e. shape "
            "(..., in_channels=6, length).")):
        C1(6, 4, 3, data_format="channels_first").output_shape((2, 10, 5))


def test_error_too_short():
    msg = ("Conv1D: on the length axis, input length 8 is shorter than the dilated kernel d*(k-1)+1 = 2*(5-1)+1 = 9 "
           "under padding='valid' (lo=0, hi=0): out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1 gives "
           "0 = floor((8 + 0 + 0 - 2*(5-1) - 1) / 1) + 1; expected out >= 1.")
    conv = C1(6, 4, 5, dilation=2)
    with pytest.raises(ValueError, match=re.escape(msg)):
        conv(jnp.ones((2, 8, 6)))
    with pytest.raises(ValueError, match=re.escape(msg)):
        conv.output_shape((2, 8, 6))
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D: on the width axis, input length 3 is shorter than the dilated kernel d*(k-1)+1 = 1*(5-1)+1 = 5 "
            "under padding='valid' (lo=0, hi=0): out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1 gives "
            "-1 = floor((3 + 0 + 0 - 1*(5-1) - 1) / 1) + 1; expected out >= 1.")):
        C2(6, 4, 5)(jnp.ones((2, 8, 3, 6)))


def test_error_padding_arguments():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: padding='samee' is not a known padding convention; expected one of 'valid', 'same', 'same_lower', "
            "'same_torch', 'causal', 'full', an int >= 0, or a (lo, hi) pair of ints >= 0.")):
        C1(6, 4, 3, padding="samee")
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: padding='same_torch' supports stride=1 only (as PyTorch's padding='same'); got stride=2. Use "
            "padding='same' for the XLA/Keras split, which depends on the input length when stride > 1.")):
        C1(6, 4, 3, stride=2, padding="same_torch")
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: padding_mode='zero' is not known; expected one of 'zeros', 'reflect', 'replicate', 'circular'.")):
        C1(6, 4, 3, padding_mode="zero")
    with pytest.raises(ValueError, match=re.escape("Conv1D: padding must be >= 0; got padding=-1.")):
        C1(6, 4, 3, padding=-1)
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D: padding=(1, 2, 3) is not understood for 2 spatial axes; expected a string, an int, or a sequence "
            "of 2 entries (each a string, an int or a (lo, hi) pair).")):
        C2(6, 4, 3, padding=(1, 2, 3))


def test_error_reflect_too_large():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: padding_mode='reflect' needs padding <= 3 on the length axis of length 4; got (lo, hi)=(4, 4).")):
        C1(6, 4, 9, padding="same", padding_mode="reflect")(jnp.ones((2, 4, 6)))
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D: padding_mode='circular' needs padding <= 2 on the height axis of length 2; got (lo, hi)=(3, 3).")):
        C2(1, 1, (7, 1), padding="same", padding_mode="circular")(jnp.ones((2, 4, 1)))


def test_error_input_that_is_not_numbers():
    """Strings, objects and ragged lists are refused by jaxconv, naming the input and the shape expected (JAX's own
    message names neither)."""
    conv = C1(4, 8, 3)
    expected = "Conv1D: x must be an array of numbers of shape (..., length, in_channels=4); got "
    with pytest.raises(TypeError, match=re.escape(expected + "a numpy array of dtype <U1 (strings).")):
        conv(np.array([["a"] * 4] * 5))
    with pytest.raises(TypeError, match=re.escape(expected + "a numpy array of dtype object (objects).")):
        conv(np.array([[object()] * 4] * 5, dtype=object))
    with pytest.raises(TypeError, match=re.escape(expected + "a str of dtype <U5 (strings).")):
        conv("hello")
    with pytest.raises(TypeError, match=re.escape(expected + "a list that is not one (setting an array element")):
        conv([[1.0, 2.0, 3.0, 4.0], [1.0]])
    with pytest.raises(TypeError, match=re.escape(
            "Conv2D: x must be an array of numbers of shape (..., in_channels=3, height, width); got a numpy array of "
            "dtype |S1 (bytes).")):
        C2(3, 2, 1, data_format="channels_first")(np.full((3, 2, 2), b"x"))
    # Numbers of any kind still go through: ints, bools and nested lists are promoted as before.
    ints = np.arange(20, dtype=np.int32).reshape(5, 4)
    np.testing.assert_allclose(conv(ints), conv(ints.astype(np.float32)), rtol=1e-6)
    assert conv(ints.tolist()).shape == (3, 8) and conv(np.ones((5, 4), bool)).shape == (3, 8)


def test_error_rngs_and_dtypes_at_construction():
    with pytest.raises(TypeError, match=re.escape(
            "Conv1D: rngs must be an nnx.Rngs for the initialisers, e.g. rngs=nnx.Rngs(0); got rngs=None.")):
        Conv1D(4, 8, 3, rngs=None)
    with pytest.raises(TypeError, match=re.escape("Conv2D: rngs must be an nnx.Rngs for the initialisers, e.g. "
                                                  "rngs=nnx.Rngs(0); got rngs=0.")):
        Conv2D(4, 8, 3, rngs=0)
    # A bad dtype fails when the layer is built, not at its first call.
    with pytest.raises(TypeError, match=re.escape(
            "Conv1D: dtype='float99' is not a dtype; expected None (promote from the input and parameters) or a "
            "floating dtype such as jnp.float32, 'bfloat16' or 'float16'.")):
        C1(4, 8, 3, dtype="float99")
    with pytest.raises(TypeError, match=re.escape(
            "Conv1D: param_dtype='int32' is not a floating dtype; expected a floating dtype such as jnp.float32, "
            "'bfloat16' or 'float16'.")):
        C1(4, 8, 3, param_dtype="int32")
    with pytest.raises(TypeError, match=re.escape("Conv2D: param_dtype='real' is not a dtype; expected a floating")):
        C2(4, 8, 3, param_dtype="real")
    assert C1(4, 8, 3, dtype="bfloat16")(jnp.ones((5, 4))).dtype == jnp.bfloat16
    assert C1(4, 8, 3, param_dtype=jnp.float16).kernel[...].dtype == jnp.float16
