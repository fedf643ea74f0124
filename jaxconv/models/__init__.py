"""Small text models built from :mod:`jaxconv.nn`, one module per model kind, each built by ``config.model.name``.

Every module of this package other than ``registry``, ``adapter`` and the private ones is a model module: it is
imported here, declares its kind once with ``register(ModelKind(...))`` (:mod:`jaxconv.models.registry`), and its
public names (its ``__all__``) are this package's too. A new model is one new module, nothing else
(``docs/adding_a_model.md``); :func:`model_kinds` lists them all.

:func:`build_model` turns ``config.model`` into a module; :func:`input_length_rule` says the input lengths it reads.
A field the config leaves out keeps the module's own default (its constructor's signature); the experiment defaults
live in each kind's ``default_config`` (the built-in configs, :mod:`jaxconv.configs`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import ml_collections
from flax import nnx

from jaxconv.models.adapter import DumpAdapter
from jaxconv.models.registry import (PAD_ID, TASK_NAMES, UNK_ID, ModelKind, model_kind, model_kinds, register,
                                     unregister)

#: Modules of this package that declare no model.
NOT_MODEL_MODULES = ("registry", "adapter")


def _import_model_modules() -> list[str]:
    """Import every model module of this package; bind its public names here; return them."""
    exported: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in NOT_MODEL_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if name in exported and exported[name] is not value:
                raise ImportError(f"jaxconv.models: {module.__name__} exports {name!r}, which another model module "
                                  f"exports too; rename one of them (every model module's __all__ is this package's).")
            exported[name] = value
    globals().update(exported)
    return sorted(exported)


__all__ = ["build_model", "input_length_rule", "ModelKind", "register", "unregister", "model_kind", "model_kinds",
           "TASK_NAMES", "PAD_ID", "UNK_ID", "DumpAdapter"]
__all__ += [n for n in _import_model_modules() if n not in __all__]


def input_length_rule(config: Any) -> tuple[int, int | None]:
    """``(min_length, fixed_length or None)`` of ``config.model``'s inputs: its kind's ``input_length``.

    Raises:
      ValueError: ``config.model.name`` is not a registered kind.
    """
    return model_kind(config.model.name).input_length(config.model)


def build_model(config: Any, vocab_size: int, num_classes: int | None = None, rngs: nnx.Rngs | None = None,
                pretrained: Any = None) -> nnx.Module:
    """Build ``config.model`` (or ``config`` itself when it has no ``model`` field) as its kind says.

    Args:
      config: a ConfigDict (or dict) with ``model.name`` a registered kind and any of that kind's ``fields``.
      vocab_size: embedding rows ``V``.
      num_classes: output classes of a ``"classify"`` kind; default ``config.model.num_classes``. A
        ``"next_token"`` kind's output is its vocabulary.
      rngs: initialisation randomness; default ``nnx.Rngs(params=config.seed)`` (0 without a seed field).
      pretrained: optional ``(V, D)`` word-vector table for the embedding(s) (a ``"classify"`` kind whose
        constructor takes ``pretrained``).

    Raises:
      ValueError: an unknown ``config.model.name``; no class count for a classifier; the constructor's own errors.
    """
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    m = config.model if "model" in config else config
    kind = model_kind(m.name)
    if num_classes is None and kind.task == "classify":
        if "num_classes" not in m:
            raise ValueError("build_model: num_classes was not given and config.model.num_classes is not set.")
        num_classes = m.num_classes
    if rngs is None:
        rngs = nnx.Rngs(params=int(config.seed) if "seed" in config else 0)
    # The fields the config has; the others keep the module's own defaults (no second copy of them here).
    kwargs = {k: (tuple(m[k]) if isinstance(m[k], (list, tuple)) else m[k]) for k in kind.fields if k in m}
    if kind.task == "next_token":                      # the vocabulary is the output: no separate class count
        return kind.cls(int(vocab_size), rngs=rngs, **kwargs)
    if pretrained is not None:
        kwargs["pretrained"] = pretrained
    return kind.cls(int(vocab_size), int(num_classes), rngs=rngs, **kwargs)
