"""Word vectors for an embedding table: Kim's random vectors and word2vec/GloVe text files."""

from __future__ import annotations

import pathlib

import numpy as np

from jaxconv.models.registry import PAD_ID

__all__ = ["INIT_SCALE", "load_word_vectors", "uniform_embeddings"]

#: Kim's range for random word vectors: uniform[-0.25, 0.25] (about the variance of word2vec's vectors).
INIT_SCALE = 0.25


def uniform_embeddings(vocab_size: int, embed_dim: int, *, seed: int = 0, scale: float = INIT_SCALE) -> np.ndarray:
    """Kim's random word vectors: ``(vocab_size, embed_dim)`` float32, uniform[-scale, scale], row ``PAD_ID`` zero."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(-scale, scale, size=(vocab_size, embed_dim)).astype(np.float32)  # (V, D)
    table[PAD_ID] = 0.0
    return table


def _vocab_tokens(vocab) -> list[str]:
    if isinstance(vocab, dict):
        out = [None] * len(vocab)
        for tok, i in vocab.items():
            out[i] = tok
        return out
    if isinstance(vocab, (list, tuple)):
        return list(vocab)
    return list(vocab.decode(list(range(len(vocab)))))


def load_word_vectors(path: str | pathlib.Path, vocab, dim: int, *, seed: int = 0,
                      scale: float = INIT_SCALE) -> tuple[np.ndarray, int]:
    """Read word vectors from a word2vec or GloVe TEXT file into a table for ``vocab``.

    The file has one word per line followed by ``dim`` numbers, separated by spaces; a word2vec header line
    ``"<count> <dim>"`` is skipped. Words of ``vocab`` not in the file get uniform[-scale, scale] vectors drawn
    from ``seed`` (Kim's treatment of unknown words); row ``PAD_ID`` is zero.

    Args:
      path: the text file.
      vocab: a :class:`jaxconv.data.Vocab` (anything with ``len`` and ``decode(ids)``), a token list (index = id),
        or a ``{token: id}`` dict.
      dim: the vector size expected in the file.

    Returns:
      ``(table, found)``: ``table`` float32 ``(len(vocab), dim)``; ``found`` = how many vocab words the file had.
    """
    path = pathlib.Path(path)
    tokens = _vocab_tokens(vocab)
    index = {tok: i for i, tok in enumerate(tokens) if tok is not None}
    table = uniform_embeddings(len(tokens), dim, seed=seed, scale=scale)  # (V, D)
    seen = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec text header "<count> <dim>"
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if len(values) != dim:
                raise ValueError(f"load_word_vectors: line {lineno} of {path} has {len(values)} numbers after the word "
                                 f"{word!r}; expected dim={dim}.")
            i = index.get(word)
            if i is None or i == PAD_ID or i in seen:
                continue
            table[i] = np.asarray(values, dtype=np.float32)
            seen.add(i)
    return table, len(seen)
