"""Data files that once gave a traceback or a misleading message: CR-only line endings, ``.gz``, UTF-16/32, binary
files, a directory, a mis-guessed TSV header, NFC/NFD labels, and quoted input cut to ~80 characters."""

from __future__ import annotations

import gzip
import unicodedata

import pytest

from jaxconv.data import decode_lines, load_files, read_examples

ROWS = [("a fine film", "pos"), ("a dull mess", "neg"), ("great acting", "pos"), ("boring and long", "neg")]
TSV = "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS)
CSV = "label,text\n" + "".join(f'{y},"{t}, really"\n' for t, y in ROWS)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("body, name, texts", [
    (TSV, "cr.tsv", [t for t, _ in ROWS]),
    (TSV, "cr.data", [t for t, _ in ROWS]),                             # format guessed from a CR-only file
    (CSV, "cr.csv", [f"{t}, really" for t, _ in ROWS]),
    (CSV, "cr.txt", [f"{t}, really" for t, _ in ROWS]),                 # the guess once raised _csv.Error
], ids=["tsv", "guessed-tsv", "csv", "guessed-csv"])
def test_cr_only_line_endings_read_as_lines(tmp_path, body, name, texts):
    ds = load_files(_write(tmp_path / name, body.replace("\n", "\r").encode()))
    assert ds.train.texts == texts and ds.label_names == ["neg", "pos"] and ds.train.labels == [1, 0, 1, 0]


@pytest.mark.parametrize("name, fmt", [("reviews.tsv.gz", "tsv"), ("reviews.gz", "tsv"), ("reviews.csv.gz", "csv")])
def test_gzip_files_are_read_transparently(tmp_path, name, fmt):
    body = TSV if fmt == "tsv" else CSV
    ds = load_files(_write(tmp_path / name, gzip.compress(body.encode())))
    assert ds.extras["formats"]["train"] == fmt and ds.train.labels == [1, 0, 1, 0]
    assert ds.train.texts[0] == ("a fine film" if fmt == "tsv" else "a fine film, really")


