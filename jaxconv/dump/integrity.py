"""A dump's integrity on reading: the format version, the attributes a reader needs, every recorded array and chunk
on disk, every shard, chunk and array metadata decodable.

The writer (:mod:`jaxconv.dump.store`) writes every object (a map's shards, the other arrays' chunks) and records
``object_counts``; :func:`check_store` reads the attributes (:data:`REQUIRED_ATTRS`), lists the store once and
refuses a missing array, shard or chunk file; :func:`checked_group` wraps the group so that a shard or chunk that is
on disk but cannot be decoded (truncated: its shard index fails its checksum; corrupt), or
an array whose ``zarr.json`` cannot be read, raises :class:`DumpDamagedError` instead of a codec's or JSON's
traceback. Each refusal is one line naming the store, the array or attribute (with the rows) and the fix: write
the dump again with ``--overwrite``.
"""

from __future__ import annotations

import os

import zarr

from jaxconv.dump import store as dstore

__all__ = ["DumpError", "DumpDamagedError", "check_store", "checked_group"]


class DumpError(FileNotFoundError):
    """No complete dump where one was asked for; the message names the path and what is there instead."""


class DumpDamagedError(DumpError):
    """A complete dump that cannot be read whole: a shard or chunk file missing or unreadable (truncated), or a store of
    another format version. The message names the array, the rows and the fix (write the dump again)."""


def _fix(path) -> str:
    return (f"re-run the dump with --overwrite (jaxconv dump --workdir RUN --name "
            f"{os.path.basename(os.path.dirname(os.fspath(path).rstrip('/')))} --overwrite)")


def _rows(array, index: tuple[int, ...]) -> str:
    if not index or not array.shape:
        return "all rows"
    per = (array.shards or array.chunks)[0]
    lo = index[0] * per
    rows = f"rows {lo}..{min(lo + per, array.shape[0]) - 1}"
    if array.shards is None and len(index) == 3 and array.shape[2] > 1:   # unsharded maps: a filter per chunk
        rows += f", filter {index[2]}"
    return rows


#: The store attributes a reader needs (:class:`jaxconv.dump.Dump`, the report), and per layer, its ``layer_info``.
REQUIRED_ATTRS = ("name", "source", "layers", "layer_info", "num_examples", "num_classes", "padded_length",
                  "pad_left", "tokenizer", "checkpoint_step", "object_counts")
REQUIRED_LAYER_INFO = ("filters", "positions", "kernel_shape", "kernel", "stride", "padding", "dilation", "rf_size")


def _check_attributes(path, attrs) -> None:
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if not missing:
        layers, info = attrs["layers"], attrs["layer_info"]
        if not isinstance(layers, list) or not isinstance(info, dict):
            missing = ["layers" if not isinstance(layers, list) else "layer_info"]
        else:
            missing = [f"layer_info[{la!r}]" if not isinstance(info.get(la), dict) else f"layer_info[{la!r}][{k!r}]"
                       for la in layers for k in REQUIRED_LAYER_INFO
                       if not isinstance(info.get(la), dict) or k not in info[la]][:1]
    if missing:
        raise DumpDamagedError(f"{path}: the store's attribute {str(missing[0])[:80]} is missing (a store jaxconv "
                               f"dump writes always has it); the store is damaged or was edited: {_fix(path)}.")


def check_store(path, group) -> None:
    """Refuse a store of another format version (or of none), one that lacks an attribute the reader needs
    (:data:`REQUIRED_ATTRS`, per layer :data:`REQUIRED_LAYER_INFO`), and one whose recorded arrays or chunks are
    not all on disk (one listing, no shard read).

    Raises:
      DumpDamagedError: one line naming the array, its rows and the fix.
    """
    found = group.attrs.get("format")
    if found != dstore.FORMAT:
        what = f"of format {found!r}" if found else "without a format (not written by jaxconv dump)"
        raise DumpDamagedError(f"{path} is a store {what}; this jaxconv reads {dstore.FORMAT!r}: {_fix(path)}.")
    _check_attributes(path, group.attrs)
    missing = dstore.missing_objects(path, group)
    if missing:
        name, index, key = missing[0]
        more = f" (and {len(missing) - 1} more object(s))" if len(missing) > 1 else ""
        array = group[name] if index else None
        where = _rows(array, index) if index else "the whole array"
        kind = ("shard file" if array.shards else "chunk file") if index else "file"
        raise DumpDamagedError(f"{path}: the {kind} {key} of {name} ({where}) is missing{more}; the store is "
                               f"damaged: {_fix(path)}.")


class _CheckedArray:
    """A zarr array whose reads turn a chunk that cannot be decoded (truncated, corrupt) into a
    :class:`DumpDamagedError` naming the array and the rows asked for. Anything else passes through."""

    def __init__(self, array, path, name: str):
        self._array, self._path, self._name = array, path, name

    def __getattr__(self, attr):
        return getattr(self._array, attr)

    def _get(self, getter, key):
        try:
            return getter(key)
        except (IndexError, TypeError, KeyError):
            raise
        except Exception as e:
            first = key[0] if isinstance(key, tuple) and key else key
            if first is Ellipsis or not self._array.shape:
                rows = "all rows"
            elif isinstance(first, slice):
                rows = f"rows {first.start or 0}..{(first.stop or self._array.shape[0]) - 1}"
            else:
                rows = f"rows {first!r}"[:80]
            cause = " ".join(str(e).split())[:120]
            raise DumpDamagedError(f"{self._path}: a chunk of {self._name} ({rows}) cannot be read "
                                   f"({type(e).__name__}: {cause}); the store is damaged: {_fix(self._path)}.") \
                from None

    def __getitem__(self, key):
        return self._get(self._array.__getitem__, key)

    @property
    def oindex(self):
        outer = self

        class _OIndex:
            def __getitem__(self, key):
                return outer._get(outer._array.oindex.__getitem__, key)

        return _OIndex()


def checked_group(group, path):
    """``group`` handing out arrays whose undecodable chunks raise :class:`DumpDamagedError`."""
    return _CheckedGroup(group, path)


class _CheckedGroup:
    """The dump's zarr group, handing out :class:`_CheckedArray` s."""

    def __init__(self, group, path):
        self._group, self._path = group, path

    def __getattr__(self, attr):
        return getattr(self._group, attr)

    def __getitem__(self, name):
        try:
            member = self._group[name]
        except KeyError:                     # no such member: Dump.has() asks
            raise
        except Exception as e:               # its metadata (zarr.json) is there but cannot be read
            cause = " ".join(str(e).split())[:120]
            raise DumpDamagedError(f"{self._path}: the metadata of {str(name)[:80]} ({name}/zarr.json) cannot be "
                                   f"read ({type(e).__name__}: {cause}); the store is damaged: {_fix(self._path)}.") \
                from None
        return _CheckedArray(member, self._path, name) if isinstance(member, zarr.Array) else member

    def __contains__(self, name) -> bool:
        return name in self._group
