"""Ctrl-C during a long command: :class:`Interrupted` says where the work stopped and how it goes on.

A training run or a dump catches the ``KeyboardInterrupt`` and raises :class:`Interrupted` (still a
``KeyboardInterrupt``, so callers that catch that keep working) whose message names where it stopped (the step and
epoch, or the rows written) and what the same command then does; ``jaxconv`` prints it in one line and exits with
status 130 (:data:`EXIT_INTERRUPTED`, the shell's 128 + SIGINT).
"""

from __future__ import annotations

import signal

__all__ = ["Interrupted", "EXIT_INTERRUPTED"]

#: The exit status of a command stopped by Ctrl-C: 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` whose message says where the work stopped and that the same command resumes."""
