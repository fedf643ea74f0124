"""Experiment configs: the built-in ones ship here, and :func:`load_config` loads any config by name or path.

A config spec is ``NAME_OR_PATH[:PRESET]``:

- a built-in name (``"text_cnn"``, ``"text_cnn:mr"``): the module ``jaxconv.configs.<name>``, so it works from an
  installed package, without the repository;
- a path to a Python file defining ``get_config(preset)`` (``"configs/text_cnn.py:mr"``, ``"~/my_config.py"``).

Overrides set fields by dotted key, from Python values or from command-line strings (``--config.train.epochs=5``);
a string is parsed as the field's type (int, float, bool, tuple, str), so ``"5"`` sets an int field to 5.
:func:`validate` checks the ranges of a text-model config's numeric fields (``train_and_evaluate`` calls it first).

>>> config = load_config("text_cnn:mr", {"train.epochs": 5, "model.widths": "(2, 3)"})
>>> config.preset, config.train.epochs, config.model.widths, config.train.optimizer
('mr', 5, (2, 3), 'adadelta')
>>> load_config("text_cnn", ["train.nope=1"])
Traceback (most recent call last):
...
jaxconv.configs.ConfigError: train.nope: config.train has no field 'nope'; its fields are: batch_size, ...
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import pathlib
import pkgutil
import sys
import traceback
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from jaxconv._format import quote
from jaxconv.configs._validate import LR_SCHEDULES, validate

__all__ = ["load_config", "load_config_module", "apply_overrides", "split_override_args", "parse_override_items",
           "check_complete", "reference_config", "validate", "ConfigError", "BUILTIN_CONFIGS", "DEFAULT_CONFIG",
           "LR_SCHEDULES"]


def _builtin_configs() -> tuple[str, ...]:
    """The modules of this package that define ``get_config`` (the private ones and ``rules`` do not)."""
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_") and callable(getattr(importlib.import_module(f"{__name__}.{info.name}"),
                                                              "get_config", None)):
            names.append(info.name)
    return tuple(names)


#: The config ``jaxconv train`` runs when none is named, and the examples use: Kim's CNN on the synthetic corpus.
DEFAULT_CONFIG = "text_cnn"
#: Config names shipped in the package (``jaxconv.configs.<name>``): every module here with a ``get_config``, the
#: default first.
BUILTIN_CONFIGS = tuple(sorted(_builtin_configs(), key=lambda name: (name != DEFAULT_CONFIG, name)))

SPEC_HELP = ("a built-in config name (" + ", ".join(BUILTIN_CONFIGS) + ") or a path to a .py file defining "
             "get_config(preset), optionally followed by :PRESET, e.g. text_cnn:mr or configs/text_cnn.py:mr")


class ConfigError(ValueError):
    """A config that cannot be loaded, an unknown preset, an unknown field or a value of the wrong type.

    The message is one line naming the spec, key or value and what was expected.
    """


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``"path/or/name:preset"`` -> ``("path/or/name", "preset")``; a Windows drive letter is not a preset."""
    head, sep, tail = spec.rpartition(":")
    if not sep or not head or tail.startswith(("/", "\\")) or (len(head) == 1 and head.isalpha() and tail[:1] in "/\\"):
        return spec, None
    return head, tail


def _looks_like_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name or name.startswith(("~", "."))


