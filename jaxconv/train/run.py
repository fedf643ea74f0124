"""One run being trained: opening it (config checks, workdir, data, checkpoints and resume, metrics), its initial
state, and its bookkeeping as steps and evaluations come in.

:func:`open_run` does everything a run needs before its first step and returns a :class:`TrainingRun`; the trainer
(:mod:`jaxconv.train.trainer`) then trains it, and :mod:`jaxconv.train.stacked` trains a stack of them, with the
same per-run records (:meth:`TrainingRun.add_step`, :meth:`TrainingRun.log_train`, :meth:`TrainingRun.record_dev`,
:meth:`TrainingRun.result`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Any

import jax
import numpy as np

from jaxconv.configs import check_complete, reference_config, validate
from jaxconv.footprint import check_fits, model_footprint
from jaxconv.models import load_word_vectors
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.data.pipeline import DataPipeline
from jaxconv.train.metrics import MetricsWriter, exploded_loss
from jaxconv.train.optim import learning_rate_at, make_schedule, schedule_steps, sparse_embedding_settings
from jaxconv.train.state import RunState, StateSpec, TrainState, Window, init_state, make_spec
from jaxconv.train.reopen import PATH_FIELDS, absolute_data_paths, check_same_data, same_path
from jaxconv.train.tasks import Task, task_of
from jaxconv.paths import prepare_workdir
from jaxconv.runs import write_run_info

__all__ = ["TrainingRun", "NonFiniteLossError", "open_run", "initial_state", "resolve_steps_per_call",
           "RESUMABLE_CHANGES", "AUTO_STEPS_PER_CALL"]

logger = logging.getLogger("jaxconv.train")

#: ``config.train.steps_per_call = 0`` ("auto") per backend: on CPU one step per dispatch was the fastest measured
#: (a step takes tens of milliseconds there, the dispatch well under one); on accelerators a step takes a fraction
#: of a millisecond and the per-dispatch cost would dominate.
AUTO_STEPS_PER_CALL = {"cpu": 1}
AUTO_STEPS_PER_CALL_ACCELERATOR = 8

#: Config fields that may change when a run is continued (how long, how often, where, how it is shown).
RESUMABLE_CHANGES = ("train.epochs", "train.steps", "train.patience", "train.log_every_steps",
                     "train.checkpoint_every_steps", "train.checkpoint_every_epochs", "train.keep", "data.path",
                     "progress", "tensorboard", "distributed")


def resolve_steps_per_call(config, backend: str | None = None) -> int:
    """``K`` for ``config.train.steps_per_call``: the value itself, or for 0 (auto) :data:`AUTO_STEPS_PER_CALL` of
    ``backend`` (default: JAX's), 8 on accelerators."""
    k = config.train.steps_per_call
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"config.train.steps_per_call={k!r} is not valid; expected an int >= 1 (steps per dispatch) "
                         f"or 0 (auto: {AUTO_STEPS_PER_CALL['cpu']} on CPU, {AUTO_STEPS_PER_CALL_ACCELERATOR} on "
                         f"GPU/TPU).")
    if k:
        return int(k)
    return AUTO_STEPS_PER_CALL.get(backend or jax.default_backend(), AUTO_STEPS_PER_CALL_ACCELERATOR)


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


