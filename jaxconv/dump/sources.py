"""The texts a dump runs through the model, in a fixed order: a split of the run's dataset, or a text file.

A source is read twice: :meth:`TextSource.scan` once for the facts the store's shape needs (how many examples,
the longest, whether they carry labels) and a fingerprint, then :meth:`TextSource.examples` streams them from any
row (a resumed dump starts at its last complete chunk). A text file is never held in memory whole.

Text files (``--input FILE``): one sentence per line, UTF-8 (Latin-1 when the file is not valid UTF-8, decided for
the whole file, as :func:`jaxconv.data.read_labeled_lines`); UTF-16 or UTF-32 when the file starts with its
byte-order mark; blank lines are skipped. A file with a NUL byte (a binary file, or UTF-16/32 without a byte-order
mark) is refused, naming the file and the line: what is stored is always the text as written, never bytes read
in the wrong encoding. When every non-blank line
starts with an integer and a space, that integer is the line's label; otherwise no line has one (a sentence may
well begin with a number).
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Sequence

from etils import epath

__all__ = ["Scan", "TextSource", "SplitSource", "FileSource", "SPLITS"]

#: The splits ``--split`` may name.
SPLITS = ("test", "dev", "train")
# "<int> <text>", split as jaxconv.data.read_labeled_lines splits (on spaces and tabs only: "\x85" is text).
_LABELLED = re.compile(r"([+-]?[0-9]+)[ \t]+(.+)$", re.S)
_STRIP = " \t\r\n\f\v"
# Byte-order marks that name the encoding, longest first (UTF-32 LE starts with UTF-16 LE's mark).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


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

    def _bom_encoding(self) -> str | None:
        with self.path.open("rb") as f:
            head = f.read(4)
        return next((name for bom, name in _BOMS if head.startswith(bom)), None)

    def _lines(self) -> Iterator[tuple[int, str]]:
        """``(line number, text)``: decoded with ``self.encoding`` (lines split on ``\\n`` alone)."""
        with self.path.open("rb") as f:
            if self.encoding in ("utf-16", "utf-32"):
                try:
                    for lineno, text in enumerate(io.TextIOWrapper(f, encoding=self.encoding, newline="\n"), 1):
                        yield lineno, text
                except UnicodeDecodeError as e:
                    raise ValueError(f"--input {self.path} starts with a {self.encoding.upper()} byte-order mark "
                                     f"but is not valid {self.encoding.upper()} ({e.reason}); expected a text file "
                                     f"in one encoding.") from None
                return
            for lineno, raw in enumerate(f, 1):
                yield lineno, raw.decode(self.encoding)

    def _text(self, lineno: int, text: str) -> str:
        if "\x00" in text:
            raise ValueError(f"--input {self.path}:{lineno} holds a NUL byte: a binary file, or UTF-16/32 text "
                             f"without a byte-order mark; expected text (UTF-8, Latin-1, or UTF-16/32 starting with "
                             f"its byte-order mark).")
        return text.lstrip("\ufeff").strip(_STRIP) if lineno == 1 else text.strip(_STRIP)

    def scan(self, tokenize, num_classes) -> Scan:
        if not self.path.is_file():
            raise FileNotFoundError(f"--input {self.path}: no such file.")
        self.encoding = self._bom_encoding() or "utf-8"
        if self.encoding == "utf-8":
            try:
                for _ in self._lines():
                    pass
            except UnicodeDecodeError:
                self.encoding = "latin-1"
        count = unlabelled = lines = 0
        for lineno, line in self._lines():
            lines = lineno
            text = self._text(lineno, line)
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
        for lineno, line in self._lines():
            text = self._text(lineno, line)
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
