"""Helpers shared by several test modules (import with ``from helpers import ...``; fixtures live in conftest.py).

- :func:`chromium` runs headless Chromium with :data:`CHROMIUM_FLAGS` in a throw-away profile (skips when it is not
  installed, fails under ``CI=true``); :func:`chromium_exe` finds it.
- :func:`copy_run` copies a session run with only the dumps named (other tests add theirs to the session's run).
- :func:`second_writer_while_first_holds`: two writers on one target: a first one held in the middle of its work
  while a second ``jaxconv`` command runs, then let go.
- :func:`free_port`: a free localhost port, for the coordinator of a two-process (``jax.distributed``) run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence

import pytest
from conftest import in_ci, subprocess_env

#: Headless Chromium without network, GPU, sandbox or first-run chores.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_exe() -> str:
    """The Chromium executable; skip the test when there is none (fail under ``CI=true``)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "headless Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if in_ci():
            pytest.fail(f"CI must check the report in a real browser: {message}")
        pytest.skip(message)
    return exe


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with ``args`` (e.g. ``"--dump-dom", url``) in a fresh profile; assert it exits 0."""
    exe = chromium_exe()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


#: Defined before the first writer's code: ``hold()`` tells the test it is held and waits until it is let go.
_HOLD = '''
import sys
def hold():
    print("HELD", flush=True)
    sys.stdin.readline()
'''


def second_writer_while_first_holds(first: str, second: Sequence[str],
                                    timeout: float = 300) -> tuple[int, subprocess.CompletedProcess]:
    """Run the Python code ``first`` in a child process until it calls ``hold()`` (defined for it), then run
    ``python -m jaxconv *second`` to its end, then let the first go on and assert that it exits 0.

    Returns:
      the first writer's pid, and the second command's result (stdout and stderr as text).
    """
    proc = subprocess.Popen([sys.executable, "-c", _HOLD + textwrap.dedent(first)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline() == "HELD\n", proc.stderr.read()[-3000:]
        result = subprocess.run([sys.executable, "-m", "jaxconv", *second], capture_output=True, text=True,
                                timeout=timeout, env=subprocess_env())
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=timeout) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    return proc.pid, result


def copy_run(run, dest, dumps: Sequence[str] = ()):
    """Copy the run folder ``run`` to ``dest`` with only the dumps named in ``dumps``; return ``dest``.

    The session's runs (``demo_run``, ``demo_dump``) gain dumps from whichever tests shared the worker before, so a
    whole copy would depend on the order tests ran in.
    """
    import pathlib

    run = pathlib.Path(run)

    def ignore(folder, names):
        if pathlib.Path(folder) == run / "dumps":
            return [n for n in names if n not in dumps]
        return []

    return pathlib.Path(shutil.copytree(run, dest, ignore=ignore))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for ``JAX_COORDINATOR_ADDRESS``)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
