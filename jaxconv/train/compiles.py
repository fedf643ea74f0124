"""Count XLA compilations through ``jax.monitoring``.

JAX records the event ``/jax/core/compile/backend_compile_duration`` once per XLA backend compilation, with the
compiled function's name (``fun_name``) and the seconds it took. :data:`COMPILES` listens to it for the whole
process (registered on its first :meth:`CompileLog.mark`); the trainer takes a :meth:`CompileLog.mark` before an epoch and asks
:meth:`CompileLog.since` afterwards how often its programs (:data:`jaxconv.train.steps.TRAIN_PROGRAM`,
:data:`~jaxconv.train.steps.EVAL_PROGRAM`) were compiled and for how long. Nothing is counted inside traced code.

>>> import jax, jax.numpy as jnp
>>> mark = COMPILES.mark()
>>> def jaxconv_doctest_fn(x):
...     return x + 1
>>> f = jax.jit(jaxconv_doctest_fn)
>>> _ = f(jnp.ones(3)); _ = f(jnp.ones(3)); _ = f(jnp.ones(4))     # two shapes: two compilations
>>> COMPILES.since(mark, "jaxconv_doctest_fn")[0]
2
"""

from __future__ import annotations

import threading

import jax

__all__ = ["CompileLog", "COMPILES", "BACKEND_COMPILE_EVENT"]

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileLog:
    """XLA backend compilations of the process, counted per function name from the first :meth:`mark` on.

    It keeps one ``(count, seconds)`` total per compiled function's name, never a list of events, so a
    long-lived process (a notebook training many runs) holds a few numbers per program, not one per compilation.
    The ``jax.monitoring`` listener is registered on the first :meth:`mark` (importing this module installs
    nothing), and only once per process.
    """

    def __init__(self):
        self.totals: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._listening = False

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            name = str(kwargs.get("fun_name", "?"))
            with self._lock:
                count, seconds = self.totals.get(name, (0, 0.0))
                self.totals[name] = (count + 1, seconds + float(duration))

    def mark(self) -> dict[str, tuple[int, float]]:
        """The totals now, for :meth:`since` (the first call starts listening)."""
        with self._lock:
            if not self._listening:
                jax.monitoring.register_event_duration_secs_listener(self._listen)
                self._listening = True
            return dict(self.totals)

    def since(self, mark: dict[str, tuple[int, float]], name: str | None = None) -> tuple[int, float]:
        """``(count, seconds)`` of the compilations after ``mark`` (of functions whose name contains ``name``, or
        all)."""
        with self._lock:
            totals = dict(self.totals)
        count, seconds = 0, 0.0
        for fun, (c, s) in totals.items():
            if name is None or name in fun:
                before = mark.get(fun, (0, 0.0))
                count, seconds = count + c - before[0], seconds + s - before[1]
        return count, float(seconds)


#: The process's compile log (one listener for every run and benchmark).
COMPILES = CompileLog()
