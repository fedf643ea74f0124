"""The dump's overlapped stream (:mod:`jaxconv.dump.pipeline`): writes on their own thread while the next batches
are encoded and computed, in a bounded number of batches, and every error of the writer or the caller surfacing
as one line with the store left resumable."""

from __future__ import annotations

import errno
import os
import pathlib
import threading

import numpy as np
import pytest
import zarr

import jaxconv
from jaxconv.cli import main
from jaxconv.data.pipeline import load_dataset, split_dataset
from jaxconv.dump import dump_activations, dump_path, pipeline
from jaxconv.dump import store as dstore

pytestmark = pytest.mark.slow  # trained runs dumped end to end

ROWS, BATCH, N = 16, 10, 60   # chunk rows, batch size, examples: blocks end at rows 16, 32, 48, 60


def _input(path, workdir):
    config = jaxconv.load_run(workdir).config
    test = split_dataset(load_dataset(config), config)[0].test
    path.write_text("".join(f"{test.labels[i % len(test)]} {test.texts[i % len(test)]}\n" for i in range(N)))
    return path


def _partial(workdir, name) -> pathlib.Path:
    final = pathlib.Path(os.fspath(dump_path(workdir, name)))
    return final.parent / (final.name + dstore.PARTIAL)


def _assert_same(workdir, a, b):
    ga, gb = (zarr.open_group(str(dump_path(workdir, x)), mode="r") for x in (a, b))
    names = sorted(n for n, _ in ga.arrays()) + [f"{k}/convs/{i}" for k in ("maps", "pooled", "argmax")
                                                 for i in range(3)]
    for name in names:
        np.testing.assert_array_equal(ga[name][:], gb[name][:], err_msg=name)


def test_writes_run_beside_the_next_batches_within_the_bound(demo_dump, tmp_path, monkeypatch):
    """The first block's write waits until the caller has encoded a batch past the ones that block needs, which
    only a writer on its own thread allows (a one-thread loop never gets there: the wait times out). Every write
    runs off the caller's thread, no write starts with more than QUEUED + 3 batches encoded beyond its rows, and
    the store equals the one an unhindered dump writes."""
    path = _input(tmp_path / "overlap.txt", demo_dump)
    caller = threading.get_ident()
    encoded, ahead, log = [0], threading.Event(), []
    host_rows, write = pipeline._host_rows, dstore.StoreWriter.write

    def counting(*args):
        encoded[0] += 1
        if encoded[0] == 5:          # batch 4 (rows 40-49): the first block needs batches 0-1 and one ahead
            ahead.set()
        return host_rows(*args)

    def waiting(self, start, block):
        log.append((threading.get_ident(), start, len(next(iter(block.values()))), encoded[0]))
        if start == 0:
            assert ahead.wait(timeout=120), "the caller did not go on while the first block was written"
        return write(self, start, block)

    monkeypatch.setattr(pipeline, "_host_rows", counting)
    monkeypatch.setattr(dstore.StoreWriter, "write", waiting)
    dump_activations(demo_dump, input=path, chunk_rows=ROWS, batch_size=BATCH, name="pipeline-overlap")
    assert [(s, n) for _, s, n, _ in log] == [(0, 16), (16, 16), (32, 16), (48, 12)]
    assert all(thread != caller for thread, *_ in log)
    for _, start, n, seen in log:
        assert seen - -(-(start + n) // BATCH) <= pipeline.QUEUED + 3, log
    monkeypatch.undo()
    dump_activations(demo_dump, input=path, chunk_rows=ROWS, batch_size=BATCH, name="pipeline-plain")
    _assert_same(demo_dump, "pipeline-overlap", "pipeline-plain")


def test_a_full_disk_in_the_writer_is_one_line_and_resumes(demo_dump, tmp_path, monkeypatch, capsys):
    """ENOSPC raised by the writer thread's third block: `jaxconv dump` prints one line naming the dump and the
    cause and exits 2 (no hang, no traceback); the lock is released, and the same command resumes at row 32 and
    writes the store an uninterrupted dump writes."""
    path = _input(tmp_path / "full.txt", demo_dump)
    write = dstore.StoreWriter.write

    def full(self, start, block):
        if start == 32:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, start, block)

    monkeypatch.setattr(dstore.StoreWriter, "write", full)
    args = ["dump", "--workdir", str(demo_dump), "--input", str(path), "--batch-size", str(BATCH),
            "--chunk-rows", str(ROWS)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    partial = _partial(demo_dump, "full")
    assert err == [f"jaxconv dump: error: WorkdirError: cannot write the dump {partial}: No space left on device (ENOSPC); what "
                   f"it held before is intact. Free space (or fix the file system) and run the same command again."]
    assert zarr.open_group(str(partial), mode="r").attrs["rows_written"] == 32
    monkeypatch.setattr(dstore.StoreWriter, "write", write)
    assert main(args) == 0 and not partial.exists()
    clean = dump_activations(demo_dump, input=path, chunk_rows=ROWS, batch_size=BATCH, name="full-clean")
    assert clean.resumed_from == 0
    _assert_same(demo_dump, "full", "full-clean")


def test_ctrl_c_in_the_caller_stops_the_writer_and_names_the_rows(demo_dump, tmp_path, monkeypatch, capsys):
    """Ctrl-C while the caller encodes batch 5: the writer stops after the block it is writing and is joined, the
    one line names the rows the store holds (a whole number of blocks), exit 130, and the same command resumes."""
    path = _input(tmp_path / "stopped.txt", demo_dump)
    host_rows, calls = pipeline._host_rows, [0]

    def interrupt(*args):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return host_rows(*args)

    monkeypatch.setattr(pipeline, "_host_rows", interrupt)
    args = ["dump", "--workdir", str(demo_dump), "--input", str(path), "--batch-size", str(BATCH),
            "--chunk-rows", str(ROWS)]
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    partial = _partial(demo_dump, "stopped")
    done = zarr.open_group(str(partial), mode="r").attrs["rows_written"]
    assert done in (0, 16, 32) and not any(t.name == "jaxconv-dump-writer" for t in threading.enumerate())
    assert len(err) == 1 and err[0].endswith(f"the dump stopped with {done} of {N} rows written to {partial}; the "
                                             f"same command resumes it from row {done}.")
    monkeypatch.setattr(pipeline, "_host_rows", host_rows)
    assert main(args) == 0 and not partial.exists()
    dump_activations(demo_dump, input=path, chunk_rows=ROWS, batch_size=BATCH, name="stopped-clean")
    _assert_same(demo_dump, "stopped", "stopped-clean")
