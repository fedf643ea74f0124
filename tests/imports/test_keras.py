"""The Keras importer: Keras 3 models (``.keras``, legacy ``.h5``, in memory) and Keras 1 / 2 files (written by
:mod:`keras_legacy`) become layer graphs whose :class:`~jaxconv.models.imported.ImportedModel` returns what Keras
returns (float32, 1e-5) on random ids with zeros (pre-padding and inside); masks as Keras 3 applies them; one-line
errors for files that are not models and layers that are not supported.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

from flax import nnx

from jaxconv.imports.keras import read_keras_file, read_keras_model
from jaxconv.imports.source import UnsupportedModel
from jaxconv.models.imported import ImportedModel, infer_shapes
from keras_legacy import FOUNDING, founding_model_h5, keras3_founding_model, write_keras1_h5, write_keras2_h5

pytestmark = [pytest.mark.slow,  # real Keras 3 models built, saved and run: ~90 s
              pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning")]
TOL = dict(rtol=1e-5, atol=1e-5)
Z = dict(kernel_initializer="zeros", bias_initializer="zeros")          # no random initialisers to compile


@pytest.fixture(scope="module")
def K():
    return pytest.importorskip("keras")


def ids_batch(batch: int, length: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Token ids ``(batch, length)`` int32: each row pre-padded with 0..length-2 zeros, and a zero inside some rows
    (never a row of zeros only)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (batch, length))
    for row, pad in enumerate(rng.integers(0, length - 1, batch)):
        ids[row, :pad] = 0
    ids[::3, -1] = 0
    return ids.astype(np.int32)


def randomize(model, seed: int = 0):
    """Every weight of ``model`` uniform in (-0.5, 0.5), biases and embedding row 0 included."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def imported(src) -> ImportedModel:
    """The source's graph as an ImportedModel with its weights."""
    g = src.graph
    vocab = next(n["vocab_size"] for n in g["nodes"] if n["op"] == "embedding")
    out = infer_shapes(g, src.length or 64)[g["output"]]
    classes = 2 if out == (1,) else out[-1]
    model = ImportedModel(vocab, classes, graph=json.dumps(g), max_length=src.length or 0, rngs=nnx.Rngs(0))
    model.load_params(src.params)
    return model


def check(src, reference, ids):
    """The imported model's output equals ``reference(ids)`` to 1e-5."""
    got = np.asarray(imported(src).source_output(ids))
    np.testing.assert_allclose(got, np.asarray(reference(ids)), **TOL)


def sources(model, tmp_path, K):
    """The model read three ways: from ``.keras``, from legacy ``.h5``, in memory."""
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    return {"keras": read_keras_file(tmp_path / "m.keras"), "h5": read_keras_file(tmp_path / "m.h5"),
            "memory": read_keras_model(model)}


def node(src, name) -> dict:
    return next(n for n in src.graph["nodes"] if n["name"] == name)


# ---------------------------------------------------------------------------------------------------- Keras 3


def test_sequential_kim(K, tmp_path):
    L = K.layers
    model = randomize(K.Sequential([K.Input((12,), dtype="int32"), L.Embedding(30, 8, name="emb"),
                                    L.Conv1D(6, 3, activation="relu", name="conv", **Z),
                                    L.GlobalMaxPooling1D(name="pool"), L.Dense(3, activation="softmax", **Z)]))
    ids = ids_batch(5, 12, 30)
    for how, src in sources(model, tmp_path, K).items():
        check(src, model, ids)
        assert src.framework == f"keras {K.__version__}" and src.padding == "pre" and src.length == 12, how
        assert src.graph["input"] == "ids" and node(src, "emb")["inputs"] == ["ids"]
        assert src.layers[2] == ("conv", "Conv1D", "conv1d (3, 8, 6)")
        assert src.params["conv"]["kernel"].shape == (3, 8, 6) and src.params["emb"]["table"].shape == (30, 8)
    assert src.description == f"keras.Model {model.name!r}"
    np.testing.assert_allclose(src.reference(ids), model(ids), **TOL)
    np.testing.assert_allclose(read_keras_file(tmp_path / "m.h5").reference(ids), model(ids), **TOL)


