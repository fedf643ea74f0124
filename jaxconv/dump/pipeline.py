"""The dump's stream: host encoding, the device's steps and the store's writes, overlapped.

Three stages run at once, each on its own batch:

1. the calling thread reads and encodes batch ``i + 1`` (tokens, starts, lengths, the words) and dispatches its step
   (asynchronous: the call returns at once), then starts the device-to-host copies of its outputs
   (``jax.Array.copy_to_host_async``);
2. meanwhile the device computes it; the calling thread then waits for batch ``i``'s outputs on the host and hands
   them to the writer (on several processes each streams its own rows on its own devices, with no collective:
   :mod:`jaxconv.dump.hosts`);
3. a writer thread copies the rows into its one chunk block and writes each full block to the store
   (:class:`jaxconv.dump.store.StoreWriter.write`, which records ``rows_written`` after it). A map's block is kept
   filter-major, ``(F, rows, P)``, transposed batch by batch while the batch is in the cache, so that each
   filter's chunk is one contiguous run of memory.

The bound (memory stays flat, whatever the number of examples): at most :data:`QUEUED` batches wait for the writer,
one is being written, one is being brought to the host and one is on the device, so at most ``QUEUED + 3`` batches'
outputs are alive at once, plus the writer's block of ``rows`` rows.

Rules:

- The store is bit for bit what the one-thread loop wrote: every row is computed in the same batch, at the same
  position, and written in the same blocks, in order.
- An error of the writer (a full disk, a failed object-store write, or a ``KeyboardInterrupt`` raised inside a write)
  is raised in the calling thread, as the same exception, once the writer has stopped; the writer never leaves the
  caller waiting: after an error it only drains what is handed to it.
- An error of the calling thread (Ctrl-C, a bad input line) stops the writer after the block it is writing (so
  ``rows_written`` names whole blocks and the same command resumes) and joins it before the error goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import jax
import numpy as np

from jaxconv.dump.sources import TextSource

__all__ = ["stream", "QUEUED"]

log = logging.getLogger("jaxconv")

#: Batches on the host waiting for the writer (the queue's bound); see the module docstring for the whole bound.
QUEUED = 2

_DONE = object()    # the end of the batches, for the writer


def _filter_major(name: str) -> bool:
    """Whether the writer keeps ``name``'s block filter-major: the maps, whose chunks hold one filter each."""
    return name.startswith("maps/")


def _to_host(tree):
    """The step's outputs as NumPy arrays on this host (the step runs on this process's devices alone)."""
    return jax.tree.map(np.asarray, tree)


def _start_copies(tree) -> None:
    """Start every output's device-to-host copy now, so that it runs while the host does other work."""
    for leaf in jax.tree.leaves(tree):
        copy = getattr(leaf, "copy_to_host_async", None)
        if copy is not None:
            copy()


def _batches(source: TextSource, start: int, size: int, end: int) -> Iterator[list[tuple[str, int | None]]]:
    """Batches of ``size`` rows from row ``start`` until one holds row ``end - 1`` (the last may go past ``end``)."""
    if start >= end:
        return
    batch = []
    for i, example in enumerate(source.examples(start)):
        if i % size == 0 and start + i >= end:
            return
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _host_rows(run, batch, length):
    texts = [t for t, _ in batch]
    tokens, starts, lengths, words = run.encode_rows(texts, length=length)              # (b, L), (b,), (b,), words
    host = {"tokens": tokens, "starts": starts, "lengths": lengths, "texts": np.array(texts, dtype=object),
            "words": np.array([" ".join(x.replace(" ", "\u00a0") for x in w) for w in words], dtype=object)}
    if batch[0][1] is not None:
        host["labels"] = np.array([lab for _, lab in batch], np.int32)
    return host


