"""``jaxconv dump`` on several processes (:mod:`jaxconv.dump.hosts`): every process writes its own blocks of rows,
the store equals the one-process store, and a killed dump resumes each process at its own next block.

The two-process tests join two local processes of 2 CPU devices each through ``jax.distributed`` over loopback, as
``tests/train/test_train.py::test_two_processes_match_one`` does. Their reference is one process of 2 devices with
half the batch: the same rows per device, in a process of as many devices (XLA on CPU rounds differently in a
process of 4 devices, see :mod:`jaxconv.dump.hosts`).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import zarr
from conftest import subprocess_env
from helpers import copy_run, free_port

from jaxconv.dump import DumpError, dump_path, load_dump
from jaxconv.dump import store as dstore
from jaxconv.dump.hosts import resume_rows, row_ranges

ROWS, BATCH, N = 14, 8, 200      # the demo's 200 test rows in 15 blocks: process 0 rows [0, 98), process 1 [98, 200)
OWN = {0: list(range(0, 98, ROWS)), 1: list(range(98, 200, ROWS))}    # the blocks each process writes
#: Attributes that differ with the batch (the reference's is half) or the run: every other one must be equal.
UNCOMPARED = {"name", "seconds", "batch_size", "devices"}

#: A child: ``jaxconv dump`` that prints ``WROTE <start>`` after each block it writes, and with KILL set, ``KILL``
#: after its first block, then waits (for SIGKILL).
CHILD = textwrap.dedent("""
    import os, sys
    import jaxconv.dump.store as store
    original = store.StoreWriter.write
    def write(self, start, block):
        original(self, start, block)
        print("WROTE", start, flush=True)
        if os.environ.get("KILL"):
            print("KILL", flush=True)
            sys.stdin.read()
    store.StoreWriter.write = write
    from jaxconv.cli import main
    sys.exit(main(["dump", *sys.argv[1:]]))
