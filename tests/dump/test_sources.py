"""``dump --input FILE`` (FileSource): UTF-16/32 read by their byte-order mark; binary files refused in one line."""

from __future__ import annotations

import pytest

from jaxconv.dump.sources import FileSource

LINES = ["1 café au lait", "0 naïve ünïcode ✓", "1 plain words"]


def _read(path):
    source = FileSource(path)
    scan = source.scan(str.split, 2)
    return scan, list(source.examples())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
                                      "utf-8-sig", "utf-8"])
def test_utf16_and_utf32_with_a_byte_order_mark_read_as_text(tmp_path, encoding):
    path = tmp_path / "in.txt"
    body = "\n".join(LINES) + "\n"
    data = body.encode(encoding)
    if encoding.endswith(("-le", "-be")):   # these codecs write no mark: add the one a text editor writes
        data = "\ufeff".encode(encoding) + data
    path.write_bytes(data)
    scan, examples = _read(path)
    assert scan.num_examples == 3 and scan.has_labels
    assert examples == [("café au lait", 1), ("naïve ünïcode ✓", 0), ("plain words", 1)]
    reference = tmp_path / "ref.txt"
    reference.write_text(body, encoding="utf-8")
    assert scan.max_tokens == _read(reference)[0].max_tokens == 3


@pytest.mark.parametrize("data", [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03hello\n",        # gzip
                                  "1 no mark\n".encode("utf-16-le"),                           # UTF-16, no BOM
                                  b"1 good line\n0 bad\x00line\n"])
