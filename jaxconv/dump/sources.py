"""The texts a dump runs through the model, in a fixed order: a split of the run's dataset, or a file.

A source is read twice: :meth:`TextSource.scan` once for the facts the store's shape needs (how many examples,
the longest, whether they carry labels) and a fingerprint, then :meth:`TextSource.examples` streams them from any
row (a resumed dump starts at its last complete chunk).

Files (``--input FILE``, ``--format``) are read as training reads its own files (:mod:`jaxconv.data.files`): the
same formats (``label_text``, ``tsv``, ``csv``, ``jsonl``, with the run's ``text_field`` / ``label_field``), the
same decoding (:mod:`jaxconv.data.lines`: UTF-8, Latin-1, UTF-16/32 by byte-order mark, ``*.gz`` through gzip,
universal newlines; a binary file is refused naming the file and the line, so what is stored is always the text as
written). The format is ``--format``; by default the run's own ``config.data.format``, and ``"auto"`` goes by the
extension, then the first non-blank line, as training does -- except that a file guessed to be ``label_text`` has
labels only when every non-blank line starts with an integer, or every one with one of the run's label names;
otherwise each line is one sentence without a label (a sentence may well begin with a number). ``--format text``
reads one sentence per line, never a label. A TSV/CSV header is never an example.

Labels are the dump's labels, mapped to the run's classes by :func:`class_id`; a label the run does not know is
refused, naming it. ``text`` and ``label_text`` files are streamed line by line (never held in memory whole); a
TSV, CSV or JSON-lines file is read whole, as training reads it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterator, Sequence

from etils import epath

from jaxconv._format import quote
from jaxconv.data.files import FORMATS, detect_format, extension_format, read_examples
from jaxconv.data.lines import STRIP, binary_message, bom_encoding, is_gzip_name
from jaxconv.data.readers import INT_LABEL, split_label_text

__all__ = ["Scan", "TextSource", "SplitSource", "FileSource", "SPLITS", "INPUT_FORMATS", "class_id"]

#: The splits ``--split`` may name.
SPLITS = ("test", "dev", "train")
#: What ``--format`` may be: training's formats, and ``text`` (one sentence per line, no labels).
INPUT_FORMATS = FORMATS + ("text",)
_STRIP = STRIP


def class_id(label: int | str, names: Sequence[str] | None, num_classes: int) -> int | None:
    """The run's class of a label as a file writes it, or None when the run has no such class.

    A label that is one of the run's ``names`` (both NFC-normalised) is that class. When the names are all integers
    (a run trained on ``-1``/``1`` or ``1..5`` labels), an integer label maps through them, as training mapped it.
    Otherwise an integer label is the class id itself, ``0 .. num_classes-1``.

    >>> class_id("pos", ["neg", "pos"], 2), class_id("1", ["neg", "pos"], 2), class_id("+1", ["-1", "1"], 2)
    (1, 1, 1)
    >>> class_id("0", ["-1", "1"], 2), class_id("meh", ["neg", "pos"], 2), class_id(2, None, 2)
    (None, None, None)
    """
    text = unicodedata.normalize("NFC", label.strip(_STRIP)) if isinstance(label, str) else str(label)
    integer = isinstance(label, int) or INT_LABEL.fullmatch(text) is not None
    if names:
        if all(INT_LABEL.fullmatch(str(n)) for n in names):
            values = [int(n) for n in names]
            return values.index(int(text)) if integer and int(text) in values else None
        normalised = [unicodedata.normalize("NFC", str(n)) for n in names]
        if text in normalised:
            return normalised.index(text)
    if integer and 0 <= int(text) < num_classes:
        return int(text)
    return None


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
    """A file, local or remote (``etils.epath``), read as the module docstring says.

    Args:
      path: the file.
      format: one of :data:`INPUT_FORMATS`; ``"auto"`` as training guesses, ``"text"``: one sentence per line.
      text_field, label_field, on_error: as in :func:`jaxconv.data.read_examples` (the run's ``config.data``).
      label_names: the run's class names (None: the classes are ``0 .. C-1``), for :func:`class_id`.
      origin: where ``format`` came from, for messages (``"--format"``, ``"the run's config.data.format"``).
    """

    def __init__(self, path, *, format: str = "auto", text_field: str = "", label_field: str = "label",
                 on_error: str = "raise", label_names: Sequence[str] | None = None, origin: str = "--format"):
        if format not in INPUT_FORMATS:
            raise ValueError(f"--format {quote(format)} is not known; expected one of {', '.join(INPUT_FORMATS)}.")
        self.path = epath.Path(path)
        self.name = self.path.stem
        self.description = f"file {self.path}"
        self.format, self.origin = format, origin
        self.text_field, self.label_field, self.on_error = text_field, label_field, on_error
        self.label_names = list(label_names) if label_names else None
        self.encoding: str | None = None
        self.labelled: bool | None = None
        self.read_as: str | None = None                  # the format read: text, label_text, tsv, csv or jsonl
        self._table: list[tuple[int, str, int]] | None = None
        self._num_classes = 0

    def _open(self):
        f = self.path.open("rb")
        return gzip.GzipFile(fileobj=f, mode="rb") if is_gzip_name(self.path) else f

    def _bom_encoding(self) -> str | None:
        with self._open() as f:
            return bom_encoding(f.read(4))

    def _lines(self) -> Iterator[tuple[int, str]]:
        """``(line number, text)``: decoded with ``self.encoding``; universal newlines (``\\n``, ``\\r\\n``, ``\\r``)."""
        with self._open() as f:
            if self.encoding in ("utf-16", "utf-32"):
                try:
                    for lineno, text in enumerate(io.TextIOWrapper(f, encoding=self.encoding, newline=None), 1):
                        yield lineno, text
                except UnicodeDecodeError as e:
                    raise ValueError(f"--input {self.path} starts with a {self.encoding.upper()} byte-order mark "
                                     f"but is not valid {self.encoding.upper()} ({e.reason}); expected a text file "
                                     f"in one encoding.") from None
                return
            lineno = 0
            for raw in f:
                for part in raw.rstrip(b"\n").replace(b"\r\n", b"\r").split(b"\r") if b"\r" in raw else [raw]:
                    lineno += 1
                    yield lineno, part.decode(self.encoding)

    def _text(self, lineno: int, text: str) -> str:
        if "\x00" in text:
            raise ValueError(binary_message(f"--input {self.path}:{lineno}"))
        return text.lstrip("\ufeff").strip(_STRIP) if lineno == 1 else text.strip(_STRIP)

    def _class(self, lineno: int, label, num_classes: int) -> int:
        y = class_id(label, self.label_names, num_classes)
        if y is None:
            known = self.label_names if self.label_names else f"0..{num_classes - 1}"
            raise ValueError(f"--input {self.path}:{lineno}: label {quote(label)} is not one of the model's classes "
                             f"({quote(known)}); fix the line, or read the file without labels with --format text.")
        return y

    def _guess(self) -> str:
        """The format to read: ``self.format``, or for ``"auto"`` training's guess (extension, first line)."""
        if self.format != "auto":
            return self.format
        if extension_format(self.path) is not None:
            return extension_format(self.path)
        first = next((text for lineno, line in self._lines() if (text := self._text(lineno, line))), "")
        return detect_format(self.path, [first], self.label_field)

    def _read_table(self, fmt: str, num_classes: int) -> None:
        try:
            ex = read_examples(self.path, format=fmt, text_field=self.text_field, label_field=self.label_field,
                               on_error=self.on_error)
        except ValueError as e:
            origin = "guessed from the file" if self.format == "auto" else f"from {self.origin}"
            raise ValueError(f"--input {e} (format {fmt!r} {origin}; --format picks another: {', '.join(INPUT_FORMATS)}"
                             f", text = one sentence per line)") from None
        self.encoding = ex.encoding
        self._table = [(n, t, self._class(n, y, num_classes)) for n, t, y in zip(ex.lines, ex.texts, ex.labels)]
        self.labelled = True

    def scan(self, tokenize, num_classes) -> Scan:
        if self.path.is_dir():
            raise IsADirectoryError(f"--input {self.path} is a directory; expected a file of sentences.")
        if not self.path.is_file():
            raise FileNotFoundError(f"--input {self.path}: no such file.")
        self.encoding = self._bom_encoding() or "utf-8"
        if self.encoding == "utf-8":
            try:
                for _ in self._lines():
                    pass
            except UnicodeDecodeError:
                self.encoding = "latin-1"
        self._num_classes = num_classes
        self.read_as = self._guess()
        if self.read_as in ("tsv", "csv", "jsonl"):
            self._read_table(self.read_as, num_classes)
            h = hashlib.sha256(f"{self.read_as} {self.encoding}\n".encode())
            longest = 0
            for _, text, label in self._table:
                longest = max(longest, len(tokenize(text)))
                h.update(f"{label}\t{text}\n".encode("utf-8", "surrogatepass"))
            return Scan(len(self._table), longest, True, h.hexdigest())
        count = lines = 0
        integers = names = True
        first, tabs = None, set()              # the first sentence, and the tab counts of every non-blank line
        for lineno, line in self._lines():
            lines = lineno
            text = self._text(lineno, line)
            if text:
                count += 1
                first = first or (lineno, text)
                tabs.add(text.count("\t"))
                parsed = split_label_text(text)
                if self.read_as == "label_text" and self.format != "auto" and isinstance(parsed, str):
                    raise ValueError(f"--input {self.path}:{lineno}: {parsed}; expected '<label> <text>' (format "
                                     f"'label_text' from {self.origin}; --format text reads one sentence per line).")
                label = None if isinstance(parsed, str) else parsed[0]
                integers &= label is not None and INT_LABEL.fullmatch(label) is not None
                names &= (label is not None and self.label_names is not None
                          and class_id(label, self.label_names, num_classes) is not None)
        if count == 0:
            raise ValueError(f"--input {self.path} has no sentences ({lines} line(s), all blank); expected one "
                             f"sentence per line, optionally after an integer label.")
        if self.read_as == "text":
            self.labelled = False
        else:
            self.labelled = self.format == "label_text" or integers or names
            self.read_as = "label_text" if self.labelled else "text"
            if not self.labelled and count > 1 and len(tabs) == 1 and 0 not in tabs:
                raise ValueError(
                    f"--input {self.path}:{first[0]}: every line has {tabs.pop()} tab(s), so the first line "
                    f"{quote(first[1])} looks like a TSV header, but it names no label column {quote(self.label_field)} "
                    f"(the run's config.data.label_field); name the columns as the run does to read it as TSV, or give "
                    f"--format text to read each line as one sentence.")
        h = hashlib.sha256(f"{self.encoding} {self.labelled}\n".encode())
        longest = 0
        for lineno, text, label in self._examples():
            longest = max(longest, len(tokenize(text)))
            h.update(f"{label if label is not None else ''}\t{text}\n".encode("utf-8", "surrogatepass"))
        return Scan(count, longest, self.labelled, h.hexdigest())

    def _examples(self) -> Iterator[tuple[int, str, int | None]]:
        if self._table is not None:
            yield from self._table
            return
        for lineno, line in self._lines():
            text = self._text(lineno, line)
            if not text:
                continue
            if self.labelled:
                label, text = split_label_text(text)
                yield lineno, text, self._class(lineno, label, self._num_classes)
            else:
                yield lineno, text, None

    def examples(self, start=0):
        if self.encoding is None or self.labelled is None:
            raise RuntimeError("FileSource.scan() must run before examples().")
        for i, (_, text, label) in enumerate(self._examples()):
            if i >= start:
                yield text, label
