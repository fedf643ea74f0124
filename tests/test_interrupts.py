"""Ctrl-C during ``jaxconv train`` and ``jaxconv dump``: a real SIGINT to a child process gives exit status 130 and
one stderr line saying where the work stopped and that the same command resumes; the same command then completes.

The child is ``python -c CHILD``: the command itself, with one method wrapped to print a line when the work has
started (an epoch of training, a block of dump rows) and then wait on its stdin, which the test never writes. The
test reads that line and sends SIGINT, so the signal always lands mid-work (no sleeps); the wait ends in the
``KeyboardInterrupt`` Python raises for it, at the place a user's Ctrl-C would."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import zarr
from conftest import REPO_ROOT, subprocess_env
from helpers import copy_run

from jaxconv.cli import main

pytestmark = pytest.mark.slow  # a training child and a dump child

CHILD = """
import importlib, sys
from jaxconv.cli import main
module, cls, method, when = sys.argv[1:5]
owner = getattr(importlib.import_module(module), cls)
original = getattr(owner, method)
def pause():
    print("started", flush=True)
    sys.stdin.readline()                            # never written: only the SIGINT ends this wait
def wrapped(self, *args, **kwargs):
    if when == "epoch 2" and args[0] == 1:          # Trainer._epoch(1): before the second epoch's first step
        pause()
    out = original(self, *args, **kwargs)
    if when == "after":                             # StoreWriter.write: after the first block of rows
        pause()
    return out
setattr(owner, method, wrapped)
sys.exit(main(sys.argv[5:]))
"""


def _interrupt(wrap: tuple[str, str, str, str], argv: list[str]) -> tuple[int, list[str]]:
    """Run the command in a child, SIGINT it once it printed ``started``; (exit status, non-log stderr lines)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, *wrap, *argv], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                             env=subprocess_env(PYTHONPATH=str(REPO_ROOT)))
    try:
        for line in child.stdout:
            if line.strip() == "started":
                child.send_signal(signal.SIGINT)
                break
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    lines = [line for line in err.splitlines() if not re.match(r"(INFO|WARNING):\w*", line) and line.strip()]
    return child.returncode, lines


def test_ctrl_c_during_training_says_where_it_stopped_and_the_same_command_resumes(tmp_path):
    workdir = tmp_path / "w"
    argv = ["train", "text_cnn", "--workdir", str(workdir), "--config.train.epochs=2",
            "--config.data.synthetic.num_examples=200", "--config.model.filters=4", "--config.model.embed_dim=8",
            "--config.progress=false", "--config.tensorboard=false"]
    rc, lines = _interrupt(("jaxconv.train.trainer", "Trainer", "_epoch", "epoch 2"), argv)
    assert rc == 130, lines
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"jaxconv train: interrupted: training stopped at step (\d+) \(epoch 2 of 2\); the same "
                        rf"command resumes from the checkpoint of step \1 \({re.escape(str(workdir))}/checkpoints/"
                        rf"latest\)\.", lines[0]), lines[0]
    assert not (workdir / "final_metrics.json").exists()
    assert main(argv) == 0
    assert (workdir / "final_metrics.json").exists()


def test_ctrl_c_during_a_dump_says_how_many_rows_and_the_same_command_resumes(tmp_path, demo_run, capsys):
    run = tmp_path / "run"
    copy_run(demo_run, run)
    argv = ["dump", "--workdir", str(run), "--chunk-rows", "50", "--layers", "convs/0"]
    rc, lines = _interrupt(("jaxconv.dump.store", "StoreWriter", "write", "after"), argv)
    partial = run / "dumps" / "test" / "activations.zarr.partial"
    assert rc == 130, lines
    # The writer is held after its first block of 50 rows until the child's stdin closes; blocks already handed to
    # it may still be written before the Ctrl-C reaches the calling thread (it can be inside a device call), so the
    # line names the rows the store records, a whole number of blocks short of the end.
    written = int(zarr.open_group(str(partial), mode="r").attrs["rows_written"])
    assert written in (50, 100, 150), written
    assert lines == [f"jaxconv dump: interrupted: the dump stopped with {written} of 200 rows written to {partial}; "
                     f"the same command resumes it from row {written}."]
    assert main(argv) == 0
    assert f"resumed at row {written}" in capsys.readouterr().out
