"""Text for language models: lines split into train / valid, encoded as bytes (or words), cut into fixed windows.

The corpus is a list of lines (sentences): the sentence files of the built-in datasets (their texts, labels
dropped, duplicates removed so that no line is in both splits), or any UTF-8 text file. Lines are split into train
and valid **by line** with a seeded shuffle, then each split is one stream: every line's ids followed by a newline.
A window batch holds ``batch_size`` windows of ``seq_len + 1`` consecutive ids; the model reads ``tokens =
window[:-1]`` and predicts ``labels = window[1:]`` (position ``p`` predicts the id after it).

>>> train, valid = split_lines([f"line {i}" for i in range(20)], valid_fraction=0.1, seed=0)
>>> len(train), len(valid)
(18, 2)
>>> s = encode_stream(["ab", "c"])                      # bytes + 1, newline after each line
>>> s.tolist()
[98, 99, 11, 100, 11]
>>> wb = WindowBatches(np.arange(1, 42, dtype=np.int32), seq_len=4, batch_size=2, shuffle=False)
>>> b = next(iter(wb.epoch(0)))
>>> b.tokens.tolist(), b.labels.tolist()
([[1, 2, 3, 4], [5, 6, 7, 8]], [[2, 3, 4, 5], [6, 7, 8, 9]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from jaxconv.data.batching import Batch

__all__ = ["split_lines", "encode_stream", "WindowBatches", "NEWLINE_ID"]

#: The byte id of "\n" (byte 10 + 1): the line separator of a byte stream.
NEWLINE_ID = 11


def split_lines(lines: Sequence[str], *, valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Empty lines dropped, duplicates removed (first kept), then a seeded shuffle split: ``(train, valid)``.

    ``valid`` gets ``max(1, round(valid_fraction * n))`` lines; the two lists keep the corpus order within them.
    """
    if not 0.0 < float(valid_fraction) < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1); got valid_fraction={valid_fraction!r}.")
    unique = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if len(unique) < 2:
        raise ValueError(f"a language-model corpus needs at least 2 distinct non-empty lines; got {len(unique)}.")
    n_valid = min(max(1, round(valid_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    valid_idx = set(order[:n_valid].tolist())
    train = [t for i, t in enumerate(unique) if i not in valid_idx]
    valid = [t for i, t in enumerate(unique) if i in valid_idx]
    return train, valid


def _byte_ids(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32) + 1


def encode_stream(lines: Sequence[str], encode: Callable[[str], Sequence[int]] | None = None,
                  separator: int = NEWLINE_ID) -> np.ndarray:
    """int32 ``(n,)``: each line's ids (default: UTF-8 bytes + 1) followed by ``separator``."""
    encode = encode or _byte_ids
    parts = []
    for line in lines:
        parts.append(np.asarray(encode(line), np.int32))
        parts.append(np.asarray([separator], np.int32))
    return np.concatenate(parts) if parts else np.zeros((0,), np.int32)


class WindowBatches:
    """Batches of ``batch_size`` windows of ``seq_len + 1`` consecutive ids from one stream.

    An epoch covers the stream once with non-overlapping windows. Training (``shuffle=True``) starts the windows at
    a random offset in ``[0, seq_len)`` and visits them in a random order, both drawn from ``(seed, epoch)``, so an
    epoch is reproducible and resumable by step. Evaluation (``shuffle=False``) reads the windows in order from
    offset 0. The last batch is filled with repeats of its real rows at weight 0 (every row of a batch has the same
    length, so one compilation serves the epoch).

    Batches are :class:`jaxconv.data.Batch` with ``tokens`` and ``labels`` int32 ``(batch_size, seq_len)`` and
    ``weights`` float32 ``(batch_size, seq_len)`` (1 for the positions of real windows).
    """

    def __init__(self, stream: np.ndarray, *, seq_len: int, batch_size: int, seed: int = 0, shuffle: bool = True):
        stream = np.asarray(stream, np.int32).reshape(-1)
        for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"WindowBatches: {name} must be an int >= 1; got {name}={value!r}.")
        if stream.size < seq_len + 2:
            raise ValueError(f"WindowBatches: the stream has {stream.size} ids; a window needs seq_len + 1 = "
                             f"{seq_len + 1} and an offset (>= {seq_len + 2} ids).")
        self.stream, self.seq_len, self.batch_size = stream, int(seq_len), int(batch_size)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.windows = (stream.size - 1 - (self.seq_len if shuffle else 0)) // self.seq_len   # per epoch
        self.bucket_lengths = (self.seq_len,)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.windows / self.batch_size)

    @property
    def num_tokens(self) -> int:
        """Predicted positions per epoch (real windows x seq_len)."""
        return self.windows * self.seq_len

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _starts(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.windows) * self.seq_len
        rng = np.random.default_rng([self.seed, int(epoch)])
        offset = int(rng.integers(0, self.seq_len))
        return offset + rng.permutation(self.windows) * self.seq_len

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        starts = self._starts(epoch)
        idx = np.arange(self.seq_len + 1)
        for step in range(int(start_step), self.steps_per_epoch):
            chunk = starts[step * self.batch_size:(step + 1) * self.batch_size]
            real = chunk.size
            rows = np.concatenate([chunk, np.resize(chunk, self.batch_size - real)])       # fillers repeat real rows
            win = self.stream[rows[:, None] + idx[None, :]]                                 # (B, seq_len + 1)
            weights = np.zeros((self.batch_size, self.seq_len), np.float32)
            weights[:real] = 1.0
            yield Batch(tokens=win[:, :-1].copy(), labels=win[:, 1:].copy(), weights=weights,
                        lengths=np.full((self.batch_size,), self.seq_len, np.int32), indices=rows.astype(np.int64))

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)
