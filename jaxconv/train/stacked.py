"""``train_many(configs, workdirs)``: ``R`` runs of one model shape trained by one program, their arrays stacked on
a leading axis and every step ``jax.vmap`` ped over it.

Each run keeps its own data order, dropout keys, metrics, early stopping and checkpoints, exactly as if it ran alone
(:func:`jaxconv.train.trainer.train_and_evaluate`, up to float rounding), and writes the same records through the
same :class:`~jaxconv.train.run.TrainingRun`:

- Epochs are in step: a run that finishes an epoch waits for the others before the dev evaluation (one stacked
  program evaluates all), so every run is evaluated after each of its epochs.
- Inside an epoch each dispatch runs one bucket's program; the runs whose next call is in that bucket step, the
  others are masked (their arrays are left bit for bit as they were): :class:`~jaxconv.train.stacked_engine.Dispatches`.
  A stopped or finished run stays masked.
- Per-step sums come back per run; the host adds them into each run's window in step order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._logging import show_info_logs
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.compiles import COMPILES
from jaxconv.train.dispatch import EpochCalls, epoch_calls
from jaxconv.train.metrics import ProgressBar
from jaxconv.train.run import TrainingRun, initial_state, open_run
from jaxconv.train.stacked_engine import Dispatches, StackedEngine
from jaxconv.train.state import TrainState, num_params
from jaxconv.train.steps import EVAL_PROGRAM, TRAIN_PROGRAM
from jaxconv.train.trainer import Clock

__all__ = ["train_many", "StackedTrainer"]


def train_many(configs: Sequence, workdirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Train ``R = len(configs)`` runs of one model shape as one program (module docstring); runs whose datasets
    differ in size (CV folds) are aligned by bucket (:mod:`jaxconv.train.stacked_engine`).

    The runs may differ in seed, fold, data split, epochs, patience, step cap and logging; they must share the model
    config, vocabulary size, classes, optimizer, batch size, bucket lengths and ``steps_per_call``.

    Returns:
      one result per run, in order (what :func:`jaxconv.train.trainer.train_and_evaluate` returns).

    Raises:
      ValueError: the runs do not share a model shape (the message names the run and the field), or no runs.
    """
    if not configs or len(configs) != len(workdirs):
        raise ValueError(f"train_many: expected as many workdirs as configs (at least one); got {len(configs)} configs "
                         f"and {len(workdirs)} workdirs.")
    if len({os.fspath(w) for w in workdirs}) != len(workdirs):
        raise ValueError(f"train_many: workdirs must differ (each run writes its own); got {list(map(str, workdirs))}.")
    show_info_logs()
    mesh_lib.maybe_initialize_distributed(configs[0])
    mesh = mesh_lib.make_mesh()
    runs = [open_run(c, w, mesh) for c, w in zip(configs, workdirs)]
    for i, r in enumerate(runs[1:], 1):
        _check_same_shape(runs[0], r, i)
    k = runs[0].rs.steps_per_call
    for i, r in enumerate(runs):
        if r.rs.steps_per_call != k:
            raise ValueError(f"runs 0 and {i} cannot be stacked: they step {k} and {r.rs.steps_per_call} batches per "
                             f"call (config.train.steps_per_call, or the value they were started with).")
    state = TrainState.stack([initial_state(r, mesh) for r in runs]).replicated(mesh)
    engine = StackedEngine(runs[0].config, [r.data for r in runs], state, [r.dropout_key for r in runs], mesh,
                           steps_per_call=k)
    trainer = StackedTrainer(runs, engine)
    trainer.train()
    return trainer.finish()


