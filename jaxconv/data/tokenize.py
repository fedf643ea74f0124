"""Tokenizers: Kim (2014)'s ``clean_str`` / ``clean_str_sst`` and plain whitespace splitting.

Kim's ``process_data.py`` (github.com/yoonkim/CNN_sentence) cleans a sentence with these regexes, in
this order, then splits on spaces:

1. every character outside ``[A-Za-z0-9(),!?'`]`` -> a space;
2. clitics split off: ``'s 've n't 're 'd 'll`` -> `` 's`` etc.;
3. ``, ! ( ) ?`` surrounded by spaces;
4. runs of two or more whitespace characters -> one space; strip; lower-case (all datasets except
   TREC, which keeps case).

One deliberate difference: Kim's Python 2 replacement strings ``" \\( "``, ``" \\) "``, ``" \\? "``
kept the backslash, so his vocabularies hold the tokens ``\\(``, ``\\)``, ``\\?``. Here they are the
bare ``(``, ``)``, ``?``. This renames three tokens and changes nothing else.

``clean_str_sst`` (for the already tokenised, lower-cased SST files) does only step 1, the space
collapse, strip and lower-case.

>>> kim_tokenize("It's a test, isn't it?")
['it', "'s", 'a', 'test', ',', 'is', "n't", 'it', '?']
>>> clean_str_kim("What's the (real) name?", lower=False)
"What 's the ( real ) name ?"
>>> clean_str_sst("a well-made , funny film -- é !")
'a well made , funny film !'
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "clean_str_kim",
    "clean_str_sst",
    "kim_tokenize",
    "sst_tokenize",
    "whitespace_tokenize",
    "lower_tokenize",
    "keras_tokenizer",
    "KERAS_FILTERS",
    "char_tokenize",
    "byte_tokenize",
    "get_tokenizer",
    "detokenize",
    "TOKENIZERS",
    "JOINERS",
]

Tokenizer = Callable[[str], list[str]]

_NON_VOCAB = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CLITICS = [(re.compile(r"'s"), " 's"), (re.compile(r"'ve"), " 've"), (re.compile(r"n't"), " n't"),
            (re.compile(r"'re"), " 're"), (re.compile(r"'d"), " 'd"), (re.compile(r"'ll"), " 'll")]
_PUNCT = [(re.compile(r","), " , "), (re.compile(r"!"), " ! "), (re.compile(r"\("), " ( "),
          (re.compile(r"\)"), " ) "), (re.compile(r"\?"), " ? ")]
_SPACES = re.compile(r"\s{2,}")


def clean_str_kim(s: str, *, lower: bool = True) -> str:
    """Kim (2014)'s ``clean_str``: the cleaned sentence, tokens separated by single spaces.

    Args:
      s: a sentence.
      lower: lower-case the result (Kim does so for every dataset but TREC).

    >>> clean_str_kim("We'll see: they've gone!!")
    "we 'll see they 've gone ! !"
    """
    s = _NON_VOCAB.sub(" ", s)
    for pattern, repl in _CLITICS:
        s = pattern.sub(repl, s)
    for pattern, repl in _PUNCT:
        s = pattern.sub(repl, s)
    s = _SPACES.sub(" ", s).strip()
    return s.lower() if lower else s


def clean_str_sst(s: str, *, lower: bool = True) -> str:
    """Kim (2014)'s ``clean_str_sst``: characters outside ``[A-Za-z0-9(),!?'`]`` -> space, collapse, lower."""
    s = _SPACES.sub(" ", _NON_VOCAB.sub(" ", s)).strip()
    return s.lower() if lower else s


def kim_tokenize(s: str, *, lower: bool = True) -> list[str]:
    """``clean_str_kim(s, lower=lower).split()``."""
    return clean_str_kim(s, lower=lower).split()


def sst_tokenize(s: str, *, lower: bool = True) -> list[str]:
    """``clean_str_sst(s, lower=lower).split()``."""
    return clean_str_sst(s, lower=lower).split()


def whitespace_tokenize(s: str) -> list[str]:
    """Split on runs of whitespace; nothing else.

    >>> whitespace_tokenize("  a  b\\tc ")
    ['a', 'b', 'c']
    """
    return s.split()


def _kim_cased(s: str) -> list[str]:
    return kim_tokenize(s, lower=False)


def char_tokenize(s: str, *, lower: bool = True) -> list[str]:
    """One token per character, lower-cased (Zhang et al. 2015 quantize lower-case characters).

    >>> char_tokenize("Hi, you")
    ['h', 'i', ',', ' ', 'y', 'o', 'u']
    """
    return list(s.lower() if lower else s)


def _chars_cased(s: str) -> list[str]:
    return char_tokenize(s, lower=False)


def byte_tokenize(s: str) -> list[str]:
    """One token per UTF-8 byte, each written as the Latin-1 character of that byte (so every byte is a distinct
    one-character token and :func:`detokenize` gives the text back).

    >>> byte_tokenize("é!")
    ['Ã', '©', '!']
    >>> detokenize("bytes", byte_tokenize("é!"))
    'é!'
    """
    return list(s.encode("utf-8").decode("latin-1"))


#: The characters a Keras ``Tokenizer`` / ``text_to_word_sequence`` turns into spaces by default.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def keras_tokenizer(*, filters: str = KERAS_FILTERS, lower: bool = True, split: str = " ") -> Tokenizer:
    """The word splitting of Keras' text utilities (``keras.preprocessing.text.text_to_word_sequence``, which a
    ``Tokenizer`` uses): lower-case, every character of ``filters`` becomes ``split``, split on it, drop empties.

    >>> keras_tokenizer()("Don't stop, it's GOOD!")
    ["don't", 'stop', "it's", 'good']
    """
    table = str.maketrans({c: split for c in filters})

    def tokenize(s: str) -> list[str]:
        s = s.lower() if lower else s
        return [w for w in s.translate(table).split(split) if w]

    return tokenize


def lower_tokenize(s: str) -> list[str]:
    """Lower-case, then split on whitespace."""
    return s.lower().split()


#: Tokenizer names accepted by :func:`get_tokenizer`.
TOKENIZERS: dict[str, Tokenizer] = {
    "kim": kim_tokenize,              # MR, CR, SUBJ, MPQA in Kim (2014)
    "kim_cased": _kim_cased,          # TREC in Kim (2014)
    "sst": sst_tokenize,              # SST-1 / SST-2 in Kim (2014)
    "whitespace": whitespace_tokenize,
    "lower": lower_tokenize,          # lower-case, then whitespace (imported models)
    "keras": keras_tokenizer(),       # Keras' text_to_word_sequence / Tokenizer defaults (imported models)
    "chars": char_tokenize,           # Zhang et al. (2015)'s character-level models
    "chars_cased": _chars_cased,
    "bytes": byte_tokenize,           # byte-level language models
}

#: How the tokens of each tokenizer join back into text: words with spaces, characters and bytes as they are.
JOINERS: dict[str, str] = {"chars": "", "chars_cased": "", "bytes": ""}


def detokenize(name: str, tokens) -> str:
    """The text of ``tokens`` from the tokenizer ``name``: words joined by spaces, characters joined as they are,
    bytes decoded as UTF-8 (a span that cuts a character shows the replacement character).

    >>> detokenize("kim", ["a", "good", "film"]), detokenize("chars", ["o", "k"])
    ('a good film', 'ok')
    """
    text = JOINERS.get(name, " ").join(tokens)
    if name == "bytes":
        return text.encode("latin-1", errors="replace").decode("utf-8", errors="replace")
    return text


def get_tokenizer(name: str | Tokenizer) -> Tokenizer:
    """The tokenizer called ``name``: ``"kim"``, ``"kim_cased"``, ``"sst"``, ``"whitespace"``, ``"chars"``,
    ``"chars_cased"`` or ``"bytes"``.

    A callable is returned unchanged.

    >>> get_tokenizer("kim")("Don't stop")
    ['do', "n't", 'stop']

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if callable(name):
        return name
    try:
        return TOKENIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown tokenizer name={name!r}; known: {sorted(TOKENIZERS)}.") from None