def test_functional_multiwidth_kim(K, tmp_path):
    L = K.layers
    inp = K.Input((15,), dtype="int32", name="tokens")
    x = L.Embedding(40, 10, name="emb")(inp)
    pooled = [L.GlobalMaxPooling1D(name=f"pool{k}")(L.Conv1D(4, k, activation="relu", name=f"conv{k}", **Z)(x))
              for k in (3, 4, 5)]
    y = L.Dense(2, activation="softmax", name="out", **Z)(L.Dropout(0.5, name="drop")(L.Concatenate(name="cat")(pooled)))
    model = randomize(K.Model(inp, y), seed=1)
    ids = ids_batch(6, 15, 40, seed=1)
    for src in sources(model, tmp_path, K).values():
        check(src, model, ids)
        assert node(src, "drop")["op"] == "identity" and node(src, "cat")["inputs"] == ["pool3", "pool4", "pool5"]
        assert src.layers[0] == ("tokens", "InputLayer", "input: token ids (B, L)") and src.length == 15
    reference = read_keras_file(tmp_path / "m.keras").reference          # Keras loads the file itself
    np.testing.assert_allclose(reference(ids), model(ids), **TOL)


def masked_model(K, body, length=10):
    """Input -> Embedding(mask_zero) -> body(x) -> Dense(2): body returns the pooled (B, C) tensor."""
    L = K.layers
    inp = K.Input((length,), dtype="int32")
    x = L.Embedding(20, 6, mask_zero=True, name="emb")(inp)
    return randomize(K.Model(inp, L.Dense(2, name="out", **Z)(body(L, x))), seed=2)


MASK_CASES = {  # body, {global pool node: masked?} as Keras 3.15 applies the mask (measured)
    "dense-dropout-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(
        L.Dropout(0.2)(L.Dense(5, activation="relu", **Z)(x))), True),
    "activation-avg-keepdims": (lambda L, x: L.Flatten()(L.GlobalAveragePooling1D(keepdims=True, name="gp")(
        L.Activation("tanh")(L.SpatialDropout1D(0.1)(x)))), True),
    "conv-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.Conv1D(4, 3, padding="same", **Z)(x)), False),
    "max": (lambda L, x: L.GlobalMaxPooling1D(name="gp")(x), False),
    "pool-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.MaxPooling1D(1)(x)), False),
    "concat-masked-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.Concatenate()([x, L.Dense(3, **Z)(x)])),
                          True),
    "concat-mixed-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(
        L.Concatenate()([x, L.Conv1D(3, 3, padding="same", **Z)(x)])), False),
    "reshape-same-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.Reshape((10, 6))(x)), True),
    "reshape-other-avg": (lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.Reshape((20, 3))(x)), False),
}


@pytest.mark.parametrize("case", list(MASK_CASES))
def test_mask_zero(K, case, tmp_path):
    body, masked = MASK_CASES[case]
    model = masked_model(K, body)
    srcs = [read_keras_model(model)]
    if masked:                             # Keras 3 saves the mask it traced as operations feeding `mask=`
        model.save(tmp_path / "m.keras")
        srcs.append(read_keras_file(tmp_path / "m.keras"))
    for src in srcs:
        assert node(src, "emb")["mask_zero"] is True and node(src, "gp")["masked"] is masked
        assert [n["op"] for n in src.graph["nodes"]].count("concatenate") == ("concat" in case)
        check(src, model, ids_batch(7, 10, 20, seed=3))


