"""Your own labelled files: ``<label> <text>`` lines, TSV, CSV or JSON lines, with integer or string labels.

Formats (``format=``, or ``"auto"``):

=============  ============================================================================================
``label_text``  ``<label> <text>`` per line, the label up to the first space or tab (Kim's files).
``tsv``         a header line naming the columns, then one row per line, fields separated by tabs (no quoting).
``csv``         a header row, then comma-separated rows with the usual CSV quoting (a quoted field may span
                lines).
``jsonl``       one JSON object per line.
=============  ============================================================================================

The text is the column (or key) ``text_field``; by default ``text``, else ``sentence``. The label is
``label_field`` (default ``label``). ``"auto"`` goes by the file's extension (``.tsv``, ``.csv``, ``.jsonl`` /
``.ndjson`` / ``.json``, also before ``.gz``), else by its first non-blank line: ``{`` starts JSON lines; a tab-separated header naming
the label column is TSV, a comma-separated one CSV; anything else is ``label_text`` -- unless that reading gives
more than 50 different labels, and more than one per two examples, which is refused as a wrong guess (a table with
other column names) instead of trained on; so is a guessed ``label_text`` file whose first line looks like a
tab-separated header (``sentence<TAB>sentiment``: its "label" occurs on no other line).

Labels may be integers or strings. Over the training file's labels: integers ``0 .. C-1`` are the class ids;
other integers (``-1``/``1``, ``1..5``) and strings become ids in sorted order (numeric for integers), and their
names are kept in :attr:`TextDataset.label_names`. Every dev/test label must occur in the training file.

Decoding (UTF-16/32 by byte-order mark, ``.gz``, binary files refused) and malformed lines follow
:mod:`jaxconv.data.lines` (``on_error``), with ``file:line`` in every message.

String labels are Unicode-normalised (NFC) as they are read, so ``"café"`` written precomposed (NFC) or decomposed
(NFD) is one class. Texts are kept exactly as written (stripped of surrounding whitespace): the tokenizer decides
what counts as the same word, and a reader never alters text.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "reviews.tsv")
>>> _ = open(p, "w").write("text\\tlabel\\na fine film\\tpos\\na dull one\\tneg\\nfine again\\tpos\\n")
>>> ds = load_files(p)
>>> ds.label_names, ds.train.labels, ds.extras["formats"]
(['neg', 'pos'], [1, 0, 1], {'train': 'tsv'})
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from jaxconv._format import quote
from jaxconv.data.lines import STRIP, LineProblems, check_on_error, decode_lines, is_gzip_name, snippet
from jaxconv.data.readers import INT_LABEL, LabeledText, TextDataset, split_label_text

__all__ = ["FORMATS", "TEXT_FIELDS", "Examples", "read_examples", "detect_format", "extension_format", "load_files"]

PathLike = Union[str, "os.PathLike[str]"]

#: The accepted ``format=`` values.
FORMATS = ("auto", "label_text", "tsv", "csv", "jsonl")
#: The text columns tried, in order, when ``text_field`` is empty.
TEXT_FIELDS = ("text", "sentence")
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
#: With format="auto", a file read as label_text with more distinct labels than this (and than half its examples)
#: is refused as a wrong guess rather than trained on.
MAX_GUESSED_LABELS = 50
_EXPECTED = {
    "label_text": "expected '<label> <text>'",
    "tsv": "expected tab-separated fields under the header",
    "csv": "expected comma-separated fields under the header",
    "jsonl": "expected one JSON object per line",
}


@dataclass(frozen=True)
class Examples:
    """The examples of one file, labels as written.

    Attributes:
      texts: ``N`` texts (stripped of surrounding whitespace).
      labels: ``N`` labels: ``int`` (JSON numbers) or ``str`` as in the file.
      lines: ``N`` line numbers (1-based; a CSV record's first line).
      path, encoding, format: the file, the encoding used (:func:`jaxconv.data.decode_lines`), the format read.
      skipped: malformed lines skipped with ``on_error="skip"``.
    """

    texts: list[str]
    labels: list[int | str]
    lines: list[int]
    path: str
    encoding: str
    format: str
    skipped: int = 0


def _first_line(lines: Sequence[str]) -> tuple[int, str]:
    for i, line in enumerate(lines):
        if line.strip(STRIP):
            return i, line.strip(STRIP)
    return -1, ""


def _extension(path: PathLike) -> str:
    """The lower-cased extension that names the format: the one before ``.gz`` for a gzip file."""
    p = Path(path)
    return Path(p.stem).suffix.lower() if is_gzip_name(p) else p.suffix.lower()


def extension_format(path: PathLike) -> str | None:
    """The format ``path``'s extension names (``.tsv``, ``.csv``, ``.jsonl`` / ``.ndjson`` / ``.json``, also before
    ``.gz``), or None.

    >>> extension_format("r.tsv.gz"), extension_format("r.ndjson"), extension_format("r.data")
    ('tsv', 'jsonl', None)
    """
    return _EXTENSIONS.get(_extension(path))


def detect_format(path: PathLike, lines: Sequence[str], label_field: str = "label") -> str:
    """``format="auto"``: the format of ``path`` by extension, else by its first non-blank line (module docstring).

    >>> detect_format("x.txt", ['{"text": "hi", "label": 1}']), detect_format("x.txt", ["label,text", "1,hi"])
    ('jsonl', 'csv')
    >>> detect_format("x.all", ["1 a fine film"]), detect_format("x.data", ["text\\tlabel"])
    ('label_text', 'tsv')
    """
    if extension_format(path) is not None:
        return extension_format(path)
    _, first = _first_line(lines)
    if first.startswith("{"):
        return "jsonl"
    if label_field in [c.strip() for c in first.split("\t")] and "\t" in first:
        return "tsv"
    if "," in first:
        try:
            header = next(csv.reader([first]))
        except csv.Error:       # not a CSV header (e.g. an unbalanced quote)
            header = []
        if label_field in [c.strip() for c in header]:
            return "csv"
    return "label_text"


def _columns(header: list[str], path, lineno: int, text_field: str, label_field: str, fmt: str) -> tuple[int, int]:
    """Indices of the text and label columns of a header row."""
    cols = [c.strip(STRIP) for c in header]
    if label_field not in cols:
        raise ValueError(f"{path}:{lineno}: no column named {quote(label_field)} in the {fmt} header {quote(cols)}; "
                         f"name the label column with --config.data.label_field=NAME (Python: label_field=).")
    names = (text_field,) if text_field else TEXT_FIELDS
    text = next((n for n in names if n in cols), None)
    if text is None:
        raise ValueError(f"{path}:{lineno}: no text column {' or '.join(map(quote, names))} in the {fmt} header "
                         f"{quote(cols)}; name it with --config.data.text_field=NAME (Python: text_field=).")
    return cols.index(text), cols.index(label_field)


def _table_rows(lines: list[str], fmt: str, path: str):
    """``(line number, fields)`` per record of a TSV/CSV file; blank lines give ``[]``."""
    if fmt == "tsv":
        for i, line in enumerate(lines, start=1):
            line = line.rstrip("\r")
            yield i, (line.split("\t") if line.strip(STRIP) else [])
        return
    reader = csv.reader(io.StringIO("\n".join(lines) + "\n", newline=""))
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"{path}:{start}: cannot parse the CSV record starting here ({e}).") from None
        yield start, row
        start = reader.line_num + 1


def _read_table(lines, fmt, problems: LineProblems, text_field, label_field, out) -> None:
    header = None
    for lineno, row in _table_rows(lines, fmt, problems.path):
        blank = not any(c.strip(STRIP) for c in row)
        if header is None:
            if not blank:
                header = row
                ti, li = _columns(row, problems.path, lineno, text_field, label_field, fmt)
        elif blank:
            problems.add(lineno, "blank line")
        elif len(row) != len(header):
            problems.add(lineno, f"{len(row)} field(s) where the header has {len(header)}: "
                                 f"{snippet(lines[lineno - 1].strip(STRIP))}")
        else:
            out(lineno, row[ti].strip(STRIP), row[li].strip(STRIP))
    if header is None:
        sep = "\\t" if fmt == "tsv" else ","
        raise ValueError(f"{problems.path}: no header line; {_EXPECTED[fmt]}, e.g. 'text{sep}label'.")


def _read_jsonl(lines, problems: LineProblems, text_field, label_field, out) -> None:
    names = (text_field,) if text_field else TEXT_FIELDS
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip(STRIP)
        if not line:
            problems.add(lineno, "blank line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(lineno, f"not valid JSON ({e.msg} at column {e.colno}): {snippet(line)}")
            continue
        if not isinstance(obj, dict):
            problems.add(lineno, f"expected a JSON object, got {type(obj).__name__}: {snippet(line)}")
            continue
        key = next((n for n in names if n in obj), None)
        if key is None or label_field not in obj:
            what, option = (("text key " + " or ".join(map(repr, names)), "text_field") if key is None
                            else (f"key {label_field!r}", "label_field"))
            problems.add(lineno, f"no {what} in {snippet(line)} (name it with --config.data.{option}=NAME)")
            continue
        text, label = obj[key], obj[label_field]
        if not isinstance(text, str):
            problems.add(lineno, f"{quote(key)} must be a string, got {snippet(json.dumps(text))}")
        elif isinstance(label, bool) or not isinstance(label, (int, str)):
            problems.add(lineno, f"label {label_field!r} must be an integer or a string, got "
                                 f"{snippet(json.dumps(label))}")
        else:
            out(lineno, text.strip(STRIP), label.strip(STRIP) if isinstance(label, str) else label)


def read_examples(path: PathLike, *, format: str = "auto", text_field: str = "", label_field: str = "label",
                  encoding: str | None = None, on_error: str = "raise") -> Examples:
    """Read one labelled file in any of :data:`FORMATS` (module docstring); labels as written.

    Args:
      path: the file.
      format: one of :data:`FORMATS`.
      text_field: the text column/key; ``""``: ``text``, else ``sentence``.
      label_field: the label column/key.
      encoding, on_error: as in :func:`jaxconv.data.read_labeled_lines`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: an unknown format, a header without the columns (naming them), malformed lines
        (``on_error="raise"``), no examples.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not known (config.data.format); expected one of {FORMATS}.")
    check_on_error(on_error)
    p = Path(path)
    lines, used = decode_lines(p, encoding)
    fmt = detect_format(p, lines, label_field) if format == "auto" else format
    guessed = format == "auto" and extension_format(p) is None                    # from the content
    hint = f" (format {fmt!r} guessed from the content; else set --config.data.format)" if guessed else ""
    problems = LineProblems(p, on_error, _EXPECTED[fmt] + hint)
    texts: list[str] = []
    labels: list[int | str] = []
    numbers: list[int] = []

    def out(lineno: int, text: str, label) -> None:
        if isinstance(label, str):
            label = unicodedata.normalize("NFC", label)
        if not text:
            problems.add(lineno, f"empty text (label {quote(label)})")
        elif label == "":
            problems.add(lineno, f"empty label for text {snippet(text)}")
        else:
            texts.append(text)
            labels.append(label)
            numbers.append(lineno)

    if fmt == "label_text":
        for lineno, raw in enumerate(lines, start=1):
            parsed = split_label_text(raw)
            if isinstance(parsed, str):
                problems.add(lineno, parsed)
            else:
                out(lineno, parsed[1], parsed[0])
    elif fmt == "jsonl":
        _read_jsonl(lines, problems, text_field, label_field, out)
    else:
        _read_table(lines, fmt, problems, text_field, label_field, out)
    problems.warn()
    if not texts:
        raise ValueError(f"{p}: no examples found ({len(lines)} line(s), {problems.count} skipped; format {fmt}); "
                         f"{_EXPECTED[fmt]}.")
    distinct = len(set(labels))
    if guessed and fmt == "label_text":
        _refuse_guessed_header(p, lines, labels, label_field)
    if guessed and fmt == "label_text" and distinct > max(MAX_GUESSED_LABELS, len(labels) // 2):
        raise ValueError(f"{p}: read as '<label> <text>' lines (config.data.format='auto'), it has {distinct} different "
                         f"labels in {len(labels)} examples, so the guess is likely wrong: a TSV/CSV file whose label "
                         f"column is not named {label_field!r}? Set --config.data.format (tsv, csv, jsonl, label_text) "
                         f"and --config.data.label_field / --config.data.text_field.")
    return Examples(texts=texts, labels=labels, lines=numbers, path=str(p), encoding=used, format=fmt,
                    skipped=problems.count)


def _refuse_guessed_header(path: Path, lines: Sequence[str], labels: Sequence, label_field: str) -> None:
    """A file guessed to be ``label_text`` whose first line looks like a tab-separated header (a first field that is
    no integer and labels no other line, followed by a tab-separated line) is refused, naming the guess and the fix."""
    i, first = _first_line(lines)
    if "\t" not in first or len(labels) < 2:
        return
    head = first.split("\t")[0].strip(STRIP)
    if head == "" or _is_int(head) or labels.count(head) != 1 or labels[0] != head:
        return
    after = next((line for line in lines[i + 1:] if line.strip(STRIP)), "")
    if "\t" not in after:          # a header is followed by tab-separated rows; this one's text holds a tab
        return
    cols = [c.strip(STRIP) for c in first.split("\t")]
    raise ValueError(f"{path}:{i + 1}: format 'label_text' was guessed from the content (config.data.format='auto'), "
                     f"but the first line {quote(first)} looks like a TSV header without a column named "
                     f"{quote(label_field)} (columns {quote(cols)}); set --config.data.format=tsv and "
                     f"--config.data.label_field=<the label column> (and --config.data.text_field), or "
                     f"--config.data.format=label_text if it is one.")


def _is_int(label) -> bool:
    return isinstance(label, int) or bool(INT_LABEL.fullmatch(label))


def _label_ids(train: Examples) -> tuple[dict, list[str] | None]:
    """The training labels' ``{label: id}`` (keys normalised: ints for integer labels) and names (None: ids as is)."""
    if all(_is_int(y) for y in train.labels):
        values = sorted({int(y) for y in train.labels})
        if values == list(range(len(values))):
            return {v: v for v in values}, None
        return {v: i for i, v in enumerate(values)}, [str(v) for v in values]
    values = sorted({str(y) for y in train.labels})
    return {v: i for i, v in enumerate(values)}, values


def load_files(train: PathLike, dev: PathLike | None = None, test: PathLike | None = None, *, format: str = "auto",
               text_field: str = "", label_field: str = "label", encoding: str | None = None,
               on_error: str = "raise", tokenizer: str = "kim", name: str | None = None) -> TextDataset:
    """Load a dataset from your own files: a training file and optional dev and test files.

    Args:
      train, dev, test: the files (``None`` or ``""``: absent). Without a test file, train with cross-validation;
        without a dev file, hold out part of train (what ``jaxconv train`` does: :mod:`jaxconv.data.pipeline`).
      format, text_field, label_field, encoding, on_error: as in :func:`read_examples`, for every file.
      tokenizer: stored as ``extras["tokenizer"]``, the preprocessing a pipeline applies by default.
      name: the dataset's name; default ``"file:<train file name>"``.

    Returns:
      :class:`TextDataset` with ids ``0 .. C-1``, ``label_names`` for string (or non ``0..C-1`` integer) labels,
      and ``extras`` ``formats`` / ``encodings`` / ``skipped`` per split.

    Raises:
      FileNotFoundError: a missing file (the message names the split and the path).
      ValueError: as :func:`read_examples`; a training file with fewer than 2 labels; a dev/test label that the
        training file does not have (``file:line``).
    """
    files = {split: f for split, f in (("train", train), ("dev", dev), ("test", test)) if f}
    if "train" not in files:
        raise ValueError("load_files needs a training file (config.data.train); got none.")
    read: dict[str, Examples] = {}
    for split, f in files.items():
        if Path(f).is_dir():
            raise IsADirectoryError(f"{split} file {quote(str(f))} (config.data.{split}) is a directory; expected a "
                                    f"data file, e.g. --config.data.{split}={Path(f) / 'train.tsv'}.")
        if not Path(f).is_file():
            raise FileNotFoundError(f"{split} file not found: {str(f)!r} (config.data.{split}).")
        read[split] = read_examples(f, format=format, text_field=text_field, label_field=label_field,
                                    encoding=encoding, on_error=on_error)
    ids, names = _label_ids(read["train"])
    if len(ids) < 2:
        raise ValueError(f"{read['train'].path}: every example has the label {quote(next(iter(ids)))}; a classifier needs "
                         f"at least 2 labels in the training file.")
    integer = names is None or all(_is_int(n) for n in names)
    splits: dict[str, LabeledText] = {}
    for split, ex in read.items():
        y = []
        for label, lineno in zip(ex.labels, ex.lines):
            key = int(label) if integer and _is_int(label) else str(label)
            if key not in ids:
                shown = sorted(ids) if names is None else names
                raise ValueError(f"{ex.path}:{lineno}: label {quote(label)} does not occur in the training file "
                                 f"{read['train'].path!r} (its labels: {quote(shown)}); every {split} label must be "
                                 f"a training label.")
            y.append(ids[key])
        splits[split] = LabeledText(texts=ex.texts, labels=y, path=ex.path, encoding=ex.encoding, skipped=ex.skipped)
    return TextDataset(
        name=name or f"file:{Path(train).name}", train=splits["train"], dev=splits.get("dev"),
        test=splits.get("test"), num_classes=len(ids), label_names=names,
        extras={"tokenizer": tokenizer, "source": str(Path(train).parent),
                "formats": {s: ex.format for s, ex in read.items()},
                "encodings": {s: ex.encoding for s, ex in read.items()},
                "skipped": {s: ex.skipped for s, ex in read.items()}})
