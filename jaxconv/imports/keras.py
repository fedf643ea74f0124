"""Keras models -> :class:`~jaxconv.imports.source.SourceModel`: :func:`read_keras_file`, :func:`read_keras_model`.

>>> src = read_keras_file("model.h5")                   # doctest: +SKIP
>>> src.framework, src.length, src.layers[2]            # doctest: +SKIP
('keras 1.2.2 (theano)', 50, ('convolution1d_1', 'Convolution1D', 'conv1d (5, 300, 111)'))

Files are read with h5py, json and zipfile alone (:mod:`jaxconv.imports.keras_files`); Keras is imported only by a
Keras 3 file's ``reference``, when it is installed. Files and in-memory models go the same way: the model config
(``{"class_name", "config"}``) and ``{layer name: weights}`` become layers in Keras 2/3 terms (Keras 1's
``Convolution1D(nb_filter, filter_length, border_mode, subsample_length)``, ``Dense(output_dim)``,
``MaxPooling1D(pool_length, stride)``, ``Dropout(p)``, ``Merge(mode='concat')`` renamed here), which
:class:`~jaxconv.imports.keras_layers.KerasGraph` turns into the layer graph.

Topology: a Sequential config is the layer list (Keras 1 and Keras 2.0-2.1: a bare list; later
``{"name", "layers"}``); a functional one (``"Model"``, Keras 3 ``"Functional"``) names each layer's inputs in
``inbound_nodes``: Keras 1 ``[[["name", 0, 0]]]``, Keras 2 ``[[["name", 0, 0, {}]]]``, Keras 3
``[{"args": [<keras tensor with "keras_history": ["name", 0, 0]>, ...], "kwargs": {}}]``. The model input is the
graph's ``"ids"``; every other Keras layer is one node of the same name (``Dropout`` an identity).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from jaxconv import layouts
from jaxconv.imports.keras_files import layer_entries, read_file
from jaxconv.imports.keras_layers import KerasGraph
from jaxconv.imports.source import SourceModel, UnsupportedModel

__all__ = ["read_keras_file", "read_keras_model"]


def read_keras_file(path: str | os.PathLike, *, backend: str | None = None) -> SourceModel:
    """Read a model saved by Keras: ``.keras`` (Keras 3) or HDF5 ``.h5`` / ``.hdf5`` (Keras 1.2, 2.x, and Keras 3's
    legacy format), without importing Keras.

    Args:
      path: the file.
      backend: for a Keras 1 file, the backend it was trained with (``"theano"``: flipped kernels, or
        ``"tensorflow"``) when its weight names should not decide (Keras 1 records no backend; TensorFlow weight
        names end in ``:0``, Theano ones do not).

    Returns:
      A :class:`SourceModel`: the layer graph, weights ``{node: {param: float32 array}}`` in jaxconv layouts
      (conv kernels ``(k, in/groups, F)``, dense ``(in, units)``, embedding tables ``(V, D)``), framework
      ``"keras 1.2.2 (theano)"`` / ``"keras 2.2.4 (tensorflow)"`` / ``"keras 3.15.1"``, ``padding="pre"``, the fixed
      input length or None, and for Keras 3 files a ``reference`` ``ids (B, L) -> output (B, K)`` that loads the
      file with Keras (when Keras is installed; None otherwise and for Keras 1/2 files).

    Raises:
      FileNotFoundError: no such file.
      UnsupportedModel: not a Keras model file, a damaged one, or an unsupported layer (one line naming it).
    """
    path = os.fspath(path)
    f = read_file(path, backend=backend)
    major = f.major
    framework = f"keras {f.keras_version}" + (f" ({f.backend})" if major < 3 and f.backend else "")
    reference = _file_reference(path) if major >= 3 and importlib.util.find_spec("keras") else None
    return _source(f.model_config, f.weights, major=major, theano=f.backend == "theano", framework=framework,
                   description=path, reference=reference)


def read_keras_model(model: Any) -> SourceModel:
    """Read an in-memory ``keras.Model`` (Sequential or functional, Keras 3) the way :func:`read_keras_file` reads
    a file: its ``get_config()`` and each layer's ``get_weights()``.

    Returns:
      A :class:`SourceModel` whose ``reference`` runs the model itself: ``ids (B, L) int -> output (B, K)``.

    Raises:
      UnsupportedModel: a subclassed model, several inputs or outputs, or an unsupported layer (one line).
    """
    import keras

    kind = "Sequential" if isinstance(model, keras.Sequential) else type(model).__name__
    where = f"keras.Model {model.name!r} ({type(model).__name__})"
    if not model.built:
        raise UnsupportedModel(f"{where} is not built, so it has no weights yet; call it on ids or "
                               f"model.build((None, length)) first.")
    try:
        kconf = model.get_config()
    except (NotImplementedError, TypeError, ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise UnsupportedModel(f"{where}: get_config() fails ({type(e).__name__}: {first}); jaxconv reads the "
                               f"config of a Sequential or functional model.") from None
    if not isinstance(kconf, dict) or "layers" not in kconf:
        raise UnsupportedModel(f"{where} has no layer config (a subclassed model); expected a Sequential or "
                               f"functional model.")
    weights = {layer.name: [np.asarray(w, np.float32) for w in layer.get_weights()] for layer in model.layers}

    def reference(ids):
        return np.asarray(model(np.asarray(ids), training=False))

    return _source({"class_name": kind, "config": kconf}, weights, major=3, theano=False,
                   framework=f"keras {keras.__version__}", description=f"keras.Model {model.name!r}",
                   reference=reference)


def _file_reference(path: str):
    """``ids -> output`` of the file loaded by Keras 3 (imported, and the file loaded, on the first call)."""
    cache = {}

    def reference(ids):
        if "model" not in cache:
            os.environ.setdefault("KERAS_BACKEND", "jax")
            import keras

            cache["model"] = keras.saving.load_model(path, compile=False)
        return np.asarray(cache["model"](np.asarray(ids), training=False))

    return reference


# ---------------------------------------------------------------------------------------------- topology


def _source(model_config: dict, weights: dict, *, major: int, theano: bool, framework: str, description: str,
            reference) -> SourceModel:
    try:
        layers, output, length = _topology(model_config)
        builder = KerasGraph(major, theano=theano, length=length)
        for name, source_cls, kconf, inputs in layers:
            cls, kconf, arrays = _normalize(name, source_cls, kconf, weights.get(name, []), major)
            builder.add(name, cls, source_cls, kconf, inputs, arrays)
    except UnsupportedModel as e:
        raise UnsupportedModel(f"{description}: {e}") from None
    output = builder.alias.get(output, output)
    if output == "ids":
        raise UnsupportedModel(f"{description}: the model returns its input; expected layers after it.")
    graph = {"input": "ids", "output": output, "nodes": builder.nodes}
    return SourceModel(graph=graph, params=builder.params, framework=framework, description=description,
                       layers=builder.rows, length=length, padding="pre", reference=reference)


def _topology(model_config: dict) -> tuple[list[tuple[str, str, dict, list[str]]], str, int | None]:
    """``([(name, class, config, input names)], output name, fixed input length or None)``, inputs first."""
    kind = model_config.get("class_name")
    entries = layer_entries(model_config)
    if not entries:
        raise UnsupportedModel(f"the {kind} model has no layers.")
    kconf = model_config.get("config")
    if kind == "Sequential":
        layers, prev = [], "ids"
        for e in entries:
            c = e.get("config") or {}
            name = c.get("name") or e.get("name")
            layers.append((name, e["class_name"], c, [] if e["class_name"] == "InputLayer" else [prev]))
            prev = name
        first = entries[0].get("config") or {}
        shape = first.get("batch_shape") or first.get("batch_input_shape") or \
            (kconf.get("build_input_shape") if isinstance(kconf, dict) else None)
        return layers, prev, _length(shape, layers)
    if kind not in ("Model", "Functional"):
        raise UnsupportedModel(f"a model of class {kind!r}; expected a Sequential or functional Keras model.")
    ins, outs = _refs(kconf.get("input_layers")), _refs(kconf.get("output_layers"))
    if len(ins) != 1 or len(outs) != 1:
        raise UnsupportedModel(f"the functional model has {len(ins)} inputs and {len(outs)} outputs "
                               f"({[r[0] for r in ins]} -> {[r[0] for r in outs]}); jaxconv imports one input of "
                               f"token ids and one output.")
    layers = []
    for e in entries:
        name = e.get("name") or (e.get("config") or {}).get("name")
        nodes = e.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise UnsupportedModel(f"layer {name!r} ({e['class_name']}) is called {len(nodes)} times in the "
                                   f"model (a shared layer); not supported.")
        refs = _inbound(name, e["class_name"], nodes[0]) if nodes else []
        layers.append((name, e["class_name"], e.get("config") or {}, refs))
    layers = _sorted(_ancestors(layers, outs[0][0]))
    input_entry = next((c for n, cls, c, _ in layers if n == ins[0][0] and cls == "InputLayer"), {})
    shape = input_entry.get("batch_shape") or input_entry.get("batch_input_shape")
    return layers, outs[0][0], _length(shape, layers)


def _length(shape, layers) -> int | None:
    """The input length a model fixes: its input's ``(None, L)``, else an Embedding's ``input_length``."""
    if shape is not None and len(shape) >= 2 and shape[1] is not None:
        return int(shape[1])
    for _, cls, c, _ in layers:
        if cls == "Embedding" and c.get("input_length"):
            n = c["input_length"]
            return int(n[0] if isinstance(n, (list, tuple)) else n)
    return None


def _refs(value) -> list[list]:
    """``["a", 0, 0]`` or ``[["a", 0, 0], ...]`` -> ``[["a", 0, 0], ...]``."""
    if not value:
        return []
    return [value] if isinstance(value[0], str) else list(value)


def _inbound(name: str, cls: str, node) -> list[str]:
    """The layer names one inbound node reads (Keras 1, 2 or 3 form); only first calls, first outputs."""
    if isinstance(node, dict):                                       # Keras 3
        refs = []

        def walk(v, where):
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                if where == "kwargs":
                    raise UnsupportedModel(f"layer {name!r} ({cls}) gets a tensor as a keyword argument; not "
                                           f"supported.")
                if where == "args":
                    refs.append(v["config"]["keras_history"])
            elif isinstance(v, dict):
                for u in v.values():
                    walk(u, where)
            elif isinstance(v, (list, tuple)):                     # tuples in memory, lists in JSON
                for u in v:
                    walk(u, where)

        walk(node.get("args", []), "args")
        kwargs = dict(node.get("kwargs") or {})
        walk(kwargs.pop("mask", None), "mask")                       # the traced mask: computed by builder rules
        walk(kwargs, "kwargs")
    else:                                                            # Keras 1 / 2: [[name, node, tensor(, kw)]]
        refs = list(node)
    for ref in refs:
        if int(ref[1]) != 0 or int(ref[2]) != 0:
            raise UnsupportedModel(f"layer {name!r} ({cls}) reads output {ref[2]} of call {ref[1]} of layer "
                                   f"{ref[0]!r} (a shared or multi-output layer); not supported.")
    return [ref[0] for ref in refs]


def _ancestors(layers: list, output: str) -> list:
    """The layers the output is computed from. Keras 3 traces the mask a layer receives into the config as
    operations (``NotEqual``, ``ExpandDims``, ``ZerosLike``, ``LogicalOr``, ``Concatenate``, ``Any``) passed as its
    ``mask`` keyword; those feed no positional input and are dropped (:class:`KerasGraph` derives the mask)."""
    reads = {layer[0]: layer[3] for layer in layers}
    keep, todo = set(), [output]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += reads.get(name, [])
    return [layer for layer in layers if layer[0] in keep]


def _sorted(layers: list) -> list:
    """Layers in an order where each comes after the layers it reads (stable)."""
    done, out, pending = set(), [], list(layers)
    while pending:
        ready = [layer for layer in pending if all(i in done for i in layer[3])]
        if not ready:
            missing = {i for layer in pending for i in layer[3] if i not in done and i not in {p[0] for p in pending}}
            raise UnsupportedModel(f"layers {[p[0] for p in pending]} read {sorted(missing) or 'each other'}, "
                                   f"which the model does not define in order.")
        for layer in ready:
            done.add(layer[0])
            out.append(layer)
        pending = [layer for layer in pending if layer[0] not in done]
    return out


# ---------------------------------------------------------------------------------------------- Keras 1


def _normalize(name: str, cls: str, c: dict, weights: list, major: int) -> tuple[str, dict, list]:
    """A layer in Keras 2/3 terms: ``(class, config, weights)``. Keras 1 configs and weight layouts are renamed
    (Keras 1.2.2 ``keras/layers/*.py`` ``get_config``); Keras 2 and 3 pass through."""
    if major >= 2:
        return cls, c, weights
    base = {"name": c.get("name", name)}
    act = {"activation": c.get("activation", "linear")}
    if cls in ("Convolution1D", "AtrousConvolution1D"):
        k, filters = int(c["filter_length"]), int(c["nb_filter"])
        if weights:
            w = np.asarray(weights[0])
            if w.ndim == 4 and w.shape[:2] != (k, 1) and w.shape[0] == filters and w.shape[2:] == (k, 1):
                w = w.transpose(2, 3, 1, 0)                          # Keras <= 1.1: (nb_filter, in, k, 1)
            weights = [layouts.convert(w, "keras1", "jaxconv", spatial_dims=1), *weights[1:]]
        return "Conv1D", {**base, **act, "filters": filters, "kernel_size": [k],
                          "strides": [int(c.get("subsample_length", 1))], "padding": c.get("border_mode", "valid"),
                          "dilation_rate": [int(c.get("atrous_rate", 1))], "use_bias": c.get("bias", True)}, weights
    if cls in ("Convolution2D", "AtrousConvolution2D"):
        ordering = c.get("dim_ordering", "tf")
        if ordering != "tf":
            raise UnsupportedModel(f"layer {name!r} ({cls}): dim_ordering={ordering!r} (channels first); "
                                   f"jaxconv's layer graph is channels-last ('tf').")
        return "Conv2D", {**base, **act, "filters": int(c["nb_filter"]), "kernel_size": [c["nb_row"], c["nb_col"]],
                          "strides": list(c.get("subsample", (1, 1))), "padding": c.get("border_mode", "valid"),
                          "dilation_rate": list(c.get("atrous_rate", (1, 1))), "use_bias": c.get("bias", True)}, \
            weights
    if cls == "Dense":
        return "Dense", {**base, **act, "units": int(c["output_dim"]), "use_bias": c.get("bias", True)}, weights
    if cls in ("MaxPooling1D", "AveragePooling1D"):
        k = int(c.get("pool_length", 2))
        return cls, {**base, "pool_size": [k], "strides": [int(c.get("stride") or k)],
                     "padding": c.get("border_mode", "valid")}, weights
    if cls in ("Dropout", "SpatialDropout1D"):
        return cls, {**base, "rate": c.get("p", 0.0)}, weights
    if cls == "Merge":
        if c.get("layers"):
            raise UnsupportedModel(f"layer {name!r} (Merge) merges sub-models inside a Sequential; not supported "
                                   f"(a functional merge([...], mode='concat') is).")
        if c.get("mode") != "concat":
            raise UnsupportedModel(f"layer {name!r} (Merge): mode={c.get('mode')!r}; jaxconv imports "
                                   f"mode='concat' only.")
        return "Concatenate", {**base, "axis": int(c.get("concat_axis", -1))}, weights
    return cls, c, weights
