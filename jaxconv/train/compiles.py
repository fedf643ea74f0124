"""Count XLA compilations through ``jax.monitoring``.

JAX records the event ``/jax/core/compile/backend_compile_duration`` once per XLA backend compilation, with the
compiled function's name (``fun_name``) and the seconds it took. :data:`COMPILES` listens to it for the whole
process (registered on first import); the trainer takes a :meth:`CompileLog.mark` before an epoch and asks
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
    """Every XLA backend compilation of the process since the log was made: ``(function name, seconds)``."""

    def __init__(self):
        self.events: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            with self._lock:
                self.events.append((str(kwargs.get("fun_name", "?")), float(duration)))

    def mark(self) -> int:
        """A position in the log, for :meth:`since`."""
        return len(self.events)

    def since(self, mark: int, name: str | None = None) -> tuple[int, float]:
        """``(count, seconds)`` of the compilations after ``mark`` (of functions whose name contains ``name``, or
        all)."""
        picked = [d for n, d in self.events[mark:] if name is None or name in n]
        return len(picked), float(sum(picked))


#: The process's compile log (one listener for every run and benchmark).
COMPILES = CompileLog()
