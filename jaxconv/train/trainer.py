"""``train_and_evaluate(config, workdir)``: train a model, pick the best epoch on dev, score it on test.

It reads top to bottom: open or resume the run -> its data -> its state -> the epochs -> test. Several runs of one
model shape trained by one program (``train_many``) live apart, in :mod:`jaxconv.train.stacked`.

What a run leaves in ``workdir`` (only process 0 writes files other than checkpoints)::

    config.json            the config of the run
    vocab.json, run.json   the vocabulary (ids as used by the checkpoints) and what jaxconv.load_run needs
    checkpoints/latest/    orbax, the newest config.train.keep states (model, optimizer, bookkeeping)
    checkpoints/best/      orbax, the model at the best dev evaluation (the one scored on test)
    metrics.jsonl          one JSON record per line: train (every log_every_steps), dev (every epoch), test (end)
    tensorboard/           the same scalars as TensorBoard events
    final_metrics.json     what train_and_evaluate returns

Rules the trainer keeps:

- Randomness comes from ``config.seed`` only: parameters from ``fold_in(key(seed), 0)``, the dropout masks of update
  ``s`` (0-based) from ``fold_in(fold_in(key(seed), 1), s)``, the batch order of epoch ``e`` from ``(seed, e)``. So
  a run resumed from a checkpoint replays exactly what the uninterrupted run would have done. On CPU two runs of
  one config give the same metrics bit for bit (tested). On GPU, XLA's scatter-adds (the embedding gradient, the
  row-sparse update's sums) accumulate in a nondeterministic order by default; set
  ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` for bit-identical GPU runs, at some cost in speed.
- One dispatch runs ``config.train.steps_per_call`` (``K``; 0: automatic, 1 on CPU and 8 on accelerators)
  consecutive steps of one bucket; an epoch is shuffled runs of ``K`` same-bucket batches
  (:mod:`jaxconv.train.dispatch`); ``K = 1`` is the batch order of earlier versions. The training examples live on
  the device; batches are gathered there.
- Re-running the same command resumes from ``checkpoints/latest`` (mid-epoch too); a finished run is not retrained,
  only re-scored.
- Ctrl-C stops the run with :class:`jaxconv.interrupts.Interrupted` naming the step it reached and the checkpoint
  the same command resumes from.
- A non-finite loss stops the run with :class:`NonFiniteLossError` naming the step; losses are checked before every
  checkpoint save, so no checkpoint holds a state that came from a non-finite step.
- Batches are padded to a few bucket lengths, so the train program compiles once per bucket (and the eval program
  once per bucket); each dev record counts the epoch's compilations (``jax.monitoring``).
- Times are kept apart: ``examples_per_sec`` of a train record counts only training seconds (dispatch to the last
  step's metrics); the dev evaluation and the checkpoint saves are timed on their own.
- Checkpoints: ``latest`` every ``config.train.checkpoint_every_steps`` (mid-epoch, at the first call boundary after
  each multiple) and at the end of every ``config.train.checkpoint_every_epochs``-th epoch (0: only at the end of
  training) and of training; ``best`` when dev improves (the task's rule), written at the next ``latest`` save
  (right away with ``checkpoint_every_epochs = 1``; until then the best model is kept on the device).
- Multi-host: every process runs the same loop over the same global batches; the data and the state are
  replicated, each batch is split over the devices by rows; orbax coordinates the checkpoint writes; only
  process 0 writes metrics, logs, the vocabulary and the config.

Where the time of a step went is measured by ``benchmarks/step_profile.py`` (docs/speed.md).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import locks
from jaxconv.interrupts import Interrupted
from jaxconv._logging import show_info_logs
from jaxconv.paths import as_path, is_remote, prepare_workdir
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.compiles import COMPILES
from jaxconv.train.dispatch import EpochCalls
from jaxconv.train.engine import Engine
from jaxconv.train.metrics import ProgressBar
from jaxconv.train.optim import OPTIMIZERS, SparseEmbeddingAdadelta, make_optimizer, sparse_embedding_settings
from jaxconv.train.run import NonFiniteLossError, TrainingRun, initial_state, open_run
from jaxconv.train.state import TrainState, make_spec, num_params
from jaxconv.train.steps import EVAL_PROGRAM, TRAIN_PROGRAM, make_steps

__all__ = ["train_and_evaluate", "Trainer", "Clock", "NonFiniteLossError", "make_optimizer",
           "make_steps", "make_spec", "OPTIMIZERS", "SparseEmbeddingAdadelta", "sparse_embedding_settings"]


def train_and_evaluate(config, workdir: str | os.PathLike) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data`` with ``config.train``; return the final metrics.

    Returns:
      ``{"test_accuracy", "test_loss", "dev_accuracy", "best_step", "best_epoch", "step", "epochs_completed",
      "stopped_early", "wall_time_s", "train_time_s", "eval_time_s", "checkpoint_time_s", "epoch_time_s",
      "num_params", "vocab_size", ...}``, also written to ``workdir/final_metrics.json``.

    Raises:
      NonFiniteLossError: the loss became nan/inf (the message names the step and the last good checkpoint).
      ValueError: a bad config value (the message names the key).
      jaxconv.locks.LockedError: another process trains in ``workdir`` (the message names it and ``W/.lock``).
    """
    show_info_logs()
    mesh_lib.maybe_initialize_distributed(config)
    mesh = mesh_lib.make_mesh()
    # Open or resume: config checks, the workdir, the data, the checkpoints and the bookkeeping saved with them.
    # One writer per workdir: a second training on it refuses (jaxconv.locks; W/.lock).
    primary = mesh_lib.is_primary()
    fresh = primary and not is_remote(workdir) and not as_path(workdir).exists()   # local: a remote one is checked
                                                                                   # by prepare_workdir
    try:
        with locks.hold(prepare_workdir(workdir, create=primary) / locks.WORKDIR_LOCK, "train", enabled=primary):
            run = open_run(config, workdir, mesh)
            # State: fresh from the seed, or the latest checkpoint; with the data, on the device.
            engine = Engine(config, run.data, initial_state(run, mesh), run.dropout_key, mesh,
                            steps_per_call=run.rs.steps_per_call)
            trainer = Trainer(run, engine)
            trainer.train()                 # the epochs
            return trainer.finish()         # the best model on test
    except BaseException:
        # A run refused before it wrote anything (a bad config) leaves no folder it made for the lock alone.
        path = as_path(workdir)
        if fresh and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        raise