def test_mask_through_time_concatenation_is_refused(K):
    model = masked_model(K, lambda L, x: L.GlobalAveragePooling1D(name="gp")(L.Concatenate(axis=1)([x, x])))
    with pytest.raises(UnsupportedModel, match=r"^keras.Model '.*': layer 'gp' \(GlobalAveragePooling1D\): it averages "
                                               r"under a mask that is not the token ids'"):
        read_keras_model(model)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_settings(K, padding):
    """Kernel sizes 2/3, stride 2, dilation 2, groups 2, no bias, activations: branches of one model."""
    L = K.layers
    inp = K.Input((13,), dtype="int32")
    x = L.Embedding(25, 8, name="emb")(inp)
    branches, acts = [], ["relu", "tanh", "linear", "elu", "gelu", "sigmoid"]
    combos = [(k, s, d, g, b) for k in (2, 3) for s, d in ((1, 1), (2, 1), (1, 2)) for g, b in ((1, True), (2, False))]
    for i, (k, s, d, g, b) in enumerate(combos):
        conv = L.Conv1D(4, k, strides=s, dilation_rate=d, groups=g, use_bias=b, padding=padding,
                        activation=acts[i % len(acts)], name=f"c{i}", **Z)
        branches.append(L.GlobalMaxPooling1D()(conv(x)))
    model = randomize(K.Model(inp, L.Dense(3, **Z)(L.Concatenate()(branches))), seed=4)
    src = read_keras_model(model)
    assert [node(src, f"c{i}")["padding"] for i in range(len(combos))] == [padding] * len(combos)
    assert node(src, "c11")["groups"] == 2 and "bias" not in src.params["c11"] and node(src, "c2")["stride"] == 2
    check(src, model, ids_batch(4, 13, 25, seed=4))


def test_pooling_flatten_fixed_length(K, tmp_path):
    L = K.layers
    inp = K.Input((16,), dtype="int32")
    x = L.Embedding(30, 6, name="emb")(inp)
    a = L.MaxPooling1D(2, name="mp")(L.Conv1D(5, 3, activation="relu", name="conv", **Z)(x))         # (7, 5)
    b = L.MaxPooling1D(3, strides=2, padding="same", name="mps")(x)                                   # (8, 6)
    c = L.AveragePooling1D(3, strides=1, padding="same", name="aps")(x)                               # (16, 6)
    d = L.AveragePooling1D(2, name="ap")(x)                                                           # (8, 6)
    flat = L.Concatenate()([L.Flatten(name="flat")(a), L.Flatten()(b), L.Flatten()(c), L.Flatten()(d)])
    model = randomize(K.Model(inp, L.Dense(4, activation="softmax", **Z)(flat)), seed=5)
    for src in sources(model, tmp_path, K).values():
        check(src, model, ids_batch(5, 16, 30, seed=5))
        assert node(src, "aps")["count_include_pad"] is False and node(src, "mp")["stride"] == 2
        assert src.length == 16


def test_conv2d_over_reshape_and_sigmoid(K, tmp_path):
    L = K.layers
    inp = K.Input((10,), dtype="int32")
    x = L.Reshape((10, 6, 1), name="img")(L.Embedding(20, 6, name="emb")(inp))
    y = L.Conv2D(4, (3, 6), activation="relu", name="c2", **Z)(x)                                     # (8, 1, 4)
    z = L.Conv2D(2, (3, 3), strides=(2, 1), padding="same", name="c2s", **Z)(x)                       # (5, 6, 2)
    h = L.Concatenate()([L.GlobalMaxPooling1D()(L.Reshape((8, 4))(y)), L.GlobalAveragePooling1D()(L.Reshape((5, 12))(z))])
    model = randomize(K.Model(inp, L.Dense(1, activation="sigmoid", name="out", **Z)(h)), seed=6)
    ids = ids_batch(5, 10, 20, seed=6)
    for src in sources(model, tmp_path, K).values():
        check(src, model, ids)
        assert node(src, "c2")["kernel_size"] == [3, 6] and node(src, "c2s")["stride"] == [2, 1]
    logits = np.asarray(imported(src)(ids))                                                          # [0, z]
    np.testing.assert_allclose(1 / (1 + np.exp(logits[:, 0] - logits[:, 1])), model(ids)[:, 0], **TOL)


