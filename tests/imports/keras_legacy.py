"""Keras 1.2 and 2.x model files written with h5py alone, for the importer's tests: :func:`write_keras1_h5`,
:func:`write_keras2_h5`, :func:`founding_model_h5`.

The layouts follow the sources that wrote such files:

- Keras 1.2.2 ``keras/models.py`` ``save_model``: root attributes ``keras_version`` and ``model_config`` (JSON
  ``{"class_name", "config"}``; a Sequential's config is the list of ``{"class_name", "config"}`` layer dicts, a
  functional ``Model``'s has ``layers`` with ``inbound_nodes`` ``[[["name", 0, 0]]]``), no ``backend``; group
  ``model_weights`` filled by ``keras/engine/topology.py`` ``save_weights_to_hdf5_group``: attribute
  ``layer_names``, one group per layer with attribute ``weight_names`` (``<layer>_W``, ``<layer>_b``; TensorFlow
  variables end in ``:0``) and one dataset per name. ``Convolution1D`` kernels are ``(filter_length, 1, input_dim,
  nb_filter)``; on Theano they hold the flipped kernel (Theano convolves).
- Keras 2.2.4 ``keras/engine/saving.py`` ``_serialize_model``: root ``keras_version``, ``backend``,
  ``model_config``; ``model_weights`` with ``layer_names``, ``backend``, ``keras_version``; weight names
  ``<layer>/kernel:0`` (nested groups); a Sequential config ``{"name", "layers"}`` (Keras 2.0-2.1: a bare list);
  functional ``inbound_nodes`` ``[[["name", 0, 0, {}]]]``. Theano's kernels are flipped there too
  (``_need_convert_kernel``).

A layer spec is ``{"class_name", "config", "inbound": [names]}`` (``inbound`` only for functional models), its
config in the file's Keras version's terms; the weights are given as a Keras 3 model holds them (``{layer name:
[kernel (k, in, F), bias]}``) and written in the file's layouts, so that the Keras 3 model is the reference.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from jaxconv import layouts

__all__ = ["write_keras1_h5", "write_keras2_h5", "founding_model_h5", "founding_weights", "keras3_founding_model",
           "FOUNDING"]

_CONV1 = ("Convolution1D", "AtrousConvolution1D")
_CONV2 = ("Conv1D", "Conv2D")


def _model_config(layers: list[dict], kind: str, *, version: int, output: str | None, as_list: bool) -> dict:
    if kind == "Sequential":
        entries = [{"class_name": s["class_name"], "config": s["config"]} for s in layers]
        return {"class_name": "Sequential", "config": entries if as_list else {"name": "sequential_1",
                                                                                "layers": entries}}
    ref = (lambda n: [n, 0, 0]) if version == 1 else (lambda n: [n, 0, 0, {}])
    entries = [{"name": s["config"]["name"], "class_name": s["class_name"], "config": s["config"],
                "inbound_nodes": [[ref(n) for n in s["inbound"]]] if s.get("inbound") else []} for s in layers]
    inputs = [s["config"]["name"] for s in layers if s["class_name"] == "InputLayer"]
    return {"class_name": "Model", "config": {"name": "model_1", "layers": entries,
                                              "input_layers": [[n, 0, 0] for n in inputs],
                                              "output_layers": [[output or entries[-1]["name"], 0, 0]]}}


def _write(path, model_config: dict, root_attrs: dict, group_attrs: dict, layers: list[tuple[str, list, list]]):
    """``layers``: ``(layer name, weight names, arrays)`` in order."""
    with h5py.File(path, "w") as f:
        for k, v in root_attrs.items():
            f.attrs[k] = v
        f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        g = f.create_group("model_weights")
        for k, v in group_attrs.items():
            g.attrs[k] = v
        g.attrs["layer_names"] = [name.encode("utf8") for name, _, _ in layers]
        for name, names, arrays in layers:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for n, a in zip(names, arrays):
                lg.create_dataset(n, data=np.asarray(a, np.float32))


def write_keras1_h5(path, layers: list[dict], weights: dict[str, list[np.ndarray]], *, backend: str = "tensorflow",
                    kind: str = "Sequential", output: str | None = None, keras_version: str = "1.2.2") -> None:
    """Write a Keras 1.2 ``model.save`` file.

    Args:
      layers: Keras 1 layer specs (module docstring); a Sequential lists no ``InputLayer`` (Keras 1 keeps it out of
        ``model.layers``), a functional ``Model`` lists it.
      weights: ``{layer name: arrays in Keras 3 layouts}``: conv kernels ``(k, in, F)`` become ``(k, 1, in, F)``
        (flipped for ``backend="theano"``), dense ``(in, units)`` and embeddings ``(V, D)`` stay.
      backend: ``"tensorflow"`` (weight names end in ``:0``) or ``"theano"``.
      kind: ``"Sequential"`` or ``"Model"`` (functional).
    """
    rows = []
    for s in layers:
        name, arrays = s["config"]["name"], list(weights.get(s["config"]["name"], []))
        if s["class_name"] in _CONV1 and arrays:
            arrays[0] = layouts.convert(arrays[0], "jaxconv", "keras1", spatial_dims=1, theano=backend == "theano")
        if s["class_name"] == "Convolution2D" and arrays and backend == "theano":
            arrays[0] = np.flip(arrays[0], axis=(0, 1))
        suffix = ":0" if backend == "tensorflow" else ""
        rows.append((name, [f"{name}_{w}{suffix}" for w in ("W", "b")[:len(arrays)]], arrays))
    config = _model_config(layers, kind, version=1, output=output, as_list=True)
    _write(path, config, {"keras_version": keras_version.encode("utf8")}, {}, rows)


def write_keras2_h5(path, layers: list[dict], weights: dict[str, list[np.ndarray]], *, backend: str = "tensorflow",
                    kind: str = "Sequential", output: str | None = None, keras_version: str = "2.2.4",
                    sequential_as_list: bool = False) -> None:
    """Write a Keras 2 ``model.save`` file (``sequential_as_list``: the Keras 2.0-2.1 Sequential config, a bare
    list). ``weights`` in Keras 3 layouts (the same as Keras 2's); conv kernels are flipped for ``"theano"``."""
    rows = []
    for s in layers:
        name, arrays = s["config"]["name"], list(weights.get(s["config"]["name"], []))
        if s["class_name"] in _CONV2 and arrays and backend == "theano":
            arrays[0] = np.flip(arrays[0], axis=tuple(range(arrays[0].ndim - 2)))
        labels = ["embeddings"] if s["class_name"] == "Embedding" else ["kernel", "bias"]
        rows.append((name, [f"{name}/{w}:0" for w in labels[:len(arrays)]], arrays))
    config = _model_config(layers, kind, version=2, output=output, as_list=sequential_as_list)
    attrs = {"keras_version": keras_version.encode("utf8"), "backend": backend.encode("utf8")}
    _write(path, config, attrs, attrs, rows)


#: The founding question's model: Keras 1 ``Embedding(500, 300, input_length=50) -> Convolution1D(nb_filter=111,
#: filter_length=5, border_mode='valid', activation='relu') -> GlobalMaxPooling1D -> Dense(2, activation='softmax')``.
FOUNDING = [
    {"class_name": "Embedding", "config": {"name": "embedding_1", "trainable": True, "input_dim": 500,
                                           "output_dim": 300, "input_length": 50, "mask_zero": False,
                                           "batch_input_shape": [None, 50], "input_dtype": "int32",
                                           "init": "uniform", "dropout": 0.0}},
    {"class_name": "Convolution1D", "config": {"name": "convolution1d_1", "trainable": True, "nb_filter": 111,
                                               "filter_length": 5, "init": "glorot_uniform", "activation": "relu",
                                               "border_mode": "valid", "subsample_length": 1, "bias": True,
                                               "input_dim": None, "input_length": None}},
    {"class_name": "GlobalMaxPooling1D", "config": {"name": "globalmaxpooling1d_1", "trainable": True}},
    {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "output_dim": 2, "init": "glorot_uniform",
                                       "activation": "softmax", "bias": True, "input_dim": None}},
]


