"""Process-wide state: importing and using the library installs no hook (the ``jaxconv`` command does), and the
compile log holds totals per program, not one entry per compilation."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from jaxconv.train.compiles import CompileLog

PROBE = """
import logging, sys, tempfile
from jax._src import monitoring
hook, listeners = sys.unraisablehook, len(monitoring.get_event_duration_listeners())
import jaxconv, jaxconv.train, jaxconv.runs, jaxconv.dump
from jaxconv.train.checkpoint import Checkpoints
Checkpoints(tempfile.mkdtemp() + "/checkpoints").close()
assert sys.unraisablehook is hook, "an import or a Checkpoints replaced sys.unraisablehook"
assert not logging.getLogger("asyncio").filters, "an import added a filter to the asyncio logger"
assert len(monitoring.get_event_duration_listeners()) == listeners, "an import registered a jax.monitoring listener"
from jaxconv.cli import main
assert main(["shape", "--input", "10x3", "--filters", "2", "--kernel-size", "3"]) == 0
assert sys.unraisablehook is not hook and logging.getLogger("asyncio").filters, "the command installs its hooks"
print("ok")
"""


@pytest.mark.slow
def test_the_library_installs_no_process_hook_and_the_command_does():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_the_compile_log_keeps_one_total_per_program():
    log = CompileLog()
    mark = log.mark()

    def jaxconv_bounded_probe(x):
        return x * 2

    f = jax.jit(jaxconv_bounded_probe)
    for n in range(1, 31):                        # 30 shapes: 30 compilations
        f(jnp.ones(n))
    assert log.since(mark, "jaxconv_bounded_probe")[0] == 30
    assert len([k for k in log.totals if "jaxconv_bounded_probe" in k]) == 1     # one entry, not 30
    again = log.mark()
    f(jnp.ones(3))                                # cached: no compilation
    assert log.since(again, "jaxconv_bounded_probe") == (0, 0.0)
