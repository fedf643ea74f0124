"""Text for language models: from ``config.data`` to the windows a language model trains on (lines, a split by
line, a vocabulary, streams).

Corpus (``config.data.name``):

- ``"sentences"``: the texts of the built-in sentence datasets found under the data root (MR, SST, TREC; labels
  dropped), duplicates removed;
- ``"file"``: ``config.data.train``, a UTF-8 text file, one line per line (a line that is not UTF-8 is read as
  Latin-1, counted and logged); ``config.data.dev`` / ``config.data.test`` when given;
- ``"synthetic"``: the planted-motif corpus's sentences (tests and quick runs).

Lines are split by line (:func:`jaxconv.data.lm.split_lines`, ``config.data.split_seed``): ``dev_fraction`` of the
lines for dev and as many for test, unless files give them. Each split is one stream of token ids, every line
followed by its end (the newline byte, or a ``"\\n"`` token for words), cut into non-overlapping windows of
``config.data.seq_len + 1`` ids: an example reads ``window[:-1]`` and its labels are ``window[1:]``. Training
shuffles the windows per ``(seed, epoch)``; the tokens after a split's last whole window are not used.

Tokens (``config.data.tokenizer``): ``"bytes"`` (the fixed byte vocabulary, :data:`jaxconv.data.BYTES`) or any
word tokenizer, whose vocabulary is built on the training lines (``min_count``, ``max_vocab``).

>>> train, valid = split_lines([f"line {i}" for i in range(20)], valid_fraction=0.1, seed=0)
>>> len(train), len(valid)
(18, 2)
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

from collections.abc import Sequence

from jaxconv import data as jdata
from jaxconv.data.fingerprint import split_fingerprint
from jaxconv.data.pipeline import DataPipeline, data_root, load_dataset
from jaxconv.data.vocab import encode_bytes

__all__ = ["build_lm_data", "corpus_lines", "split_corpus", "split_lines", "LM_SOURCES", "END_OF_LINE"]

logger = logging.getLogger("jaxconv.data")

#: What ``config.data.name`` may be for a language model.
LM_SOURCES = ("sentences", "file", "synthetic")
#: The token that ends every line of a word-level stream (for bytes it is the newline byte itself).
END_OF_LINE = "\n"


def split_lines(lines: Sequence[str], *, valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Empty lines dropped, duplicates removed (first kept), then a seeded shuffle split: ``(train, valid)``.

    ``valid`` gets ``max(1, round(valid_fraction * n))`` lines; the two lists keep the corpus order within them.
    """
    if not 0.0 < float(valid_fraction) < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1); got valid_fraction={valid_fraction!r}.")
    unique = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if len(unique) < 2:
        raise ValueError(f"a language-model corpus needs at least 2 distinct non-empty lines; got {len(unique)}.")
    n_valid = min(max(1, round(valid_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    valid_idx = set(order[:n_valid].tolist())
    train = [t for i, t in enumerate(unique) if i not in valid_idx]
    valid = [t for i, t in enumerate(unique) if i in valid_idx]
    return train, valid


def _read_lines(path: str, what: str) -> list[str]:
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"config.data.{what}={path!r}: no such text file.")
    lines, _ = jdata.decode_lines(path)              # UTF-8; a line that is not is read as Latin-1 (and logged)
    return [x.rstrip("\r") for x in lines]


def corpus_lines(config) -> dict[str, list[str] | None]:
    """``{"train": lines, "dev": lines or None, "test": lines or None}`` from ``config.data`` (see the module
    docstring); dev and test are None when they are to be split off train."""
    d = config.data
    if d.name == "sentences":
        root = data_root(config)
        texts, found = [], []
        for name in ("mr", "sst1", "trec"):   # SST-2's sentences are SST-1's
            try:
                ds = jdata.load_sentence_dataset(name, root)
            except FileNotFoundError:
                continue
            found.append(name)
            texts += [t for split in ds.splits().values() for t in split.texts]
        if not found:
            raise FileNotFoundError(f"config.data.name='sentences': none of the sentence datasets (mr, sst1, trec) is "
                                    f"in {root}; set config.data.path (or $JAXCONV_DATA) to their directory.")
        return {"train": texts, "dev": None, "test": None}
    if d.name == "file":
        if not d.train:
            raise ValueError("config.data.name='file' needs config.data.train=PATH (a text file, one line per line).")
        return {"train": _read_lines(d.train, "train"), "dev": _read_lines(d.dev, "dev") if d.dev else None,
                "test": _read_lines(d.test, "test") if d.test else None}
    if d.name == "synthetic":
        ds = load_dataset(config)
        return {"train": [t for split in ds.splits().values() for t in split.texts], "dev": None, "test": None}
    raise ValueError(f"config.data.name={d.name!r} is not a language-model corpus; expected one of {LM_SOURCES}.")


def split_corpus(config) -> dict[str, list[str]]:
    """``{"train", "dev", "test"}`` lines of ``config.data``'s corpus: files as given, the rest split off train by
    line (see the module docstring); what training and ``jaxconv dump --split`` both read."""
    d = config.data
    lines = corpus_lines(config)
    frac, seed = float(d.dev_fraction), int(d.split_seed)
    train = lines["train"]
    if lines["test"] is None:
        train, lines["test"] = split_lines(train, valid_fraction=frac, seed=seed)
    if lines["dev"] is None:
        train, lines["dev"] = split_lines(train, valid_fraction=frac, seed=seed + 1)
    lines["train"] = list(dict.fromkeys(x.strip() for x in train if x.strip()))
    return lines


def _windows(stream: np.ndarray, seq_len: int) -> tuple[list[np.ndarray], np.ndarray]:
    n = (stream.size - 1) // seq_len
    if n < 1:
        raise ValueError(f"a stream of {stream.size} tokens holds no window of config.data.seq_len + 1 = {seq_len + 1}.")
    starts = np.arange(n) * seq_len
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]                            # (N, seq_len + 1)
    win = stream[idx]
    return list(win[:, :-1]), win[:, 1:].astype(np.int32)


def build_lm_data(config) -> DataPipeline:
    """The :class:`~jaxconv.data.pipeline.DataPipeline` of a language model: ``train``, ``dev`` and ``test``
    are :class:`jaxconv.data.BucketedBatches` of windows (tokens and labels int32 ``(batch, seq_len)``);
    ``num_classes`` is the vocabulary size (the next token is the class)."""
    d, t = config.data, config.train
    seq_len = int(d.seq_len)
    lines = split_corpus(config)
    streams = {}
    if d.tokenizer == "bytes":
        # The byte vocabulary maps byte b to id b + 2 (encode_bytes): the whole split at once, line ends included.
        vocab = jdata.Vocab.from_alphabet(jdata.BYTES)
        for split in ("train", "dev", "test"):
            streams[split] = encode_bytes("".join(x + END_OF_LINE for x in lines[split]))
    else:
        tokenize = jdata.get_tokenizer(d.tokenizer)
        toks = {split: [tokenize(x) + [END_OF_LINE] for x in lines[split]] for split in ("train", "dev", "test")}
        vocab = jdata.Vocab.build(toks["train"], min_count=int(d.min_count), max_size=int(d.max_vocab) or None)
        for split, rows in toks.items():
            streams[split] = np.asarray([i for row in rows for i in vocab.encode(row)], np.int32)
    batches, tokens = {}, {}
    for split in ("train", "dev", "test"):
        tokens[split] = int(streams[split].size)
        win, labels = _windows(streams[split], seq_len)
        train_split = split == "train"
        batches[split] = jdata.BucketedBatches(
            win, labels, batch_size=int(t.batch_size) if train_split else int(t.eval_batch_size) or int(t.batch_size),
            bucket_lengths=(seq_len,), seed=int(config.seed), shuffle=train_split, min_length=1)
    sizes = {split: batches[split].num_examples for split in batches}
    info = {"lines": {s: len(x) for s, x in lines.items()}, "tokens": tokens, "seq_len": seq_len,
            "buckets": [seq_len], "truncated": 0, "vocab_size": len(vocab)}
    logger.info(f"language-model corpus {d.name}: lines {info['lines']}, tokens {tokens}, windows of {seq_len}")
    return DataPipeline(name=d.name, vocab=vocab, tokenizer=d.tokenizer, train=batches["train"], dev=batches["dev"],
                        test=batches["test"], num_classes=len(vocab), label_names=None, sizes=sizes, info=info,
                        fingerprint={split: split_fingerprint(x) for split, x in lines.items()})
