"""The run folder of an imported model: written whole or not at all (:func:`write_run`).

It is a run folder like a trained one, so :func:`jaxconv.load_run`, ``jaxconv explain``, ``jaxconv dump`` and
``jaxconv report`` read it as they read a trained run:

- ``config.json``: ``model.name = "imported"``, ``model.graph`` (the layer graph, JSON text), ``model.max_length``;
  ``data.tokenizer``;
- ``vocab.json``: the source's ids (:class:`jaxconv.data.SourceVocab`);
- ``run.json``: classes and their names, tokenizer (and a Keras Tokenizer's splitting), padding and truncating
  side, lengths, and ``"source"``: framework, file, the layers read, the largest difference from the source;
- ``checkpoints/best/0``: the weights.

Everything goes to ``<workdir>.partial`` first, renamed to ``workdir`` at the end: an import that fails leaves
nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil

import ml_collections
from flax import nnx

from jaxconv.paths import as_path, is_remote

__all__ = ["check_workdir", "build_run", "write_run", "imported_config"]


def check_workdir(workdir, overwrite: bool) -> None:
    """Refuse a ``workdir`` that holds something, unless ``overwrite`` (then it is replaced at the end)."""
    path = as_path(workdir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise ValueError(f"--workdir {path} already exists and is not empty; choose a new folder (or pass "
                         f"--overwrite to replace it).")


def imported_config(model, tokenizer: str, source: dict) -> ml_collections.ConfigDict:
    """The config of an imported run (what ``config.json`` holds)."""
    return ml_collections.ConfigDict({
        "seed": 0,
        "model": {"name": "imported", "graph": model.graph_json, "max_length": int(model.max_length)},
        "data": {"name": f"imported: {source['description']}", "tokenizer": tokenizer, "pad_left": 0,
                 "pad_right": 0},
        "train": {"batch_size": 50, "eval_batch_size": 50, "keep": 1},
    })


def build_run(model, vocab, tokenizer: str, tokenize, options, *, num_classes: int, label_names, padding: str,
              truncating: str, fixed: int | None, min_length: int, source: dict):
    """The :class:`jaxconv.Run` of an imported model (no workdir yet)."""
    from jaxconv.runs import Run

    config = imported_config(model, tokenizer, source)
    config.lock()
    run = Run(workdir=None, config=config, vocab=vocab, tokenizer=tokenizer, tokenize=tokenize, model=model,
              checkpoint="best", step=0, num_classes=int(num_classes),
              label_names=list(map(str, label_names)) if label_names is not None else None, min_length=min_length,
              padding=padding, truncating=truncating, fixed_length=fixed, source=source, tokenizer_options=options)
    return run


def write_run(run, workdir, *, overwrite: bool = False):
    """Write ``run`` (from :func:`build_run`) as a run folder at ``workdir``; returns it with ``workdir`` set."""
    from jaxconv import __version__
    from jaxconv.paths import write_text
    from jaxconv.train.checkpoint import Checkpoints

    final = as_path(workdir)
    partial = final.parent / (final.name + ".partial")
    if partial.exists():
        _remove(partial)
    partial.mkdir(parents=True)
    try:
        write_text(partial / "config.json", run.config.to_json_best_effort(indent=2) + "\n", what="the config")
        run.vocab.save(partial / "vocab.json")
        info = {"num_classes": run.num_classes, "label_names": run.label_names, "tokenizer": run.tokenizer,
                "tokenizer_options": run.tokenizer_options, "pad_left": 0, "pad_right": 0,
                "padding": run.padding, "truncating": run.truncating, "min_length": run.min_length,
                "max_length": run.fixed_length, "vocab_size": len(run.vocab), "dataset": None,
                "source": run.source, "jaxconv_version": __version__}
        write_text(partial / "run.json", json.dumps(info, indent=2, default=str) + "\n", what="the run's description")
        ckpts = Checkpoints(partial / "checkpoints", keep=1)
        try:
            ckpts.save("best", 0, {"model": nnx.state(run.model)}, {"imported": run.source["description"]})
        finally:
            ckpts.close()
        if final.exists():
            _remove(final)
        partial.rename(final)
    except BaseException:
        _remove(partial)
        raise
    run.workdir = final
    return run


def _remove(path) -> None:
    if is_remote(os.fspath(path)):
        path.rmtree()
    else:
        shutil.rmtree(os.fspath(path), ignore_errors=True)