def test_activations(K, tmp_path):
    L = K.layers
    names = ["relu", "tanh", "sigmoid", "elu", "gelu", "linear", "selu", "softplus", "silu", "swish", "relu6",
             "softmax"]
    layers = [K.Input((6,), dtype="int32"), L.Embedding(12, 5, name="emb")]
    for i, a in enumerate(names):
        layers += [L.Dense(5, activation=a, name=f"d{i}", **Z), L.Activation(names[-1 - i], name=f"a{i}")]
    model = randomize(K.Sequential(layers + [L.GlobalAveragePooling1D(), L.Dense(2, **Z)]), seed=7)
    for src in sources(model, tmp_path, K).values():
        check(src, model, ids_batch(4, 6, 12, seed=7))
        assert node(src, "d9")["activation"] == "silu" and node(src, "a0") == {
            "name": "a0", "op": "activation", "inputs": ["d0"], "fn": "softmax", "axis": -1}


def test_unsupported_layer_is_one_line(K, tmp_path):
    L = K.layers
    model = K.Sequential([K.Input((8,), dtype="int32"), L.Embedding(10, 4), L.LSTM(3, name="lstm"), L.Dense(2)])
    model.save(tmp_path / "m.keras")
    for read, where in ((lambda: read_keras_model(model), f"keras.Model {model.name!r}"),
                        (lambda: read_keras_file(tmp_path / "m.keras"), str(tmp_path / "m.keras"))):
        with pytest.raises(UnsupportedModel) as e:
            read()
        assert "\n" not in str(e.value)
        assert str(e.value).startswith(f"{where}: layer 'lstm' (LSTM): not supported; jaxconv imports InputLayer, "
                                       "Embedding, Conv1D, Conv2D, Dense, Activation, MaxPooling1D")


def test_unbuilt_and_unserializable_models_are_refused(K):
    L = K.layers
    with pytest.raises(UnsupportedModel, match=r"keras.Model 'lazy' \(Sequential\) is not built, so it has no weights"):
        read_keras_model(K.Sequential([L.Embedding(10, 4), L.GlobalMaxPooling1D()], name="lazy"))
    gelu = functools.partial(K.activations.gelu, approximate=True)
    model = K.Sequential([K.Input((6,), dtype="int32"), L.Embedding(10, 4), L.Dense(3, activation=gelu)], name="g")
    with pytest.raises(UnsupportedModel, match=r"keras.Model 'g' \(Sequential\): get_config\(\) fails \(TypeError: "
                                               r"Cannot serialize object functools.partial"):
        read_keras_model(model)


def test_non_id_input_and_two_outputs_are_refused(K):
    L = K.layers
    model = K.Sequential([K.Input((8, 3)), L.Conv1D(2, 3), L.GlobalMaxPooling1D()])
    with pytest.raises(UnsupportedModel, match=r"the model input has shape \(None, 8, 3\); jaxconv imports models "
                                               r"of token ids"):
        read_keras_model(model)
    inp = K.Input((8,), dtype="int32")
    x = L.GlobalMaxPooling1D()(L.Embedding(10, 4)(inp))
    with pytest.raises(UnsupportedModel, match=r"1 inputs and 2 outputs"):
        read_keras_model(K.Model(inp, [L.Dense(2)(x), L.Dense(3)(x)]))


# ---------------------------------------------------------------------------------------------------- Keras 1 / 2


@pytest.mark.parametrize("backend", ["tensorflow", "theano"])
def test_founding_model_keras1(K, tmp_path, backend):
    path = tmp_path / "founding.h5"
    weights = founding_model_h5(path, backend=backend, seed=0)
    src = read_keras_file(path)
    assert src.framework == f"keras 1.2.2 ({backend})" and src.length == 50 and src.reference is None
    assert [row[1:] for row in src.layers] == [("Embedding", "embedding (500, 300)"),
                                               ("Convolution1D", "conv1d (5, 300, 111)"),
                                               ("GlobalMaxPooling1D", "global_max_pool"), ("Dense", "dense (111, 2)")]
    np.testing.assert_array_equal(src.params["convolution1d_1"]["kernel"], weights["convolution1d_1"][0])
    check(src, keras3_founding_model(weights), ids_batch(8, 50, 500))


