"""``train_and_evaluate(config, workdir)``: train a text model, pick the best epoch on dev, score it on test; and
``train_many(configs, workdirs)``: several runs of one model shape trained by one program.

What a run leaves in ``workdir`` (only process 0 writes files other than checkpoints)::

    config.json            the config of the run
    vocab.json, run.json   the vocabulary (ids as used by the checkpoints) and what jaxconv.load_run needs
    checkpoints/latest/    orbax, the newest config.train.keep states (model, optimizer, bookkeeping)
    checkpoints/best/      orbax, the model at the best dev accuracy (the one scored on test)
    metrics.jsonl          one JSON record per line: train (every log_every_steps), dev (every epoch), test (end)
    tensorboard/           the same scalars as TensorBoard events
    final_metrics.json     what train_and_evaluate returns

Rules the loop keeps (:mod:`jaxconv.train.loop`):

- Randomness comes from ``config.seed`` only: parameters from ``fold_in(key(seed), 0)``, the dropout masks of update
  ``s`` (0-based) from ``fold_in(fold_in(key(seed), 1), s)``, the batch order of epoch ``e`` from ``(seed, e)``. So
  a run resumed from a checkpoint replays exactly what the uninterrupted run would have done. On CPU two runs of
  one config give the same metrics bit for bit (tested). On GPU, XLA's scatter-adds (the embedding gradient, the
  row-sparse update's sums) accumulate in a nondeterministic order by default; set
  ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` for bit-identical GPU runs, at some cost in speed.
- One dispatch runs ``config.train.steps_per_call`` (``K``; 0: automatic, 1 on CPU and 8 on accelerators)
  consecutive steps of one bucket; an epoch is shuffled runs of ``K`` same-bucket batches
  (:mod:`jaxconv.train.schedule`); ``K = 1`` is the batch order of earlier versions. The training examples live on
  the device; batches are gathered there.
- Re-running the same command resumes from ``checkpoints/latest`` (mid-epoch too); a finished run is not retrained,
  only re-scored.
- A non-finite loss stops the run with :class:`NonFiniteLossError` naming the step; losses are checked before every
  checkpoint save, so no checkpoint holds a state that came from a non-finite step.
- Batches are padded to a few bucket lengths, so the train program compiles once per bucket (and the eval program
  once per bucket); each dev record counts the epoch's compilations (``jax.monitoring``).
- Multi-host: every process runs the same loop over the same global batches; the data and the state are
  replicated, each batch is split over the devices by rows; orbax coordinates the checkpoint writes; only
  process 0 writes metrics, logs, the vocabulary and the config.

Where the time of a step went, and what changed, is measured by ``benchmarks/step_profile.py`` (docs/speed.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from jaxconv._logging import show_info_logs
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.loop import Group, NonFiniteLossError
from jaxconv.train.optim import OPTIMIZERS, SparseEmbeddingAdadelta, make_optimizer, sparse_embedding_settings
from jaxconv.train.run import initial_state, open_run
from jaxconv.train.state import TrainState, make_spec
from jaxconv.train.steps import make_steps

__all__ = ["train_and_evaluate", "train_many", "NonFiniteLossError", "make_optimizer", "make_steps", "make_spec",
           "OPTIMIZERS", "SparseEmbeddingAdadelta", "sparse_embedding_settings"]


def train_and_evaluate(config, workdir: str | os.PathLike) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data`` with ``config.train``; return the final metrics.

    Returns:
      ``{"test_accuracy", "test_loss", "dev_accuracy", "best_step", "best_epoch", "step", "epochs_completed",
      "stopped_early", "wall_time_s", "train_time_s", "eval_time_s", "checkpoint_time_s", "epoch_time_s",
      "num_params", "vocab_size", ...}``, also written to ``workdir/final_metrics.json``.

    Raises:
      NonFiniteLossError: the loss became nan/inf (the message names the step and the last good checkpoint).
      ValueError: a bad config value (the message names the key).
    """
    show_info_logs()
    mesh_lib.maybe_initialize_distributed(config)
    mesh = mesh_lib.make_mesh()
    run = open_run(config, workdir, mesh)
    group = Group([run], initial_state(run, mesh), mesh, stacked=False)
    group.train()
    return group.finish()[0]


def train_many(configs: Sequence, workdirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Train ``R = len(configs)`` runs of one model shape as one program: their arrays stacked on a leading axis,
    every step ``jax.vmap`` ped over it. Each run keeps its own data order, dropout, early stopping, checkpoints,
    ``metrics.jsonl`` and ``final_metrics.json`` in its workdir, as :func:`train_and_evaluate` would give it alone
    (up to float rounding); runs whose datasets differ in size (CV folds) are aligned by bucket
    (:mod:`jaxconv.train.schedule`).

    The runs may differ in seed, fold, data split, epochs, patience, step cap and logging; they must share the model
    config, vocabulary size, classes, optimizer, batch size, bucket lengths and ``steps_per_call``.

    Returns:
      one result per run, in order (what :func:`train_and_evaluate` returns).

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
    state = TrainState.stack([initial_state(r, mesh) for r in runs])
    group = Group(runs, state.replicated(mesh), mesh, stacked=True)
    group.train()
    return group.finish()


def _check_same_shape(first, other, i: int) -> None:
    names = ("model config", "vocabulary size", "number of classes", "optimizer", "row-sparse embedding settings")
    for name, a, b in zip(names, first.spec, other.spec):
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
