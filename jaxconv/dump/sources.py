"""The texts a dump runs through the model, in a fixed order: a split of the run's dataset, or a text file.

A source is read twice: :meth:`TextSource.scan` once for the facts the store's shape needs (how many examples,
the longest, whether they carry labels) and a fingerprint, then :meth:`TextSource.examples` streams them from any
row (a resumed dump starts at its last complete chunk). A text file is never held in memory whole.

Text files (``--input FILE``): one sentence per line, UTF-8 (Latin-1 when the file is not valid UTF-8, decided for
the whole file, as :func:`jaxconv.data.read_labeled_lines`); blank lines are skipped. When every non-blank line
starts with an integer and a space, that integer is the line's label; otherwise no line has one (a sentence may
well begin with a number).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence

from etils import epath

__all__ = ["Scan", "TextSource", "SplitSource", "FileSource", "SPLITS"]

#: The splits ``--split`` may name.
SPLITS = ("test", "dev", "train")
# "<int> <text>", split as jaxconv.data.read_labeled_lines splits (on spaces and tabs only: "\x85" is text).
_LABELLED = re.compile(r"([+-]?[0-9]+)[ \t]+(.+)$", re.S)
_STRIP = " \t\r\n\f\v"


@dataclasses.dataclass(frozen=True)
class Scan:
    """What one pass over a source found: ``num_examples``, ``max_tokens`` (tokens of the longest example),
    ``has_labels``, and ``fingerprint`` (sha256 of the texts and labels, to tell a resumed dump's input apart)."""

    num_examples: int
    max_tokens: int
    has_labels: bool
    fingerprint: str


class TextSource:
    """Examples ``(text, label or None)`` in a fixed order. ``name``: the dump's default name; ``description``:
    where they come from (stored in the dump's attributes)."""

    name: str
    description: str

    def scan(self, tokenize: Callable[[str], list[str]], num_classes: int) -> Scan:
        raise NotImplementedError

    def examples(self, start: int = 0) -> Iterator[tuple[str, int | None]]:
        raise NotImplementedError


class SplitSource(TextSource):
    """One split of the run's dataset, as training saw it (same fold and hold-out)."""

    def __init__(self, split: str, texts: Sequence[str], labels: Sequence[int] | None, description: str):
        self.name, self.description = split, description
        self.texts, self.labels = list(texts), (list(labels) if labels is not None else None)

    def scan(self, tokenize, num_classes) -> Scan:
        h = hashlib.sha256()
        longest = 0
        for i, text in enumerate(self.texts):
            longest = max(longest, len(tokenize(text)))
            h.update(f"{self.labels[i] if self.labels else ''}\t{text}\n".encode("utf-8", "surrogatepass"))
        return Scan(len(self.texts), longest, self.labels is not None, h.hexdigest())

    def examples(self, start=0):
        for i in range(start, len(self.texts)):
            yield self.texts[i], (self.labels[i] if self.labels is not None else None)


class FileSource(TextSource):
    """A text file, local or remote (``etils.epath``), streamed line by line (see the module docstring)."""

    def __init__(self, path):
        self.path = epath.Path(path)
        self.name = self.path.stem
        self.description = f"file {self.path}"
        self.encoding: str | None = None
        self.labelled: bool | None = None

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                yield lineno, raw

    def _text(self, lineno: int, raw: bytes) -> str:
        text = raw.decode(self.encoding)
        return text.lstrip("\ufeff").strip(_STRIP) if lineno == 1 else text.strip(_STRIP)

    def scan(self, tokenize, num_classes) -> Scan:
        if not self.path.is_file():
            raise FileNotFoundError(f"--input {self.path}: no such file.")
        self.encoding = "utf-8"
        try:
            for _, raw in self._lines():
                raw.decode("utf-8")
        except UnicodeDecodeError:
            self.encoding = "latin-1"
        count = unlabelled = lines = 0
        for lineno, raw in self._lines():
            lines = lineno
            text = self._text(lineno, raw)
            if text:
                count += 1
                unlabelled += _LABELLED.match(text) is None
        if count == 0:
            raise ValueError(f"--input {self.path} has no sentences ({lines} line(s), all blank); expected one "
                             f"sentence per line, optionally after an integer label.")
        self.labelled = unlabelled == 0
        h = hashlib.sha256(f"{self.encoding} {self.labelled}\n".encode())
        longest = 0
        for lineno, text, label in self._examples():
            if label is not None and not 0 <= label < num_classes:
                raise ValueError(f"--input {self.path}:{lineno}: label {label} is outside the model's classes "
                                 f"0..{num_classes - 1}; drop the labels or fix the line.")
            longest = max(longest, len(tokenize(text)))
            h.update(f"{label if label is not None else ''}\t{text}\n".encode("utf-8", "surrogatepass"))
        return Scan(count, longest, self.labelled, h.hexdigest())

    def _examples(self) -> Iterator[tuple[int, str, int | None]]:
        for lineno, raw in self._lines():
            text = self._text(lineno, raw)
            if not text:
                continue
            if self.labelled:
                m = _LABELLED.match(text)
                yield lineno, m.group(2), int(m.group(1))
            else:
                yield lineno, text, None

    def examples(self, start=0):
        if self.encoding is None:
            raise RuntimeError("FileSource.scan() must run before examples().")
        for i, (_, text, label) in enumerate(self._examples()):
            if i >= start:
                yield text, label