def test_keras1_functional_merge_and_theano_same(K, tmp_path):
    """Keras 1 functional Kim CNN: merge([...], mode='concat'); on Theano, border_mode='same' of an even kernel is
    Theano's 'half' then a crop: the Keras 3 reference pads explicitly (2, 1) before a 'valid' conv."""
    L = K.layers
    inp = K.Input((11,), dtype="int32", name="input_1")
    x = L.Embedding(30, 6, name="embedding_1")(inp)
    c1 = L.Conv1D(3, 4, activation="relu", name="conv_a", **Z)(L.ZeroPadding1D((2, 1))(x))
    c2 = L.Conv1D(3, 3, strides=2, activation="tanh", name="conv_b", **Z)(L.ZeroPadding1D((1, 1))(x))
    merged = L.Concatenate()([L.GlobalMaxPooling1D()(c1), L.GlobalMaxPooling1D()(c2)])
    model = randomize(K.Model(inp, L.Dense(2, activation="softmax", name="dense_1", **Z)(merged)), seed=8)
    weights = {layer.name: layer.get_weights() for layer in model.layers}

    def conv(name, k, stride, act):
        return {"class_name": "Convolution1D", "inbound": ["embedding_1"], "config": {
            "name": name, "nb_filter": 3, "filter_length": k, "border_mode": "same", "subsample_length": stride,
            "activation": act, "bias": True}}

    layers = [{"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 11],
                                                      "input_dtype": "int32", "sparse": False}},
              {"class_name": "Embedding", "inbound": ["input_1"], "config": {
                  "name": "embedding_1", "input_dim": 30, "output_dim": 6, "input_length": 11, "mask_zero": False}},
              conv("conv_a", 4, 1, "relu"), conv("conv_b", 3, 2, "tanh"),
              {"class_name": "GlobalMaxPooling1D", "inbound": ["conv_a"], "config": {"name": "pool_a"}},
              {"class_name": "GlobalMaxPooling1D", "inbound": ["conv_b"], "config": {"name": "pool_b"}},
              {"class_name": "Merge", "inbound": ["pool_a", "pool_b"], "config": {
                  "name": "merge_1", "mode": "concat", "concat_axis": -1, "mode_type": "raw"}},
              {"class_name": "Dropout", "inbound": ["merge_1"], "config": {"name": "dropout_1", "p": 0.5}},
              {"class_name": "Dense", "inbound": ["dropout_1"], "config": {
                  "name": "dense_1", "output_dim": 2, "activation": "softmax", "bias": True}}]
    write_keras1_h5(tmp_path / "k1.h5", layers, weights, backend="theano", kind="Model")
    src = read_keras_file(tmp_path / "k1.h5")
    assert src.framework == "keras 1.2.2 (theano)" and node(src, "conv_a")["padding"] == [2, 1]
    assert node(src, "merge_1") == {"name": "merge_1", "op": "concatenate", "inputs": ["pool_a", "pool_b"], "axis": -1}
    check(src, model, ids_batch(6, 11, 30, seed=8))
    assert read_keras_file(tmp_path / "k1.h5", backend="tensorflow").framework == "keras 1.2.2 (tensorflow)"


