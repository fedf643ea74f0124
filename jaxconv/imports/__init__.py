"""Trained models from elsewhere, imported so that their outputs are equal: :func:`import_model`.

>>> run = jaxconv.import_model("model.h5", "runs/keras1", vocab="word_index.json")   # doctest: +SKIP
>>> run.model              # doctest: +SKIP
ImportedModel(...)         # jaxconv's layers: explain, feature maps and saliency work on it
>>> jaxconv.feature_map(run.model, run.encode(["a fine film"]), "layers/convolution1d_1", 7)   # doctest: +SKIP

Sources: Keras 3 ``.keras`` files, ``.h5`` files written by Keras 1, 2 or 3 (read with h5py alone; no Keras, no
TensorFlow), in-memory ``keras.Model`` s; PyTorch ``torch.export`` programs (``.pt2``) and ``nn.Module`` s with an
example input. The importers (:mod:`jaxconv.imports.keras`, :mod:`jaxconv.imports.torch`) read a source into a
layer graph (:mod:`jaxconv.models.imported`); :func:`import_model` builds it, checks it against the source on
random ids when the source's framework is installed (and refuses it when they differ), and writes a run folder
that ``jaxconv explain``, ``jaxconv dump`` and ``jaxconv report`` use as they use a trained run.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxconv.imports.source import SourceModel, UnsupportedModel

__all__ = ["import_model", "read_source", "SourceModel", "UnsupportedModel", "PADDINGS", "TOLERANCE"]

#: ``padding=`` / ``--padding``: where the zeros go (Keras' ``pad_sequences`` default is ``"pre"``).
PADDINGS = ("pre", "post")
#: The largest difference from the source (``|ours - source| <= TOLERANCE * (1 + |source|)``) on random ids
#: that an import accepts; float32 sums in another order differ by about 1e-7 per term.
TOLERANCE = 1e-5

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _kind_of(source: Any) -> str:
    """``"keras-file"``, ``"torch-file"``, ``"keras"`` (a keras.Model) or ``"torch"`` (a module or program)."""
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(os.fspath(source))
        if not path.exists():
            raise FileNotFoundError(f"SOURCE {path}: no such file.")
        if path.suffix.lower() in _KERAS_SUFFIXES:
            return "keras-file"
        if path.suffix.lower() in (".pt2",):
            return "torch-file"
        head = path.read_bytes()[:8] if path.is_file() else b""
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return "keras-file"
        raise UnsupportedModel(f"SOURCE {path} is not a model file jaxconv reads; expected a Keras .keras / .h5 "
                               f"file or a torch.export .pt2 file.")
    module = type(source).__module__
    bases = [c.__module__.split(".")[0] for c in type(source).__mro__]     # a user's nn.Module subclass too
    if "keras" in bases:
        return "keras"
    if "torch" in bases:
        return "torch"
    raise UnsupportedModel(f"SOURCE {type(source).__name__} (from {module}) is not a model jaxconv imports; expected "
                           f"a keras.Model, a torch.nn.Module, a torch.export.ExportedProgram, or a file path.")


def read_source(source: Any, *, example_input: Any = None) -> SourceModel:
    """Read ``source`` (see :func:`import_model`) into a :class:`SourceModel`, with the importer its kind needs."""
    kind = _kind_of(source)
    if kind in ("keras-file", "keras"):
        from jaxconv.imports import keras as k

        return k.read_keras_file(source) if kind == "keras-file" else k.read_keras_model(source)
    from jaxconv.imports import torch as t

    return t.read_torch(source, example_input=example_input)


def _lengths(graph: dict, fixed: int | None, min_length: int) -> list[int]:
    """The input lengths the check runs: the fixed one, else the shortest and two longer ones."""
    return [fixed] if fixed else sorted({min_length, min_length + 7, max(min_length, 40)})


def max_difference(model, reference, vocab_size: int, lengths: Sequence[int], *, seed: int = 0,
                   batch: int = 8, source_length: int | None = None) -> tuple[float, list[int]]:
    """The largest ``|ours - source| / (1 + |source|)`` over random id batches ``(batch, L)`` for each ``L`` in
    ``lengths`` (ids drawn from the whole vocabulary, padding id 0 among them), and the lengths checked.

    A source fixed at ``source_length`` (a torch.export program, whose shapes are guarded) is checked there, and at
    the other lengths only when its reference runs them."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    worst, checked = 0.0, []
    order = ([source_length] if source_length else []) + [L for L in lengths if L != source_length]
    for L in order:
        ids = rng.integers(0, vocab_size, (batch, int(L))).astype(np.int32)              # (B, L)
        ids[:, : L // 4] = 0                                                                # some padding
        try:
            theirs = np.asarray(reference(ids), np.float64)
        except ValueError:
            if L == source_length or not checked:
                raise
            continue                                         # the source itself reads only its own length
        checked.append(int(L))
        ours = np.asarray(model.source_output(jnp.asarray(ids)), np.float64)
        if theirs.shape != ours.shape:
            raise UnsupportedModel(f"the imported model returns shape {ours.shape} where the source returns "
                                   f"{theirs.shape} for ids of shape {ids.shape}.")
        worst = max(worst, float(np.max(np.abs(ours - theirs) / (1.0 + np.abs(theirs)))))
    return worst, checked


def import_model(source: Any, workdir: str | os.PathLike | None = None, *, vocab: Any = None,
                 tokenizer: str | None = None, max_length: int | None = None, padding: str | None = None,
                 truncating: str | None = None, label_names: Sequence[str] | None = None, example_input: Any = None,
                 overwrite: bool = False):
    """Import a trained Keras or PyTorch text model as jaxconv layers, checked equal to its source.

    Args:
      source: a ``.keras`` / ``.h5`` file (Keras 1, 2 or 3), a ``.pt2`` file (``torch.export.save``), a
        ``keras.Model``, a ``torch.export.ExportedProgram``, or a ``torch.nn.Module`` with ``example_input``.
      workdir: where to write a run folder (``config.json``, ``vocab.json``, ``run.json``, ``checkpoints/best``)
        that :func:`jaxconv.load_run` and ``jaxconv explain / dump / report`` read; None: nothing is written.
      vocab: how the source's words became ids (:func:`jaxconv.imports.vocab.read_vocab`): a token-per-line file,
        a JSON token -> id object (a Keras ``word_index``), a Keras ``Tokenizer.to_json()``, a list or dict; None
        for a model used on ids only.
      tokenizer: how text becomes words: ``"whitespace"``, ``"lower"``, ``"kim"`` or ``"keras"``
        (:func:`jaxconv.data.get_tokenizer`); default: the Tokenizer's own splitting for a Tokenizer JSON,
        ``"keras"`` for a Keras model, ``"whitespace"`` otherwise.
      max_length: the length the source's texts were padded or cut to; default the length the source fixes
        (a Keras input shape or ``input_length``, a torch example input's when the graph needs one length), else
        none (each batch to its longest text).
      padding: ``"pre"`` (Keras' ``pad_sequences`` default; the default for Keras sources) or ``"post"`` (the
        default for PyTorch); truncating: the side a long text loses (default ``"pre"`` for Keras, as
        ``pad_sequences``, else ``"post"``).
      label_names: a name per class (the output's units).
      example_input: token ids ``(B, L)`` to export an ``nn.Module`` with.
      overwrite: replace an existing run folder at ``workdir``.

    Returns:
      A :class:`jaxconv.Run` (``.model``, ``.encode``, ``.vocab``, ``.label_names``; ``.source`` says where it
      came from and ``source["max_difference"]`` how far it is from the source, when measured).

    Raises:
      UnsupportedModel: a layer or op jaxconv has no equal for (one line naming it and the supported set), or a
        model whose import differs from its source.
      ValueError: a bad argument (a vocabulary of the wrong size, a max_length shorter than a kernel, ...).
      FileNotFoundError: no such source or vocabulary file.
    """
    import json

    from flax import nnx

    from jaxconv.data import get_tokenizer, keras_tokenizer
    from jaxconv.imports.folder import build_run, check_workdir, write_run
    from jaxconv.imports.vocab import read_vocab
    from jaxconv.models._graph import infer_shapes, parse_graph
    from jaxconv.models._graph import min_length as shortest
    from jaxconv.models.imported import ImportedModel

    if padding is not None and padding not in PADDINGS:
        raise ValueError(f"--padding {padding!r} is not known; expected pre or post.")
    if truncating is not None and truncating not in PADDINGS:
        raise ValueError(f"--truncating {truncating!r} is not known; expected pre or post.")
    if max_length is not None and (isinstance(max_length, bool) or int(max_length) < 1):
        raise ValueError(f"--max-length {max_length!r} must be an int >= 1.")
    if workdir is not None:
        check_workdir(workdir, overwrite)
    src = read_source(source, example_input=example_input)
    graph = parse_graph(src.graph)
    keras = src.framework.startswith("keras")
    min_length = shortest(graph)
    fixed = int(max_length) if max_length is not None else None
    if fixed is None and src.length:
        try:                                   # a graph that reads any length keeps none, unless Keras fixed one
            infer_shapes(graph, src.length + 1)
            fixed = src.length if keras else None
        except ValueError:
            fixed = src.length
    if fixed is not None:
        try:
            shapes_at = infer_shapes(graph, fixed)
        except ValueError as e:
            short = f" is shorter than the model's shortest input, {min_length} tokens" if fixed < min_length else ""
            raise ValueError(f"--max-length {fixed}{short}: {e}") from None
    else:
        shapes_at = infer_shapes(graph, min_length)
    embedding = next(n for n in graph["nodes"] if n["op"] == "embedding" and n["inputs"] == [graph["input"]])
    rows = int(embedding["vocab_size"])
    out = shapes_at[graph["output"]]
    head = ImportedModel._head(graph)
    num_classes = 2 if head == "sigmoid" else out[-1]
    if label_names is not None and len(label_names) != num_classes:
        raise ValueError(f"--labels names {len(label_names)} classes ({', '.join(map(str, label_names))}) but the "
                         f"model has {num_classes} outputs.")
    v, tok, options = read_vocab(vocab, rows)
    tokenizer = tokenizer or tok or ("keras" if keras else "whitespace")
    tokenize = keras_tokenizer(**options) if tokenizer == "keras" and options else get_tokenizer(tokenizer)
    padding = padding or src.padding
    truncating = truncating or ("pre" if keras else padding)
    model = ImportedModel(rows, num_classes, graph=json.dumps(graph), max_length=fixed or 0, rngs=nnx.Rngs(0))
    model.load_params(src.params)
    model.eval()
    difference, checked = None, []
    if src.reference is not None:
        difference, checked = max_difference(model, src.reference, rows, _lengths(graph, fixed, min_length),
                                             source_length=None if fixed else src.length)
        if not difference <= TOLERANCE:
            raise UnsupportedModel(f"the imported model differs from its source ({src.description}) by "
                                   f"{difference:.3g} (relative) on random ids, above the tolerance {TOLERANCE}; "
                                   f"not imported. A layer is read in a way its source does not compute.")
    info = dict(framework=src.framework, description=src.description, layers=[list(x) for x in src.layers],
                max_difference=difference, checked_lengths=checked, tolerance=TOLERANCE)
    run = build_run(model, v, tokenizer, tokenize, options, num_classes=num_classes, label_names=label_names,
                    padding=padding, truncating=truncating, fixed=fixed, min_length=min_length, source=info)
    if workdir is not None:
        run = write_run(run, workdir, overwrite=overwrite)
    return run
