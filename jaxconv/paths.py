"""Run folders and other paths, local or remote: every path of a run goes through ``etils.epath``, so
``gs://bucket/run`` works wherever orbax and epath reach (``pip install gcsfs`` for Google Cloud Storage), and a remote path never turns into a local
folder named ``gs:``.

Writes never leave a torn file: :func:`write_text` replaces a file whole, :func:`append_bytes` cuts a failed
append back; a failure is one :class:`WorkdirError` line naming the file and the cause (``ENOSPC``).
"""

from __future__ import annotations

import contextlib
import errno as errno_lib
import json
import os
import sys

from etils import epath

__all__ = ["REMOTE_PREFIXES", "is_remote", "as_path", "prepare_workdir", "WorkdirError", "write_text", "append_bytes", "os_error_text", "write_error",
           "CorruptFileError", "read_json", "json_error_text", "naming_write_errors"]

#: URI schemes that etils.epath sends to fsspec / tf.io.gfile instead of the local file system.
REMOTE_PREFIXES = ("gs://", "s3://", "az://", "hf://")


class WorkdirError(OSError):
    """A workdir (or other run path) that cannot be created, reached or written; the message names it."""


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a remote URI (``gs://``, ``s3://``, ...) rather than a local path."""
    return os.fspath(path).startswith(REMOTE_PREFIXES)


def as_path(path: str | os.PathLike) -> epath.Path:
    """``path`` as an ``epath.Path``: local paths made absolute (``~`` expanded), remote URIs kept as they are."""
    text = os.fspath(path)
    if is_remote(text):
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def prepare_workdir(workdir: str | os.PathLike, *, create: bool = True) -> epath.Path:
    """Check (and by default create) a run's workdir; return it as an absolute ``epath.Path``.

    Raises:
      WorkdirError: the path exists and is not a directory, or it cannot be created or reached (a remote path
        without its file-system package, or unreachable storage); the message names the path and the cause.
    """
    path = as_path(workdir)
    try:
        if path.exists() and not path.is_dir():
            raise WorkdirError(f"--workdir {path} is an existing file, not a directory; give a directory path "
                               f"(it is created when missing).")
        if create:
            path.mkdir(parents=True, exist_ok=True)
    except WorkdirError:
        raise
    except (ImportError, OSError, ValueError, RuntimeError) as e:
        hint = (" Remote workdirs need their fsspec package (gs://: pip install gcsfs, s3://: pip install s3fs) and "
                "credentials." if is_remote(path) else "")
        raise WorkdirError(f"--workdir {path} cannot be created or reached: {type(e).__name__}: "
                           f"{' '.join(str(e).split())}.{hint}") from None
    return path


class CorruptFileError(ValueError):
    """A run's file (``config.json``, ``run.json``, a ``metrics.jsonl`` line) that is not the JSON it should be; the
    message names the file and says whether and how the run goes on."""


def json_error_text(error: ValueError) -> str:
    """``JSONDecodeError: Expecting value: line 2 column 1 (char 9)``, cut to ~80 characters."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:80]}{'...' if len(text) > 80 else ''}"


def read_json(path: str | os.PathLike, *, what: str, fix: str):
    """The JSON value in ``path`` (a run's ``what``, e.g. ``"config"``).

    Raises:
      CorruptFileError: the file is not valid JSON (or not UTF-8): ``cannot read the <what> <path>
        (JSONDecodeError: ...); <fix>`` in one line, ``fix`` saying what to do.
    """
    path = as_path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:   # JSONDecodeError, UnicodeDecodeError
        raise CorruptFileError(f"cannot read the {what} {path} ({json_error_text(e)}); {fix}") from None


def os_error_text(code: int) -> str:
    """``28`` -> ``"No space left on device (ENOSPC)"``: the message and the symbolic name of an errno."""
    return f"{os.strerror(code)} ({errno_lib.errorcode.get(code, code)})"


def write_error(path, error: Exception, what: str) -> WorkdirError:
    """The WorkdirError for a failed write of ``what`` at ``path``: names both and the cause (``ENOSPC``; on an
    object store also what the store said, and what to check there instead of free space)."""
    errno = getattr(error, "errno", None)
    cause = os_error_text(errno) if errno else f"{type(error).__name__}: {error}"
    fix = "Free space (or fix the file system)"
    if is_remote(path):
        said = " ".join(str((error.strerror if errno else "") or "").split())[:120]
        if said and said != os.strerror(errno):
            cause = f"{cause[:-1]}; the store said {said!r})"
        elif not errno:
            cause = " ".join(cause.split())[:160]
        fix = "Check that the store is reachable and writable (network, credentials, quota)"
    out = WorkdirError(f"cannot write {what} {path}: {cause}; what it held before is intact. {fix} and run the same "
                       f"command again.")
    out.errno = errno
    return out


#: Errors of a write that failed for want of room or rights: named as a write to the target even when the library
#: that wrote (zarr, matplotlib) named a file inside it.
WRITE_ERRNOS = (errno_lib.ENOSPC, errno_lib.EDQUOT, errno_lib.EROFS, errno_lib.EFBIG)


@contextlib.contextmanager
def naming_write_errors(path: str | os.PathLike, what: str):
    """Inside, a failed write (:data:`WRITE_ERRNOS`, or any ``OSError`` with an errno that names no file, as a full
    disk under ``f.write`` does) becomes the :class:`WorkdirError` of :func:`write_error`: one line naming ``what``
    at ``path`` and the cause. Other errors pass unchanged. On an object store (``gs://``, ``s3://``) every
    ``OSError`` but a missing file's, and the client's own errors (:data:`CLIENT_ERRORS`: a dropped connection), are
    failed writes: the store's messages name no file (s3fs raises a server error as ``OSError(EREMOTEIO)``, a
    refusal as ``PermissionError``).

    >>> with naming_write_errors("/runs/x/dumps/test", "the dump"):
    ...     raise OSError(errno_lib.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    ...
    jaxconv.paths.WorkdirError: cannot write the dump /runs/x/dumps/test: No space left on device (ENOSPC); what \
it held before is intact. Free space (or fix the file system) and run the same command again.
    """
    try:
        yield
    except WorkdirError:
        raise
    except Exception as e:
        if not _write_failure(path, e):
            raise
        raise write_error(path, e, what) from e


#: Exceptions of object-store clients that are no ``OSError`` (a dropped connection, an HTTP error), as (module,
#: name): looked up only where that module is imported already (a client that raised one has imported it).
CLIENT_ERRORS = (("botocore.exceptions", "BotoCoreError"), ("botocore.exceptions", "ClientError"),
                 ("aiohttp", "ClientError"), ("gcsfs.retry", "HttpError"), ("google.auth.exceptions", "GoogleAuthError"))


def _write_failure(path, error: Exception) -> bool:
    """Whether ``error``, raised while writing to ``path``, is named as a failed write of it (see
    :func:`naming_write_errors`)."""
    if is_remote(path):
        client = tuple(c for m, name in CLIENT_ERRORS if isinstance(c := getattr(sys.modules.get(m), name, None), type))
        return isinstance(error, client) or (isinstance(error, OSError) and not isinstance(error, FileNotFoundError))
    return isinstance(error, OSError) and error.errno is not None and (error.filename is None or
                                                                        error.errno in WRITE_ERRNOS)


def write_text(path: str | os.PathLike, text: str, *, what: str = "the file") -> None:
    """Write ``text`` (UTF-8) to ``path`` whole. A local file is written to a temporary file renamed over it, so a
    failed write (a full disk) leaves the old content; object stores replace objects whole anyway.

    Raises:
      WorkdirError: the write failed; the message names ``what``, the path and the error (``ENOSPC``).
    """
    path = as_path(path)
    try:
        if is_remote(path):
            path.write_text(text, encoding="utf-8")
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, os.fspath(path))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except Exception as e:   # an OSError; on an object store also its client's errors (a dropped connection)
        if not isinstance(e, OSError) and not _write_failure(path, e):
            raise
        raise write_error(path, e, what) from e


def append_bytes(path: str | os.PathLike, data: bytes, *, what: str = "the file") -> None:
    """Append ``data`` to the local file ``path`` (created when missing). When the write fails part way (a full
    disk), the file is cut back to its old length, so it never ends in a torn record.

    Raises:
      WorkdirError: the write failed; the message names ``what``, the path and the error (``ENOSPC``).
    """
    try:
        fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
    except OSError as e:
        raise write_error(path, e, what) from e