@pytest.mark.parametrize("backend", ["tensorflow", "theano"])
@pytest.mark.parametrize("as_list", [False, True])
def test_keras2_sequential(K, tmp_path, backend, as_list):
    L = K.layers
    model = randomize(K.Sequential([
        K.Input((14,), dtype="int32"), L.Embedding(30, 6, mask_zero=True, name="embedding_1"),
        L.Dense(5, activation="relu", name="dense_1", **Z), L.GlobalAveragePooling1D(name="gap"),
        L.Dense(2, activation="softmax", name="dense_2", **Z)]), seed=9)
    conv_model = randomize(K.Sequential([
        K.Input((14,), dtype="int32"), L.Embedding(30, 6, name="embedding_1"),
        L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu", name="conv1d_1", **Z),
        L.MaxPooling1D(2, name="max_pooling1d_1"), L.Flatten(name="flatten_1"),
        L.Dense(1, activation="sigmoid", name="dense_2", **Z)]), seed=10)
    emb = {"class_name": "Embedding", "config": {"name": "embedding_1", "input_dim": 30, "output_dim": 6,
                                                 "batch_input_shape": [None, 14], "dtype": "float32",
                                                 "input_length": 14}}

    def dense2(units, act):
        return {"class_name": "Dense", "config": {"name": "dense_2", "units": units, "activation": act,
                                                  "use_bias": True}}

    masked = [{**emb, "config": {**emb["config"], "mask_zero": True}},
              {"class_name": "Dense", "config": {"name": "dense_1", "units": 5, "activation": "relu", "use_bias": True}},
              {"class_name": "GlobalAveragePooling1D", "config": {"name": "gap", "data_format": "channels_last"}},
              dense2(2, "softmax")]
    convs = [emb, {"class_name": "Conv1D", "config": {
        "name": "conv1d_1", "filters": 4, "kernel_size": [3], "strides": [1], "padding": "causal",
        "dilation_rate": [2], "activation": "relu", "use_bias": True, "data_format": "channels_last"}},
             {"class_name": "MaxPooling1D", "config": {"name": "max_pooling1d_1", "pool_size": [2], "strides": [2],
                                                       "padding": "valid", "data_format": "channels_last"}},
             {"class_name": "Flatten", "config": {"name": "flatten_1", "data_format": "channels_last"}},
             dense2(1, "sigmoid")]
    for keras3, specs in ((model, masked), (conv_model, convs)):
        weights = {layer.name: layer.get_weights() for layer in keras3.layers}
        write_keras2_h5(tmp_path / "k2.h5", specs, weights, backend=backend, sequential_as_list=as_list)
        src = read_keras_file(tmp_path / "k2.h5")
        assert src.framework == f"keras 2.2.4 ({backend})" and src.length == 14 and src.reference is None
        check(src, keras3, ids_batch(6, 14, 30, seed=11))
    assert node(read_keras_file(tmp_path / "k2.h5"), "conv1d_1")["padding"] == "causal"


def test_keras2_functional(K, tmp_path):
    L = K.layers
    inp = K.Input((9,), dtype="int32", name="input_1")
    x = L.Embedding(15, 4, name="embedding_1")(inp)
    y = L.Concatenate(name="concatenate_1")([L.GlobalMaxPooling1D(name="gmp")(x),
                                             L.GlobalAveragePooling1D(name="gap")(x)])
    model = randomize(K.Model(inp, L.Dense(3, activation="softmax", name="dense_1", **Z)(y)), seed=12)
    specs = [{"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 9],
                                                     "dtype": "int32", "sparse": False}},
             {"class_name": "Embedding", "inbound": ["input_1"], "config": {"name": "embedding_1", "input_dim": 15,
                                                                            "output_dim": 4}},
             {"class_name": "GlobalMaxPooling1D", "inbound": ["embedding_1"], "config": {"name": "gmp"}},
             {"class_name": "GlobalAveragePooling1D", "inbound": ["embedding_1"], "config": {"name": "gap"}},
             {"class_name": "Concatenate", "inbound": ["gmp", "gap"], "config": {"name": "concatenate_1", "axis": -1}},
             {"class_name": "Dense", "inbound": ["concatenate_1"], "config": {
                 "name": "dense_1", "units": 3, "activation": "softmax", "use_bias": True}}]
    write_keras2_h5(tmp_path / "f.h5", specs, {layer.name: layer.get_weights() for layer in model.layers}, kind="Model")
    src = read_keras_file(tmp_path / "f.h5")
    check(src, model, ids_batch(5, 9, 15, seed=12))
    assert src.length == 9 and node(src, "gap")["masked"] is False