def test_binary_input_is_refused_in_one_line_naming_the_file(tmp_path, data):
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError) as e:
        _read(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "NUL byte" in message and "--input" in message


def test_utf16_mark_but_broken_body_is_refused(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_bytes(b"\xff\xfe" + "1 ok\n".encode("utf-16-le") + b"\x00\xd8")   # a lone high surrogate
    with pytest.raises(ValueError, match="not valid UTF-16"):
        _read(path)


# ------------------------------------------------------------------------------------------------- formats

NAMES = ["neg", "pos"]
ROWS = [("a fine film", "pos"), ("a dull mess", "neg"), ("great acting", "pos")]
EXPECTED = [("a fine film", 1), ("a dull mess", 0), ("great acting", 1)]


def _read_as(path, num_classes=2, **kw):
    source = FileSource(path, label_names=kw.pop("label_names", NAMES), **kw)
    scan = source.scan(str.split, num_classes)
    return scan, list(source.examples()), source


@pytest.mark.parametrize("name, body", [
    ("in.tsv", "id\ttext\tlabel\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(ROWS))),
    ("in.txt", "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS)),              # the header tells
    ("in.csv", "label,text\n" + "".join(f'{y},"{t}"\n' for t, y in ROWS)),
    ("in.jsonl", "".join(f'{{"text": "{t}", "label": "{y}"}}\n' for t, y in ROWS)),
    ("in.txt", "".join(f"{y} {t}\n" for t, y in ROWS)),                                   # label_text, names
    ("in.txt", "".join(f"{NAMES.index(y)}\t{t}\n" for t, y in ROWS)),                     # label_text, class ids
], ids=["tsv", "tsv-by-header", "csv", "jsonl", "label_text-names", "label_text-ids"])
def test_input_reads_the_formats_training_reads(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    scan, examples, _ = _read_as(path)
    assert examples == EXPECTED                                # no header row, labels as the run's classes
    assert scan.num_examples == 3 and scan.has_labels and scan.max_tokens == 3


def test_input_uses_the_runs_fields_and_format_by_default(tmp_path):
    from types import SimpleNamespace

    from jaxconv.dump.runner import _source

    path = tmp_path / "sst.data"
    path.write_text("sentence\tsentiment\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS))
    data = {"format": "tsv", "text_field": "sentence", "label_field": "sentiment", "on_error": "raise"}
    run = SimpleNamespace(config=SimpleNamespace(data=data), label_names=NAMES)
    source = _source(run, "test", str(path))
    source.scan(str.split, 2)
    assert list(source.examples()) == EXPECTED and source.read_as == "tsv"
    plain = tmp_path / "plain.txt"
    plain.write_text("a fine film\n")
    with pytest.raises(ValueError) as e:
        _source(run, "test", str(plain)).scan(str.split, 2)
    assert str(e.value).startswith(f"--input {plain}:1: no column named 'sentiment' in the tsv header ['a fine film']")
    assert str(e.value).endswith("(format 'tsv' from the run's config.data.format; --format picks another: auto, "
                                 "label_text, tsv, csv, jsonl, text, text = one sentence per line)")
    source = _source(run, "test", str(plain), "text")
    source.scan(str.split, 2)
    assert list(source.examples()) == [("a fine film", None)]


def test_an_unknown_label_is_refused_naming_it(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text("text\tlabel\na fine film\tpos\nso so\tmeh\n")
    with pytest.raises(ValueError) as e:
        _read_as(path)
    assert str(e.value) == (f"--input {path}:3: label 'meh' is not one of the model's classes (['neg', 'pos']); fix "
                            f"the line, or read the file without labels with --format text.")
    ids = tmp_path / "ids.txt"
    ids.write_text("1 fine\n7 so so\n")
    with pytest.raises(ValueError, match=r"ids\.txt:2: label '7' is not one of the model's classes \('0\.\.1'\)"):
        _read_as(ids, label_names=None)


def test_plain_sentences_stay_plain(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("3 little words\npos is not a label here\n")         # neither all integers nor all names
    assert _read_as(path)[1] == [("3 little words", None), ("pos is not a label here", None)]
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("1 fine\n0 dull\n")
    assert _read_as(numbered)[1] == [("fine", 1), ("dull", 0)]
    assert _read_as(numbered, format="text")[1] == [("1 fine", None), ("0 dull", None)]   # --format text: no labels


def test_nfd_labels_match_the_runs_nfc_names(tmp_path):
    import unicodedata

    path = tmp_path / "cafe.tsv"
    path.write_text(f"text\tlabel\nun\t{unicodedata.normalize('NFD', 'café')}\ndeux\tthé\n")
    assert _read_as(path, label_names=["café", "thé"])[1] == [("un", 0), ("deux", 1)]


def test_gzip_and_cr_only_input(tmp_path):
    import gzip

    body = "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS)
    gz = tmp_path / "in.tsv.gz"
    gz.write_bytes(gzip.compress(body.encode()))
    assert _read_as(gz)[1] == EXPECTED
    cr = tmp_path / "cr.txt"
    cr.write_bytes(b"1 a fine film\r0 a dull mess\r1 great acting\r")
    assert _read_as(cr, label_names=None)[1] == [("a fine film", 1), ("a dull mess", 0), ("great acting", 1)]
    plain_gz = tmp_path / "lines.txt.gz"
    plain_gz.write_bytes(gzip.compress(b"just words\nmore words\n"))
    assert _read_as(plain_gz)[1] == [("just words", None), ("more words", None)]


def test_a_directory_is_called_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"--input {tmp_path} is a directory; expected a file of sentences"):
        _read_as(tmp_path)


def test_a_tsv_header_the_run_does_not_name_is_refused_not_read_as_a_sentence(tmp_path):
    path = tmp_path / "sst.data"
    path.write_text("sentence\tsentiment\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS))
    with pytest.raises(ValueError) as e:
        _read_as(path)
    assert str(e.value) == (f"--input {path}:1: every line has 1 tab(s), so the first line 'sentence\\tsentiment' "
                            f"looks like a TSV header, but it names no label column 'label' (the run's "
                            f"config.data.label_field); name the columns as the run does to read it as TSV, or give "
                            f"--format text to read each line as one sentence.")
    assert _read_as(path, format="text")[1][0] == ("sentence\tsentiment", None)