def _check_same_shape(first: TrainingRun, other: TrainingRun, i: int) -> None:
    for name, a, b in zip(("model config", "vocabulary size", "number of classes", "optimizer",
                           "row-sparse embedding settings"), first.spec, other.spec):
        if a != b:
            detail = ""
            if name == "model config":
                da, db = dict(a), dict(b)
                detail = ": " + "; ".join(f"model.{k}: {da.get(k)!r} vs {db.get(k)!r}" for k in sorted(set(da) | set(db))
                                          if da.get(k) != db.get(k))
            elif name != "optimizer":
                detail = f": {a!r} vs {b!r}"
            raise ValueError(f"train_many: run {i} ({other.workdir}) cannot share a program with run 0 "
                             f"({first.workdir}): their {name} differs{detail}.")
    for key in ("train.batch_size", "train.max_norm", "train.max_norm_params"):
        section, field = key.split(".")
        a, b = first.config[section][field], other.config[section][field]
        if a != b:
            raise ValueError(f"train_many: run {i} ({other.workdir}) cannot share a program with run 0 "
                             f"({first.workdir}): config.{key} is {b!r}, run 0's is {a!r}.")


class StackedTrainer:
    """The epochs of ``runs`` on one :class:`~jaxconv.train.stacked_engine.StackedEngine`."""

    def __init__(self, runs: list[TrainingRun], engine: StackedEngine):
        self.runs, self.engine, self.k = runs, engine, engine.k
        self.clock = Clock()
        self.pending: list = []             # (device sums, [(run index, step before, steps, first j)]) not yet read
        self.best: list | None = None       # the best model of each run so far, stacked, when its checkpoint waits
        self.best_due = [False] * len(runs)
        self.best_kept = [False] * len(runs)  # run i's best model is in self.best (it improved in this invocation)
        self.progress = ProgressBar(sum(r.total_steps for r in runs),
                                    enabled=bool(runs[0].config.progress) and runs[0].primary,
                                    start=sum(r.rs.step for r in runs))

    def train(self) -> None:
        """Train every run until it is finished (epochs done, step cap, early stop)."""
        try:
            while True:
                live = [i for i, r in enumerate(self.runs) if not r.finished]
                if not live:
                    return
                epoch = min(self.runs[i].rs.epoch for i in live)
                self._epoch([i for i in live if self.runs[i].rs.epoch == epoch], epoch)
        finally:
            self.progress.close()
            for r in self.runs:
                r.metrics.flush()

    def _epoch(self, members: list[int], epoch: int) -> None:
        mark, epoch_start = COMPILES.mark(), time.time()
        calls = {i: epoch_calls(self.runs[i].data.train, epoch, self.k) for i in members}
        everyone = [calls.get(i) for i in range(len(self.runs))]
        plans = self.engine.plans(everyone)
        if not self.engine.train_exe:
            self.engine.compile(plans)
        dispatches = Dispatches(everyone, [r.rs.step_in_epoch for r in self.runs], [r.rs.step for r in self.runs],
                                [r.cap for r in self.runs])
        clock_start = self.clock.now()
        self.clock.start()
        try:
            for bucket, call, moved in dispatches:
                sums = self.engine.dispatch(bucket, plans[bucket], call)
                for i, _, n, _ in moved:
                    self.runs[i].rs.step += n
                    self.runs[i].rs.step_in_epoch += n
                self.pending.append((sums, moved))
                self.progress.update(sum(r.rs.step for r in self.runs))
                self._after_call(moved, calls)
            self._drain()
        finally:
            self.clock.stop()
        for i in members:
            self.runs[i].rs.train_time_s += self.clock.total - clock_start
        self._end_epoch(members, calls, mark, epoch_start, self.clock.total - clock_start)

    def _after_call(self, moved: list, calls: dict[int, EpochCalls]) -> None:
        """Read the metrics when a run passed a multiple of log_every_steps; save mid-epoch checkpoints."""
        saves = [i for i, before, _, _ in moved if self.runs[i].save_due(before, calls[i].steps)]
        if saves or any(self.runs[i].log_due(before) for i, before, _, _ in moved):
            self._drain()  # never save a state that came from a non-finite step
        if saves:
            self.clock.stop()
            self._save(saves)
            self.clock.start()

    def _drain(self) -> None:
        """Read the pending per-step sums: stop on a non-finite loss, add them up, write the train records due."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        fetched = jax.device_get([sums for sums, _ in pending])
        for sums, (_, moved) in zip(fetched, pending):
            for i, before, n, lo in moved:
                for j in range(n):
                    if self.runs[i].add_step({k: v[i, lo + j] for k, v in sums.items()}, before + j + 1):
                        self.runs[i].log_train(before + j + 1, self.clock.now())

    def _end_epoch(self, members: list[int], calls: dict[int, EpochCalls], mark: dict, epoch_start: float,
                   train_s: float) -> None:
        for i in members:
            self.runs[i].log_train(self.runs[i].rs.step, self.clock.now())
        t0 = time.time()
        dev = self.engine.evaluate("dev")
        eval_s = time.time() - t0
        train_c, train_cs = COMPILES.since(mark, TRAIN_PROGRAM)
        eval_c, eval_cs = COMPILES.since(mark, EVAL_PROGRAM)
        improved, epoch_done = [], {}
        for i in members:
            r = self.runs[i]
            epoch_done[i] = r.rs.step_in_epoch >= calls[i].steps
            r.rs.eval_time_s += eval_s
            if r.record_dev(dev[i], epoch_done[i], self.progress, compiles=train_c + eval_c, train_compiles=train_c,
                            eval_compiles=eval_c, compile_time_s=train_cs + eval_cs,
                            epoch_time_s=time.time() - epoch_start, train_time_s=train_s, eval_time_s=eval_s):
                improved.append(i)
        self._keep_best(improved)
        for i in members:
            self.runs[i].end_epoch(epoch_done[i], time.time() - epoch_start, self.progress)
        self._save([i for i in members if self.runs[i].checkpoint_due(epoch_done[i])])

    def _keep_best(self, improved: list[int]) -> None:
        """Remember which runs improved; when the best is not saved at once, keep a device copy of their model."""
        if not improved:
            return
        for i in improved:
            self.best_due[i] = True
        if int(self.runs[0].config.train.checkpoint_every_epochs) == 1:
            self._save(improved, latest=False)
            return
        model = self.engine.state.model
        for i in improved:
            self.best_kept[i] = True
        mask = np.zeros(len(self.runs), bool)
        mask[improved] = True
        mask = self.engine.put(mask)
        best = self.best if self.best is not None else model
        self.best = [jnp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, b) for x, b in zip(model, best)]

    def _save(self, which: list[int], *, latest: bool = True) -> None:
        """Save the pending ``best`` and (``latest``) the ``latest`` checkpoint of the runs ``which``, timed per run.
        A ``latest`` checkpoint is never written before the ``best`` its bookkeeping names."""
        for i in which:
            r = self.runs[i]
            t0 = time.time()
            state = self.engine.state.unstack(i)
            if self.best_due[i]:
                leaves = state.model if self.best is None else [x[i] for x in self.best]
                model = jax.tree.unflatten(state.defs.model_tree, leaves)
                r.ckpts.save("best", r.rs.best_step, {"model": model}, r.meta())
                self.best_due[i] = False
            if latest:
                r.ckpts.save("latest", r.rs.step, {"model": state.model_state(), "optimizer": state.opt_state()},
                             r.meta())
            r.rs.checkpoint_time_s += time.time() - t0

    def finish(self) -> list[dict]:
        """Score each run's best model (its ``best`` checkpoint, or the same model still on the device) on test and
        dev; write ``final_metrics.json``."""
        models, best_steps = [], []
        for i, r in enumerate(self.runs):
            state = self.engine.state.unstack(i)
            step = r.ckpts.latest_step("best")
            if self.best_kept[i]:           # the best model is still on the device: no need to read it back
                state = TrainState([x[i] for x in self.best], state.opt, state.defs)
            elif step is not None:
                restored, _ = r.ckpts.restore("best", {"model": state.model_state()})
                state = state.with_states(restored["model"])
            models.append(state.model)
            best_steps.append(step)
        final = self.engine.put([jnp.stack(xs) for xs in zip(*models)])
        test = self.engine.evaluate("test", final) if "test" in self.engine.eval_data else [None] * len(self.runs)
        dev = self.engine.evaluate("dev", final)
        params = num_params(self.engine.state.unstack(0))
        return [r.result(test[i], dev[i], best_steps[i], params, steps_per_call=self.k, runs_in_program=len(self.runs))
                for i, r in enumerate(self.runs)]
