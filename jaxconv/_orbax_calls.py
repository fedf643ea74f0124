"""Orbax calls that fail in one line: what :mod:`jaxconv.train.checkpoint` wraps around every save and restore.

When an orbax read or write fails (a full disk, a truncated file), orbax raises the error to its caller, and also:

- each of its worker threads logs its own copy of the error, with a traceback, through absl (``ERROR:absl:...``);
- its other reads and writes still finish in tensorstore's threads and call back into the event loop orbax has
  closed (Python prints each ``RuntimeError: Event loop is closed`` as an unraisable error);
- their coroutines are finalised unfinished (``Exception ignored in: <coroutine ...>``), and asyncio logs their
  futures' errors as never retrieved.

A full disk gave 437 lines and 29 tracebacks that way, and never the words "No space left on device". Here
:func:`orbax_call` holds the absl records back while a call runs (logged after all when it succeeds) and, when it
fails, waits for the orbax threads it started; :func:`drop_orbax_echoes` drops the other echoes, and only those;
:func:`error_reason` says in one line why a call failed (``No space left on device (ENOSPC)``).

:func:`drop_orbax_echoes` changes the process (``sys.unraisablehook``, a filter on the ``asyncio`` logger): the
``jaxconv`` command installs it (:func:`jaxconv.cli.main`); importing or calling the library never does, so a
notebook or another program keeps its own hooks.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

from jaxconv.paths import os_error_text

__all__ = ["orbax_call", "drop_orbax_echoes", "error_reason", "os_errno"]

#: tensorstore reports file-system errors as ``... [os_error_code='28']`` inside a ValueError.
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_ORBAX_DIR = f"{os.sep}orbax{os.sep}"
#: tensorstore's errors start with an absl status code (``OUT_OF_RANGE: Error reading ...``) and, set on a future by
#: tensorstore's own threads, carry no Python traceback to tell where they came from.
_TENSORSTORE_STATUS = re.compile(r"[A-Z][A-Z_]+: ")
_failed_calls = 0


def os_errno(error: BaseException) -> int | None:
    """The OS error number behind ``error`` (an OSError in its chain, or tensorstore's ``os_error_code``), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            return error.errno
        match = _OS_ERROR_CODE.search(str(error))
        if match:
            return int(match.group(1))
        error = error.__cause__ or error.__context__
    return None


def error_reason(error: BaseException, limit: int = 400) -> str:
    """One line saying why: ``"No space left on device (ENOSPC)"``, else the root error's type and message."""
    code = os_errno(error)
    if code:
        return os_error_text(code)
    while error.__cause__ is not None:   # orbax wraps the reader's error: its root names the file and the bytes
        error = error.__cause__
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _from_orbax(error: BaseException | None) -> bool:
    """Whether ``error`` was raised in orbax's code (a frame of its traceback is in the orbax package)."""
    tb = getattr(error, "__traceback__", None)
    while tb is not None:
        if _ORBAX_DIR in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _is_echo(unraisable) -> bool:
    """An unraisable error that only repeats a failed orbax call: one of its coroutines finalised unfinished, or
    tensorstore calling back into the event loop orbax closed when the call failed."""
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and _ORBAX_DIR in code.co_filename:
        return True
    return (unraisable.object is None and isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed")


class _AsyncioEcho(logging.Filter):
    """Drops asyncio's "exception was never retrieved" records of orbax's futures (the caller got the error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if _from_orbax(error):
            return False
        # A tensorstore read or write of a call that already failed: its error has no traceback to check.
        return not (_failed_calls and error.__traceback__ is None and _TENSORSTORE_STATUS.match(str(error)))


_echoes_dropped = False


def drop_orbax_echoes() -> None:
    """From now on, this process does not print the echoes of a failed orbax call (the unraisable errors and
    asyncio records of the module docstring). Idempotent; every other unraisable error and asyncio record goes where
    it went before."""
    global _echoes_dropped
    if _echoes_dropped:
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _is_echo(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_AsyncioEcho())
    _echoes_dropped = True


def _settle(threads_before: set) -> None:
    """After an orbax call raised: wait for the orbax threads it started (each logs its copy of the error when it
    ends, so they must end while those logs are held back), then collect its unfinished coroutines."""
    for thread in set(threading.enumerate()) - threads_before:
        if type(thread).__module__.startswith("orbax") and thread is not threading.current_thread():
            try:
                thread.join(timeout=60.0)
            except Exception:
                pass
    gc.collect()


class _Hold(logging.Filter):
    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.held.append(record)
            return False
        return True


@contextlib.contextmanager
def orbax_call() -> Iterator[None]:
    """Run one orbax save or restore: its ERROR logs (with their tracebacks) are held back, and logged after all
    when the call succeeds; when it raises, the orbax threads it started are waited for and their logs dropped, so
    the caller's one-line error is the only report."""
    global _failed_calls
    absl = logging.getLogger("absl")
    hold = _Hold()
    absl.addFilter(hold)
    threads = set(threading.enumerate())
    try:
        yield
    except BaseException:
        _failed_calls += 1
        _settle(threads)
        raise
    else:
        absl.removeFilter(hold)
        for record in hold.held:
            absl.handle(record)
    finally:
        absl.removeFilter(hold)
