"""The training loop of one run, or of a stack of runs of one model shape trained by one program.

:class:`Group` drives ``R`` runs (``R = 1`` unstacked for ``train_and_evaluate``; any ``R`` stacked on a leading axis
and ``jax.vmap`` ped for ``train_many``). Each run keeps its own schedule (:mod:`jaxconv.train.schedule`), dropout
keys, metrics, early stopping and checkpoints, exactly as if it ran alone:

- Epochs are in step: a run that finishes an epoch waits for the others before the dev evaluation (one stacked
  program evaluates all), so every run is evaluated after each of its epochs.
- Inside an epoch each dispatch runs one bucket's program; the runs whose next call is in that bucket step, the
  others are masked (their arrays are left bit for bit as they were). The bucket picked is the one most runs are
  waiting for (ties: the shorter bucket). A stopped or finished run stays masked.
- Per-step sums come back per run; the host adds them into each run's window in step order and writes a train
  record at every multiple of ``log_every_steps``, checks every loss before a checkpoint is saved, and names the
  first non-finite step.

Times are kept apart: ``examples_per_sec`` of a train record counts only training seconds (dispatch to the last
step's metrics); the dev evaluation and the checkpoint saves are timed on their own (``eval_time_s``,
``checkpoint_time_s`` in the dev records and the final metrics).

Checkpoints: ``latest`` every ``config.train.checkpoint_every_steps`` (mid-epoch, at the first call boundary after
each multiple), and at the end of every ``config.train.checkpoint_every_epochs``-th epoch (0: only at the end of
training) and of training; ``best`` when dev improves, written at the next ``latest`` save (right away with
``checkpoint_every_epochs = 1``; until then the best model is kept on the device).
"""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.train.compiles import COMPILES
from jaxconv.train.metrics import ProgressBar
from jaxconv.train.run import Run
from jaxconv.train.engine import Engine
from jaxconv.train.schedule import Dispatches, EpochCalls, epoch_calls
from jaxconv.train.state import TrainState, Window, num_params
from jaxconv.train.steps import EVAL_PROGRAM, TRAIN_PROGRAM

