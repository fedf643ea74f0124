"""Fuzzing the file readers and the command-line arguments that take files, against the promise: a reader returns the
texts as written (labels NFC-normalised) or raises one line (``ValueError`` / ``OSError`` with a message); a
command exits 0, or 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import csv
import gzip
import io
import json
import unicodedata
import warnings

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jaxconv.cli import main
from jaxconv.data import read_examples
from jaxconv.data.lines import STRIP
from jaxconv.dump.sources import FileSource
from helpers import copy_run

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ["neg", "pos", "café"]
EXT = {"label_text": "txt", "tsv": "tsv", "csv": "csv", "jsonl": "jsonl"}
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32"]

# Texts: any characters but line breaks and NUL (a text is one line of a file); at least one that is not blank.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00")
_TEXT = st.text(_CHARS, min_size=1, max_size=30).filter(lambda t: t.strip(STRIP))
# Hostile bits a text may carry: separators, quotes, braces, BOM-like marks, NEL, Latin-1 and combining characters.
_SPICE = st.sampled_from(["\t", ",", '"', "'", "{", "}", "\ufeff", "\x85", "é", "e\u0301", " ", "\\", "#", "\x0b",
                          "\x0c"])
_SPICY = st.lists(st.one_of(_TEXT, _SPICE), min_size=1, max_size=6).map("".join).filter(lambda t: t.strip(STRIP))
_LABEL = st.sampled_from(["neg", "pos", "café", unicodedata.normalize("NFD", "café")])


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message and len(message) < 1000, message
    assert isinstance(error, (ValueError, OSError)), type(error)
    return message


def _render(fmt: str, rows: list[tuple[str, str]], newline: str, blank: bool) -> str:
    """The file's text: ``rows`` of ``(text, label)`` in ``fmt``, lines ended by ``newline``."""
    if fmt == "label_text":
        lines = [f"{y} {t}" for t, y in rows]
    elif fmt == "tsv":
        lines = ["text\tlabel"] + [f"{t}\t{y}" for t, y in rows]
    elif fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([("label", "text")] + [(y, t) for t, y in rows])
        lines = out.getvalue().split("\n")[:-1]
    else:
        lines = [json.dumps({"text": t, "label": y}, ensure_ascii=False) for t, y in rows]
    if blank:
        lines.insert(1, "")
    return newline.join(lines) + newline


def _allowed(fmt: str, text: str) -> bool:
    """Whether ``fmt`` can hold ``text`` as written: a TSV field has no tab."""
    return not (fmt == "tsv" and "\t" in text)


@st.composite
def written_files(draw):
    fmt = draw(st.sampled_from(sorted(EXT)))
    rows = draw(st.lists(st.tuples(_SPICY, _LABEL), min_size=1, max_size=6))
    rows = [(t, y) for t, y in rows if _allowed(fmt, t)] or [("plain words", "pos")]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(ENCODINGS))
    blank, gz = draw(st.booleans()), draw(st.booleans())
    data = _render(fmt, rows, newline, blank).encode(encoding)
    return fmt, rows, (gzip.compress(data) if gz else data), gz, blank


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(case=written_files())
# a label_text file whose first text holds a tab is no TSV header (its next line has no tab)
@example(case=("label_text", [("\t0", "neg"), ("0", "pos")], b"neg \t0\npos 0\n", False, False))
def test_written_files_read_back_as_written(tmp_path, case):
    fmt, rows, data, gz, blank = case
    path = _write(tmp_path, f"f.{EXT[fmt]}" + (".gz" if gz else ""), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # the skip warning of a blank line
        ex = read_examples(path, on_error="skip" if blank else "raise")   # the format by extension
    assert ex.format == fmt
    assert ex.texts == [t.strip(STRIP) for t, _ in rows]              # never altered text
    assert ex.labels == [unicodedata.normalize("NFC", y) for _, y in rows]
    source = FileSource(path, on_error="skip" if blank else "raise", label_names=NAMES)    # dump --input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source.scan(str.split, len(NAMES))
    assert list(source.examples()) == [(t.strip(STRIP), NAMES.index(unicodedata.normalize("NFC", y)))
                                       for t, y in rows]


_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b"\t", b",", b'"', b"{", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf",
                              b"\x1f\x8b", b"label", b"text", b"1 ", b"pos ", b"\xe9", b"\x85", b"abc"]),
             max_size=40).map(b"".join),
    _TEXT.map(lambda t: t.encode("utf-16")),
)


@FUZZ
@given(data=_BYTES, name=st.sampled_from(["f.txt", "f.tsv", "f.csv", "f.jsonl", "f.data", "f.tsv.gz"]),
       fmt=st.sampled_from(["auto", "label_text", "tsv", "csv", "jsonl"]))
def test_any_bytes_read_or_refused_in_one_line(tmp_path, data, name, fmt):
    path = _write(tmp_path, name, data)
    for read in (lambda: read_examples(path, format=fmt),
                 lambda: FileSource(path, format=fmt, label_names=NAMES).scan(str.split, len(NAMES))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read()
        except (ValueError, OSError) as e:
            _one_line(e)


@pytest.mark.filterwarnings("ignore::UserWarning")       # the mixed UTF-8 / Latin-1 warning of random bytes
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_BYTES)
def test_predict_input_reads_or_refuses_in_one_line(tmp_path, capsys, data):
    """``jaxconv predict --input FILE`` reads the file before the run: a missing run shows the file was read."""
    path = _write(tmp_path, "in.txt", data)
    missing = tmp_path / "no-run"
    assert main(["predict", "--workdir", str(missing), "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and len(err) < 1000, err
    assert err.startswith("jaxconv predict: error: ")


@pytest.mark.slow
def test_dump_input_cli_on_hostile_files(demo_run, tmp_path, capsys):
    """A few hostile files through ``jaxconv dump --input`` (each dump compiles once: a fixed handful)."""
    workdir = tmp_path / "run"
    copy_run(demo_run, workdir)
    words = "m00a m00b some words"
    files = {
        "wide.tsv.gz": gzip.compress(f"text\tlabel\r{words}\tclass1\r{words} again\tclass0\r".encode("utf-16")),
        "blob.bin": bytes(range(256)) * 3,
        "header.data": b"sentence\tsentiment\n" + b"".join(b"w%d m00a\tclass%d\n" % (i, i % 2) for i in range(9)),
        "unknown.jsonl": b'{"text": "a b", "label": "' + b"q" * 500 + b'"}\n',
    }
    for name, data in files.items():
        path = _write(tmp_path, name, data)
        rc = main(["dump", "--workdir", str(workdir), "--input", str(path)])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        if name == "wide.tsv.gz":
            assert rc == 0, captured.err
        else:
            assert rc == 2 and captured.err.count("\n") == 1 and len(captured.err) < 600, captured.err
            assert captured.err.startswith(f"jaxconv dump: error: --input {path}")