""")


def _args(workdir, name: str, batch: int = BATCH) -> list[str]:
    return ["--workdir", str(workdir), "--name", name, "--chunk-rows", str(ROWS), "--batch-size", str(batch)]


def _env(cache, **extra) -> dict:
    """A child's environment with the persistent XLA cache ``cache`` (a folder), where process 0 of each dump
    finds the programs an earlier child compiled."""
    return subprocess_env(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                          JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", **extra)


def _two(run, name: str, tmp_path, **env) -> list[subprocess.Popen]:
    """Start the two processes of one dump of ``run`` (stdout piped; stderr to ``tmp_path/<name>.<i>.err``)."""
    port = free_port()
    procs = []
    for i in range(2):
        err = open(tmp_path / f"{name}.{i}.err", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", CHILD, *_args(run.workdir, name)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, text=True,
            env=_env(run.cache, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAXCONV_DISTRIBUTED="1",
                     JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i),
                     **env)))
        err.close()
    return procs


def _finish(procs, name, tmp_path) -> list[str]:
    """Wait for both; assert they exit 0; their stdout."""
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, out + (tmp_path / f"{name}.{i}.err").read_text()[-3000:]
    return outs


def _wrote(out: str) -> list[int]:
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("WROTE ")]


def _group(workdir, name) -> zarr.Group:
    return zarr.open_group(os.fspath(dump_path(workdir, name)), mode="r")


def _arrays(group, prefix=""):
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            yield prefix + name
        else:
            yield from _arrays(member, prefix + name + "/")


def _assert_same_store(workdir, name, reference):
    a, b = _group(workdir, name), _group(workdir, reference)
    names = sorted(_arrays(a))
    assert names == sorted(_arrays(b)) and "progress" not in names
    for array in names:
        x, y = a[array][:], b[array][:]
        assert x.dtype == y.dtype, array
        np.testing.assert_array_equal(x, y, err_msg=array)
    ours, theirs = dict(a.attrs), dict(b.attrs)
    assert {k: v for k, v in ours.items() if k not in UNCOMPARED} == \
           {k: v for k, v in theirs.items() if k not in UNCOMPARED}
    assert (ours["batch_size"], ours["devices"], theirs["batch_size"], theirs["devices"]) == (BATCH, 4, BATCH // 2, 2)
    assert ours["complete"] is True and ours["rows_written"] == N


@pytest.fixture(scope="module")
def run(demo_run, tmp_path_factory) -> types.SimpleNamespace:
    """``workdir``: the demo run (no dumps) with the reference dump ``one``, by one process of 2 devices with
    batch 4; ``cache``: the children's persistent XLA cache."""
    workdir = copy_run(demo_run, tmp_path_factory.mktemp("multihost") / "run")
    cache = tmp_path_factory.mktemp("xla_cache")
    proc = subprocess.run([sys.executable, "-m", "jaxconv", "dump", *_args(workdir, "one", BATCH // 2)],
                          capture_output=True, text=True, timeout=120,
                          env=_env(cache, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return types.SimpleNamespace(workdir=workdir, cache=cache)


# ------------------------------------------------------------------------------------------------- row ranges

def test_rows_go_to_processes_in_whole_blocks():
    assert row_ranges(N, ROWS, 2) == [(0, 98), (98, 200)]
    assert row_ranges(N, ROWS, 1) == [(0, N)]
    assert row_ranges(30, 14, 4) == [(0, 0), (0, 14), (14, 28), (28, 30)]      # 3 blocks: one process has none
    for n, rows, p in [(200, 14, 2), (1000, 64, 3), (5, 1, 8), (64, 64, 4)]:
        ranges = row_ranges(n, rows, p)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(hi == lo2 for (_, hi), (lo2, _) in zip(ranges, ranges[1:]))          # one run each, no overlap
        assert all(lo % rows == 0 and (hi % rows == 0 or hi == n) for lo, hi in ranges)  # whole blocks


def test_resume_rows_per_process_or_from_the_first_gap():
    two = row_ranges(N, ROWS, 2)
    assert resume_rows([14, 112], two, ROWS) == [14, 112]         # the same processes: each where it stopped
    assert resume_rows([42], two, ROWS) == [42, 98]              # a one-process store: rows [0, 42) written
    assert resume_rows([140], two, ROWS) == [98, 140]
    assert resume_rows([14, 112], [(0, N)], ROWS) == [14]        # one process after two: from the first gap
    assert resume_rows([98, 126], row_ranges(N, ROWS, 3), ROWS) == [70, 126, 140]   # three after two: from 126


def test_each_process_records_its_own_progress_and_the_complete_store_drops_it(tmp_path):
    """Process 0's writer makes ``progress``; process 1 joins and records its own element only; ``finish`` leaves
    the one-process store: no ``progress``, ``rows_written`` = every row."""
    specs = {"x": dstore.ArraySpec((6,), "int32", (2,), ("example",))}
    final, ranges = tmp_path / "s.zarr", row_ranges(6, 2, 2)
    first = dstore.StoreWriter(final, specs, {}, {}, "fp", ranges=ranges)
    second = dstore.StoreWriter.join(final, specs, 1)
    assert (first.next_rows, first.next_row, second.next_row) == ([0, 2], 0, 2)
    second.write(2, {"x": np.array([3, 4], np.int32)})
    first.write(0, {"x": np.array([1, 2], np.int32)})
    assert list(zarr.open_group(str(first.partial), mode="r")["progress"][:]) == [2, 4]
    assert dstore.StoreWriter(final, specs, {}, {}, "fp", ranges=ranges).next_rows == [2, 4]   # resumed
    one = dstore.StoreWriter(final, specs, {}, {}, "fp")       # one process goes on after the rows [0, 4) written
    assert one.next_rows == [4] and "progress" not in one.group and one.group.attrs["rows_written"] == 4
    first = dstore.StoreWriter(final, specs, {}, {}, "fp", ranges=ranges)            # and two again after it
    assert first.next_rows == [2, 4]
    dstore.StoreWriter.join(final, specs, 1).write(4, {"x": np.array([5, 6], np.int32)})
    first.finish()
    g = zarr.open_group(str(final), mode="r")
    assert "progress" not in g and g.attrs["rows_written"] == 6 and g.attrs["object_counts"] == {"x": 3}
    assert list(g["x"][:]) == [1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------------------------------------- two processes

@pytest.mark.slow
def test_two_processes_write_their_own_blocks_of_the_one_process_store(run, tmp_path):
    procs = _two(run, "two", tmp_path)
    outs = _finish(procs, "two", tmp_path)
    assert [_wrote(out) for out in outs] == [OWN[0], OWN[1]]       # whole blocks, each process its own
    assert "store:" in outs[0] and "store:" not in outs[1]        # process 0 prints the summary
    _assert_same_store(run.workdir, "two", "one")


@pytest.mark.slow
def test_killed_processes_each_resume_at_their_own_next_block(run, tmp_path):
    """Both processes SIGKILLed after their first block: the partial store records each one's next row, readers
    refuse it, and the same command resumes each process there and writes the one-process store."""
    procs = _two(run, "killed", tmp_path, KILL="1")
    try:
        for i, p in enumerate(procs):
            lines = []
            while not lines or lines[-1] != "KILL\n":
                lines.append(p.stdout.readline())
                assert lines[-1], "".join(lines) + (tmp_path / f"killed.{i}.err").read_text()[-3000:]
            assert _wrote("".join(lines)) == OWN[i][:1]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
    final = pathlib.Path(os.fspath(dump_path(run.workdir, "killed")))
    partial = final.parent / (final.name + dstore.PARTIAL)
    assert not final.exists()
    assert list(zarr.open_group(str(partial), mode="r")["progress"][:]) == [OWN[0][1], OWN[1][1]]
    with pytest.raises(DumpError, match="no dump 'killed'|is not a complete dump"):
        load_dump(run.workdir, "killed")

    outs = _finish(_two(run, "killed", tmp_path), "killed", tmp_path)
    assert [_wrote(out) for out in outs] == [OWN[0][1:], OWN[1][1:]]
    assert "resumed with 28 rows written before" in outs[0] and not partial.exists()
    _assert_same_store(run.workdir, "killed", "one")
