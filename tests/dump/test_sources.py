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
