"""A dump on several processes (``jax.process_count() > 1``, e.g. every host of a TPU pod slice): each host writes
its own rows straight to the shared store.

Which rows: contiguous ranges of whole blocks (:func:`row_ranges`). Of the store's ``B`` blocks (a block is one
shard of every per-example array, the unit written: :mod:`jaxconv.dump.layout`), process ``p`` of ``P`` gets blocks
``[p * B // P, (p + 1) * B // P)``. No two processes write the same object, and each streams one run of rows, read
from its input once.

Where they are computed: where they are written. Each process compiles the dump's step for a mesh of its own
devices (``jax.local_devices()``) and a local batch of ``batch_size / P`` rows, and runs it with no collective: its
outputs reach its host without the all-gather that sent every row to every host. The global step was the other way:
a global batch puts ``batch_size / P`` rows on each process, so every block would hold rows of every process, and
writing whole blocks would need the rows sent between hosts again.

Bit for bit the one-process store: a range's local batches start at multiples of ``batch_size / P`` (a range that
starts inside one starts at its first row and drops the rows before its own, as a resumed dump does), so each device
gets the same rows, at the same positions, in the same per-device shape ``(batch_size / devices, length)`` as in a
one-process dump; the rows of the next range in a range's last batch are computed there as well and dropped. The
stores are then equal wherever a device computes its rows the same whatever else its process holds. XLA on CPU does
not quite: a process of 4 devices rounded the demo's maps differently (by 1e-6) from one of 1 or 2, on any mesh; so
the tests compare 2 processes of 2 devices with one process of 2 devices and half the batch, the same work per
device (``tests/dump/test_multihost.py``).

Meetings (:class:`Meetings`): process 0 makes (or resumes) the partial store with its metadata and constants, and
every process waits for that before it opens the store; after its last row each process waits for all the others;
then process 0 writes the complete mark (:meth:`jaxconv.dump.store.StoreWriter.finish`), and every process waits
for it, so on every host the store is complete when ``dump_activations`` returns. A meeting is an all-gather of one
flag per process: a process that stops (an error, Ctrl-C) says so at its next meeting, and the others stop with
:class:`HostFailed`, naming it, instead of waiting for it.

Progress: a one-process store records ``rows_written`` in its attributes, as ever. On several processes each
records the next row of its own range in its own element, one object each, of the array ``progress``
``(processes,)`` (one writer per object: the group's attributes are one object that every writer would rewrite).
A killed dump resumes each process at its own next unwritten block; run on another number of processes, at the
first row not written (:func:`resume_rows`). The complete store drops ``progress`` and records ``rows_written``:
every row, as the one-process store does.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["row_ranges", "resume_rows", "local_mesh", "Meetings", "HostFailed"]


class HostFailed(RuntimeError):
    """Another process of a multi-process dump stopped; the message names it and the meeting."""


def row_ranges(n: int, rows: int, processes: int) -> list[tuple[int, int]]:
    """Each process's rows ``[lo, hi)``: contiguous runs of whole blocks of ``rows`` rows, as even as the blocks
    allow (a process gets none when there are fewer blocks than processes)."""
    blocks = -(-n // rows)
    edges = [min(p * blocks // processes * rows, n) for p in range(processes + 1)]
    return list(zip(edges, edges[1:]))


def resume_rows(found: list[int], ranges: list[tuple[int, int]], rows: int) -> list[int]:
    """The next row each of ``ranges`` writes, from ``found``: the next rows an earlier run recorded, one per
    process of its own (one: a one-process store's ``rows_written``). The same number of processes goes on where
    each stopped; another number goes on from the first row not written (later ones are written again)."""
    n = ranges[-1][1]
    if len(found) != len(ranges):
        earlier = row_ranges(n, rows, len(found))
        first = next((r for r, (lo, hi) in zip(found, earlier) if r < hi), n)
        found = [first] * len(ranges)
    return [min(max(int(r), lo), hi) for r, (lo, hi) in zip(found, ranges)]


def local_mesh(batch_size: int):
    """The mesh the step runs on and its batch: every device and ``batch_size`` in one process; this process's
    devices and ``batch_size / processes`` on several (module docstring)."""
    from jaxconv.train import mesh as jmesh

    processes = jax.process_count()
    if processes == 1:
        return jmesh.make_mesh(), batch_size
    local = jax.local_device_count()
    if local * processes != jax.device_count():
        raise ValueError(f"jaxconv dump on {processes} processes needs as many devices on each: {jax.device_count()} "
                         f"devices in all, {local} on process {jax.process_index()}.")
    return jmesh.make_mesh(jax.local_devices()), batch_size // processes


class Meetings:
    """The points where the processes of a dump wait for each other (nothing in one process); see the module
    docstring. Every process meets the same number of times, in the same order: :meth:`meet` on the way,
    :meth:`abandon` from an error (it stands for the next meeting), :meth:`close` after the last."""

    def __init__(self):
        self.open = jax.process_count() > 1

    def meet(self, what: str, ok: bool = True) -> None:
        """Wait for every process; raise :class:`HostFailed` (when this one is ``ok``) if another has stopped."""
        if not self.open:
            return
        from jax.experimental import multihost_utils

        flags = np.asarray(multihost_utils.process_allgather(np.int32(ok))).reshape(-1)
        if flags.all():
            return
        self.open = False
        if ok:
            stopped = ", ".join(str(p) for p in np.flatnonzero(flags == 0))
            raise HostFailed(f"the dump stopped before {what}: process(es) {stopped} failed (see their output); the "
                             f"rows written so far are kept, and the same command on every host resumes.")

    def abandon(self) -> None:
        """Tell the others, at their next meeting, that this process stops (an error is on its way out)."""
        if self.open:
            try:
                self.meet("", ok=False)
            except BaseException:  # the error on its way out is the one to report
                pass
        self.open = False

    def close(self) -> None:
        self.open = False

    def __call__(self, kind, value, traceback) -> None:
        """An ``ExitStack.push`` callback: :meth:`abandon` when the block exits with an error."""
        if kind is not None:
            self.abandon()
