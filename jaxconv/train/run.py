"""Opening one run: config checks, workdir, data, checkpoints and resume, metrics; its initial state.

:func:`open_run` does everything a run needs before its first step and returns a :class:`Run`; the loop
(:mod:`jaxconv.train.loop`) then trains one run, or a stack of runs, with the same objects.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from jaxconv.configs import check_complete, reference_config, validate
from jaxconv.models import load_word_vectors
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.input_pipeline import DataPipeline
from jaxconv.train.metrics import MetricsWriter
from jaxconv.train.optim import sparse_embedding_settings
from jaxconv.train.state import RunState, TrainState, init_state, make_spec
from jaxconv.train.tasks import Task, task_of
from jaxconv.train.workdir import prepare_workdir, write_run_info

__all__ = ["Run", "open_run", "initial_state", "resolve_steps_per_call", "RESUMABLE_CHANGES", "AUTO_STEPS_PER_CALL"]

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


@dataclasses.dataclass
class Run:
    """One run's fixed parts and its bookkeeping.

    Attributes:
      config, workdir (``etils.epath.Path``), primary (process 0: writes files and logs).
      data: :class:`~jaxconv.train.input_pipeline.DataPipeline`; ckpts: :class:`~jaxconv.train.checkpoint.Checkpoints`;
      metrics: :class:`~jaxconv.train.metrics.MetricsWriter`.
      rs: :class:`~jaxconv.train.state.RunState` (restored when resuming); resumed: whether it was.
      spec, params_key, dropout_key, pretrained: what :func:`initial_state` builds the model from.
      started: ``time.time()`` when this invocation opened the run; wall_before: wall seconds of earlier invocations.
      task: :class:`~jaxconv.train.tasks.Task` (classify or next_token).
    """

    config: Any
    workdir: Any
    primary: bool
    data: DataPipeline
    ckpts: Checkpoints
    metrics: MetricsWriter
    rs: RunState
    resumed: bool
    spec: tuple
    params_key: Any
    dropout_key: Any
    pretrained: np.ndarray | None
    started: float
    wall_before: float
    task: Task = dataclasses.field(default=None)

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
        total = self.epochs * self.data.train.steps_per_epoch
        return min(self.cap, total) if self.cap else total

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self.started

    def meta(self) -> dict:
        """The checkpoint meta: the bookkeeping now, with the wall time and the config."""
        return dict(self.rs.to_meta(), wall_time_s=self.wall_time(), config=self.config.to_json_best_effort())

    def info(self, message: str, progress=None) -> None:
        if self.primary and (progress is None or not progress.log(message)):
            logger.info(message)


def open_run(config, workdir: str | os.PathLike, mesh) -> Run:
    """Check ``config``, prepare ``workdir``, build the data, open the checkpoints (refusing those of another
    experiment) and the metrics; restore the bookkeeping when the workdir holds a run to resume."""
    started = time.time()
    check_complete(config, reference_config(config), config.model.name)
    validate(config)  # numeric ranges, named fields, before anything is read or written
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
        check_same_run(config, saved, workdir)

    task = task_of(config)
    data = task.build_data(config)
    if primary:
        data.vocab.save(workdir / "vocab.json")
        write_run_info(workdir, data)
    root = jax.random.key(int(config.seed))
    pretrained = None
    if "vectors" in config.model and config.model.vectors:   # word vectors: Kim's CNN only
        pretrained, found = load_word_vectors(config.model.vectors, data.vocab, int(config.model.embed_dim),
                                              seed=int(config.seed))
    rs = RunState.from_meta(saved) if saved is not None else RunState()
    if rs.steps_per_call is None:  # a fresh run; or one saved before K existed, which ran one step per call
        rs.steps_per_call = steps_per_call if saved is None else 1
    run = Run(config=config, workdir=workdir, primary=primary, data=data, ckpts=ckpts,
              metrics=MetricsWriter(workdir, enabled=primary, resume_step=rs.step if saved is not None else None,
                                    tensorboard=bool(config.tensorboard)),
              rs=rs, resumed=saved is not None, spec=make_spec(config, len(data.vocab), data.num_classes),
              params_key=jax.random.fold_in(root, 0), dropout_key=jax.random.fold_in(root, 1), pretrained=pretrained,
              started=started, wall_before=float(rs.wall_time_s), task=task)
    run.info(f"data {data.name}: {data.sizes} examples, {data.num_classes} classes, vocab {len(data.vocab)}, buckets "
             f"{data.train.bucket_lengths}, {data.train.steps_per_epoch} steps/epoch in calls of up to "
             f"{rs.steps_per_call}, {jax.device_count()} device(s) on {jax.process_count()} process(es)")
    if pretrained is not None:
        run.info(f"word vectors: {found} of {len(data.vocab)} vocabulary words found in {config.model.vectors}")
    if primary:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    return run


def initial_state(run: Run, mesh) -> TrainState:
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
    def unchanged_new_field(k):  # noqa: E306
        if k == "train.sparse_embedding":
            return sparse_embedding_settings(config) is None
        return k in default and new.get(k) == default[k]
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES and not (k not in old and unchanged_new_field(k))]
    if diff:
        raise ValueError(f"{workdir} holds checkpoints of a run with a different config ({'; '.join(diff[:6])}"
                         f"{'; ...' if len(diff) > 6 else ''}); resuming it would mix two experiments. Use a new "
                         f"--workdir, or delete {workdir / 'checkpoints'} to start over.")