def test_keras1_before_1_2_conv_layout(K, tmp_path):
    """Keras <= 1.1 wrote no keras_version and stored Convolution1D kernels as (nb_filter, input_dim, k, 1)."""
    import h5py

    path = tmp_path / "old.h5"
    weights = founding_model_h5(path, backend="tensorflow", seed=1)
    with h5py.File(path, "a") as f:
        del f.attrs["keras_version"]
        group = f["model_weights/convolution1d_1"]
        kernel = group["convolution1d_1_W:0"][()]
        del group["convolution1d_1_W:0"]
        group["convolution1d_1_W:0"] = kernel.transpose(3, 2, 0, 1)                  # (111, 300, 5, 1)
    src = read_keras_file(path)
    assert src.framework == "keras 1 (tensorflow)"
    check(src, keras3_founding_model(weights), ids_batch(4, 50, 500, seed=1))


def test_theano_same_pooling_is_refused(tmp_path):
    specs = [{"class_name": "Embedding", "config": {"name": "e", "input_dim": 9, "output_dim": 3}},
             {"class_name": "MaxPooling1D", "config": {"name": "mp", "pool_size": [2], "strides": [2], "padding": "same"}}]
    write_keras2_h5(tmp_path / "th.h5", specs, {"e": [np.zeros((9, 3), np.float32)]}, backend="theano")
    with pytest.raises(UnsupportedModel, match=r"th\.h5: layer 'mp' \(MaxPooling1D\): padding='same' on the Theano"):
        read_keras_file(tmp_path / "th.h5")


def test_reading_files_does_not_import_keras(tmp_path):
    path = tmp_path / "founding.h5"
    founding_model_h5(path, backend="theano")
    code = ("import sys; from jaxconv.imports.keras import read_keras_file; s = read_keras_file(sys.argv[1]); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules); "
            "print(s.framework)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "keras 1.2.2 (theano)"


# ---------------------------------------------------------------------------------------------------- bad files


def test_files_that_are_not_models(tmp_path):
    import h5py

    text = tmp_path / "notes.h5"
    text.write_text("not a model\n")
    with pytest.raises(UnsupportedModel, match=r"notes\.h5: neither a zip archive nor an HDF5 file \(it starts with "
                                               r"b'not a mo'\); expected a Keras model file written by model\.save"):
        read_keras_file(text)
    weights_only = tmp_path / "w.h5"
    with h5py.File(weights_only, "w") as f:
        f.attrs["layer_names"] = [b"dense_1"]
        f.create_group("dense_1").attrs["weight_names"] = []
    with pytest.raises(UnsupportedModel, match=r"w\.h5: HDF5 file without a model_config attribute \(weights only, "
                                               r"as model\.save_weights\(\) writes them\)"):
        read_keras_file(weights_only)
    archive = tmp_path / "a.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedModel, match=r"a\.keras: a zip archive without config\.json"):
        read_keras_file(archive)
    with pytest.raises(FileNotFoundError, match=r"missing\.keras: no such file"):
        read_keras_file(tmp_path / "missing.keras")


def test_damaged_files(tmp_path):
    good = tmp_path / "good.h5"
    founding_model_h5(good)
    data = good.read_bytes()
    for name, cut in (("cut.h5", data[: len(data) // 3]), ("zip.keras", b"PK\x03\x04" + b"\0" * 50)):
        bad = tmp_path / name
        bad.write_bytes(cut)
        with pytest.raises(UnsupportedModel) as e:
            read_keras_file(bad)
        message = str(e.value)
        assert "\n" not in message and message.startswith(f"{bad}: damaged or not a Keras model file (")
        assert e.value.__cause__ is None and e.value.__suppress_context__
    broken = tmp_path / "config.h5"
    write_keras1_h5(broken, FOUNDING[:1], {"embedding_1": [np.zeros((500, 300), np.float32)]})
    import h5py

    with h5py.File(broken, "a") as f:
        f.attrs["model_config"] = b"{not json"
    with pytest.raises(UnsupportedModel, match=r"config\.h5: damaged or not a Keras model file \(JSONDecodeError: "):
        read_keras_file(broken)
