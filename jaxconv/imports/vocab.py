"""The vocabulary of an imported model: how its source turned words into ids (:func:`read_vocab`).

- a text file, one token per line: line ``i`` (from 0) is id ``i``;
- a JSON object token -> id: a Keras ``Tokenizer``'s ``word_index`` (ids from 1; 0 is padding), or anyone's;
- the JSON of a Keras ``Tokenizer`` (``tokenizer.to_json()``): its ``word_index``, ``num_words``, ``oov_token`` and
  word splitting (``filters``, ``lower``, ``split``) all apply;
- a JSON list of tokens (id ``i`` = item ``i``);
- none: a model used on ids only; the "words" are the ids themselves (``"17 4 9"``, split on whitespace).

An unknown word becomes the id of the source's unknown token (the Tokenizer's ``oov_token``; or a line
``<unk>`` / ``[UNK]`` / ``<UNK>`` / ``UNK`` / ``<oov>`` / ``[OOV]`` in a token list), and is dropped when there is
none, as ``Tokenizer.texts_to_sequences`` drops it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from etils import epath

from jaxconv.data import SourceVocab

__all__ = ["read_vocab", "vocab_from_index", "UNKNOWN_TOKENS"]

#: Token spellings taken as "the unknown word" in a token list.
UNKNOWN_TOKENS = ("<unk>", "[UNK]", "<UNK>", "UNK", "<oov>", "[OOV]", "<OOV>")


def vocab_from_index(index: Mapping[str, int], what: str, *, oov_token: str | None = None,
                     num_words: int | None = None) -> tuple[SourceVocab, int]:
    """A :class:`SourceVocab` from a token -> id mapping; returns it and the largest id + 1.

    Raises:
      ValueError: an id that is not an int >= 0, or two tokens with one id.
    """
    by_id: dict[int, str] = {}
    for token, i in index.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"{what}: token {token!r} has id {i!r}; expected an int >= 0.")
        if i in by_id:
            raise ValueError(f"{what}: tokens {by_id[i]!r} and {token!r} both have id {i}.")
        by_id[i] = str(token)
    size = int(num_words) if num_words else max(by_id, default=-1) + 1
    tokens = [by_id.get(i, "<pad>" if i == 0 else f"<unused:{i}>") for i in range(max(size, 1))]
    unk = index.get(oov_token) if oov_token is not None else None
    return SourceVocab(tokens, unk_id=unk if unk is not None and unk < len(tokens) else None,
                       num_words=num_words), size


def _from_tokens(tokens: list[str], what: str) -> SourceVocab:
    if not tokens:
        raise ValueError(f"{what} has no tokens; expected one token per line (line i = id i).")
    unk = next((i for i, t in enumerate(tokens) if t in UNKNOWN_TOKENS), None)
    return SourceVocab(tokens, unk_id=unk)


def _keras_tokenizer(data: Mapping, what: str) -> tuple[SourceVocab, dict]:
    """A Keras ``Tokenizer.to_json()``: its vocabulary and its word splitting."""
    cfg = data["config"]
    if cfg.get("char_level"):
        raise ValueError(f"{what}: a character-level Keras Tokenizer (char_level=True) is not supported; expected "
                         f"a word-level one.")
    index = cfg.get("word_index")
    index = json.loads(index) if isinstance(index, str) else index
    vocab, _ = vocab_from_index(index or {}, what, oov_token=cfg.get("oov_token"), num_words=cfg.get("num_words"))
    options = {"filters": cfg.get("filters", ""), "lower": bool(cfg.get("lower", True)),
               "split": cfg.get("split", " ") or " "}
    return vocab, options


def read_vocab(vocab: Any, rows: int) -> tuple[SourceVocab, str | None, dict | None]:
    """The vocabulary ``vocab`` (a path, a token list, a token -> id dict, a ``SourceVocab``, or None) checked
    against the ``rows`` of the embedding that reads the ids.

    Returns:
      ``(vocab, tokenizer name or None, tokenizer options or None)``: a Keras Tokenizer's JSON names ``"keras"``
      and its splitting; ids only name ``"whitespace"``; other vocabularies leave the tokenizer to the caller.

    Raises:
      FileNotFoundError: no such file.
      ValueError: a file that is no vocabulary, or a size that disagrees with ``rows`` (naming both numbers).
    """
    what, tokenizer, options, size = "--vocab", None, None, None
    if vocab is None:
        v = SourceVocab([str(i) for i in range(rows)], unk_id=None)
        return v, "whitespace", None
    if isinstance(vocab, SourceVocab):
        v = vocab
    elif isinstance(vocab, Mapping):
        v, size = vocab_from_index(vocab, "vocab")
    elif isinstance(vocab, (list, tuple)):
        v = _from_tokens([str(t) for t in vocab], "vocab")
    elif isinstance(vocab, (str, os.PathLike)):
        path = epath.Path(vocab)
        what = f"--vocab {path}"
        if not path.is_file():
            raise FileNotFoundError(f"{what}: no such file.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not UTF-8 text; expected a token list (one per line) or a JSON token -> id "
                             f"object.") from None
        data = None
        if text.lstrip()[:1] in ("{", "["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{what} looks like JSON but does not parse ({e}).") from None
        if isinstance(data, Mapping) and data.get("class_name") == "Tokenizer" and "config" in data:
            v, options = _keras_tokenizer(data, what)
            tokenizer = "keras"
        elif isinstance(data, Mapping) and data.get("format") == SourceVocab.FORMAT:
            v = SourceVocab.from_json(data)
        elif isinstance(data, Mapping):
            v, size = vocab_from_index(data, what)
        elif isinstance(data, list):
            v = _from_tokens([str(t) for t in data], what)
        else:
            v = _from_tokens([line.rstrip("\r\n") for line in text.split("\n")][:len(text.splitlines())], what)
    else:
        raise ValueError(f"vocab={type(vocab).__name__} is not a vocabulary; expected a file path, a token list, a "
                         f"token -> id dict or None.")
    n = size if size is not None else len(v)
    if n != rows:
        hint = (" (a Keras Tokenizer(num_words=N) keeps only ids below N: pass its to_json() instead of its "
                "word_index)" if n > rows and v.num_words is None else "")
        raise ValueError(f"{what} has {n} ids (0..{n - 1}) but the model's embedding has {rows} rows; expected the "
                         f"same number{hint}.")
    return v, tokenizer, options
