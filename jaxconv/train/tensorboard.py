"""TensorBoard scalars without TensorFlow, PyTorch or tensorboardX: the event file format, written directly.

An event file is a sequence of TFRecords, each ``uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)`` (little-endian), where ``data`` is a serialized ``tensorflow.Event`` protocol buffer.
The first event holds ``file_version = "brain.Event:2"``; each scalar is an event with ``wall_time`` (field 1,
double), ``step`` (field 2, int64) and ``summary`` (field 5) holding one ``Summary.Value`` (field 1) with ``tag``
(field 1, string) and ``simple_value`` (field 2, float). That is all TensorBoard needs to plot scalars, so the few
protobuf fields are encoded by hand below (tests decode the file with tensorboardX's compiled protos).

>>> import tempfile
>>> w = ScalarWriter(tempfile.mkdtemp())
>>> w.add_scalar("train/loss", 0.5, step=10)
>>> w.close()
"""

from __future__ import annotations

import os
import socket
import struct
import time

from etils import epath

from jaxconv.paths import append_bytes, is_remote

__all__ = ["ScalarWriter", "crc32c", "read_records"]


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses. ``crc32c(b"123456789") == 0xE3069283``.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked(header)) + data + struct.pack("<I", _masked(data))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # two's complement for negative int64
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _event(wall_time: float, step: int, *, file_version: str | None = None, tag: str | None = None,
           value: float | None = None) -> bytes:
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(int(step)))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if tag is not None:
        summary_value = _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", float(value)))
        out += _bytes_field(5, _bytes_field(1, summary_value))
    return out


def read_records(data: bytes) -> list[bytes]:
    """The payloads of a TFRecord byte string, checking every length and CRC (ValueError on a bad one)."""
    out, i = [], 0
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError(f"truncated record header at byte {i}")
        header = data[i:i + 8]
        (length,), (crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[i + 8:i + 12])
        if crc != _masked(header):
            raise ValueError(f"bad length CRC at byte {i}")
        payload = data[i + 12:i + 12 + length]
        if len(payload) != length or i + 16 + length > len(data):
            raise ValueError(f"truncated record at byte {i}")
        (pcrc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        if pcrc != _masked(payload):
            raise ValueError(f"bad data CRC at byte {i}")
        out.append(payload)
        i += 16 + length
    return out


class ScalarWriter:
    """Append scalars to a new ``events.out.tfevents.<time>.<host>`` file in ``logdir`` (local or ``gs://``).

    Records are buffered and written at :meth:`flush` / :meth:`close`; on a remote path the file is rewritten whole
    (object stores cannot append).
    """

    def __init__(self, logdir: str | os.PathLike):
        self.logdir = epath.Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.jaxconv"
        self._local = not is_remote(self.logdir)
        self._pending = [_record(_event(now, 0, file_version="brain.Event:2"))]
        self._written: list[bytes] = []
        self.flush()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._pending.append(_record(_event(time.time(), step, tag=tag, value=value)))

    def flush(self) -> None:
        if not self._pending:
            return
        if self._local:
            append_bytes(self.path, b"".join(self._pending), what="the TensorBoard events")
        else:
            self._written += self._pending
            self.path.write_bytes(b"".join(self._written))
        self._pending = []

    def close(self) -> None:
        self.flush()
