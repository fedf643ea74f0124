"""Numerical equality (float32, 1e-5) with Keras 3 (JAX backend), PyTorch and Keras 1 kernels, weights converted.

Keras 3 layers are built and run by Keras; PyTorch modules by PyTorch (skipped without torch, failing under CI);
Keras 1 kernels are checked against hand-written numpy correlations / convolutions.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
from flax import nnx

from conftest import require_torch
from jaxconv import Conv1D, Conv2D
from jaxconv.compat import keras as compat_keras

TOL = dict(rtol=1e-5, atol=1e-5)


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def np_init(shape, dtype=None):
    """Keras initialiser without XLA compiles (Keras' own random initialisers compile once per shape)."""
    return rand(shape, sum(shape))


def np_init_nnx(key, shape, dtype):
    return rand(shape, sum(shape)).astype(dtype)


def test_keras_backend_is_jax():
    assert keras.backend.backend() == "jax"


# ---------------------------------------------------------------------------------------------------- Keras 3

KERAS_1D = [
    dict(kernel_size=3, padding="valid"),
    dict(kernel_size=4, padding="same"),
    dict(kernel_size=3, padding="causal", dilation_rate=2),
    dict(kernel_size=4, padding="same", strides=2),  # L=11: total pad 3, split (1, 2)
    dict(kernel_size=3, padding="same", strides=2),  # L=11: total pad 2... and L=10: total 1, split (0, 1)
    dict(kernel_size=2, padding="valid", dilation_rate=3),
    dict(kernel_size=3, padding="same", groups=2),
]


@pytest.mark.parametrize("kw", KERAS_1D)
@pytest.mark.parametrize("length", [10, 11])
def test_keras_conv1d(kw, length):
    layer = keras.layers.Conv1D(6, kernel_initializer=np_init, **kw)
    x = rand((2, length, 4), 1)
    layer.build(x.shape)
    kernel, bias = np.asarray(layer.kernel), rand((6,), 2)
    layer.bias.assign(bias)
    ref = np.asarray(layer(x))

    ours = Conv1D.from_keras(kernel, bias, stride=kw.get("strides", 1), padding=kw["padding"],
                             dilation=kw.get("dilation_rate", 1), groups=kw.get("groups", 1))
    np.testing.assert_allclose(ours(x), ref, **TOL)

    compat = compat_keras.Conv1D(6, input_dim=4, kernel_init=np_init_nnx, **kw)
    compat.kernel[...] = kernel
    compat.bias[...] = bias
    np.testing.assert_allclose(compat(x), ref, **TOL)
    assert compat.output_shape(x.shape) == ref.shape == tuple(layer.compute_output_shape(x.shape))


KERAS_2D = [
    dict(kernel_size=3, padding="valid"),
    dict(kernel_size=(2, 3), padding="same"),
    dict(kernel_size=3, padding="same", strides=2),  # 7x8: splits (1, 1) and (0, 1)
    dict(kernel_size=(3, 2), padding="same", strides=(2, 3)),
    dict(kernel_size=2, padding="valid", dilation_rate=(2, 1)),
    dict(kernel_size=3, padding="same", groups=2, activation="relu"),
]


@pytest.mark.parametrize("kw", KERAS_2D)
def test_keras_conv2d(kw):
    layer = keras.layers.Conv2D(6, kernel_initializer=np_init, **kw)
    x = rand((2, 7, 8, 4), 1)
    layer.build(x.shape)
    kernel, bias = np.asarray(layer.kernel), rand((6,), 2)
    layer.bias.assign(bias)
    ref = np.asarray(layer(x))

    ours = Conv2D.from_keras(kernel, bias, stride=kw.get("strides", 1), padding=kw["padding"],
                             dilation=kw.get("dilation_rate", 1), groups=kw.get("groups", 1),
                             activation=kw.get("activation"))
    np.testing.assert_allclose(ours(x), ref, **TOL)

    compat = compat_keras.Conv2D(6, input_dim=4, kernel_init=np_init_nnx, **kw)
    compat.kernel[...] = kernel
    compat.bias[...] = bias
    np.testing.assert_allclose(compat(x), ref, **TOL)


def test_keras_channels_first():
    layer = keras.layers.Conv1D(5, 3, padding="same", data_format="channels_first", kernel_initializer=np_init)
    x = rand((2, 4, 9), 1)
    ref = np.asarray(layer(x))
    ours = compat_keras.Conv1D(5, 3, padding="same", data_format="channels_first", input_dim=4,
                               kernel_init=np_init_nnx)
    ours.kernel[...] = np.asarray(layer.kernel)
    ours.bias[...] = np.asarray(layer.bias)
    np.testing.assert_allclose(ours(x), ref, **TOL)


def test_compat_keras_rejects_non_keras_padding():
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D: padding='full' is not a Keras padding; expected 'valid', 'same' or 'causal'.")):
        compat_keras.Conv1D(4, 3, padding="full", input_dim=3)


# ---------------------------------------------------------------------------------------------------- PyTorch

TORCH_1D = [
    dict(kernel_size=3),
    dict(kernel_size=3, padding=2),  # symmetric int
    dict(kernel_size=4, padding="same"),  # even kernel: torch pads (1, 2)
    dict(kernel_size=4, padding="same", dilation=3),  # total 9: (4, 5)
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=5, stride=2, padding=1),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="replicate"),
    dict(kernel_size=4, padding=3, padding_mode="circular"),
    dict(kernel_size=3, padding="same", padding_mode="reflect"),
    dict(kernel_size=3, groups=2, padding=1),
    dict(kernel_size=2, groups=4, bias=False, dilation=2),
]


