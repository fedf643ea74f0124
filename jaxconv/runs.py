"""Run folders: what a trained run holds, and getting it back with ``jaxconv.load_run(workdir)``::

    run = jaxconv.load_run("runs/demo")                       # the best dev epoch's model
    tokens = run.encode(["a sentence to look at"])            # (1, L) int32, padded as in training
    jaxconv.feature_map(run.model, tokens, "convs/2", 7)      # filter 7 of the width-5 conv: (1, L - 4)

``run.json`` records what is needed to rebuild the model and its input from the workdir alone: the number of classes
and their names, the tokenizer, the padding, the buckets and the jaxconv version; and what the data pipeline recorded
about the data (``"data"``: source, file formats and encodings, skipped lines, truncated texts, SST phrases, fold).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from jaxconv._args import check_count, check_texts, shown
from jaxconv.paths import CorruptFileError, as_path, json_error_text, read_json, write_text

__all__ = ["Run", "load_run", "check_run_folder", "CHECKPOINTS", "write_run_info", "read_run_info"]

#: What ``checkpoint=`` may name besides a step number.
CHECKPOINTS = ("best", "latest")


@dataclasses.dataclass
class Run:
    """A trained run, restored from its workdir.

    Attributes:
      workdir: the run's directory (an ``etils.epath.Path``; local or ``gs://``).
      config: the run's config (``ml_collections.ConfigDict``, locked), as saved in ``config.json``.
      vocab: the :class:`jaxconv.data.Vocab` the checkpoints index.
      tokenizer: the tokenizer's name (``jaxconv.data.get_tokenizer``); ``tokenize`` is the callable.
      model: the restored model (``nnx.Module``, in eval mode: dropout off).
      checkpoint: ``"best"``, ``"latest"`` or the step number asked for; ``step``: the step restored.
      num_classes, label_names: the classifier's classes (names may be None).
      pad_left, pad_right, min_length: how training padded token ids (:meth:`encode` does the same).
      padding, truncating: ``"post"`` (jaxconv's runs) or ``"pre"`` (an imported Keras model's ``pad_sequences``):
        the side padding goes on, and the side a long text loses; fixed_length: the one length the model reads
        (an imported model's ``max_length``), or None.
      source: for an imported model, where it came from and how closely it matched its source (``run.json``'s
        ``"source"``); None for a run trained here.

    Texts follow the API's rule (:mod:`jaxconv._args`): wherever texts are taken (:meth:`encode`,
    :meth:`encode_rows`, :meth:`predict`, :meth:`evidence`), one str is one text, never a sequence of characters;
    ``None`` or an item that is not a str is a TypeError naming the method and the item. Counts (``batch_size``,
    ``n``) are ints >= 1.
    """

    workdir: Any
    config: ml_collections.ConfigDict
    vocab: Any
    tokenizer: str
    tokenize: Callable[[str], list[str]]
    model: nnx.Module
    checkpoint: str | int
    step: int
    num_classes: int
    label_names: list[str] | None
    pad_left: int = 0
    pad_right: int = 0
    min_length: int = 1
    padding: str = "post"
    truncating: str = "post"
    fixed_length: int | None = None
    source: dict | None = None
    tokenizer_options: dict | None = None

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray:
        """Token ids of ``texts`` as training built them (or as an imported model's source fed its model): int32
        ``(len(texts), L)``; see :meth:`encode_rows` (one str is one text: ``(1, L)``)."""
        return self._encode_rows(check_texts("Run.encode", "texts", texts), length, "Run.encode")[0]

    def encode_rows(self, texts: Sequence[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray, list[list[str]]]:
        """Tokenize, index and pad ``texts`` as the run's model reads them.

        ``L`` is ``length``, else the run's fixed length (an imported model's ``max_length``), else the longest
        padded text (at least ``min_length``). With ``padding="post"`` (jaxconv's own runs) a row is ``pad_left``
        zeros, the ids, zeros to ``L``; with ``"pre"`` (Keras' ``pad_sequences``) zeros, then the ids, ending
        ``pad_right`` before ``L``. A text longer than the room loses its end (``truncating="post"``) or its
        start (``"pre"``, Keras' default). Words the vocabulary drops (a Keras ``Tokenizer`` without an OOV token)
        have no id and no position.

        Returns:
          ``tokens`` int32 ``(B, L)``; ``starts`` and ``lengths`` int32 ``(B,)``: row ``i``'s words are at
          ``tokens[i, starts[i]:starts[i] + lengths[i]]``; ``words``: those words, per row.

        Raises:
          TypeError: ``texts`` is not a str (one text) or a sequence of str; ``length`` is not an int.
          ValueError: ``length`` is shorter than the model's ``min_length``.
        """
        return self._encode_rows(check_texts("Run.encode_rows", "texts", texts), length, "Run.encode_rows")

    def _encode_rows(self, texts: list[str], length: int | None,
                     owner: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
        if length is not None:
            length = check_count(owner, "length", length)
        rows = []
        for t in texts:
            words = self.tokenize(t)
            ids = self.vocab.encode(words)
            if len(ids) != len(words):                                          # dropped words: keep the others
                words = [w for w in words if self.vocab.token_to_id(w) is not None]
            rows.append((words, ids))
        need = max([self.pad_left + len(x) + self.pad_right for _, x in rows] + [self.min_length])
        L = int(length) if length is not None else self.fixed_length or need
        if L < self.min_length:
            raise ValueError(f"length={L} is shorter than the model's min_length={self.min_length}.")
        room = max(L - self.pad_left - self.pad_right, 0)
        out = np.zeros((len(rows), L), np.int32)                                      # (B, L), pad id 0
        starts, lengths, kept = np.zeros(len(rows), np.int32), np.zeros(len(rows), np.int32), []
        for i, (words, ids) in enumerate(rows):
            cut = slice(max(len(ids) - room, 0), None) if self.truncating == "pre" else slice(0, room)
            ids, words = ids[cut], words[cut]
            start = self.pad_left if self.padding == "post" else L - self.pad_right - len(ids)
            out[i, start:start + len(ids)] = ids
            starts[i], lengths[i] = start, len(ids)
            kept.append(words)
        return out, starts, lengths, kept

    def predict(self, texts: str | Sequence[str], *, batch_size: int = 32) -> list:
        """The predicted class of each text: one :class:`jaxconv.predict.Prediction` per text (``.text``, ``.label``
        the class name, ``.index``, ``.probabilities`` name -> probability), batched and jitted
        (:func:`jaxconv.predict.predict`). One str is one text."""
        from jaxconv.predict import predict

        texts = check_texts("Run.predict", "texts", texts)
        return predict(self, texts, batch_size=check_count("Run.predict", "batch_size", batch_size))

    def evidence(self, text: str | Sequence[str], *, batch_size: int = 32):
        """Why the model predicted what it did for ``text``: the exact per-filter terms of its logits
        (:func:`jaxconv.evidence`); a list of texts gives a list. ValueError (one line, why) for a model that is not
        max-pooled filters read by a linear layer."""
        from jaxconv._evidence import evidence

        check_texts("Run.evidence", "text", text)
        return evidence(self, text, batch_size=check_count("Run.evidence", "batch_size", batch_size))

    def __repr__(self) -> str:
        names = self.label_names or [str(i) for i in range(self.num_classes)]
        shown = ", ".join(str(n) for n in names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else "")
        kind = self.config.model.name if "model" in self.config and "name" in self.config.model else "-"
        lines = [f"Run({str(self.workdir) if self.workdir is not None else 'in memory'!r})",
                 f"  model: {kind} ({type(self.model).__name__}), checkpoint {self.checkpoint} (step {self.step})",
                 f"  classes: {self.num_classes} ({shown})" if self.num_classes else "  classes: -",
                 f"  vocabulary: {len(self.vocab)} tokens, tokenizer {self.tokenizer!r}"
                 + (f", fixed length {self.fixed_length}" if self.fixed_length else "")]
        if self.source:
            src = self.source
            diff = src.get("max_difference")
            lines.append(f"  imported from: {src.get('framework', '?')} ({src.get('description', '?')})"
                         + (f", max difference {diff:.2g}" if diff is not None else ""))
        return "\n".join(lines)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The words of a row of token ids (``<pad>`` for 0)."""
        return self.vocab.decode([int(i) for i in ids])

    def generate(self, prompt: str, n: int, *, temperature: float = 0.0, seed: int = 0) -> str:
        """A language model's continuation of ``prompt``: ``n`` tokens (bytes, or words with their line ends) from
        :meth:`jaxconv.models.ConvLM.sample`, greedy at ``temperature=0``, drawn with ``seed`` above it; returns
        the new text only (words joined by spaces, bytes decoded as UTF-8).

        Raises:
          ValueError: the run is not a language model, or the prompt has no token.
        """
        from jaxconv.data import detokenize

        if not hasattr(self.model, "sample"):
            raise ValueError(f"{self.workdir} holds a {type(self.model).__name__}, which classifies; generate needs "
                             f"a language model (a model kind whose task is 'next_token').")
        n = check_count("Run.generate", "n", n)
        if not isinstance(prompt, str):
            raise TypeError(f"Run.generate: prompt={shown(prompt)} is a {type(prompt).__name__}; expected a str.")
        ids = self.vocab.encode(self.tokenize(prompt))
        if not ids:
            raise ValueError(f"prompt={prompt!r} has no token for the {self.tokenizer!r} tokenizer.")
        new = self.model.sample(ids, n, temperature=temperature, key=jax.random.key(seed))
        return detokenize(self.tokenizer, self.tokens(new))


def check_run_folder(workdir: str | os.PathLike) -> None:
    """FileNotFoundError unless ``workdir`` is a run folder (a directory with ``config.json`` and ``vocab.json``):
    what :func:`load_run` checks first, and what a command checks before it makes anything inside the folder."""
    path = as_path(workdir)
    if not path.is_dir():
        raise FileNotFoundError(f"workdir {path} does not exist (expected a directory written by jaxconv train).")
    for name in ("config.json", "vocab.json"):
        if not (path / name).exists():
            raise FileNotFoundError(f"workdir {path} has no {name}; it is not a finished or started jaxconv run.")


def load_run(workdir: str | os.PathLike, checkpoint: str | int = "best") -> Run:
    """Restore the config, vocabulary, tokenizer and model of a training workdir.

    Args:
      workdir: a directory written by :func:`jaxconv.train.train_and_evaluate` (local or ``gs://``).
      checkpoint: ``"best"`` (the best dev epoch, the model that was scored on test; default), ``"latest"``, or a
        step number of ``checkpoints/latest``.

    Returns:
      :class:`Run`, its ``model`` ready for :func:`jaxconv.explain`, :func:`jaxconv.feature_maps` and
      :func:`jaxconv.saliency`.

    Raises:
      FileNotFoundError: no such workdir, no ``config.json`` / ``vocab.json`` in it, or no checkpoint of that kind.
      ValueError: an unknown ``checkpoint``.
    """
    from jaxconv.data import Vocab, get_tokenizer, keras_tokenizer
    from jaxconv.models import build_model, input_length_rule
    from jaxconv.train.checkpoint import Checkpoints

    path = as_path(workdir)
    if isinstance(checkpoint, bool) or not (checkpoint in CHECKPOINTS or isinstance(checkpoint, (int, np.integer))):
        raise ValueError(f"checkpoint={checkpoint!r} is not known; expected 'best', 'latest' or a step number.")
    check_run_folder(path)
    rewrite = (f"the checkpoints are intact: run the jaxconv train command that made the run again (it rewrites "
               f"the file and resumes or re-scores) or restore the file.")
    config = ml_collections.ConfigDict(read_json(path / "config.json", what="run's config", fix=rewrite))
    config.lock()
    try:
        vocab = Vocab.load(path / "vocab.json")
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptFileError(f"cannot read the run's vocabulary {path / 'vocab.json'} ({json_error_text(e)}); "
                               f"{rewrite}") from None
    info = read_run_info(path) or {}
    kind = checkpoint if isinstance(checkpoint, str) else "latest"
    ckpts = Checkpoints(path / "checkpoints", keep=max(int(config.train.keep), 1))
    try:
        steps = ckpts.all_steps(kind)
        step = max(steps) if isinstance(checkpoint, str) and steps else checkpoint
        if not steps or step not in steps:
            what = f"step {checkpoint}" if not isinstance(checkpoint, str) else f"{checkpoint} checkpoint"
            raise FileNotFoundError(f"no {what} in {ckpts.path(kind)} (saved steps: {sorted(steps) or 'none'}).")
        num_classes = info.get("num_classes")
        if num_classes is None:  # a run from before run.json: the classifier's bias tells
            from jaxconv.train.checkpoint import load_params

            num_classes = load_params(path, kind, step)["classifier/bias"].shape[0]
        model = build_model(config, len(vocab), int(num_classes), rngs=nnx.Rngs(params=int(config.seed)))
        restored, _ = ckpts.restore(kind, {"model": nnx.state(model)}, step=int(step), partial=True)
        nnx.update(model, restored["model"])
    finally:
        ckpts.close()
    model.eval()
    tokenizer = info.get("tokenizer") or config.data.tokenizer or "kim"
    options = info.get("tokenizer_options")
    tokenize = keras_tokenizer(**options) if tokenizer == "keras" and options else get_tokenizer(tokenizer)
    fixed = input_length_rule(config)[1]
    return Run(workdir=path, config=config, vocab=vocab, tokenizer=tokenizer, tokenize=tokenize,
               model=model, checkpoint=checkpoint, step=int(step), num_classes=int(num_classes),
               label_names=info.get("label_names"), pad_left=int(info.get("pad_left", config.data.pad_left)),
               pad_right=int(info.get("pad_right", config.data.pad_right)),
               min_length=int(info["min_length"] if "min_length" in info else input_length_rule(config)[0]),
               padding=info.get("padding", "post"), truncating=info.get("truncating", "post"),
               fixed_length=int(fixed) if fixed else None, source=info.get("source"),
               tokenizer_options=options)


def write_run_info(workdir, data: Any) -> dict:
    """Write ``workdir/run.json`` from a :class:`jaxconv.train.DataPipeline`; returns what it wrote.

    It stores the classes, tokenizer, padding, buckets, sizes, the data's facts (``data``), the jaxconv version and
    ``fingerprint``: ``{split: "sha256:...", "vocab": "sha256:..."}``, of each split's texts and labels as read and
    of the vocabulary (:func:`jaxconv.train.reopen.run_fingerprint`), which a resumed run must match.
    """
    from jaxconv import __version__
    from jaxconv.train.reopen import run_fingerprint

    info = {"num_classes": int(data.num_classes), "label_names": data.label_names, "tokenizer": data.tokenizer,
            "pad_left": int(data.train.pad_left), "pad_right": int(data.train.pad_right),
            "min_length": int(data.train.min_length), "buckets": [int(b) for b in data.train.bucket_lengths],
            "vocab_size": len(data.vocab), "dataset": data.name, "sizes": dict(data.sizes),
            "data": dict(data.info), "fingerprint": run_fingerprint(data), "jaxconv_version": __version__}
    write_text(as_path(workdir) / "run.json", json.dumps(info, indent=2, default=str) + "\n", what="the run's description")
    return info


def read_run_info(workdir: str | os.PathLike) -> dict | None:
    """``workdir/run.json`` as a dict, or None when the run predates it.

    Raises:
      CorruptFileError: the file is not JSON; the message names it and what to do (the run can be neither loaded
        nor resumed without it).
    """
    path = as_path(workdir) / "run.json"
    if not path.exists():
        return None
    return read_json(path, what="run's description", fix="it holds the classes, tokenizer and data fingerprint the "
                     "run needs, so the run can be neither loaded nor resumed without it: restore the file, or train "
                     "anew in a new --workdir.")