@dataclasses.dataclass
class TrainingRun:
    """One run's fixed parts and its bookkeeping.

    Attributes:
      config, workdir (``etils.epath.Path``), primary (process 0: writes files and logs).
      data: :class:`~jaxconv.data.pipeline.DataPipeline`; ckpts: :class:`~jaxconv.train.checkpoint.Checkpoints`;
      metrics: :class:`~jaxconv.train.metrics.MetricsWriter`.
      rs: :class:`~jaxconv.train.state.RunState` (restored when resuming); resumed: whether it was.
      spec, params_key, dropout_key, pretrained: what :func:`initial_state` builds the model from.
      started: ``time.time()`` when this invocation opened the run; wall_before: wall seconds of earlier invocations.
      task: :class:`~jaxconv.train.tasks.Task` (classify or next_token).
      window_started: training seconds (the loop's clock) when the open train window began.
      loss_warned: the exploded-loss warning was given (once per invocation; :func:`~jaxconv.train.metrics.exploded_loss`).
    """

    config: Any
    workdir: Any
    primary: bool
    data: DataPipeline
    ckpts: Checkpoints
    metrics: MetricsWriter
    rs: RunState
    resumed: bool
    spec: StateSpec
    params_key: Any
    dropout_key: Any
    pretrained: np.ndarray | None
    started: float
    wall_before: float
    task: Task
    window_started: float = 0.0
    loss_warned: bool = False

    @property
    def epochs(self) -> int:
        return int(self.config.train.epochs)

    @property
    def cap(self) -> int:
        return int(self.config.train.steps)

    @property
    def finished(self) -> bool:
        return self.rs.finished(self.epochs, self.cap)

    @property
    def total_steps(self) -> int:
        return schedule_steps(self.config.train, self.data.train.steps_per_epoch)

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self.started

    def meta(self) -> dict:
        """The checkpoint meta: the bookkeeping now, with the wall time and the config."""
        return dict(self.rs.to_meta(), wall_time_s=self.wall_time(), config=self.config.to_json_best_effort())

    def info(self, message: str, progress=None) -> None:
        if self.primary and (progress is None or not progress.log(message)):
            logger.info(message)

    def metrics_of(self, sums: dict) -> dict:
        """The record fields of summed step or evaluation sums (:meth:`jaxconv.train.tasks.Task.metrics`)."""
        return self.task.metrics(sums, self.data.tokenizer)

    # ---------------------------------------------------------------------------------------------- train records

    def add_step(self, sums: dict, step: int) -> bool:
        """Add update ``step`` (1-based)'s sums to the open window; returns whether a train record is due.

        Raises:
          NonFiniteLossError: its loss is nan or inf (nothing of it is kept).
        """
        loss = float(sums["loss_sum"]) / max(float(sums["count"]), 1.0)
        if not math.isfinite(loss):
            raise NonFiniteLossError(loss, step, self.rs.epoch + 1, self.ckpts.latest_step(), self.ckpts.path("latest"))
        self.rs.window.add(sums)
        log_every = max(int(self.config.train.log_every_steps), 0)
        return bool(log_every) and step % log_every == 0

    def interrupted_text(self) -> str:
        """Where an interrupted run stopped and where the same command resumes it (:class:`jaxconv.interrupts.
        Interrupted`)."""
        saved = self.ckpts.latest_step()
        then = (f"the same command resumes from the checkpoint of step {saved} ({self.ckpts.path('latest')})"
                if saved is not None else f"no checkpoint was saved yet in {self.ckpts.path('latest')}, so the same "
                                          f"command starts the training over")
        return f"training stopped at step {self.rs.step} (epoch {self.rs.epoch + 1} of {self.epochs}); {then}."

    def log_due(self, before: int) -> bool:
        """Whether the updates since ``before`` passed a multiple of ``log_every_steps`` (a train record is due)."""
        every = max(int(self.config.train.log_every_steps), 0)
        return bool(every) and before // every != self.rs.step // every

    def save_due(self, before: int, epoch_steps: int) -> bool:
        """Whether the updates since ``before`` passed a multiple of ``checkpoint_every_steps`` inside the epoch
        (``epoch_steps`` long) and short of the step cap: a mid-epoch ``latest`` checkpoint is due."""
        every = max(int(self.config.train.checkpoint_every_steps), 0)
        capped = self.cap and self.rs.step >= self.cap
        return (bool(every) and before // every != self.rs.step // every and not capped
                and self.rs.step_in_epoch < epoch_steps)

    def log_train(self, step: int, now: float) -> dict | None:
        """Write the open window as a train record at ``step`` (``now``: the training clock, for examples/s) and
        start a new one; None when the window is empty."""
        w = self.rs.window
        if w.steps == 0:
            return None
        rate = w.sums["count"] / max(now - self.window_started, 1e-9)
        lr = learning_rate_at(self.learning_rate, step - 1)
        rec = self.metrics.write("train", step, self.rs.epoch + 1, **self.metrics_of(w.sums), examples_per_sec=rate,
                                 steps=w.steps, learning_rate=lr)
        self.rs.window, self.window_started = Window(), now
        warning = exploded_loss(rec["loss"], self.data.num_classes, step, self.rs.epoch + 1,
                                float(self.config.train.learning_rate))
        if warning and not self.loss_warned and self.primary:
            logger.warning(warning)
            self.loss_warned = True
        return rec

    @property
    def learning_rate(self):
        """The run's learning rate: a float, or the schedule ``update -> rate``
        (:func:`jaxconv.train.optim.make_schedule`)."""
        return make_schedule(self.config.train, self.total_steps)

    # ----------------------------------------------------------------------------------------------- evaluation

    def record_dev(self, dev: dict, epoch_done: bool, progress, **times) -> bool:
        """Count the dev evaluation ``dev`` (sums) at the current step: the best so far (the task's rule), the dev
        record (``times``: compile counts and seconds) and the log line; returns whether it improved."""
        rs, task = self.rs, self.task
        metrics = self.metrics_of(dev)
        improved = rs.record_dev(metrics, epoch_done, task)
        best = {"best_accuracy": rs.best_dev_accuracy}
        if task.select_by == "loss":
            best["best_loss"] = rs.best_dev_loss
        self.metrics.write("dev", rs.step, rs.epoch + 1, **metrics, **best, **times,
                           checkpoint_time_s=rs.checkpoint_time_s)
        best = (f"best {rs.best_dev_accuracy:.4f}" if task.select_by == "accuracy"
                else f"best loss {rs.best_dev_loss:.4f}")
        self.info(f"epoch {rs.epoch + 1}/{self.epochs} step {rs.step}: dev loss {metrics['loss']:.4f} "
                  f"{task.describe(metrics, self.data.tokenizer)} ({best} at epoch {rs.best_epoch}), "
                  f"{times['epoch_time_s']:.1f}s (train {times['train_time_s']:.1f}s, eval {times['eval_time_s']:.1f}s), "
                  f"{times['train_compiles']}+{times['eval_compiles']} compiles", progress)
        return improved

    def end_epoch(self, epoch_done: bool, epoch_seconds: float, progress) -> None:
        """Close the epoch when all its steps ran (counters, its time); stop early after ``patience`` epochs
        without dev improvement."""
        rs = self.rs
        if epoch_done:
            rs.epoch_times = rs.epoch_times + [epoch_seconds]
            rs.epoch, rs.step_in_epoch = rs.epoch + 1, 0
        patience = int(self.config.train.patience)
        if patience and rs.epochs_without_improvement >= patience:
            rs.stopped_early = True
            self.info(f"early stop: no dev improvement for {patience} epochs (best epoch {rs.best_epoch})", progress)

    def checkpoint_due(self, epoch_done: bool) -> bool:
        """Whether the end of this epoch saves ``latest``: training is over, or every
        ``checkpoint_every_epochs``-th completed epoch."""
        every = int(self.config.train.checkpoint_every_epochs)
        return self.finished or bool(every and epoch_done and self.rs.epoch % every == 0)

    def result(self, test: dict | None, dev: dict, best_step: int | None, params: int, *, steps_per_call: int,
               runs_in_program: int) -> dict:
        """The final result (``test``, ``dev``: sums of the best model; ``test`` None without a test split): the
        test record, ``final_metrics.json`` and the closing log line; closes the metrics and checkpoints."""
        rs, data, task = self.rs, self.data, self.task
        dev = self.metrics_of(dev)
        test = self.metrics_of(test) if test is not None else dict.fromkeys(dev, float("nan"))
        self.metrics.write("test", rs.step, rs.epoch, loss=test["loss"], accuracy=test["accuracy"],
                           checkpoint_step=best_step, dev_accuracy=dev["accuracy"])
        result = {
            "dataset": data.name, "label_names": data.label_names, "seed": int(self.config.seed),
            "fold": data.info.get("cv_fold"), "test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "dev_accuracy": dev["accuracy"], "dev_loss": dev["loss"], "best_step": best_step,
            "best_epoch": rs.best_epoch, "step": rs.step, "epochs_completed": rs.epoch,
            "stopped_early": rs.stopped_early, "train_time_s": rs.train_time_s, "eval_time_s": rs.eval_time_s,
            "checkpoint_time_s": rs.checkpoint_time_s,
            "epoch_time_s": float(np.mean(rs.epoch_times)) if rs.epoch_times else None,
            "wall_time_s": self.wall_time(), "num_params": params, "vocab_size": len(data.vocab), "sizes": data.sizes,
            "buckets": list(data.train.bucket_lengths), "steps_per_call": steps_per_call,
            "runs_in_program": runs_in_program, "devices": jax.device_count(), "workdir": str(self.workdir),
            "task": task.name, **task.summary("test", test), **task.summary("dev", dev),
        }
        if self.primary:
            (self.workdir / "final_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        result["tensorboard"] = self.metrics.tensorboard_dir is not None
        self.info(f"test {task.describe(test, data.tokenizer, long=True)} (model of step {best_step}, dev "
                  f"{task.describe(dev, data.tokenizer, long=True)}); outputs in {self.workdir}")
        self.metrics.close()
        self.ckpts.close()
        return result


def open_run(config, workdir: str | os.PathLike, mesh) -> TrainingRun:
    """Check ``config``, prepare ``workdir``, build the data, open the checkpoints (refusing those of another
    experiment or of other data: :func:`jaxconv.train.reopen.check_same_data`) and the metrics; restore the
    bookkeeping when the workdir holds a run to resume. Every check comes before the first file is written, so a
    refused run leaves the workdir as it was. The data is read, and named in messages, as ``config`` gives it; the
    run's config (``config.json``, ``TrainingRun.config``) names its data files by absolute paths
    (:func:`jaxconv.train.reopen.absolute_data_paths`)."""
    started = time.time()
    check_complete(config, reference_config(config), config.model.name)
    validate(config)  # numeric ranges, named fields, before anything is read or written
    stored = absolute_data_paths(config)   # what config.json and the run keep; the data is read as given
    primary = mesh_lib.is_primary()
    workdir = prepare_workdir(workdir, create=primary)
    tc = config.train
    mesh_lib.check_batch_size(int(tc.batch_size), mesh, "config.train.batch_size")
    if int(tc.eval_batch_size):
        mesh_lib.check_batch_size(int(tc.eval_batch_size), mesh, "config.train.eval_batch_size")
    steps_per_call = resolve_steps_per_call(config)
    ckpts = Checkpoints(workdir / "checkpoints", keep=int(tc.keep))
    point = ckpts.resume_point("latest")          # the newest step that reads back whole (None: a fresh run)
    saved = point[1] if point is not None else None
    if saved is not None:  # before anything is written: is this the same experiment?
        check_same_run(stored, saved, workdir)

    task = task_of(config)
    data = task.build_data(config)
    if saved is not None:
        check_same_data(workdir, data, config)
    check_fits(model_footprint(config, len(data.vocab), data.num_classes), batch=int(tc.batch_size),
               length=max(data.train.bucket_lengths), batch_field="train.batch_size", length_field="data.max_length",
               training=True, devices=mesh.devices.size)    # sizes beyond memory, before anything is allocated
    root = jax.random.key(int(config.seed))
    pretrained = None
    if "vectors" in config.model and config.model.vectors:   # word vectors: Kim's CNN only
        pretrained, found = load_word_vectors(config.model.vectors, data.vocab, int(config.model.embed_dim),
                                              seed=int(config.seed))
    if primary:  # every check has passed: now the run's files
        data.vocab.save(workdir / "vocab.json")
        write_run_info(workdir, data)
    rs = RunState.from_meta(saved) if saved is not None else RunState()
    if rs.steps_per_call is None:  # a fresh run; or one saved before K existed, which ran one step per call
        rs.steps_per_call = steps_per_call if saved is None else 1
    run = TrainingRun(
        config=stored, workdir=workdir, primary=primary, data=data, ckpts=ckpts,
        metrics=MetricsWriter(workdir, enabled=primary, resume_step=rs.step if saved is not None else None,
                              tensorboard=bool(config.tensorboard)),
        rs=rs, resumed=saved is not None,
        spec=make_spec(config, len(data.vocab), data.num_classes, schedule_steps(tc, data.train.steps_per_epoch)),
        params_key=jax.random.fold_in(root, 0), dropout_key=jax.random.fold_in(root, 1), pretrained=pretrained,
        started=started, wall_before=float(rs.wall_time_s), task=task)
    run.info(f"data {data.name}: {data.sizes} examples, {data.num_classes} classes, vocab {len(data.vocab)}, buckets "
             f"{data.train.bucket_lengths}, {data.train.steps_per_epoch} steps/epoch in calls of up to "
             f"{rs.steps_per_call}, {jax.device_count()} device(s) on {jax.process_count()} process(es)")
    if pretrained is not None:
        run.info(f"word vectors: {found} of {len(data.vocab)} vocabulary words found in {config.model.vectors}")
    if primary:
        (workdir / "config.json").write_text(stored.to_json_best_effort(indent=2) + "\n")
    return run


def initial_state(run: TrainingRun, mesh) -> TrainState:
    """The run's model and optimizer on the mesh (replicated): fresh from its seed, or its latest checkpoint."""
    state = init_state(run.params_key, run.spec, run.pretrained).replicated(mesh)
    if run.resumed:
        restored, _ = run.ckpts.restore("latest", {"model": state.model_state(), "optimizer": state.opt_state()},
                                        step=run.rs.step)          # the step open_run took the bookkeeping from
        state = state.with_states(restored["model"], restored["optimizer"])
        run.info(f"resumed from {run.ckpts.path('latest')}/{run.rs.step} (epoch {run.rs.epoch + 1}, step "
                 f"{run.rs.step_in_epoch} of {run.data.train.steps_per_epoch} in it)")
    return state


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_same_run(config, saved_meta: dict | None, workdir) -> None:
    """Raise ValueError if the workdir's checkpoints come from a run with a different model, data or optimizer.

    A field the saved config lacks (it predates the field) counts as unchanged when this config keeps the field's
    default; ``train.sparse_embedding``, which changed the update, only when this run's update is dense.
    """
    if not saved_meta or "config" not in saved_meta:
        return
    old = _flat(json.loads(saved_meta["config"]))
    new = _flat(json.loads(config.to_json_best_effort()))
    default = _flat(json.loads(reference_config(config).to_json_best_effort()))

    def unchanged_new_field(k):
        if k == "train.sparse_embedding":
            return sparse_embedding_settings(config) is None
        return k in default and new.get(k) == default[k]

    def changed(k):
        if k in PATH_FIELDS:   # a relative path of an older run, or the same file named as given
            return not same_path(old.get(k), new.get(k))
        return old.get(k) != new.get(k)

    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if changed(k) and k not in RESUMABLE_CHANGES and not (k not in old and unchanged_new_field(k))]
    if diff:
        raise ValueError(f"{workdir} holds checkpoints of a run with a different config ({'; '.join(diff[:6])}"
                         f"{'; ...' if len(diff) > 6 else ''}); resuming it would mix two experiments. Use a new "
                         f"--workdir, or delete {workdir / 'checkpoints'} to start over.")