class _Writer(threading.Thread):
    """Fills blocks of ``rows`` rows from the batches put on :attr:`inbox` and writes each full one (or the last).

    Attributes:
      error: the exception a write raised (None while none did); the thread then drains its inbox unread.
      written: rows handed to the store so far, from the resume point.
    """

    def __init__(self, writer, specs, rows: int, end: int, start: int):
        super().__init__(name="jaxconv-dump-writer", daemon=True)
        self.writer, self.rows, self.end = writer, rows, end
        self.inbox: queue.Queue = queue.Queue(maxsize=QUEUED)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.buffer = {}                # one block: (rows, ...); a map's filter-major, (F, rows, P) (see _views)
        for k, s in specs.items():
            shape = (s.shape[-1], rows, *s.shape[1:-1]) if _filter_major(k) else (rows, *s.shape[1:])
            self.buffer[k] = np.empty(shape, dtype=object if s.dtype is str else s.dtype)
        self.filled, self.block_start = 0, start

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is _DONE:
                return
            if self.error is not None or self.stop.is_set():
                continue
            try:
                self._take(*item)
            except BaseException as e:   # KeyboardInterrupt too: the caller raises it
                self.error = e

    def _take(self, merged: dict, real: int, skip: int) -> None:
        done = skip                                                  # rows before the resume point: written before
        while done < real:
            take = min(real - done, self.rows - self.filled)
            for k, block in self.buffer.items():
                rows = merged[k][done:done + take]                                  # (take, ...), in the cache
                if _filter_major(k):
                    block[:, self.filled:self.filled + take] = np.moveaxis(rows, -1, 0)   # (F, take, P)
                else:
                    block[self.filled:self.filled + take] = rows
            self.filled, done = self.filled + take, done + take
            if self.filled == self.rows or self.block_start + self.filled == self.end:
                self.writer.write(self.block_start, self._views())
                self.block_start, self.filled = self.block_start + self.filled, 0

    def _views(self) -> dict[str, np.ndarray]:
        """The block's filled rows as ``{name: (filled, ...)}``; a map is a view of its filter-major buffer, in
        which each filter's chunk, ``(filled, P, 1)``, is one contiguous run: zarr then encodes each chunk from its
        own memory instead of gathering one value in F from the whole block per filter (a 2,048-row block of 100
        float16 filters wrote in 0.26 s against 0.68 s so)."""
        return {k: np.moveaxis(v[:, :self.filled], 0, -1) if _filter_major(k) else v[:self.filled]
                for k, v in self.buffer.items()}

    def put(self, item) -> None:
        """Hand a batch to the thread; raises the thread's error instead once it has one."""
        if self.error is None:
            self.inbox.put(item)
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self, *, discard: bool) -> None:
        """Let the thread finish what it holds (``discard``: only the block it is writing) and join it."""
        if discard:
            self.stop.set()
        self.inbox.put(_DONE)
        self.join()


def stream(source, start, end, rows, batch_size, run, step, state, mesh, specs, writer) -> None:
    """Run the batches of rows ``[start, end)`` and write them in blocks of ``rows`` rows (``writer``), overlapped as
    the module docstring says (``end``: the number of examples, or the end of this process's rows).

    A resumed dump (or a process's rows) starts at the batch boundary at or before ``start`` and drops the rows
    before ``start``, and its last batch may hold rows past ``end``, computed and dropped: every row is computed in
    the same batch, at the same position, as in an uninterrupted dump (XLA on CPU may round a row's convolution
    differently at another position in its batch), so the two stores are bit for bit equal."""
    from jaxconv.train import mesh as jmesh

    length = specs["tokens"].shape[1]
    sink = _Writer(writer, specs, rows, end, start)
    sink.start()
    pending = None
    last_log = time.perf_counter()

    def drain(out, host, keep, skip):
        out = _to_host(out)
        sink.put(({**host, **{k: v[:keep] for k, v in out.items()}}, keep, skip))

    aligned = start - start % batch_size
    skip = start - aligned
    try:
        for b, batch in enumerate(_batches(source, aligned, batch_size, end)):
            real, keep = len(batch), min(len(batch), end - aligned - b * batch_size)   # keep: rows before end
            host = _host_rows(run, batch, length)                            # while the device runs the last batch
            feed = {k: host[k] for k in ("tokens", "starts", "lengths")}
            if real < batch_size:  # filler rows repeat the first one; they are never written
                fill = np.zeros(batch_size - real, np.int64)
                feed = {k: np.concatenate([v, v[fill]]) for k, v in feed.items()}
            arrays = jmesh.shard_batch(feed, mesh)
            out = step(state, arrays["tokens"], arrays["starts"], arrays["lengths"])
            _start_copies(out)
            if pending is not None:
                drain(*pending)
            pending, skip = (out, host, keep, skip), 0
            if time.perf_counter() - last_log > 10:
                log.info("dump: %d / %d examples", sink.block_start + sink.filled, end)
                last_log = time.perf_counter()
        if pending is not None:
            drain(*pending)
    except BaseException:
        sink.close(discard=True)
        raise
    sink.close(discard=False)
    sink.check()