def founding_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Random weights of :data:`FOUNDING` in Keras 3 layouts: ``embedding_1`` (500, 300), ``convolution1d_1``
    kernel (5, 300, 111) and bias (111,), ``dense_1`` (111, 2) and (2,)."""
    rng = np.random.default_rng(seed)

    def u(*shape, s=0.1):
        return rng.uniform(-s, s, shape).astype(np.float32)

    return {"embedding_1": [u(500, 300, s=0.5)], "convolution1d_1": [u(5, 300, 111), u(111)],
            "dense_1": [u(111, 2, s=0.5), u(2)]}


def founding_model_h5(path, backend: str = "tensorflow", seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Write the founding question's Keras 1.2.2 model (:data:`FOUNDING`) with random weights to ``path`` as Keras
    1.2.2 on ``backend`` saved it; return the weights in Keras 3 layouts (:func:`founding_weights`), which
    :func:`keras3_founding_model` turns into the Keras 3 reference."""
    weights = founding_weights(seed)
    write_keras1_h5(path, FOUNDING, weights, backend=backend)
    return weights


def keras3_founding_model(weights: dict[str, list[np.ndarray]]):
    """The Keras 3 equivalent of :data:`FOUNDING` with ``weights``: ids ``(B, 50)`` -> probabilities ``(B, 2)``."""
    import keras

    L = keras.layers
    model = keras.Sequential([keras.Input((50,), dtype="int32"), L.Embedding(500, 300, name="embedding_1"),
                              L.Conv1D(111, 5, activation="relu", name="convolution1d_1"),
                              L.GlobalMaxPooling1D(name="globalmaxpooling1d_1"),
                              L.Dense(2, activation="softmax", name="dense_1")])
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)
    return model