@functools.lru_cache(maxsize=64)
def _load_file(path: str, mtime_ns: int) -> types.ModuleType:
    """Execute a config file once per (path, modification time); every loader in the process shares it."""
    name = "jaxconv_config_" + hashlib.sha1(path.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ConfigError(f"could not load config file {path!r}: {type(e).__name__}: {e}") from None
    return module


def load_config_module(spec: str) -> tuple[types.ModuleType, str | None]:
    """The module a config spec names and its preset: ``"text_cnn:mr"`` -> ``(jaxconv.configs.text_cnn, "mr")``.

    Raises:
      ConfigError: no such built-in name or file, a directory, a file that is not Python, or one without
        ``get_config``.
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"config={quote(spec)}: expected {SPEC_HELP}.")
    name, preset = _split_spec(spec)
    if name in BUILTIN_CONFIGS and not pathlib.Path(name).exists():
        module = importlib.import_module(f"jaxconv.configs.{name}")
    elif not _looks_like_path(name) and not pathlib.Path(name).exists() and _kind_config(name) is not None:
        module = _kind_config(name)
    else:
        file = pathlib.Path(name).expanduser()
        if file.is_dir():
            raise ConfigError(f"config {name!r} is a directory; expected {SPEC_HELP}.")
        if not file.is_file():
            what = (f"config file {name!r} does not exist" if _looks_like_path(name) else
                    f"config {name!r} is not a built-in config name, and no file of that name exists")
            raise ConfigError(f"{what}; expected {SPEC_HELP}.")
        if file.suffix != ".py":
            raise ConfigError(f"config file {name!r} is not a Python file; expected a .py file defining "
                              f"get_config(preset), e.g. configs/text_cnn.py.")
        resolved = file.resolve()
        module = _load_file(str(resolved), resolved.stat().st_mtime_ns)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {name!r} defines no get_config(preset) function.")
    return module, preset


def _kind_config(name: str) -> types.ModuleType | None:
    """A registered model kind's ``default_config`` as a config module (``get_config``), or None: how
    ``load_config("my_model")`` loads a model declared outside this package."""
    from jaxconv.models import model_kinds

    kind = model_kinds().get(name)
    if kind is None or kind.default_config is None:
        return None
    module = types.ModuleType(f"{kind.cls.__module__}:{name}", f"The default config of model kind {name!r}.")
    module.get_config = kind.default_config
    return module


def _where(error: BaseException, module: types.ModuleType) -> str:
    """`` (at FILE line N)``: the deepest line of a user's config file in ``error``'s traceback, or ``""`` (also
    for the built-in configs, whose messages say what to do)."""
    file = None if module.__name__.startswith("jaxconv.") else getattr(module, "__file__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if file and f.filename == file]
    return f" (at {frames[-1].filename} line {frames[-1].lineno})" if frames else ""


def _call_get_config(module: types.ModuleType, spec: str, preset: str | None):
    params = [p for p in inspect.signature(module.get_config).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if preset is not None and not params:
        raise ConfigError(f"config {quote(spec)}: its get_config() takes no preset, but the spec names preset {quote(preset)}.")
    try:
        config = module.get_config(preset) if params else module.get_config()
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"config {quote(spec)}: get_config({quote(preset)}) failed: {e}{_where(e, module)}") from None
    except Exception as e:  # a bug in a user's config file (RuntimeError, AttributeError, ...): where it is
        raise ConfigError(f"config {quote(spec)}: get_config({quote(preset)}) failed: {type(e).__name__}: {e}"
                          f"{_where(e, module)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config {quote(spec)}: get_config returned {type(config).__name__}; expected an "
                          f"ml_collections.ConfigDict.")
    return config


def load_config(spec: str, overrides: Mapping[str, Any] | Iterable[Any] | None = None, *,
                prefix: str = "") -> ml_collections.ConfigDict:
    """Load a config by name or path, apply ``overrides`` and return it locked (a typo in a field name raises).

    Args:
      spec: ``NAME_OR_PATH[:PRESET]`` (see the module docstring).
      overrides: ``{"train.epochs": 5}``, ``["train.epochs=5", ...]`` or ``[("train.epochs", 5), ...]``; strings
        from the command line are parsed as the field's type.
      prefix: how keys are shown in errors (``"--config."`` for the command line).

    Raises:
      ConfigError: see :func:`load_config_module` and :func:`apply_overrides`; an unknown preset.
    """
    module, preset = load_config_module(spec)
    config = _call_get_config(module, spec, preset)
    apply_overrides(config, overrides or (), prefix=prefix)
    config.lock()
    return config


# ----------------------------------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------------------------------


def parse_override_items(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """``["a.b=1", ("c", 2)]`` -> ``[("a.b", "1"), ("c", 2)]``: split ``key=value`` strings (values stay strings)."""
    out = []
    for item in items:
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {quote(item)}: expected key=value, e.g. train.epochs=5.")
            out.append((key.strip(), value))
        else:
            key, value = item
            out.append((str(key), value))
    return out


def split_override_args(argv: Sequence[str], flag: str = "--config") -> tuple[list[str], list[tuple[str, str]]]:
    """Take the ``--config.key=value`` (or ``--config.key value``) arguments out of ``argv``.

    Returns ``(the other arguments, [(key, value string), ...])`` in command-line order.
    """
    rest, overrides = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith(flag + "."):
            key, sep, value = a[len(flag) + 1:].partition("=")
            if not sep:
                if i + 1 >= len(args):
                    raise ConfigError(f"{a}: expected a value, e.g. {a}=5.")
                value, i = args[i + 1], i + 1
            if not key:
                raise ConfigError(f"{a}: expected {flag}.KEY=VALUE, e.g. {flag}.train.epochs=5.")
            overrides.append((key, value))
        else:
            rest.append(a)
        i += 1
    return rest, overrides


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_value(text: str, field_type: type | None, shown: str) -> Any:
    """A command-line string as the field's type."""
    t = text.strip()
    if field_type is str:
        return text
    if field_type is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ConfigError(f"{shown}={quote(text)}: expected a bool (true or false).")
    if field_type is int:
        try:
            return int(t)
        except ValueError:
            raise ConfigError(f"{shown}={quote(text)}: expected an int.") from None
    if field_type is float:
        try:
            return float(t)
        except ValueError:
            raise ConfigError(f"{shown}={quote(text)}: expected a float.") from None
    try:
        value = ast.literal_eval(t)
    except (ValueError, SyntaxError):
        if field_type in (tuple, list):
            raise ConfigError(f"{shown}={quote(text)}: expected a {field_type.__name__} literal, e.g. (3, 4, 5).") from None
        return text
    if field_type in (tuple, list):
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        return list(value) if field_type is list else value
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any] | Iterable[Any],
                    *, prefix: str = "") -> ml_collections.ConfigDict:
    """Set dotted keys of ``config`` in place (see :func:`load_config`); returns ``config``.

    Raises:
      ConfigError: an unknown key (the message lists the fields that exist there), a group of fields given a
        value, or a value of the wrong type.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else parse_override_items(overrides)
    for key, value in items:
        shown = f"{prefix}{key}"
        *parents, leaf = key.split(".")
        node, where = config, "config"
        for depth, part in enumerate([*parents, leaf]):
            fields = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            if part not in fields:
                listing = ", ".join(sorted(fields)) if fields else "(none: it is a value, not a group of fields)"
                raise ConfigError(f"{shown}: {where} has no field {quote(part)}; its fields are: {listing}")
            if depth < len(parents):
                node, where = node[part], f"{where}.{part}"
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise ConfigError(f"{shown}: {where}.{leaf} is a group of fields ({', '.join(sorted(node[leaf].keys()))});"
                              f" set one of them, e.g. {shown}.{sorted(node[leaf].keys())[0]}=...")
        if isinstance(value, str):
            value = _parse_value(value, node.get_type(leaf), shown)
        try:
            node[leaf] = value
        except TypeError:
            expected = node.get_type(leaf)
            raise ConfigError(f"{shown}={quote(value)}: expected a value of type {expected.__name__} (the field's type; "
                              f"its default is {node[leaf]!r}).") from None
    return config


def reference_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``default_config`` of ``config.model.name``'s model kind (its default preset): where every field's
    default lives.

    Raises:
      ConfigError: the name is not a registered model kind, or the kind declares no ``default_config``.
    """
    from jaxconv.models import model_kinds

    name = config.model.name
    kind = model_kinds().get(name)
    if kind is None:
        raise ConfigError(f"config.model.name={name!r} is not known; expected one of {sorted(model_kinds())}.")
    if kind.default_config is None:
        raise ConfigError(f"config.model.name={name!r}: its model kind declares no default_config, so the config's "
                          f"fields have no defaults to check; give ModelKind(..., default_config=get_config).")
    return _call_get_config(_kind_config(name), name, None)


def check_complete(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict, what: str) -> None:
    """Raise ConfigError naming every field of ``reference`` that ``config`` lacks.

    The defaults live in the config files, once; library code reads fields without fallbacks, so a hand-built
    config must have them all (start from :func:`load_config` and change fields).
    """
    missing = sorted(set(_leaf_keys(reference)) - set(_leaf_keys(config)))
    if missing:
        raise ConfigError(f"the config lacks {len(missing)} field(s) of {what}: {', '.join(missing[:8])}"
                          f"{', ...' if len(missing) > 8 else ''}; start from jaxconv.load_config({what!r}) and "
                          f"change fields, so every default comes from the config file.")


def _leaf_keys(config, prefix: str = "") -> list[str]:
    out = []
    for k in config.keys():
        v = config[k]
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            out += _leaf_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out
