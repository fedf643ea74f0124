"""One writer per target: a lock file beside (or in) what a command writes, so a second writer refuses.

What is locked: a training workdir ``W`` (the file ``W/.lock``, held by ``jaxconv train`` / ``train_and_evaluate``
from before the workdir is opened until the run returns or fails) and a dump store ``.../activations.zarr`` (the
file ``.../activations.zarr.lock``, held by ``jaxconv dump`` / ``dump_activations`` while it writes).

What the lock file holds: one JSON object ``{"host", "pid", "since", "what"}``: the holder's host name, process
id, start time (ISO 8601, UTC) and what it does (``"train"``, ``"dump"``).

How it is taken: created only if it does not exist, in one step that the storage decides, so that of two writers
starting in the same instant exactly one creates it:

- a local disk: ``open(O_CREAT | O_EXCL)``;
- an object store (``gs://``, ``s3://``, through fsspec): a conditional write, ``pipe_file(mode="create")``:
  ``s3fs`` sends ``PutObject`` with ``If-None-Match: *`` and ``gcsfs`` an upload with ``ifGenerationMatch=0``.
  Both stores guarantee that such a write succeeds only when no object has that name, atomically (S3 answers the
  loser 412 Precondition Failed, which s3fs raises as ``FileExistsError``; so does GCS), and reads after a write
  are strongly consistent, so the read-back that follows sees the winner. A file system whose fsspec class has no
  conditional write (its ``pipe_file`` checks, then writes) is best effort: the read-back still catches writers
  that start apart, not two that write in the same instant.

When it is released: on leaving :func:`hold` (also on an exception); a process killed with SIGKILL leaves its
file. A lock whose holder is on this host and whose process no longer exists is stale: it is taken over, with a
log line. Taking over is read, compare, delete, then create as above: the delete is not conditional (fsspec has no
conditional delete), so of two processes taking over one stale lock in the same instant, the slower one's delete
can remove the faster one's new lock; writers that come seconds apart are excluded. A lock of another host is
never taken over (its process cannot be checked): the message names the file to delete once that holder is known
to be gone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator

from etils import epath

from jaxconv.paths import is_remote

__all__ = ["LockedError", "hold", "read_lock", "LOCK_SUFFIX", "WORKDIR_LOCK"]

log = logging.getLogger("jaxconv")

#: The suffix of a dump store's lock file (``activations.zarr.lock``).
LOCK_SUFFIX = ".lock"
#: The lock file's name in a training workdir.
WORKDIR_LOCK = ".lock"


class LockedError(OSError):
    """Another process holds the lock; the message names it (host, pid, since when) and the lock file."""


def _me(what: str) -> dict:
    since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "what": what,
            "token": uuid.uuid4().hex}


def read_lock(path) -> dict | None:
    """The holder recorded in the lock file ``path`` (None when there is none; ``{}`` when it is unreadable)."""
    try:
        data = json.loads(epath.Path(path).read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process: alive
        return True
    return True


def _stale(holder: dict) -> bool:
    """A holder on this host whose process is gone (a lock of another host or an unreadable one is not stale)."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _refuse(path, holder: dict, what: str) -> LockedError:
    if holder:
        who = (f"{holder.get('what', 'a writer')} pid {holder.get('pid')} on host {holder.get('host')} since "
               f"{holder.get('since')}")
    else:
        who = "an unknown writer (the lock file is empty or unreadable: it may be being written)"
    return LockedError(f"{what}: {epath.Path(path).parent} is in use by {who} (lock file {path}); wait for it to "
                       f"finish, or delete the lock file if that process is gone.")


def _create_local(path: str, body: bytes) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    return True


def _create_remote(path: epath.Path, me: dict, body: bytes) -> bool:
    """Create the lock object ``path`` unless it exists (a conditional write: see the module docstring)."""
    import fsspec

    fs, key = fsspec.core.url_to_fs(os.fspath(path))
    try:
        fs.pipe_file(key, body, mode="create")
    except FileExistsError:
        return False
    except OSError:       # a store that reports the failed precondition otherwise: whose lock is there decides
        if read_lock(path) is None:
            raise
    return (read_lock(path) or {}).get("token") == me["token"]   # a store without conditional writes: last one wins


def _acquire(path: epath.Path, what: str) -> dict:
    me = _me(what)
    body = json.dumps(me).encode()
    remote = is_remote(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _create_remote(path, me, body) if remote else _create_local(os.fspath(path), body):
            return me
        holder = read_lock(path)
        if holder is None:     # released in between: try again
            continue
        if not _stale(holder):
            raise _refuse(path, holder, what)
        log.warning("%s: taking over the stale lock %s of pid %s on host %s (since %s): that process is gone",
                    what, path, holder.get("pid"), holder.get("host"), holder.get("since"))
        _remove_if(path, holder.get("token"), holder)
    raise _refuse(path, read_lock(path) or {}, what)


def _remove_if(path: epath.Path, token, holder: dict | None = None) -> None:
    """Remove the lock file when it still holds ``token`` (never another writer's)."""
    current = read_lock(path)
    if current is None or current.get("token") != token or (holder is not None and current != holder):
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def hold(path, what: str, *, enabled: bool = True) -> Iterator[epath.Path]:
    """Hold the lock file ``path`` while the block runs (see the module docstring).

    Args:
      path: the lock file (``W/.lock``, ``.../activations.zarr.lock``); its folder is created (and removed again
        on release when it was made for the lock and is still empty).
      what: what the holder does, named in the lock file and in the messages (``"train"``, ``"dump"``).
      enabled: False: hold nothing (a process other than the one that writes).

    Raises:
      LockedError: another live process holds it (one line: host, pid, since when, and the lock file).
    """
    path = epath.Path(path)
    if not enabled:
        yield path
        return
    created = not path.parent.exists()
    me = _acquire(path, what)
    try:
        yield path
    finally:
        _remove_if(path, me["token"])
        if created:   # a folder made for the lock alone (a dump that failed early): leave nothing behind
            with contextlib.suppress(OSError):
                if not any(path.parent.iterdir()):
                    path.parent.rmdir()
