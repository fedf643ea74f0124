"""What every importer returns: :class:`SourceModel`, a layer graph with its weights and where it came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["SourceModel", "UnsupportedModel"]


class UnsupportedModel(ValueError):
    """A source that cannot be imported faithfully: one line naming the file or layer, what it is, and what jaxconv
    supports. (A ``ValueError``, so the command line prints it as one line with exit code 2.)"""


@dataclasses.dataclass
class SourceModel:
    """A model read by an importer (:mod:`jaxconv.imports`).

    Attributes:
      graph: the layer graph (:mod:`jaxconv.models.imported`'s module docstring): ``{"input", "output", "nodes"}``.
      params: ``{node name: {param name: float32 numpy array}}``, in jaxconv's layouts (conv kernels
        ``(k, in/groups, F)``, dense kernels ``(in, units)``).
      framework: what wrote it, e.g. ``"keras 1.2.2 (theano)"``, ``"keras 3.15.1"``, ``"torch 2.13.0"``.
      description: where it came from (a path, or ``"keras.Model 'name'"``).
      layers: one line per source layer or op read, in order: ``(source name, source class or op, what it became)``.
      length: the input length the source fixes (a Keras ``Input(shape=(50,))`` or ``Embedding(input_length=50)``,
        a torch example input's length), or None.
      padding: the padding side the source's own text pipeline uses by default: ``"pre"`` for Keras
        (``pad_sequences``), ``"post"`` for PyTorch.
      reference: ``ids (B, L) int32 numpy -> the source model's output (numpy float)``, run by the source framework
        itself (None when it is not installed): what the import is checked against.
    """

    graph: dict
    params: dict[str, dict[str, np.ndarray]]
    framework: str
    description: str
    layers: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    length: int | None = None
    padding: str = "post"
    reference: Callable[[np.ndarray], Any] | None = None
