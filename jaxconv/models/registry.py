"""The model registry: every model kind declares itself once, as a :class:`ModelKind`, at the bottom of its module.

A kind says everything the rest of jaxconv needs to know about a model, by its ``config.model.name``: the class,
which ``config.model`` fields are its constructor's keyword arguments, what the trainer does with it (its task),
the input lengths it accepts, how its config fields are validated, how a dump reads it (its adapter), whether the
row-sparse embedding update may train its table, and the config where its defaults live. Adding a model is one new
module under :mod:`jaxconv.models` (discovered on import) or one :func:`register` call in your own code; see
``docs/adding_a_model.md``.

>>> from jaxconv.models import model_kind
>>> model_kind("lstm")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: config.model.name='lstm' is not known; expected one of [...].

This module imports nothing but the standard library (no orbax, no zarr): ``import jaxconv.models`` stays light.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ModelKind", "Rule", "register", "unregister", "model_kind", "model_kinds", "TASK_NAMES", "PAD_ID",
           "UNK_ID", "never_sparse"]

#: Token id of padding in every vocabulary (``jaxconv.data.Vocab``'s ``"<pad>"``): models embed it to zeros.
PAD_ID = 0
#: Token id of unknown tokens (``jaxconv.data.Vocab``'s ``"<unk>"``).
UNK_ID = 1
#: What the trainer does with a model (:mod:`jaxconv.train.tasks`): a label per example, or the next token.
TASK_NAMES = ("classify", "next_token")

#: A validation rule: ``(dotted key relative to the config root, (check(value) -> bool, what it expects), what the
#: field is)``, e.g. ``("model.filters", (lambda v: v >= 1, "an int >= 1"), "feature maps per width")``; builders
#: for the common ones are in :mod:`jaxconv.configs.rules`.
Rule = tuple[str, tuple[Callable[[Any], bool], str], str]


def never_sparse(model_config: Any) -> bool:
    """The default :attr:`ModelKind.sparse_embedding`: the row-sparse embedding update never applies."""
    return False


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One model kind, by its ``config.model.name``.

    Attributes:
      name: ``config.model.name`` (a Python identifier, e.g. ``"my_cnn"``).
      cls: the ``nnx.Module`` class. A ``"classify"`` model is built as ``cls(vocab_size, num_classes, *,
        <fields>, [pretrained=(V, D) table,] rngs=...)``; a ``"next_token"`` model as ``cls(vocab_size, *,
        <fields>, rngs=...)`` (its vocabulary is its output). ``__call__(tokens (B, L) int, *, deterministic,
        dropout_key)`` returns logits, ``(B, K)`` or ``(B, L, V)``.
      fields: the ``config.model`` fields passed to ``cls`` as keyword arguments (a field the config lacks keeps
        the constructor's default); the others (``name``, ``vectors``, ...) are for the trainer.
      task: ``"classify"`` or ``"next_token"`` (:data:`TASK_NAMES`).
      input_length: ``config.model -> (min_length, fixed_length or None)``: the shortest input the model reads, and
        the one length it reads when it fixes one (then every text is padded or cut to it).
      rules: :data:`Rule` s checked by :func:`jaxconv.configs.validate` after the run's own rules.
      check: ``config -> list of problems`` (one line each, naming the fields) for what no single-field rule can
        say; ``None``: nothing more.
      adapter: what a dump reads from the model: a :class:`jaxconv.models.adapter.DumpAdapter` (the default one
        when ``None``).
      sparse_embedding: ``config.model -> bool``: whether the trainer's row-sparse Adadelta may update the model's
        ``embedding`` table (the trainer also needs ``train.optimizer == "adadelta"`` and
        ``train.sparse_embedding``); the model then needs ``embedding``, ``check_tokens``, ``embed``,
        ``ids_in_range`` and ``logits_from_vectors``.
      default_config: ``preset or None -> ml_collections.ConfigDict``: the config where every field's default
        lives (:func:`jaxconv.configs.reference_config`; ``jaxconv.load_config(name)`` loads it when no built-in
        config has the name). ``None``: the kind has none, and the trainer refuses it.
    """

    name: str
    cls: type
    fields: tuple[str, ...]
    task: str
    input_length: Callable[[Any], tuple[int, int | None]]
    rules: tuple[Rule, ...] = ()
    check: Callable[[Any], list[str]] | None = None
    adapter: Any = None
    sparse_embedding: Callable[[Any], bool] = never_sparse
    default_config: Callable[..., Any] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"ModelKind: name={self.name!r} is not a name; expected a Python identifier such as "
                             f"'my_cnn' (what config.model.name holds).")
        if not isinstance(self.cls, type):
            raise TypeError(f"ModelKind {self.name!r}: cls={self.cls!r} is not a class; expected the nnx.Module "
                            f"class.")
        fields = tuple(self.fields)
        if not all(isinstance(f, str) for f in fields):
            raise TypeError(f"ModelKind {self.name!r}: fields={self.fields!r}; expected a tuple of config.model "
                            f"field names (str).")
        object.__setattr__(self, "fields", fields)
        if self.task not in TASK_NAMES:
            raise ValueError(f"ModelKind {self.name!r}: task={self.task!r} is not known; expected one of "
                             f"{', '.join(repr(t) for t in TASK_NAMES)}.")
        rules = tuple(self.rules)
        for rule in rules:
            if not (isinstance(rule, tuple) and len(rule) == 3 and isinstance(rule[0], str)
                    and isinstance(rule[1], tuple) and len(rule[1]) == 2 and callable(rule[1][0])):
                raise TypeError(f"ModelKind {self.name!r}: rule {rule!r} is not (dotted key, (check, expected "
                                f"text), what the field is).")
        object.__setattr__(self, "rules", rules)
        for attr in ("input_length", "sparse_embedding"):
            if not callable(getattr(self, attr)):
                raise TypeError(f"ModelKind {self.name!r}: {attr}={getattr(self, attr)!r} is not callable; expected "
                                f"a function of config.model.")
        for attr in ("check", "default_config"):
            if getattr(self, attr) is not None and not callable(getattr(self, attr)):
                raise TypeError(f"ModelKind {self.name!r}: {attr}={getattr(self, attr)!r} is not callable; expected "
                                f"a function or None.")


