"""Logging defaults: jaxconv's INFO lines are visible when training from Python (scripts and notebooks alike)."""

from __future__ import annotations

import logging
import sys

__all__ = ["show_info_logs"]

_FORMAT = "%(asctime)s %(name)s: %(message)s"


def show_info_logs(name: str = "jaxconv") -> logging.Logger:
    """Make the ``jaxconv`` logger's INFO records visible, unless the user configured it.

    - A logger level left unset (``NOTSET``) becomes ``INFO``; a level the user set is kept (set ``WARNING`` to
      silence the progress lines).
    - When no handler would receive the records (Python's last-resort handler prints only warnings), one stderr
      handler is added to the ``jaxconv`` logger; otherwise the records go to the handlers already there (a
      notebook shows stderr under the cell).
    """
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        logger.addHandler(handler)
    return logger
