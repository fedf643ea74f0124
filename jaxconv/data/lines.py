"""Reading a text file as lines: decoding (UTF-8, Latin-1 line by line where needed) and the ``on_error`` rule.

Every reader of one-example-per-line files (:func:`jaxconv.data.read_labeled_lines`, :func:`jaxconv.data.read_examples`)
goes through :func:`decode_lines` and reports malformed lines through :class:`LineProblems`, so the rules are the
same everywhere:

- Line breaks are ``"\\n"``, ``"\\r\\n"`` and a lone ``"\\r"`` (universal newlines, as :func:`open` reads text), and
  nothing else: Latin-1 text may hold ``"\\x85"`` (NEL), which :meth:`str.splitlines` would wrongly treat as a line
  break. A final line break does not make an empty last line.
- A file whose name ends in ``.gz`` is gzip-decompressed first (its format is then guessed from the name before
  ``.gz``).
- Without an explicit ``encoding``, a file that starts with a UTF-16 or UTF-32 byte-order mark is decoded with that
  codec; else a file that is valid UTF-8 is decoded as UTF-8 (``"utf-8-sig"`` when it starts with a byte-order mark).
  Otherwise each line is decoded on its own: as UTF-8 when it is valid UTF-8, else as
  Latin-1 (which never fails). Valid text is never changed. When every line with non-ASCII bytes needed Latin-1
  the file is a Latin-1 file (MR, TREC): encoding ``"latin-1"``, the same text as decoding the whole file as
  Latin-1. When some lines are UTF-8 and some are not, the encoding is ``"utf-8+latin-1"`` and a warning names
  ``file:line`` of the Latin-1 lines.
- A binary file is refused (``ValueError`` naming ``file:line``), never decoded into garbage: one with a NUL byte (a
  compressed or binary file, or UTF-16/32 text without its byte-order mark), or one whose lines that are not UTF-8
  hold control characters (Latin-1 text has none).
- ``on_error="raise"``: the first malformed line raises ``ValueError`` naming ``file:line``, the text and what was
  expected, and how to skip such lines. ``"skip"``: malformed lines are skipped, counted, and one warning gives
  the count and the first few ``file:line`` reasons.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "mixed.txt")
>>> _ = open(p, "wb").write(b"1 caf\\xc3\\xa9\\n0 caf\\xe9\\n")    # line 2 is Latin-1
>>> import warnings
>>> with warnings.catch_warnings(record=True) as w:
...     warnings.simplefilter("always")
...     lines, used = decode_lines(p)
>>> lines, used
(['1 café', '0 café'], 'utf-8+latin-1')
>>> "mixed.txt:2" in str(w[0].message)
True
"""

from __future__ import annotations

import codecs
import gzip
import logging
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Union

from jaxconv._format import quote

__all__ = ["decode_lines", "LineProblems", "ON_ERROR_CHOICES", "SKIP_HINT", "check_on_error", "snippet",
           "STRIP", "BOMS", "bom_encoding", "binary_message", "read_data", "is_gzip_name"]

PathLike = Union[str, "os.PathLike[str]"]

#: What ``on_error`` may be.
ON_ERROR_CHOICES = ("raise", "skip")

#: How to skip malformed lines, in Python and on the command line.
SKIP_HINT = "Skip such lines with --config.data.on_error=skip (Python: on_error='skip')"

# Characters stripped from both ends of every line. Deliberately ASCII-only: str.strip() would also
# remove "\x85" / "\xa0", which are text in Latin-1 files.
STRIP = " \t\r\n\f\v"

#: How many reasons a skip warning lists.
SHOWN = 3

#: Byte-order marks that name a wide encoding, longest first (UTF-32 LE starts with UTF-16 LE's mark).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"))

# Control characters that text files do not hold (tab, line breaks, form feed and vertical tab are text).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

logger = logging.getLogger("jaxconv.data")


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}; got on_error={on_error!r} "
                         f"(config.data.on_error).")