def _ours_kwargs(kw):
    p = kw.get("padding", 0)
    return dict(stride=kw.get("stride", 1), padding="same_torch" if p == "same" else p, dilation=kw.get("dilation", 1),
                groups=kw.get("groups", 1), padding_mode=kw.get("padding_mode", "zeros"))


@pytest.mark.parametrize("kw", TORCH_1D)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_torch_conv1d(kw):
    torch = require_torch()
    torch.manual_seed(0)
    m = torch.nn.Conv1d(4, 8, **kw)
    x = rand((2, 4, 11), 1)  # torch is channels-first
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    ours = Conv1D.from_torch(m.weight, m.bias, data_format="channels_first", **_ours_kwargs(kw))
    np.testing.assert_allclose(ours(x), ref, **TOL)
    channels_last = Conv1D.from_torch(m.weight, m.bias, **_ours_kwargs(kw))
    np.testing.assert_allclose(channels_last(x.transpose(0, 2, 1)), ref.transpose(0, 2, 1), **TOL)

    total = kw.get("dilation", 1) * (kw["kernel_size"] - 1)
    if kw.get("padding") == "same" and total % 2:  # torch pads (total // 2, total - total // 2): no int padding
        with pytest.raises(ValueError, match=re.escape(
                f"Conv1D.to_torch: padding='same_torch' is asymmetric (lo={total // 2}, hi={total - total // 2}) on the "
                f"length axis; torch.nn.Conv1d pads both sides equally.")):
            ours.to_torch()
        return
    back = ours.to_torch()
    assert isinstance(back, torch.nn.Conv1d)
    assert (back.padding_mode, back.groups, back.stride, back.dilation) == (m.padding_mode, m.groups, m.stride, m.dilation)
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x)).numpy(), ref, **TOL)
    np.testing.assert_array_equal(back.weight.detach().numpy(), m.weight.detach().numpy())


TORCH_2D = [
    dict(kernel_size=3),
    dict(kernel_size=(3, 2), padding=(1, 2)),
    dict(kernel_size=(2, 4), padding="same"),
    dict(kernel_size=3, stride=(2, 1), dilation=(1, 2), padding=1),
    dict(kernel_size=3, padding=1, padding_mode="reflect", groups=2),
    dict(kernel_size=3, padding=(2, 1), padding_mode="circular"),
    dict(kernel_size=3, padding=1, padding_mode="replicate", bias=False),
]