def test_a_gz_name_that_is_not_gzip_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path / "plain.tsv.gz", TSV.encode())
    with pytest.raises(ValueError) as e:
        load_files(path)
    assert str(e.value).startswith(f"{path}: cannot decompress it as gzip (") and "\n" not in str(e.value)
    assert "a file named *.gz must be gzip-compressed text (else rename it)." in str(e.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
def test_utf16_and_utf32_training_files_read_by_their_byte_order_mark(tmp_path, encoding):
    data = ("\ufeff" if encoding.endswith("-be") else "") + TSV.replace("a fine", "a naïve café")
    ds = load_files(_write(tmp_path / "wide.data", data.encode(encoding)))
    assert ds.train.texts[0] == "a naïve café film" and ds.extras["encodings"]["train"] == encoding[:6]


@pytest.mark.parametrize("data, line", [(b"1 fine\n0 also fine\n1 \x00\x01\x02\x03", 3),       # a NUL
                                        ("1 fine\n".encode("utf-16-le"), 1),                   # UTF-16, no mark
                                        (b"1 ok\n0 \xe9t\xe9\x01\x02\x9b\n", 2),                 # controls, not UTF-8
                                        (gzip.compress(TSV.encode()), 1)],                    # gzip not named .gz
                         ids=["nul", "utf16-no-mark", "controls", "gzip"])
def test_binary_training_files_are_refused_naming_the_file_and_the_fix(tmp_path, data, line):
    path = _write(tmp_path / "blob.data", data)
    with pytest.raises(ValueError) as e:
        load_files(path)
    assert str(e.value) == (
        f"{path}:{line} holds a NUL byte or control characters: a binary or compressed file (a gzip file is read "
        f"when its name ends in .gz), or UTF-16/32 text without a byte-order mark; expected text (UTF-8, Latin-1, "
        f"or UTF-16/32 starting with its byte-order mark).")


def test_binary_training_file_from_the_command_line_is_one_line(tmp_path, capsys):
    from jaxconv.cli import main

    path = _write(tmp_path / "blob.data", bytes(range(256)) * 8)
    workdir = tmp_path / "w"
    rc = main(["train", "text_cnn", "--config.data.name=file", f"--config.data.train={path}", "--workdir",
               str(workdir), "--config.progress=false"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}:1 holds a NUL byte or control characters" in err
    assert not any(workdir.rglob("*.json"))                      # nothing written for a refused file


def test_a_directory_is_called_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError) as e:
        load_files(tmp_path)
    assert str(e.value) == (f"train file '{tmp_path}' (config.data.train) is a directory; expected a data file, e.g. "
                            f"--config.data.train={tmp_path}/train.tsv.")
    with pytest.raises(IsADirectoryError, match=f"'{tmp_path}' is a directory, not a data file"):
        decode_lines(tmp_path)


def test_a_tsv_header_guessed_as_label_text_names_the_guess_and_the_fix(tmp_path):
    rows = "".join(f"{t} number {i}\t{y}\n" for i, (t, y) in enumerate(ROWS * 5))
    path = _write(tmp_path / "sst.data", f"sentence\tsentiment\n{rows}".encode())
    with pytest.raises(ValueError) as e:
        load_files(path)
    assert str(e.value) == (
        f"{path}:1: format 'label_text' was guessed from the content (config.data.format='auto'), but the first line "
        f"'sentence\\tsentiment' looks like a TSV header without a column named 'label' (columns ['sentence', "
        f"'sentiment']); set --config.data.format=tsv and --config.data.label_field=<the label column> (and "
        f"--config.data.text_field), or --config.data.format=label_text if it is one.")
    ds = load_files(path, format="tsv", label_field="sentiment", text_field="sentence")      # the fix it names
    assert ds.label_names == ["neg", "pos"] and ds.train.texts[0] == "a fine film number 0"
    tabbed = _write(tmp_path / "kim.data", "".join(f"{i % 2}\t{t}\n" for i, (t, _) in enumerate(ROWS)).encode())
    assert load_files(tabbed).train.labels == [0, 1, 0, 1]        # <label><TAB><text> files are still label_text


def test_labels_differing_only_in_normalisation_are_one_class(tmp_path):
    nfd = unicodedata.normalize("NFD", "café")
    assert nfd != "café"
    body = f"text\tlabel\nun crème\t{nfd}\ndeux\tcafé\ntrois\tthé\nquatre {nfd}\tthé\n"
    ds = load_files(_write(tmp_path / "cafe.tsv", body.encode()))
    assert ds.label_names == ["café", "thé"] and ds.num_classes == 2 and ds.train.labels == [0, 0, 1, 1]
    assert ds.train.texts[3] == f"quatre {nfd}"                    # texts are kept as written


def test_quoted_input_is_cut_to_about_80_characters(tmp_path):
    cases = {"long.data": b"x" * 1500 + b"\n0 y\n",
             "header.tsv": ("\t".join(["col"] * 400) + "\n").encode(),
             "lines.jsonl": ('{"text": "' + "j" * 1200 + '"}\n').encode()}
    for name, data in cases.items():
        with pytest.raises(ValueError) as e:
            load_files(_write(tmp_path / name, data), on_error="raise")
        message = str(e.value)
        assert len(message) < 600 and "..." in message, message
    dev = _write(tmp_path / "dev.tsv", ("text\tlabel\nsome text\t" + "z" * 1000 + "\n").encode())
    train = _write(tmp_path / "train.tsv", TSV.encode())
    with pytest.raises(ValueError) as e:
        load_files(train, dev)
    assert f"{dev}:2: label '{'z' * 80}...' does not occur in the training file" in str(e.value)


def test_read_examples_never_alters_text(tmp_path):
    texts = ["tab\tinside? no: a TSV field", "a\x85b nel is text", "  spaced  ", "quote \" and , comma"]
    body = "".join(f'0 {t}\n' for t in texts)
    ex = read_examples(_write(tmp_path / "t.txt", body.encode("utf-8")))
    assert ex.texts == [t.strip() for t in texts]
