"""Keras model files read with h5py, json and zipfile alone (no Keras, no TensorFlow): :func:`read_file`.

Two containers:

- ``.keras`` (Keras 3 ``model.save("m.keras")``): a zip archive of ``config.json`` (the model's config),
  ``metadata.json`` (``keras_version``) and ``model.weights.h5``, where each layer's arrays lie at
  ``layers/<snake_case class name>[_<n>]/vars/<i>`` in the order of ``model.layers`` (Keras 3
  ``keras/src/saving/saving_lib.py``: ``_save_container_state`` names a layer by its class, ``_get_unique_name``
  adds ``_1``, ``_2``, ... to repeats; recent versions also write the layer's name as the ``name`` attribute of
  ``vars``, which is used first).
- HDF5 (``model.save("m.h5")`` in Keras 1.2, Keras 2, and Keras 3's legacy format): root attributes
  ``model_config`` (JSON ``{"class_name", "config"}``) and ``keras_version``; Keras >= 2.0 also ``backend``
  (Keras 1.2.2 ``keras/models.py`` ``save_model``; Keras 2.2.4 ``keras/engine/saving.py`` ``_serialize_model``).
  Group ``model_weights`` has the attribute ``layer_names``; each layer's group has ``weight_names``, one dataset
  per name, read in that order (Keras 1.2.2 ``keras/engine/topology.py`` ``save_weights_to_hdf5_group`` /
  ``load_weights_from_hdf5_group``). Keras 1 names weights ``<layer>_W``, ``<layer>_b`` (TensorFlow variables add
  ``:0``), Keras 2 ``<layer>/kernel:0`` (nested groups), Keras 3 ``<layer>/kernel``.

Keras 1 files record no backend. Theano computed a true convolution (flipped kernels), TensorFlow a
cross-correlation, so the backend matters: it is inferred from the weight names, ``:0`` being the suffix of every
TensorFlow variable name and of no Theano shared-variable name (or given as ``backend=``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from typing import Any

import numpy as np

from jaxconv.imports.source import UnsupportedModel

__all__ = ["KerasFile", "read_file", "layer_entries", "snake_case"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_EXPECTED = "expected a Keras model file written by model.save(): a .keras archive (Keras 3) or an HDF5 .h5 file"


@dataclasses.dataclass
class KerasFile:
    """What a Keras model file holds.

    Attributes:
      model_config: ``{"class_name": "Sequential" | "Model" | "Functional", "config": ...}`` as Keras wrote it.
      weights: ``{layer name: [arrays, in the layer's weight order]}``, float32, in the file's layouts (Keras 1
        ``Convolution1D``: ``(k, 1, in, F)``; Keras 2/3 ``Conv1D``: ``(k, in/groups, F)``).
      keras_version: e.g. ``"1.2.2"``, ``"2.2.4"``, ``"3.15.1"``; ``"1"`` for a file that records none (Keras < 1.2).
      backend: ``"tensorflow"``, ``"theano"``, ``"jax"``, ...; None when unknown (a ``.keras`` archive records none).
      container: ``"keras"`` (zip archive) or ``"hdf5"``.
    """

    model_config: dict
    weights: dict[str, list[np.ndarray]]
    keras_version: str
    backend: str | None
    container: str

    @property
    def major(self) -> int:
        """1, 2 or 3."""
        digits = re.match(r"\d+", self.keras_version)
        return int(digits.group()) if digits else 1


def snake_case(name: str) -> str:
    """Keras 3's ``keras.src.utils.naming.to_snake_case``: ``"GlobalMaxPooling1D" -> "global_max_pooling1d"``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_entries(model_config: dict) -> list[dict]:
    """The layer dicts of a model config, in the order Keras keeps its layers (``model.layers``):
    ``[{"class_name", "config", ...}]``; Keras 1 and Keras 2.0-2.1 Sequential configs are a bare list."""
    config = model_config.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(layers, list):
        raise UnsupportedModel(f"model config of class {model_config.get('class_name')!r} has no layer list; "
                               f"expected a Sequential or functional model (a subclassed model saves no layers).")
    return layers


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _names(value: Any) -> list[str]:
    """An HDF5 string-list attribute (bytes or str; an empty list is stored as an empty float array)."""
    return [_text(v) for v in np.asarray(value).ravel()] if value is not None else []


def read_file(path: str | os.PathLike, *, backend: str | None = None) -> KerasFile:
    """Read a Keras model file: a ``.keras`` archive or an HDF5 file (the contents decide, not the suffix).

    Args:
      path: the file.
      backend: the backend a Keras 1 file was trained with (``"theano"`` or ``"tensorflow"``), when its weight
        names should not decide; ignored for files that record their backend.

    Raises:
      FileNotFoundError: no such file.
      UnsupportedModel: not a zip archive or HDF5 file, a damaged one, or one without a model config (a
        weights-only file): one line naming the path and what was expected.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; {_EXPECTED}.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return _guarded(path, _read_zip)
    if head == _HDF5_SIGNATURE or _is_hdf5(path):
        return _guarded(path, lambda p: _read_h5(p, backend))
    raise UnsupportedModel(f"{path}: neither a zip archive nor an HDF5 file (it starts with {head!r}); {_EXPECTED}.")


def _is_hdf5(path: str) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except (OSError, ValueError):
        return False


def _guarded(path: str, read) -> KerasFile:
    """``read(path)`` with h5py / zip / JSON errors as one-line :class:`UnsupportedModel` s."""
    try:
        return read(path)
    except UnsupportedModel:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError,
            zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UnsupportedModel(f"{path}: damaged or not a Keras model file ({type(e).__name__}: {first}); "
                               f"{_EXPECTED}.") from None


def _read_h5(path: str, backend: str | None) -> KerasFile:
    import h5py

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            weights_only = "layer_names" in f.attrs or "model_weights" in f or "layers" in f
            raise UnsupportedModel(
                f"{path}: HDF5 file without a model_config attribute"
                + (" (weights only, as model.save_weights() writes them)" if weights_only else "")
                + "; expected a whole model saved with model.save(), which records the architecture.")
        config = json.loads(_text(f.attrs["model_config"]))
        group = f["model_weights"] if "model_weights" in f else f
        attrs = {**dict(group.attrs), **dict(f.attrs)}
        version = _text(attrs["keras_version"]) if "keras_version" in attrs else "1"
        recorded = _text(attrs["backend"]) if "backend" in attrs else None
        weights, all_names = {}, []
        for layer in _names(group.attrs.get("layer_names")):
            g = group[layer]
            names = _names(g.attrs.get("weight_names"))
            weights[layer] = [np.asarray(g[n][()], np.float32) for n in names]
            all_names += names
    if recorded is None and version.startswith("1"):
        recorded = backend or (None if not all_names else "tensorflow" if all(n.endswith(":0") for n in all_names)
                               else "theano")
    return KerasFile(_config_dict(config, path), weights, version, recorded, "hdf5")


def _config_dict(config: Any, path: str) -> dict:
    if not isinstance(config, dict) or "class_name" not in config:
        raise UnsupportedModel(f"{path}: the model config is not a {{'class_name', 'config'}} dict; {_EXPECTED}.")
    return config


def _read_zip(path: str) -> KerasFile:
    import h5py

    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        if "config.json" not in names:
            raise UnsupportedModel(f"{path}: a zip archive without config.json, so not a Keras 3 .keras file; "
                                   f"expected config.json and model.weights.h5 (written by model.save('m.keras')).")
        config = _config_dict(json.loads(z.read("config.json")), path)
        meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
        if "model.weights.h5" not in names:
            raise UnsupportedModel(f"{path}: a .keras archive without model.weights.h5 (it has "
                                   f"{', '.join(sorted(names))}); expected the single-file weights Keras 3 writes.")
        data = z.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as h5:
        weights = _zip_weights(h5, layer_entries(config))
    return KerasFile(config, weights, str(meta.get("keras_version", "3")), None, "keras")


def _zip_weights(h5, entries: list[dict]) -> dict[str, list[np.ndarray]]:
    """``{layer name: arrays}`` from a ``.keras`` archive's ``model.weights.h5``: by the ``name`` attribute of each
    ``layers/<path>/vars`` group when written, else by the class-name path Keras gives the n-th layer of a class."""
    def arrays(vars_group) -> list[np.ndarray]:
        return [np.asarray(vars_group[k][()], np.float32) for k in sorted(vars_group, key=int)]

    root = h5["layers"] if "layers" in h5 else {}
    by_name = {}
    for key in root:
        vars_group = root[key].get("vars") if hasattr(root[key], "get") else None
        if vars_group is not None and "name" in vars_group.attrs:
            by_name[_text(vars_group.attrs["name"])] = arrays(vars_group)
    weights, used = {}, {}
    for entry in entries:
        if ".ops." in str(entry.get("module")):                      # a traced operation (a mask's), no layer
            continue
        cls = entry.get("class_name", "")
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        key = snake_case(cls)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        if name in by_name:
            weights[name] = by_name[name]
        elif key in root and "vars" in root[key]:
            weights[name] = arrays(root[key]["vars"])
    return weights
