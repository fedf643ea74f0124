"""The timing harness of the benchmarks: side-by-side rounds, medians, compile counts.

- :func:`interleaved_rounds`: rows that train (or compute) in chunks; a round runs chunk ``k`` of every row, rows in a
  fresh random order, before chunk ``k + 1``, so load from other processes falls on all rows alike. A row's round
  time is the sum of its chunks; each chunk ends when its outputs are ready.
- :func:`interleaved_calls`: single calls timed one at a time, implementations taking turns call by call.
- :func:`summarize`: median, min and max of a row's rates.
- :data:`COMPILES`: the process's ``jax.monitoring`` compile log (:mod:`jaxconv.train.compiles`), to count XLA
  compilations inside a block (``mark`` / ``since``).

Benchmarks are scripts: load this file with ``runpy.run_path`` (the benchmarks do it through :func:`load`), not
through ``sys.path``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import runpy
import statistics
import time
import types
from collections.abc import Callable

import numpy as np

from jaxconv.train.compiles import COMPILES

__all__ = ["Rates", "interleaved_rounds", "interleaved_calls", "summarize", "COMPILES", "load", "HERE"]

HERE = pathlib.Path(__file__).resolve().parent


def load(name: str) -> types.SimpleNamespace:
    """Another file of ``benchmarks/`` (``"baselines"``, ``"harness"``) as a namespace, without ``sys.path``."""
    return types.SimpleNamespace(**runpy.run_path(str(HERE / f"{name}.py"), run_name=f"_benchmarks_{name}"))


@dataclasses.dataclass
class Rates:
    """One row's measurements: ``rates`` (units per second, one per round), ``compiles`` during the timed rounds."""

    rates: list[float] = dataclasses.field(default_factory=list)
    compiles: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def interleaved_rounds(rows: dict[str, Callable[[int], float]], chunks: int, rounds: int, *,
                       seed: int = 0) -> dict[str, Rates]:
    """Time ``rows`` side by side.

    Args:
      rows: name -> ``run(k)``: runs chunk ``k`` (0 <= k < chunks), blocks until its results are ready, returns the
        units it processed (e.g. real training examples).
      chunks: chunks per round; rounds: timed rounds.

    Returns:
      name -> :class:`Rates` (units / round time, per round; XLA compilations during the rounds).
    """
    rng = np.random.default_rng(seed)
    names = list(rows)
    out = {name: Rates() for name in names}
    for _ in range(rounds):
        spent = {name: 0.0 for name in names}
        done = {name: 0.0 for name in names}
        for k in range(chunks):
            for i in rng.permutation(len(names)):
                name = names[i]
                mark = COMPILES.mark()
                t0 = time.perf_counter()
                done[name] += rows[name](k)
                spent[name] += time.perf_counter() - t0
                out[name].compiles += COMPILES.since(mark)[0]
        for name in names:
            out[name].rates.append(done[name] / max(spent[name], 1e-12))
    return out


def interleaved_calls(timers: dict[str, Callable[[], float]], reps: int, *, seed: int = 0,
                      warmup: int = 2) -> dict[str, list[float]]:
    """``reps`` timings (seconds, from each ``timer()``) per name, the names taking turns call by call in a fresh
    random order each repetition, after ``warmup`` untimed calls each."""
    rng = np.random.default_rng(seed)
    names = list(timers)
    for name in names:
        for _ in range(warmup):
            timers[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(reps):
        for i in rng.permutation(len(names)):
            out[names[i]].append(timers[names[i]]())
    return out


def summarize(values: list[float]) -> dict[str, float]:
    """``{"median", "min", "max"}`` of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
