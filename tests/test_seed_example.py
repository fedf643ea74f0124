"""The seed example end to end: a Keras 1 ``Convolution1D(nb_filter=111, filter_length=5, border_mode='valid',
activation='relu', subsample_length=1, input_dim=300)`` over 300-d word vectors, its (5, 1, 300, 111) kernel
converted to jaxconv, each output channel checked against a hand-written correlation of that filter's weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxconv import Conv1D, layouts
from jaxconv.compat.keras1 import Convolution1D

pytestmark = pytest.mark.slow  # the seed example script in a subprocess

B, L, C, F, K = 2, 20, 300, 111, 5
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def seed():
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((K, 1, C, F)) / np.sqrt(K * C)).astype(np.float32)  # Keras 1 layout
    b = (0.1 * rng.standard_normal(F)).astype(np.float32)
    x = rng.standard_normal((B, L, C)).astype(np.float32)
    return W, b, x


def hand_feature_map(x, w, bias):
    """out[b, t] = relu(bias + sum_{i, c} x[b, t + i, c] * w[i, c]) for one filter w of shape (width, in)."""
    k = w.shape[0]
    out = np.empty((x.shape[0], x.shape[1] - k + 1))
    for b in range(x.shape[0]):
        for t in range(x.shape[1] - k + 1):
            out[b, t] = bias + np.sum(x[b, t:t + k, :].astype(np.float64) * w)
    return np.maximum(out, 0)


def test_seed_shapes_and_values(seed):
    W, b, x = seed
    convs = [
        Conv1D.from_keras1(W, b, activation="relu"),
        Convolution1D(nb_filter=F, filter_length=K, border_mode="valid", activation="relu", subsample_length=1,
                      input_dim=C, weights=[W, b]),
    ]
    outs = []
    for conv in convs:
        assert conv.kernel.shape == (K, C, F) and conv.bias.shape == (F,)
        assert conv.output_shape(x.shape) == (B, L - 4, F)
        y = np.asarray(conv(x))
        assert y.shape == (B, L - 4, F)
        for j in (0, 7, 54, 110):
            fk = np.asarray(conv.filter_kernel(j))
            assert fk.shape == (K, C)
            np.testing.assert_array_equal(fk, W[:, 0, :, j])  # filter j's weights are the Keras 1 kernel's [:, 0, :, j]
            np.testing.assert_allclose(y[..., j], hand_feature_map(x, fk, b[j]), **TOL)
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert (outs[0] == 0).any() and (outs[0] > 0).any()  # relu is active on part of the map


def test_theano_flip_round_trip(seed):
    W, b, _ = seed
    conv = Conv1D.from_keras1(W, b, theano=True)
    np.testing.assert_array_equal(np.asarray(conv.kernel[...]), W[::-1, 0])  # width axis reversed
    back = layouts.convert(np.asarray(conv.kernel[...]), "jaxconv", "keras1", theano=True)
    assert back.shape == W.shape
    np.testing.assert_array_equal(back, W)
    via_torch = layouts.convert(layouts.convert(W, "keras1", "torch", theano=True), "torch", "keras1", theano=True)
    np.testing.assert_array_equal(via_torch, W)


def test_theano_kernel_computes_true_convolution(seed):
    W, b, x = seed
    theano = Convolution1D(nb_filter=F, filter_length=K, activation="relu", input_dim=C, weights=[W, b], theano=True)
    y = np.asarray(theano(x))
    for j in (3, 99):
        conv = np.zeros((B, L - K + 1))
        for bb in range(B):
            for c in range(C):
                conv[bb] += np.convolve(x[bb, :, c].astype(np.float64), W[:, 0, c, j].astype(np.float64), "valid")
        np.testing.assert_allclose(y[..., j], np.maximum(conv + b[j], 0), **TOL)
    # without the flip the same weights give a different (correlation) output
    assert not np.allclose(y, np.asarray(Conv1D.from_keras1(W, b, activation="relu")(x)), atol=1e-3)
