"""The on-disk store of a dump: a Zarr v3 group, written under a temporary name and renamed when complete.

Where: ``RUN/dumps/<name>/activations.zarr``. While it is written it is ``activations.zarr.partial``; the writer
commits whole chunk blocks of rows and records ``rows_written`` in the group's attributes after each (on several
processes, each its own next row in the array ``progress``: :mod:`jaxconv.dump.hosts`), so a killed
dump resumes from its last complete block (when the run's checkpoint, the input, the layers, the dtype and the
layout are the same; else it restarts cleanly). When every row is in, the partial store is renamed to its final
name and ``complete: true`` is written last; :func:`is_complete` is what readers check, so a reader never takes a
half store for a complete one.

Local paths use zarr's ``LocalStore`` (the rename is one atomic ``os.rename``); remote ones (``gs://...``) zarr's
``FsspecStore`` (``pip install gcsfs``). An object store has no rename: the partial store's objects are copied to
the final name (server side), ``complete`` is written, and only then is the partial store deleted (its root
``zarr.json`` first); a dump killed in any of these steps resumes from the partial store, or is complete.

Objects: ``maps/<layer>`` ``(examples, positions, filters)`` is sharded (zarr v3's sharding codec) ``(block,
positions, filters)`` in inner chunks ``(chunk, positions, 1)``: one object per block of rows holds every filter,
and one filter over all examples reads the shards' indexes and its own inner chunks only. Every other per-example
array is chunked ``(block, ...)``; an array held once (kernels, spans, the vocabulary) is one chunk. The sizes:
:mod:`jaxconv.dump.layout`. Every object is written, also one that holds only the fill value (zarr's
``write_empty_chunks``, inner chunks included), and the complete store records ``object_counts`` (``{array: number
of shards, or of chunks where unsharded}``) in its attributes: an object that is missing is damage, never zeros,
and readers (:func:`jaxconv.load_dump`) refuse it (:func:`missing_objects`); a truncated shard fails its index's
checksum on reading.

One dump at a time: ``jaxconv dump`` holds ``activations.zarr.lock`` while it writes (:mod:`jaxconv.locks`; on
several processes, process 0 holds it for all).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os

import numpy as np
import zarr
from etils import epath

from jaxconv.paths import as_path, is_remote

__all__ = ["STORE_NAME", "FORMAT", "ArraySpec", "StoreWriter", "DumpExistsError", "dump_dir", "open_store",
           "open_group", "is_complete", "refuse_complete", "fingerprint", "missing_objects", "object_grid"]

#: Every chunk on disk, also one of fill values alone: a missing object is then always damage.
_ALL_CHUNKS = {"write_empty_chunks": True}

log = logging.getLogger("jaxconv")

STORE_NAME = "activations.zarr"
PARTIAL = ".partial"
#: The store's ``format`` attribute.
FORMAT = "jaxconv.dump/3"   # 2: every chunk written, chunk_counts recorded; 3: maps sharded, object_counts


class DumpExistsError(ValueError):
    """A complete dump of that name exists (and ``overwrite`` was not asked for); the message names it."""


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One array of the store: ``shape``, ``dtype`` (numpy name or ``str``), ``chunks``, ``dims`` (names), and
    ``shards`` (None: each chunk is its own object)."""

    shape: tuple[int, ...]
    dtype: object
    chunks: tuple[int, ...]
    dims: tuple[str, ...]
    shards: tuple[int, ...] | None = None


def dump_dir(workdir, name: str) -> epath.Path:
    """``RUN/dumps/<name>``."""
    return as_path(workdir) / "dumps" / name


def open_store(path, *, read_only: bool):
    """A zarr store for ``path``: ``LocalStore`` for local paths, ``FsspecStore`` for ``gs://`` and the like."""
    text = os.fspath(path)
    if is_remote(text):
        return zarr.storage.FsspecStore.from_url(text, read_only=read_only)
    return zarr.storage.LocalStore(text, read_only=read_only)


