"""Token vocabulary: ``<pad>`` = 0, ``<unk>`` = 1, then tokens by count (descending), ties by token.

>>> v = Vocab.build([["b", "a", "b"], ["c", "a", "b"]], min_count=2)
>>> v.tokens
['<pad>', '<unk>', 'b', 'a']
>>> v.encode(["a", "zzz", "b"])
[3, 1, 2]
>>> v.decode([2, 3, 0])
['b', 'a', '<pad>']
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import numpy as np
from etils import epath

__all__ = ["Vocab", "SourceVocab", "encode_texts", "BYTES", "BYTE_VOCAB_SIZE", "encode_bytes", "decode_bytes", "ZHANG_ALPHABET",
           "ALPHABETS"]

PathLike = Union[str, "os.PathLike[str]"]
_FORMAT = "jaxconv.vocab/1"


class Vocab:
    """A mapping between tokens and integer ids.

    Ids: ``0`` is :attr:`PAD` (``"<pad>"``), ``1`` is :attr:`UNK` (``"<unk>"``), then the kept tokens
    in a deterministic order: count descending, then token ascending. An embedding table for it has
    shape ``(len(vocab), features)``.

    Build one with :meth:`build`; :meth:`save` / :meth:`load` round-trip it through JSON.
    """

    PAD = "<pad>"
    UNK = "<unk>"
    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str], *, counts: Mapping[str, int] | None = None,
                 min_count: int = 1, max_size: int | None = None):
        """Wrap an explicit token list (``tokens[0] == "<pad>"``, ``tokens[1] == "<unk>"``, no repeats).

        Prefer :meth:`build`. ``counts`` / ``min_count`` / ``max_size`` are kept as metadata.
        """
        tokens = list(tokens)
        if tokens[:2] != [self.PAD, self.UNK]:
            raise ValueError(f"tokens must start with [{self.PAD!r}, {self.UNK!r}]; got {tokens[:2]!r}.")
        self._itos = tokens
        self._stoi = {t: i for i, t in enumerate(tokens)}
        if len(self._stoi) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1][:5]
            raise ValueError(f"tokens must be unique; repeated: {dup!r}.")
        self.counts: dict[str, int] = dict(counts or {})
        self.min_count = min_count
        self.max_size = max_size

    @classmethod
    def from_alphabet(cls, alphabet) -> "Vocab":
        """A fixed vocabulary: ``<pad>``, ``<unk>``, then each symbol of ``alphabet`` (a string or a sequence, no
        repeats) in its order. :data:`BYTES` (``Vocab.from_alphabet(BYTES)``) is the byte-level one: id ``b + 2``
        for byte ``b``.

        >>> v = Vocab.from_alphabet("abc")
        >>> len(v), v.encode(["c", "z"])
        (5, [4, 1])
        """
        return cls([cls.PAD, cls.UNK, *alphabet])

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], *, min_count: int = 1,
              max_size: int | None = None) -> "Vocab":
        """Count tokens over ``token_lists`` and keep those seen at least ``min_count`` times.

        Args:
          token_lists: tokenised sentences, e.g. ``[kim_tokenize(s) for s in texts]``.
          min_count: minimum count for a token to get its own id (>= 1); rarer ones map to ``<unk>``.
          max_size: at most this many ids in total, ``<pad>`` and ``<unk>`` included (>= 2); the
            most frequent tokens are kept. ``None``: no limit.

        Literal ``"<pad>"`` / ``"<unk>"`` tokens in the data are not counted as ordinary tokens.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1; got min_count={min_count!r}.")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2):
            raise ValueError(f"max_size must be None or an int >= 2 (room for <pad> and <unk>); "
                             f"got max_size={max_size!r}.")
        if isinstance(token_lists, str):
            raise TypeError("token_lists must be an iterable of token lists, not a str; "
                            "tokenise first, e.g. [kim_tokenize(s) for s in texts].")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError(f"token_lists must hold lists of tokens, got the str {tokens[:40]!r}; "
                                f"tokenise first.")
            counts.update(tokens)
        counts.pop(cls.PAD, None)
        counts.pop(cls.UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([cls.PAD, cls.UNK, *kept], counts=dict(counts), min_count=min_count, max_size=max_size)

    # -- lookups ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token) -> bool:
        return token in self._stoi

    def __iter__(self):
        return iter(self._itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self._itos == other._itos

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._itos[2:7])
        return f"Vocab(size={len(self)}, min_count={self.min_count}, tokens=[<pad>, <unk>, {head}, ...])"

    @property
    def tokens(self) -> list[str]:
        """All tokens, index = id (a copy)."""
        return list(self._itos)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or :attr:`unk_id` when it has none."""
        return self._stoi.get(token, self.unk_id)

    def id_to_token(self, i: int) -> str:
        """The token with id ``i`` (``0 <= i < len(self)``)."""
        if not 0 <= int(i) < len(self._itos):
            raise IndexError(f"id {i} out of range for a vocabulary of size {len(self._itos)} "
                             f"(expected 0 <= id < {len(self._itos)}).")
        return self._itos[int(i)]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids; unknown tokens -> ``1`` (``<unk>``)."""
        get, unk = self._stoi.get, self.unk_id
        return [get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ``ids`` (``0`` -> ``"<pad>"``, ``1`` -> ``"<unk>"``)."""
        return [self.id_to_token(i) for i in ids]

    def oov_rate(self, token_lists: Iterable[Iterable[str]]) -> float:
        """Fraction of tokens in ``token_lists`` that map to ``<unk>`` (0.0 for no tokens)."""
        n = unk = 0
        for tokens in token_lists:
            for t in tokens:
                n += 1
                unk += t not in self._stoi
        return unk / n if n else 0.0

    # -- persistence --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """``{"format", "tokens", "min_count", "max_size", "counts"}``: what :meth:`save` writes."""
        return {"format": _FORMAT, "tokens": self._itos, "min_count": self.min_count,
                "max_size": self.max_size, "counts": self.counts}

    def save(self, path: PathLike) -> None:
        """Write the vocabulary as JSON (UTF-8): all tokens in id order, ``min_count``, ``counts``. ``path`` may be
        local or remote (``gs://``; ``etils.epath``)."""
        epath.Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: PathLike) -> "Vocab":
        """Read a vocabulary written by :meth:`save`."""
        data = json.loads(epath.Path(path).read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("format") == SourceVocab.FORMAT:
            return SourceVocab.from_json(data)
        if not isinstance(data, dict) or "tokens" not in data:
            raise ValueError(f"{path}: not a vocabulary file (expected a JSON object with 'tokens', "
                             f"written by Vocab.save).")
        return cls(data["tokens"], counts=data.get("counts"), min_count=data.get("min_count", 1),
                   max_size=data.get("max_size"))


class SourceVocab(Vocab):
    """The vocabulary of an imported model (:mod:`jaxconv.imports`): the source's own ids, whatever they are.

    Unlike :class:`Vocab`, id 0 and 1 need not be ``<pad>`` and ``<unk>``: ``tokens[i]`` is the word of id ``i``
    (``"<pad>"`` for id 0 when the source has none, ``"<unused:i>"`` for an id no word has), and an unknown word
    becomes ``unk_id``, or is dropped when ``unk_id`` is None (a Keras ``Tokenizer`` without ``oov_token``).
    ``num_words``: ids at or above it are unknown too (a Keras ``Tokenizer(num_words=...)``); default every id.

    >>> v = SourceVocab(["<pad>", "the", "film"], unk_id=None)
    >>> v.encode(["the", "zzz", "film"]), v.decode([2, 0])
    ([1, 2], ['film', '<pad>'])
    """

    FORMAT = "jaxconv.source_vocab/1"

    def __init__(self, tokens: Sequence[str], *, unk_id: int | None, num_words: int | None = None):
        tokens = [str(t) for t in tokens]
        if not tokens:
            raise ValueError("SourceVocab: tokens is empty; expected the word of every id from 0.")
        self._itos = tokens
        self._stoi = {}
        for i, t in enumerate(tokens):
            self._stoi.setdefault(t, i)
        if unk_id is not None and not 0 <= int(unk_id) < len(tokens):
            raise ValueError(f"SourceVocab: unk_id={unk_id} is outside the ids [0, {len(tokens)}).")
        self.unk_id = None if unk_id is None else int(unk_id)
        self.num_words = None if num_words is None else int(num_words)
        self.counts, self.min_count, self.max_size = {}, 1, None

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token``; ``unk_id`` (None: dropped) when the vocabulary lacks it or its id is at or above
        ``num_words``."""
        i = self._stoi.get(token)
        if i is None or (self.num_words is not None and i >= self.num_words):
            return self.unk_id
        return i

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown ones become ``unk_id``, or are left out when it is None."""
        ids = (self.token_to_id(t) for t in tokens)
        return [i for i in ids if i is not None]

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._itos[1:6])
        unk = "dropped" if self.unk_id is None else f"id {self.unk_id}"
        return f"SourceVocab(size={len(self)}, unknown words: {unk}, tokens=[{self._itos[0]!r}, {head}, ...])"

    def to_json(self) -> dict:
        """``{"format", "tokens", "unk_id", "num_words"}``: what :meth:`save` writes."""
        return {"format": self.FORMAT, "tokens": self._itos, "unk_id": self.unk_id, "num_words": self.num_words}

    @classmethod
    def from_json(cls, data: Mapping) -> "SourceVocab":
        return cls(data["tokens"], unk_id=data.get("unk_id"), num_words=data.get("num_words"))


#: The 256 bytes as one-character tokens (what :func:`jaxconv.data.byte_tokenize` yields), in byte order.
BYTES = tuple(chr(b) for b in range(256))

#: Byte-level vocabulary (``Vocab.from_alphabet(BYTES)``): id 0 is padding, 1 unknown
#: (never produced by bytes), byte ``b`` is id ``b + 2``.
BYTE_VOCAB_SIZE = 258
_FIRST_BYTE_ID = 2


def encode_bytes(text: str) -> np.ndarray:
    """UTF-8 bytes of ``text`` as ids ``byte + 2`` (int32 ``(n,)``): what the byte vocabulary gives.

    >>> encode_bytes("hi").tolist()
    [106, 107]
    """
    return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32) + _FIRST_BYTE_ID


def decode_bytes(ids) -> str:
    """Inverse of :func:`encode_bytes` (padding and unknown ids dropped, invalid UTF-8 replaced).

    >>> decode_bytes([0, 106, 107])
    'hi'
    """
    ids = np.asarray(ids, np.int64)
    return bytes((ids[ids >= _FIRST_BYTE_ID] - _FIRST_BYTE_ID).astype(np.uint8).tolist()).decode("utf-8",
                                                                                               errors="replace")


#: Zhang et al. (2015)'s alphabet: 26 letters, 10 digits, 32 other characters and the new line, 69 in all (the
#: paper says 70: its list, and the released code's, has "-" twice). Anything else, the space included, is
#: quantized as an all-zero vector (the vocabulary's unknown id).
ZHANG_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789" + "-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{}" + "\n"

#: Fixed vocabularies by name (``config.data.alphabet``): :meth:`Vocab.from_alphabet` of each.
ALPHABETS = {"zhang": ZHANG_ALPHABET, "bytes": BYTES}


def encode_texts(texts: Iterable[str], vocab: Vocab, tokenizer) -> list[list[int]]:
    """``[vocab.encode(tokenizer(t)) for t in texts]``; ``tokenizer`` is a callable or a name.

    >>> v = Vocab.build([["a", "b"]])
    >>> encode_texts(["a b c"], v, "whitespace")
    [[2, 3, 1]]
    """
    from jaxconv.data.tokenize import get_tokenizer

    tok = get_tokenizer(tokenizer)
    return [vocab.encode(tok(t)) for t in texts]