@pytest.mark.parametrize("kw", TORCH_2D)
def test_torch_conv2d(kw):
    torch = require_torch()
    torch.manual_seed(0)
    m = torch.nn.Conv2d(4, 6, **kw)
    x = rand((2, 4, 7, 8), 1)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    ours = Conv2D.from_torch(m.weight, m.bias, data_format="channels_first", **_ours_kwargs(kw))
    np.testing.assert_allclose(ours(x), ref, **TOL)
    if kw.get("padding") == "same":
        return  # (2, 4) kernel: asymmetric on both axes, no to_torch
    back = ours.to_torch()
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x)).numpy(), ref, **TOL)


def test_to_torch_from_jaxconv_weights():
    """jaxconv -> torch -> jaxconv with weights that started on the JAX side."""
    torch = require_torch()
    ours = Conv1D(4, 6, 3, padding=1, groups=2, activation=None, kernel_init=np_init_nnx, rngs=nnx.Rngs(3))
    x = rand((2, 9, 4), 1)
    t = ours.to_torch()
    with torch.no_grad():
        np.testing.assert_allclose(t(torch.from_numpy(x.transpose(0, 2, 1))).numpy().transpose(0, 2, 1), ours(x), **TOL)
    again = Conv1D.from_torch(t.weight, t.bias, padding=1, groups=2)
    np.testing.assert_array_equal(np.asarray(again.kernel[...]), np.asarray(ours.kernel[...]))


def test_to_torch_errors():
    require_torch()
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D.to_torch: padding='causal' is asymmetric (lo=2, hi=0) on the length axis; torch.nn.Conv1d pads "
            "both sides equally. Pad the input with torch.nn.functional.pad instead.")):
        Conv1D(6, 4, 3, padding="causal", kernel_init=np_init_nnx, rngs=nnx.Rngs(0)).to_torch()
    with pytest.raises(ValueError, match=re.escape(
            "Conv1D.to_torch: padding='same' with stride=2 depends on the input length; PyTorch has no equivalent. "
            "Use explicit (lo, hi) padding.")):
        Conv1D(6, 4, 3, stride=2, padding="same", kernel_init=np_init_nnx, rngs=nnx.Rngs(0)).to_torch()


# ---------------------------------------------------------------------------------------------------- Keras 1


def np_correlate_valid(x, w):
    """x (B, L, C), w (k, C, F): out[b, t, f] = sum_{i, c} x[b, t + i, c] * w[i, c, f]."""
    k = w.shape[0]
    out = np.zeros((x.shape[0], x.shape[1] - k + 1, w.shape[2]))
    for b in range(x.shape[0]):
        for f in range(w.shape[2]):
            for c in range(x.shape[2]):
                out[b, :, f] += np.correlate(x[b, :, c].astype(np.float64), w[:, c, f].astype(np.float64), "valid")
    return out


def np_convolve_valid(x, w):
    """The true convolution (kernel flipped), as Keras 1 on Theano computed."""
    out = np.zeros((x.shape[0], x.shape[1] - w.shape[0] + 1, w.shape[2]))
    for b in range(x.shape[0]):
        for f in range(w.shape[2]):
            for c in range(x.shape[2]):
                out[b, :, f] += np.convolve(x[b, :, c].astype(np.float64), w[:, c, f].astype(np.float64), "valid")
    return out


def test_keras1_correlation_and_theano_convolution():
    W = rand((4, 1, 5, 3), 1)  # Keras 1 Convolution1D kernel (filter_length, 1, input_dim, nb_filter)
    b = rand((3,), 2)
    x = rand((2, 12, 5), 3)
    tf_style = Conv1D.from_keras1(W, b)
    np.testing.assert_allclose(tf_style(x), np_correlate_valid(x, W[:, 0]) + b, **TOL)
    theano = Conv1D.from_keras1(W, b, theano=True)
    np.testing.assert_allclose(theano(x), np_convolve_valid(x, W[:, 0]) + b, **TOL)
    assert not np.allclose(np_convolve_valid(x, W[:, 0]), np_correlate_valid(x, W[:, 0]))  # the flip matters here