def open_group(path, mode: str = "r") -> zarr.Group:
    """The dump's zarr group at ``path`` (``mode="r"`` read-only, ``"r+"`` to write)."""
    return zarr.open_group(open_store(path, read_only=mode == "r"), mode=mode, zarr_format=3)


def is_complete(path) -> bool:
    """Whether ``path`` holds a dump whose ``complete`` attribute is true (False for anything else)."""
    try:
        return open_group(path).attrs.get("complete") is True
    except Exception:  # missing, half written or not a zarr group at all
        return False


def refuse_complete(final) -> None:
    """Raise :class:`DumpExistsError` when a complete dump is at ``final`` (nothing is read beyond its flag)."""
    if is_complete(final):
        raise DumpExistsError(
            f"dump {epath.Path(final).parent.name!r} already exists and is complete at {final}; read it (jaxconv "
            f"report, jaxconv.load_dump) or pass --overwrite (overwrite=True) to write it again.")


def fingerprint(**facts) -> str:
    """A short hash of everything that must match for a partial dump to be resumed."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StoreWriter:
    """Writes one dump's store (see the module docstring).

    Args:
      final: the store's final path (``.../activations.zarr``).
      specs: the per-example arrays, ``{name: ArraySpec}`` (``maps/convs/0`` style names make subgroups).
      constants: arrays known before any row (kernels, spans, the embedding), ``{name: (array, dims)}``.
      attrs: the group's attributes.
      fingerprint: what must match to resume a partial store (:func:`fingerprint`).
      overwrite: replace a complete dump of the same name (only once the new one is complete).
      ranges: the rows ``[lo, hi)`` each process writes (:func:`jaxconv.dump.hosts.row_ranges`); None: one process,
        every row. This writer is process 0's; the others' are :meth:`join`'s.

    Attributes:
      next_rows: each process's next row to write (its ``lo`` when it has none written; rows written by an earlier,
        interrupted run with the same fingerprint count).
      start_row: this process's next row when the writer was made.

    Raises:
      DumpExistsError: a complete dump exists at ``final`` and ``overwrite`` is false.
    """

    def __init__(self, final, specs: dict[str, ArraySpec], constants: dict[str, tuple[np.ndarray, tuple]],
                 attrs: dict, fingerprint: str, *, overwrite: bool = False,
                 ranges: list[tuple[int, int]] | None = None):
        from jaxconv.dump.hosts import resume_rows

        self.final = epath.Path(final)
        self.partial = self.final.parent / (self.final.name + PARTIAL)
        self.overwrite = overwrite
        if not overwrite:
            refuse_complete(self.final)
        ranges = ranges or [(0, next(iter(specs.values())).shape[0])]
        self.group, found = self._resume(fingerprint)
        if self.group is None:
            self.group = self._create(specs, constants, attrs, fingerprint)
            found = [lo for lo, _ in ranges]
        rows = next((s.shards or s.chunks)[0] for s in specs.values())
        self.next_rows, self.process = resume_rows(found, ranges, rows), 0
        self.progress = self._record_progress()
        self.arrays = {name: self.group[name].with_config(_ALL_CHUNKS) for name in specs}   # not persisted
        self.start_row = self.next_rows[0]

    @classmethod
    def join(cls, final, specs: dict[str, ArraySpec], process: int) -> StoreWriter:
        """Process ``process``'s writer of the partial store that process 0's writer made (several processes)."""
        self = cls.__new__(cls)
        self.final = epath.Path(final)
        self.partial = self.final.parent / (self.final.name + PARTIAL)
        self.overwrite, self.process = False, process
        self.group = open_group(self.partial, "r+")
        self.progress = self.group["progress"]
        self.next_rows = [int(r) for r in self.progress[:]]
        self.arrays = {name: self.group[name].with_config(_ALL_CHUNKS) for name in specs}
        self.start_row = self.next_rows[process]
        return self

    @property
    def next_row(self) -> int:
        """This process's next row to write."""
        return self.next_rows[self.process]

    # ------------------------------------------------------------------ set-up

    def _resume(self, fp: str):
        """The partial store to go on with and the next rows it records (``rows_written``, or ``progress``), or
        ``(None, None)``."""
        if self.final.exists() and not is_complete(self.final):
            # Killed between the rename and the `complete` flag, or a foreign half store: take it back.
            if self.partial.exists():
                self.final.rmtree()
            else:
                _put(self.final, self.partial)
                _drop(self.final)
        if not self.partial.exists():
            return None, None
        try:
            group = open_group(self.partial, "r+")
            if group.attrs.get("fingerprint") == fp and group.attrs.get("format") == FORMAT:
                if "progress" in group:
                    found = [int(r) for r in group["progress"][:]]
                else:
                    found = [int(group.attrs["rows_written"])]
                log.info("dump: resuming %s at row %s", self.partial, ", ".join(map(str, found)))
                return group, found
            log.info("dump: %s is from another run, input or layout; starting again", self.partial)
        except Exception as e:  # unreadable metadata (killed while writing it): start again
            log.info("dump: %s cannot be resumed (%s); starting again", self.partial, type(e).__name__)
        self.partial.rmtree()
        return None, None

    def _create(self, specs, constants, attrs, fp: str) -> zarr.Group:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(open_store(self.partial, read_only=False), mode="w", zarr_format=3)
        for name, s in specs.items():
            fill = "" if s.dtype is str else 0
            group.create_array(name, shape=s.shape, chunks=s.chunks, shards=s.shards, dtype=s.dtype,
                               fill_value=fill, dimension_names=s.dims, config=_ALL_CHUNKS)
        for name, (value, dims) in constants.items():
            value = np.asarray(value)
            dtype = str if value.dtype.kind in "UOT" else value.dtype
            whole = tuple(max(d, 1) for d in value.shape) or "auto"                   # one object
            a = group.create_array(name, shape=value.shape, chunks=whole, dtype=dtype, dimension_names=dims,
                                   config=_ALL_CHUNKS)
            a[...] = value
        group.attrs.update({**attrs, "format": FORMAT, "fingerprint": fp, "rows_written": 0, "complete": False})
        return group

    def _record_progress(self):
        """Several processes: the array ``progress``, holding :attr:`next_rows`, one object per process (returned).
        One: ``rows_written`` as ever (None), rewritten only when an earlier run on several left a ``progress``."""
        if len(self.next_rows) > 1:
            progress = self.group.create_array("progress", shape=(len(self.next_rows),), chunks=(1,), dtype="int64",
                                               fill_value=0, dimension_names=("process",), overwrite=True,
                                               config=_ALL_CHUNKS)
            progress[:] = np.asarray(self.next_rows, np.int64)
            return progress
        if "progress" in self.group:
            del self.group["progress"]
            self.group.attrs["rows_written"] = self.next_rows[0]
        return None

    # ------------------------------------------------------------------ rows

    def write(self, start: int, block: dict[str, np.ndarray]) -> None:
        """Write rows ``[start, start + n)`` of every per-example array from ``block`` (``{name: (n, ...)}``), then
        record ``start + n`` as written. ``start`` must be a block boundary, ``n`` a whole block (or the rest): a map's
        shard is then written whole, never read back and rewritten."""
        n = None
        for name, array in self.arrays.items():
            rows = block[name]
            n = len(rows) if n is None else n
            if len(rows) != n:
                raise ValueError(f"dump block: {name} has {len(rows)} rows, the others {n}.")
            array[start:start + n] = rows
        if self.progress is not None:
            self.progress[self.process] = start + n
        else:
            self.group.attrs["rows_written"] = start + n
        self.next_rows[self.process] = start + n       # once recorded

    def finish(self, attrs: dict | None = None) -> epath.Path:
        """Drop ``progress`` (several processes), add ``attrs``, ``rows_written`` (every row) and ``object_counts``
        (every array's number of objects, all written), rename the partial store to its final name (replacing an
        old dump when overwriting), then write ``complete: true`` last. Returns the final path."""
        if "progress" in self.group:
            del self.group["progress"]
        counts = {name: math.prod(object_grid(a)) for name, a in _arrays(self.group)}
        n = next(iter(self.arrays.values())).shape[0]
        self.group.attrs.update({**(attrs or {}), "rows_written": n, "object_counts": counts})
        if self.final.exists():
            self.final.rmtree()
        _put(self.partial, self.final)
        done = open_group(self.final, "r+")
        done.attrs["complete"] = True
        try:
            _drop(self.partial)
        except Exception as e:  # the dump is complete: what is left of its copy costs room, nothing else
            log.warning("dump: %s is complete, but its partial copy %s could not be deleted (%s); delete it",
                        self.final, self.partial, type(e).__name__)
        return self.final