__all__ = ["Group", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became nan or inf. Attributes: ``step`` (1-based update number), ``epoch`` (1-based),
    ``value``, ``checkpoint_step`` (the last good saved step, or None) and ``checkpoint_dir``."""

    def __init__(self, value: float, step: int, epoch: int, checkpoint_step: int | None, checkpoint_dir) -> None:
        self.value, self.step, self.epoch = value, step, epoch
        self.checkpoint_step, self.checkpoint_dir = checkpoint_step, checkpoint_dir
        where = (f"the last good checkpoint is step {checkpoint_step} in {checkpoint_dir}" if checkpoint_step is not None
                 else f"no checkpoint had been saved yet in {checkpoint_dir}")
        super().__init__(f"loss is {value} at step {step} (epoch {epoch}); {where}. Lower the learning rate "
                         f"(config.train.learning_rate) or check the data; nothing after step {step - 1} was saved.")


class _Clock:
    """Seconds of training: runs only between :meth:`start` and :meth:`stop`."""

    def __init__(self):
        self.total, self._since = 0.0, None

    def start(self):
        self._since = time.perf_counter()

    def stop(self):
        self.total, self._since = self.now(), None

    def now(self) -> float:
        return self.total + (time.perf_counter() - self._since if self._since is not None else 0.0)


class Group:
    """``runs`` (opened by :func:`jaxconv.train.run.open_run`) trained from ``state`` (one run's, or their stack
    when ``stacked``) on ``mesh``."""

    def __init__(self, runs: list[Run], state: TrainState, mesh, *, stacked: bool):
        self.runs, self.stacked = runs, stacked
        first = runs[0]
        self.k = first.rs.steps_per_call
        for i, r in enumerate(runs):
            if r.rs.steps_per_call != self.k:
                raise ValueError(f"runs 0 and {i} cannot be stacked: they step {self.k} and {r.rs.steps_per_call} "
                                 f"batches per call (config.train.steps_per_call, or the value they were started with).")
        self.engine = Engine(first.config, [r.data for r in runs], state, [r.dropout_key for r in runs], mesh,
                             steps_per_call=self.k, stacked=stacked)
        self.clock = _Clock()
        self.window_clock = [0.0] * len(runs)
        self.pending: list = []             # (device sums, [(run index, step before, steps, first j)]) not yet read
        self.best: list | None = None       # the best model of each run so far, when its checkpoint waits
        self.best_due = [False] * len(runs)
        self.best_kept = [False] * len(runs)  # run i's best model is in self.best (it improved in this invocation)
        self.progress = ProgressBar(sum(r.total_steps for r in runs),
                                    enabled=bool(first.config.progress) and first.primary,
                                    start=sum(r.rs.step for r in runs))

    # ------------------------------------------------------------------------------------------------- training

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
                sums = self.engine.dispatch(bucket, plans[bucket], call if self.stacked else call[0])
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
        log_due, saves = False, []
        for i, before, n, _ in moved:
            r = self.runs[i]
            after = r.rs.step
            log_every = max(int(r.config.train.log_every_steps), 0)
            ckpt_every = max(int(r.config.train.checkpoint_every_steps), 0)
            log_due |= bool(log_every) and before // log_every != after // log_every
            capped = r.cap and after >= r.cap
            if (ckpt_every and before // ckpt_every != after // ckpt_every and not capped
                    and r.rs.step_in_epoch < calls[i].steps):
                saves.append(i)
        if log_due or saves:
            self._drain()  # never save a state that came from a non-finite step
        if saves:
            self.clock.stop()
            self._save(saves)
            self.clock.start()

    def _drain(self) -> None:
        """Read the pending per-step sums: stop on a non-finite loss, add them to the windows, write train records."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        fetched = jax.device_get([sums for sums, _ in pending])
        for sums, (_, moved) in zip(fetched, pending):
            for i, before, n, lo in moved:
                r = self.runs[i]
                mine = np.asarray(sums[i] if self.stacked else sums, np.float64)          # (K, 3)
                log_every = max(int(r.config.train.log_every_steps), 0)
                for j in range(n):
                    loss_sum, correct, count = (float(x) for x in mine[lo + j])
                    step = before + j + 1
                    loss = loss_sum / max(count, 1.0)
                    if not math.isfinite(loss):
                        raise NonFiniteLossError(loss, step, r.rs.epoch + 1, r.ckpts.latest_step(),
                                                 r.ckpts.path("latest"))
                    r.rs.window.add(loss_sum, correct, count)
                    if log_every and step % log_every == 0:
                        self._log_train(i, step)

    def _log_train(self, i: int, step: int) -> None:
        r, w = self.runs[i], self.runs[i].rs.window
        if w.steps == 0:
            return
        now = self.clock.now()
        rate = w.count / max(now - self.window_clock[i], 1e-9)
        rec = r.metrics.write("train", step, r.rs.epoch + 1, loss=w.loss_sum / max(w.count, 1.0),
                              accuracy=w.correct / max(w.count, 1.0), examples_per_sec=rate, steps=w.steps)
        if not self.stacked:
            self.progress.update(sum(x.rs.step for x in self.runs), loss=rec["loss"], rate=rate)
        r.rs.window, self.window_clock[i] = Window(), now

    # ------------------------------------------------------------------------------------------------- epoch end

    def _end_epoch(self, members: list[int], calls: dict[int, EpochCalls], mark: int, epoch_start: float,
                   train_s: float) -> None:
        for i in members:
            self._log_train(i, self.runs[i].rs.step)
        t0 = time.time()
        dev = self.engine.evaluate("dev")
        eval_s = time.time() - t0
        train_c, train_cs = COMPILES.since(mark, TRAIN_PROGRAM)
        eval_c, eval_cs = COMPILES.since(mark, EVAL_PROGRAM)
        improved, epoch_done = [], {}
        for i in members:
            r, rs = self.runs[i], self.runs[i].rs
            epoch_done[i] = rs.step_in_epoch >= calls[i].steps
            rs.eval_time_s += eval_s
            if rs.record_dev(dev[i]["accuracy"], dev[i]["loss"], epoch_done[i], r.task.select_by):
                improved.append(i)
            r.metrics.write("dev", rs.step, rs.epoch + 1, loss=dev[i]["loss"], accuracy=dev[i]["accuracy"],
                            best_accuracy=rs.best_dev_accuracy, compiles=train_c + eval_c, train_compiles=train_c,
                            eval_compiles=eval_c, compile_time_s=train_cs + eval_cs, epoch_time_s=time.time() - epoch_start,
                            train_time_s=train_s, eval_time_s=eval_s, checkpoint_time_s=rs.checkpoint_time_s)
            best = (f"best {rs.best_dev_accuracy:.4f}" if r.task.select_by == "accuracy"
                    else f"best loss {rs.best_dev_loss:.4f}")
            r.info(f"epoch {rs.epoch + 1}/{r.epochs} step {rs.step}: dev loss {dev[i]['loss']:.4f} "
                   f"{r.task.describe(dev[i], r.data.tokenizer)} ({best} at epoch {rs.best_epoch}), "
                   f"{time.time() - epoch_start:.1f}s (train {train_s:.1f}s, eval {eval_s:.1f}s), "
                   f"{train_c}+{eval_c} compiles", self.progress)
        self._keep_best(improved)
        for i in members:
            r, rs = self.runs[i], self.runs[i].rs
            if epoch_done[i]:
                rs.epoch_times = rs.epoch_times + [time.time() - epoch_start]
                rs.epoch, rs.step_in_epoch = rs.epoch + 1, 0
            patience = int(r.config.train.patience)
            if patience and rs.epochs_without_improvement >= patience:
                rs.stopped_early = True
                r.info(f"early stop: no dev improvement for {patience} epochs (best epoch {rs.best_epoch})",
                       self.progress)
        every = int(self.runs[members[0]].config.train.checkpoint_every_epochs)
        due = [i for i in members if self.runs[i].finished or (every and epoch_done[i] and self.runs[i].rs.epoch % every == 0)]
        self._save(due)

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
        if not self.stacked:
            self.best = [jnp.copy(x) for x in model]
            return
        mask = np.zeros(len(self.runs), bool)
        mask[improved] = True
        mask = self.engine.put(mask)
        best = self.best if self.best is not None else model
        self.best = [jnp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, b) for x, b in zip(model, best)]

    def _state(self, i: int) -> TrainState:
        """Run ``i``'s arrays (a view of the stack, or the one run's)."""
        return self.engine.state.unstack(i) if self.stacked else self.engine.state

    def _save(self, which: list[int], *, latest: bool = True) -> None:
        """Save the pending ``best`` and (``latest``) the ``latest`` checkpoint of the runs ``which``, timed per run.
        A ``latest`` checkpoint is never written before the ``best`` its bookkeeping names."""
        for i in which:
            r = self.runs[i]
            t0 = time.time()
            state = self._state(i)
            if self.best_due[i]:
                leaves = state.model if self.best is None else [x[i] if self.stacked else x for x in self.best]
                model = jax.tree.unflatten(state.defs.model_tree, leaves)
                r.ckpts.save("best", r.rs.best_step, {"model": model}, r.meta())
                self.best_due[i] = False
            if latest:
                r.ckpts.save("latest", r.rs.step, {"model": state.model_state(), "optimizer": state.opt_state()},
                             r.meta())
            r.rs.checkpoint_time_s += time.time() - t0

    # ------------------------------------------------------------------------------------------------- evaluation

    def finish(self) -> list[dict]:
        """Score each run's best model (its ``best`` checkpoint, or the same model still on the device) on test and
        dev; write ``final_metrics.json``."""
        models, best_steps = [], []
        for i, r in enumerate(self.runs):
            state = self._state(i)
            step = r.ckpts.latest_step("best")
            if self.best_kept[i]:           # the best model is still on the device: no need to read it back
                state = TrainState([x[i] if self.stacked else x for x in self.best], state.opt, state.defs)
            elif step is not None:
                restored, _ = r.ckpts.restore("best", {"model": state.model_state()})
                state = state.with_states(restored["model"])
            models.append(state.model)
            best_steps.append(step)
        final = [jnp.stack(xs) for xs in zip(*models)] if self.stacked else models[0]
        final = self.engine.put(final)
        nan = {"loss": float("nan"), "accuracy": float("nan")}
        test = self.engine.evaluate("test", final) if "test" in self.engine.eval_data else [nan] * len(self.runs)
        dev = self.engine.evaluate("dev", final)
        params = num_params(self._state(0))
        return [self._result(r, test[i], dev[i], best_steps[i], params) for i, r in enumerate(self.runs)]

    def _result(self, r: Run, test: dict, dev: dict, best_step: int | None, params: int) -> dict:
        rs, data = r.rs, r.data
        r.metrics.write("test", rs.step, rs.epoch, loss=test["loss"], accuracy=test["accuracy"],
                        checkpoint_step=best_step, dev_accuracy=dev["accuracy"])
        result = {
            "dataset": data.name, "label_names": data.label_names, "seed": int(r.config.seed), "fold": data.info.get("cv_fold"),
            "test_accuracy": test["accuracy"], "test_loss": test["loss"], "dev_accuracy": dev["accuracy"],
            "dev_loss": dev["loss"], "best_step": best_step, "best_epoch": rs.best_epoch, "step": rs.step,
            "epochs_completed": rs.epoch, "stopped_early": rs.stopped_early, "train_time_s": rs.train_time_s,
            "eval_time_s": rs.eval_time_s, "checkpoint_time_s": rs.checkpoint_time_s,
            "epoch_time_s": float(np.mean(rs.epoch_times)) if rs.epoch_times else None,
            "wall_time_s": r.wall_time(), "num_params": params, "vocab_size": len(data.vocab), "sizes": data.sizes,
            "buckets": list(data.train.bucket_lengths), "steps_per_call": self.k, "runs_in_program": len(self.runs),
            "devices": jax.device_count(), "workdir": str(r.workdir), "task": r.task.name,
            **r.task.summary("test", test, r.data.tokenizer), **r.task.summary("dev", dev, r.data.tokenizer),
        }
        if r.primary:
            (r.workdir / "final_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        result["tensorboard"] = r.metrics.tensorboard_dir is not None
        r.info(f"test {r.task.describe(test, r.data.tokenizer, long=True)} (model of step {best_step}, dev "
               f"{r.task.describe(dev, r.data.tokenizer, long=True)}); outputs in {r.workdir}")
        r.metrics.close()
        r.ckpts.close()
        return result