class Clock:
    """Seconds of training: runs only between :meth:`start` and :meth:`stop`."""

    def __init__(self):
        self.total, self._since = 0.0, None

    def start(self):
        self._since = time.perf_counter()

    def stop(self):
        self.total, self._since = self.now(), None

    def now(self) -> float:
        return self.total + (time.perf_counter() - self._since if self._since is not None else 0.0)


class Trainer:
    """The epochs of one :class:`~jaxconv.train.run.TrainingRun` on its :class:`~jaxconv.train.engine.Engine`."""

    def __init__(self, run: TrainingRun, engine: Engine):
        self.run, self.engine, self.rs = run, engine, run.rs
        self.clock = Clock()
        self.pending: list = []             # (device sums, update count before, steps, first step j) not yet read
        self.best: list | None = None       # the best model's arrays, kept on the device until its checkpoint
        self.best_due = False               # a best model waits for its checkpoint
        self.progress = ProgressBar(run.total_steps, enabled=bool(run.config.progress) and run.primary,
                                    start=run.rs.step)

    # ------------------------------------------------------------------------------------------------- epochs

    def train(self) -> None:
        """Train until the run is finished (epochs done, step cap, early stop)."""
        try:
            while not self.run.finished:
                self._epoch(self.rs.epoch)
        except KeyboardInterrupt:
            raise Interrupted(self.run.interrupted_text()) from None
        finally:
            self.progress.close()
            self.run.metrics.flush()

    def _epoch(self, epoch: int) -> None:
        mark, epoch_start = COMPILES.mark(), time.time()
        calls = self.engine.epoch_calls(epoch)
        plans = self.engine.plans(calls)
        if not self.engine.train_exe:
            self.engine.compile(plans)
        clock_start = self.clock.now()
        self.clock.start()
        try:
            for bucket, call in self._calls(calls):
                sums = self.engine.dispatch(bucket, plans[bucket], call.array())
                before, n = self.rs.step, call.hi - call.lo
                self.rs.step += n
                self.rs.step_in_epoch += n
                self.pending.append((sums, before, n, call.lo))
                self.progress.update(self.rs.step)
                self._after_call(before, calls)
            self._drain()
        finally:
            self.clock.stop()
        train_s = self.clock.total - clock_start
        self.rs.train_time_s += train_s
        self._end_epoch(calls, mark, epoch_start, train_s)

    def _calls(self, calls: EpochCalls):
        """The epoch's dispatches from where the run stands (a resume starts inside one: its first steps are
        masked), up to the step cap: :class:`~jaxconv.train.steps.Call` s."""
        step, cursor = self.rs.step, calls.locate(self.rs.step_in_epoch)
        while (head := calls.next_call(cursor, step, self.run.cap)) is not None:
            bucket, call, cursor = head
            yield bucket, call
            step += call.hi - call.lo

    def _after_call(self, before: int, calls: EpochCalls) -> None:
        """Read the metrics when the run passed a multiple of log_every_steps; save mid-epoch checkpoints."""
        save = self.run.save_due(before, calls.steps)
        if save or self.run.log_due(before):
            self._drain()  # never save a state that came from a non-finite step
        if save:
            self.clock.stop()
            self._save()
            self.clock.start()

    def _drain(self) -> None:
        """Read the pending per-step sums: stop on a non-finite loss, add them up, write the train records due."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        fetched = jax.device_get([sums for sums, *_ in pending])
        for sums, (_, before, n, lo) in zip(fetched, pending):
            for j in range(n):
                if self.run.add_step({k: v[lo + j] for k, v in sums.items()}, before + j + 1):
                    self._log_train(before + j + 1)

    def _log_train(self, step: int) -> None:
        rec = self.run.log_train(step, self.clock.now())
        if rec is not None:
            self.progress.update(self.rs.step, loss=rec["loss"], rate=rec["examples_per_sec"])

    # ------------------------------------------------------------------------------------------------- epoch end

    def _end_epoch(self, calls: EpochCalls, mark: dict, epoch_start: float, train_s: float) -> None:
        run, rs = self.run, self.rs
        self._log_train(rs.step)
        t0 = time.time()
        dev = self.engine.evaluate("dev")
        eval_s = time.time() - t0
        train_c, train_cs = COMPILES.since(mark, TRAIN_PROGRAM)
        eval_c, eval_cs = COMPILES.since(mark, EVAL_PROGRAM)
        epoch_done = rs.step_in_epoch >= calls.steps
        rs.eval_time_s += eval_s
        if run.record_dev(dev, epoch_done, self.progress, compiles=train_c + eval_c, train_compiles=train_c,
                          eval_compiles=eval_c, compile_time_s=train_cs + eval_cs,
                          epoch_time_s=time.time() - epoch_start, train_time_s=train_s, eval_time_s=eval_s):
            self._keep_best()
        run.end_epoch(epoch_done, time.time() - epoch_start, self.progress)
        if run.checkpoint_due(epoch_done):
            self._save()

    def _keep_best(self) -> None:
        """The model improved on dev: checkpoint it now, or keep a device copy until the next ``latest`` save."""
        self.best_due = True
        if int(self.run.config.train.checkpoint_every_epochs) == 1:
            self._save(latest=False)
            return
        self.best = [jnp.copy(x) for x in self.engine.state.model]

    def _save(self, *, latest: bool = True) -> None:
        """Save the pending ``best`` and (``latest``) the ``latest`` checkpoint, timed. A ``latest`` checkpoint is
        never written before the ``best`` its bookkeeping names."""
        run, state, t0 = self.run, self.engine.state, time.time()
        if self.best_due:
            leaves = state.model if self.best is None else self.best
            run.ckpts.save("best", self.rs.best_step, {"model": jax.tree.unflatten(state.defs.model_tree, leaves)},
                           run.meta())
            self.best_due = False
        if latest:
            run.ckpts.save("latest", self.rs.step, {"model": state.model_state(), "optimizer": state.opt_state()},
                           run.meta())
        self.rs.checkpoint_time_s += time.time() - t0

    # ------------------------------------------------------------------------------------------------- test

    def finish(self) -> dict:
        """Score the best model (still on the device, or its ``best`` checkpoint) on test and dev; write
        ``final_metrics.json``."""
        run, engine = self.run, self.engine
        state = engine.state
        best_step = run.ckpts.latest_step("best")
        if self.best is not None:           # the best model is still on the device: no need to read it back
            state = TrainState(self.best, state.opt, state.defs)
        elif best_step is not None:
            restored, _ = run.ckpts.restore("best", {"model": state.model_state()})
            state = state.with_states(restored["model"])
        final = engine.put(state.model)
        test = engine.evaluate("test", final) if "test" in engine.eval_data else None
        return run.result(test, engine.evaluate("dev", final), best_step, num_params(engine.state),
                          steps_per_call=engine.k, runs_in_program=1)