def _put(src: epath.Path, dst: epath.Path) -> None:
    """Put the store ``src`` at ``dst`` (which must not exist). Local: one ``os.rename``. An object store has no
    rename: every object is copied (server side); :func:`_drop` deletes ``src`` after."""
    if not is_remote(src):
        src.rename(dst)
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(os.fspath(src))
    target = fsspec.core.url_to_fs(os.fspath(dst))[1]
    fs.invalidate_cache(root)
    keys = fs.find(root)                                                       # objects only, no folder markers
    fs.copy(keys, [target + k[len(root):] for k in keys])


def _drop(src: epath.Path) -> None:
    """After :func:`_put`: delete what is left at ``src`` (nothing locally). Its root ``zarr.json`` goes first, so
    that a deletion that stops part way never leaves objects that open as a store (and would be resumed)."""
    if not is_remote(src):
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(os.fspath(src))
    fs.invalidate_cache(root)
    keys, head = fs.find(root), f"{root}/zarr.json"
    if head in keys:
        fs.rm_file(head)
    rest = [k for k in keys if k != head]
    if rest:
        fs.rm(rest)


def _arrays(group: zarr.Group, prefix: str = ""):
    """``(path, array)`` for every array under ``group``, subgroups included."""
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            yield prefix + name, member
        else:
            yield from _arrays(member, prefix + name + "/")