def snippet(text: str, limit: int = 60) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters with ``...`` (:func:`jaxconv._format.quote`)."""
    return quote(text, limit)


def bom_encoding(head: bytes) -> str | None:
    """``"utf-16"`` / ``"utf-32"`` when ``head`` (a file's first bytes) starts with that byte-order mark, else None.

    >>> bom_encoding("x".encode("utf-16")), bom_encoding("x".encode("utf-32")), bom_encoding(b"x")
    ('utf-16', 'utf-32', None)
    """
    return next((name for bom, name in BOMS if head.startswith(bom)), None)


def binary_message(where: str) -> str:
    """The refusal of a binary file; ``where`` names the argument, the file and the line."""
    return (f"{where} holds a NUL byte or control characters: a binary or compressed file (a gzip file is read when "
            f"its name ends in .gz), or UTF-16/32 text without a byte-order mark; expected text (UTF-8, Latin-1, or "
            f"UTF-16/32 starting with its byte-order mark).")


def is_gzip_name(path: PathLike) -> bool:
    """Whether ``path``'s name ends in ``.gz`` (read through gzip)."""
    return os.fspath(path).lower().endswith(".gz")


def read_data(path: PathLike, what: str = "data file") -> bytes:
    """The bytes of a data file, gzip-decompressed when its name ends in ``.gz``.

    Raises:
      FileNotFoundError: no such file. IsADirectoryError: a directory. ValueError: a ``.gz`` file that is not gzip.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{str(p)!r} is a directory, not a {what}; expected a file (e.g. {p}/train.tsv).")
    if not p.is_file():
        raise FileNotFoundError(f"No such {what}: {str(p)!r}.")
    data = p.read_bytes()
    if is_gzip_name(p):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{p}: cannot decompress it as gzip ({e}); a file named *.gz must be gzip-compressed "
                             f"text (else rename it).") from None
    return data


def _universal(text):
    """``"\\r\\n"`` and lone ``"\\r"`` as ``"\\n"`` (``str`` or ``bytes``)."""
    if isinstance(text, bytes):
        return text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _refuse_nul(path: Path, text) -> None:
    """Refuse ``text`` (``str`` or ``bytes``, line breaks already ``"\\n"``) when it holds a NUL."""
    nul, newline = ("\x00", "\n") if isinstance(text, str) else (b"\x00", b"\n")
    i = text.find(nul)
    if i >= 0:
        raise ValueError(binary_message(f"{path}:{text.count(newline, 0, i) + 1}"))


def _explicit(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}:{line}: cannot decode byte {data[e.start:e.start + 1]!r} as encoding={encoding!r} "
            f"({e.reason}); pass encoding=None to decode UTF-8, with Latin-1 for lines that are not UTF-8.") from e
    except LookupError as e:
        raise ValueError(f"encoding={encoding!r} is not a known codec ({path}).") from e


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line break
    return lines


def decode_lines(path: PathLike, encoding: str | None = None) -> tuple[list[str], str]:
    """The lines of a file and the encoding used (the module docstring's rules).

    Args:
      path: the file (``*.gz``: gzip-compressed).
      encoding: a codec for the whole file, or ``None`` (a UTF-16/32 byte-order mark, else UTF-8, Latin-1 for lines
        that are not UTF-8).

    Returns:
      ``(lines, encoding)``: the lines without their line breaks; ``encoding`` is the codec given, or one of
      ``"utf-16"``, ``"utf-32"``, ``"utf-8"``, ``"utf-8-sig"``, ``"latin-1"``, ``"utf-8+latin-1"``.

    Raises:
      FileNotFoundError: no such file. IsADirectoryError: a directory.
      ValueError: a binary file (``file:line``), undecodable bytes with an explicit ``encoding`` or after a
        byte-order mark (``file:line``), an unknown codec, a ``*.gz`` file that is not gzip.
    """
    p = Path(path)
    data = read_data(p)
    if encoding is not None:
        text = _universal(_explicit(p, data, encoding))
        _refuse_nul(p, text)
        return _split(text), encoding
    wide = bom_encoding(data[:4])
    if wide is not None:
        try:
            text = _universal(data.decode(wide))             # the codec reads and drops the byte-order mark
        except UnicodeDecodeError as e:
            raise ValueError(f"{p} starts with a {wide.upper()} byte-order mark but is not valid {wide.upper()} "
                             f"({e.reason}); expected a text file in one encoding.") from None
        _refuse_nul(p, text)
        return _split(text), wide
    data = _universal(data)
    _refuse_nul(p, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if text.startswith("\ufeff"):
            return _split(text[1:]), "utf-8-sig"
        return _split(text), "utf-8"
    lines: list[str] = []
    latin1: list[int] = []
    utf8_non_ascii = 0
    for lineno, raw in enumerate(_split_bytes(data), start=1):
        try:
            line = raw.decode("utf-8")
            utf8_non_ascii += not raw.isascii()
        except UnicodeDecodeError:
            line = raw.decode("latin-1")  # maps every byte to a code point: never fails
            if _CONTROL.search(line):
                raise ValueError(binary_message(f"{p}:{lineno}")) from None
            latin1.append(lineno)
        lines.append(line)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    first = ", ".join(f"{p}:{n}" for n in latin1[:SHOWN]) + (", ..." if len(latin1) > SHOWN else "")
    if utf8_non_ascii == 0:
        logger.info("%s is not valid UTF-8 (%s): decoded as Latin-1", p, first)
        return lines, "latin-1"
    warnings.warn(f"{p}: {len(latin1)} line(s) are not valid UTF-8 and were decoded as Latin-1 ({first}); the other "
                  f"{len(lines) - len(latin1)} line(s) are UTF-8. Pass an explicit encoding to decode the whole file "
                  f"one way.", stacklevel=3)
    return lines, "utf-8+latin-1"


def _split_bytes(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


class LineProblems:
    """Malformed lines of one file under ``on_error``: raise on the first, or count them and warn once.

    >>> probs = LineProblems("f.txt", "skip")
    >>> probs.add(3, "blank line")
    >>> probs.count, probs.reasons
    (1, ['f.txt:3: blank line'])
    """

    def __init__(self, path: PathLike, on_error: str, expected: str = ""):
        check_on_error(on_error)
        self.path, self.on_error, self.expected = str(path), on_error, expected
        self.count = 0
        self.reasons: list[str] = []

    def add(self, lineno: int, problem: str) -> None:
        """Report a malformed line: raise ``ValueError`` (``on_error="raise"``) or count it."""
        reason = f"{self.path}:{lineno}: {problem}"
        if self.on_error == "raise":
            expected = f"; {self.expected}" if self.expected else ""
            raise ValueError(f"{reason}{expected}. {SKIP_HINT}.")
        self.count += 1
        if len(self.reasons) < SHOWN:
            self.reasons.append(reason)

    def warn(self) -> None:
        """One warning with the count and the first reasons, when any line was skipped."""
        if self.count:
            more = f"; ... ({self.count - len(self.reasons)} more)" if self.count > len(self.reasons) else ""
            warnings.warn(f"{self.path}: skipped {self.count} malformed line(s); first: {'; '.join(self.reasons)}"
                          f"{more}", stacklevel=3)
