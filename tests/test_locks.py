"""``jaxconv.locks``: one holder at a time, a refusal naming the holder, stale locks taken over, release on errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from jaxconv.locks import LockedError, hold, read_lock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_holder_refuses_naming_the_first(tmp_path):
    lock = tmp_path / "W" / ".lock"
    with hold(lock, "train"):
        holder = read_lock(lock)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["since"]
        with pytest.raises(LockedError) as e:
            with hold(lock, "train"):
                pass
        message = str(e.value)
        assert "\n" not in message and f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert holder["since"] in message and str(lock) in message
    assert not lock.exists()


def test_released_on_an_exception(tmp_path):
    lock = tmp_path / "x.lock"
    with pytest.raises(KeyError):
        with hold(lock, "dump"):
            raise KeyError("boom")
    assert not lock.exists()
    with hold(lock, "dump"):
        assert lock.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    lock = tmp_path / "x.lock"
    pid = _dead_pid()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "since": "2020-01-01T00:00:00+00:00",
                                "what": "dump", "token": "old"}))
    with caplog.at_level("WARNING", logger="jaxconv"):
        with hold(lock, "dump"):
            assert read_lock(lock)["pid"] == os.getpid()
    assert f"stale lock {lock} of pid {pid}" in caplog.text
    assert not lock.exists()


def test_lock_of_another_host_is_not_taken_over(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": _dead_pid(), "since": "2020-01-01", "what": "train",
                                "token": "t"}))
    with pytest.raises(LockedError, match="on host elsewhere since 2020-01-01"):
        with hold(lock, "train"):
            pass
    assert read_lock(lock)["host"] == "elsewhere"   # left alone


def test_disabled_holds_nothing(tmp_path):
    with hold(tmp_path / "x.lock", "dump", enabled=False):
        assert not (tmp_path / "x.lock").exists()