def _store_keys(path) -> set[str]:
    """Every key of the store at ``path`` (one listing)."""
    from zarr.core.sync import sync

    store = open_store(path, read_only=True)

    async def collect():
        return {k async for k in store.list()}

    return sync(collect())


def object_grid(array) -> tuple[int, ...]:
    """How many objects ``array`` has along each axis: its shard grid, or its chunk grid where unsharded."""
    per = array.shards or array.chunks
    return tuple(-(-s // c) for s, c in zip(array.shape, per))


def missing_objects(path, group: zarr.Group) -> list[tuple[str, tuple[int, ...], str]]:
    """The objects recorded in ``object_counts`` that are not in the store: ``(array, shard or chunk index, key)``
    (empty when every one is there). One listing of the store; object keys are zarr v3's ``<array>/c/i/j/k`` (a
    shard's key is its index in the shard grid)."""
    import itertools

    counts = group.attrs.get("object_counts") or {}
    keys = _store_keys(path)
    missing = []
    for name in sorted(counts):
        if f"{name}/zarr.json" not in keys:   # the array's metadata is gone: the array cannot be opened at all
            missing.append((name, (), f"{name}/zarr.json"))
            continue
        have = sum(k.startswith(name + "/c/") or k == name + "/c" for k in keys)
        if have >= int(counts[name]):
            continue
        try:
            grid = object_grid(group[name])
        except KeyError:   # the whole array is gone
            missing.append((name, (), name))
            continue
        for index in itertools.product(*(range(g) for g in grid)):
            key = "/".join([name, "c", *map(str, index)])
            if key not in keys:
                missing.append((name, index, key))
    return missing