_KINDS: dict[str, ModelKind] = {}


def _redeclared(old: ModelKind, new: ModelKind) -> bool:
    """The same declaration run again: its module reloaded (a new class object of the same module and name)."""
    return (old.cls.__module__, old.cls.__qualname__) == (new.cls.__module__, new.cls.__qualname__)


def register(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to the registry under ``kind.name``; returns it.

    Registering the same kind again is a no-op, and so is the declaration of a reloaded module (its class has the
    same module and name: the new declaration replaces the old).

    Raises:
      TypeError: ``kind`` is not a :class:`ModelKind`.
      ValueError: another kind already has the name.
    """
    if not isinstance(kind, ModelKind):
        raise TypeError(f"register: kind={kind!r} is not a ModelKind; expected register(ModelKind(name=..., "
                        f"cls=..., ...)).")
    old = _KINDS.get(kind.name)
    if old is not None and old != kind and not _redeclared(old, kind):
        raise ValueError(f"register: config.model.name={kind.name!r} is already registered, to "
                         f"{old.cls.__module__}.{old.cls.__qualname__}; a second kind ("
                         f"{kind.cls.__module__}.{kind.cls.__qualname__}) cannot take the name. Choose another "
                         f"name, or unregister({kind.name!r}) first.")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> ModelKind:
    """Remove the kind ``name`` from the registry (a test's or a notebook's own model) and return it.

    Raises:
      ValueError: no kind has the name.
    """
    kind = model_kind(name)
    del _KINDS[name]
    return kind


def model_kind(name: str) -> ModelKind:
    """The :class:`ModelKind` registered under ``name`` (``config.model.name``).

    Raises:
      ValueError: ``config.model.name='x' is not known; expected one of [...]``.
    """
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"config.model.name={name!r} is not known; expected one of {sorted(_KINDS)}.")
    return kind


def model_kinds() -> Mapping[str, ModelKind]:
    """Every registered kind by name: a read-only view (it follows later registrations)."""
    return types.MappingProxyType(_KINDS)
