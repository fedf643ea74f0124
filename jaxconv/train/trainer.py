"""``train_and_evaluate(config, workdir)``: train a text model, pick the best epoch on dev, score it on test.

What a run leaves in ``workdir`` (only process 0 writes files other than checkpoints)::

    config.json            the config of the run
    vocab.json             the vocabulary (jaxconv.data.Vocab.save), ids as used by the checkpoints
    checkpoints/latest/    orbax, the newest config.train.keep states (model, optimizer, data position, ...)
    checkpoints/best/      orbax, the model at the best dev accuracy (the one scored on test)
    metrics.jsonl          one JSON record per line: train (every log_every_steps), dev (every epoch), test (end)
    tensorboard/           the same scalars as TensorBoard events
    final_metrics.json     what train_and_evaluate returns

Rules the loop keeps:

- Randomness comes from ``config.seed`` only: parameters from ``fold_in(key(seed), 0)``, the dropout masks of step
  ``s`` from ``fold_in(fold_in(key(seed), 1), s)``, the batch order of epoch ``e`` from ``(seed, e)``. So a run
  resumed from a checkpoint replays exactly what the uninterrupted run would have done. On CPU two runs of one
  config give the same metrics bit for bit (tested). On GPU, XLA's scatter-adds (the embedding gradient, the
  row-sparse update's sums) accumulate in a nondeterministic order by default; set
  ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` for bit-identical GPU runs, at some cost in speed.
- Re-running the same command resumes from ``checkpoints/latest`` (mid-epoch too: the batcher restarts at the saved
  step of the epoch); a finished run is not retrained, only re-scored.
- A non-finite loss stops the run with :class:`NonFiniteLossError` naming the step; losses are checked before every
  checkpoint save, so no checkpoint holds a state that came from a non-finite step.
- Batches are padded to a few bucket lengths, so the train step compiles at most once per bucket (and the eval step
  once per bucket); the count of traces per epoch goes into the dev record as ``compiles``.
- Multi-host: every process runs the same loop over the same global batches and feeds its own rows; orbax
  coordinates the checkpoint writes; only process 0 writes metrics, logs, the vocabulary and the config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv._logging import show_info_logs
from jaxconv.configs import check_complete, reference_config
from jaxconv.models import build_model, load_word_vectors
from jaxconv.models.text_cnn import PAD_ID
from jaxconv.nn.constraints import apply_max_norm
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.input_pipeline import DataPipeline, build_data
from jaxconv.train.workdir import prepare_workdir, write_run_info
from jaxconv.train.metrics import MetricsWriter, ProgressBar

__all__ = ["train_and_evaluate", "NonFiniteLossError", "make_optimizer", "make_steps", "make_spec", "evaluate",
           "OPTIMIZERS", "TRACES", "SparseEmbeddingAdadelta"]

logger = logging.getLogger("jaxconv.train")

OPTIMIZERS = ("adadelta", "adam", "sgd")


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


# ======================================================================================================================
# Optimizer, loss, steps
# ======================================================================================================================

def make_optimizer(train_config) -> optax.GradientTransformation:
    """``config.train`` -> optax: ``"adadelta"`` (``learning_rate``, ``rho``, ``eps``; Kim's 1.0, 0.95, 1e-6),
    ``"adam"`` (``learning_rate``, ``eps``) or ``"sgd"`` (``learning_rate``, ``momentum``). The defaults are the
    config's (:mod:`jaxconv.configs.text_cnn`).

    The same settings give the same transformation object, so a second run in one process (kim2014.py) has an equal
    optimizer graph and reuses the compiled train step.
    """
    t = train_config
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer={t.optimizer!r} is not known; expected one of "
                         f"{', '.join(map(repr, OPTIMIZERS))}.")
    return _optimizer(t.optimizer, float(t.learning_rate), float(t.rho), float(t.eps), float(t.momentum))


@functools.lru_cache(maxsize=32)
def _optimizer(name: str, lr: float, rho: float, eps: float, momentum: float) -> optax.GradientTransformation:
    if name == "adadelta":
        return optax.adadelta(learning_rate=lr, rho=rho, eps=eps)
    if name == "adam":
        return optax.adam(learning_rate=lr, eps=eps)
    return optax.sgd(learning_rate=lr, momentum=momentum or None)


#: The parameters the dense optimizer updates when the embedding table has its own row-sparse Adadelta.
NOT_EMBEDDING = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("embedding")))
#: Embedding variants whose trained table gets the row-sparse update (the others keep the dense path).
SPARSE_EMBEDDINGS = ("rand", "non-static")


def sparse_embedding_settings(config) -> tuple[float, float, float] | None:
    """``(learning_rate, rho, eps)`` when ``config`` trains its embedding table with the row-sparse Adadelta
    (``train.optimizer == "adadelta"``, ``train.sparse_embedding`` true, ``model.embedding`` "rand" or
    "non-static"), else None (one dense optax update of every parameter)."""
    t = config.train
    if t.optimizer != "adadelta" or not t.sparse_embedding or config.model.embedding not in SPARSE_EMBEDDINGS:
        return None
    return float(t.learning_rate), float(t.rho), float(t.eps)


class SparseEmbeddingAdadelta(nnx.Module):
    """Adadelta with a lazy row-sparse update of ``model.embedding``; ``optax.adadelta`` for everything else.

    Exactly the dense ``optax.adadelta`` (up to float rounding): a row whose gradient is zero gets update 0 and
    its accumulators only decay, ``E[g^2] <- rho E[g^2]``, ``E[dx^2] <- rho E[dx^2]``. So a row is touched only when
    its token is in the batch; ``last_step[v]`` counts the updates row ``v`` has seen, and at update ``t`` (0-based)
    its accumulators are first scaled by ``rho ** (t - last_step[v])`` (the decays it skipped), then updated as optax
    does: ``E[g^2] = (1 - rho) g^2 + rho E[g^2]``, ``u = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g``,
    ``E[dx^2] = (1 - rho) u^2 + rho E[dx^2]``, ``param += -learning_rate * u``. Rows not in the batch are not read
    or written, so a step costs O(tokens in the batch x D) for the table instead of O(V x D).

    The stored ``e_g`` / ``e_x`` rows are stale by ``rho ** (step - last_step)``; every read goes through that
    decay, and checkpoints (``nnx.state`` of this object) hold ``last_step`` with them.

    Attributes:
      dense: ``nnx.Optimizer`` over the model's Params except the embedding table (``step`` counts updates).
      e_g, e_x: ``(V, D)`` accumulators of the table, as of update ``last_step`` of each row.
      last_step: int32 ``(V,)``.
    """

    def __init__(self, model, tx: optax.GradientTransformation, *, learning_rate: float, rho: float, eps: float):
        self.dense = nnx.Optimizer(model, tx, wrt=NOT_EMBEDDING)
        table = model.embedding[...]                                                        # (V, D)
        self.e_g = nnx.OptState(jnp.zeros_like(table))
        self.e_x = nnx.OptState(jnp.zeros_like(table))
        self.last_step = nnx.OptState(jnp.zeros((table.shape[0],), jnp.int32))
        self.learning_rate, self.rho, self.eps = float(learning_rate), float(rho), float(eps)

    @property
    def step(self):
        return self.dense.step

    def update_embedding(self, model, tokens, grad_vectors, t) -> None:
        """Apply update ``t`` (0-based) to the rows of ``model.embedding`` in ``tokens`` ``(B, L)``, given the loss's
        gradient w.r.t. the embedded vectors ``grad_vectors`` ``(B, L, D)`` (pad positions are ignored)."""
        rho, eps, lr = self.rho, self.eps, self.learning_rate
        table = model.embedding[...]                                                        # (V, D)
        vocab, dim = table.shape
        n = tokens.size
        mask = (tokens != PAD_ID)[..., None]                                                # (B, L, 1)
        gx = jnp.where(mask, grad_vectors, 0.0).reshape(n, dim)                            # (N, D), pads 0
        # Distinct ids of the batch, padded with vocab (out of range: gathers fill, scatters drop it).
        ids, inv = jnp.unique(tokens.reshape(-1), size=n, fill_value=vocab, return_inverse=True)   # (N,), (N,)
        g = jax.ops.segment_sum(gx, inv.reshape(-1), num_segments=n)                       # (N, D) row gradients
        t = jnp.asarray(t).astype(jnp.int32)
        age = t - self.last_step[...].at[ids].get(mode="fill", fill_value=0)               # (N,) skipped decays
        decay = jnp.where(age == 0, 1.0, jnp.power(jnp.float32(rho), age.astype(jnp.float32)))[:, None]  # (N, 1)
        e_g = self.e_g[...].at[ids].get(mode="fill", fill_value=0.0) * decay                # (N, D) as of step t
        e_x = self.e_x[...].at[ids].get(mode="fill", fill_value=0.0) * decay
        e_g = (1 - rho) * g ** 2 + rho * e_g                                                # optax's update_moment
        u = jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps) * g
        e_x = (1 - rho) * u ** 2 + rho * e_x
        rows = table.at[ids].get(mode="fill", fill_value=0.0)                               # (N, D)
        rows = (rows + u * (-lr)).astype(table.dtype)                                       # scale_by_lr, apply
        model.embedding[...] = table.at[ids].set(rows, mode="drop")
        self.e_g[...] = self.e_g[...].at[ids].set(e_g, mode="drop")
        self.e_x[...] = self.e_x[...].at[ids].set(e_x, mode="drop")
        self.last_step[...] = self.last_step[...].at[ids].set(t + 1, mode="drop")


def _loss_terms(logits, labels, weights):
    """logits ``(B, K)``, labels int ``(B,)``, weights ``(B,)`` -> per-row loss ``(B,)`` and sums over real rows."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)  # (B,)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)                     # (B,)
    sums = {"loss_sum": jnp.sum(ce * weights), "correct": jnp.sum(correct * weights), "count": jnp.sum(weights)}
    return ce, sums


#: How often the train / eval step has been traced in this process. jit traces only on a cache miss (a new input
#: signature: a new bucket length, model structure or static setting), so the increase over an epoch is the number
#: of compilations of the steps in that epoch.
TRACES = {"train": 0, "eval": 0}


def _train_step(model, optimizer, batch, key, step, *, max_norm: float, max_norm_params):
    """One update on ``batch`` (tokens ``(B, L)``, labels ``(B,)``, weights ``(B,)``); returns device scalars."""
    TRACES["train"] += 1
    dropout_key = jax.random.fold_in(key, step)

    def loss_fn(model):
        logits = model(batch["tokens"], deterministic=False, dropout_key=dropout_key)       # (B, K)
        _, sums = _loss_terms(logits, batch["labels"], batch["weights"])
        return sums["loss_sum"] / jnp.maximum(sums["count"], 1.0), sums                    # mean over real rows

    def loss_from_vectors(model, x):
        logits = model.logits_from_vectors(x, deterministic=False, dropout_key=dropout_key)  # (B, K)
        _, sums = _loss_terms(logits, batch["labels"], batch["weights"])
        return sums["loss_sum"] / jnp.maximum(sums["count"], 1.0), sums

    if isinstance(optimizer, SparseEmbeddingAdadelta):
        # Gradients w.r.t. every Param but the table, and w.r.t. the looked-up vectors (B, L, D) for the table's rows.
        tokens = batch["tokens"]
        model._check_tokens(tokens)
        x = model.embed(tokens)                                                              # (B, L, D)
        (loss, sums), (grads, grad_x) = nnx.value_and_grad(
            loss_from_vectors, argnums=(nnx.DiffState(0, NOT_EMBEDDING), 1), has_aux=True)(model, x)
        t = optimizer.dense.step[...]                                                       # updates applied so far
        optimizer.dense.update(model, grads)
        optimizer.update_embedding(model, tokens, grad_x, t)
    else:
        (loss, sums), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
    if max_norm > 0:  # Kim: each class's weight vector (column of the (in, K) kernel) to L2 norm <= 3
        apply_max_norm(model, max_norm_params, max_norm, axis=0)
    return dict(sums, loss=loss)


def _eval_step(model, batch):
    """Sums over the real rows of ``batch``: ``loss_sum``, ``correct``, ``count`` (filler rows have weight 0)."""
    TRACES["eval"] += 1
    logits = model(batch["tokens"])                                                          # (B, K)
    return _loss_terms(logits, batch["labels"], batch["weights"])[1]


# Module-level jits: every run in a process shares their compilation caches (kim2014.py runs many in one process).
# The model and optimizer are donated: their old buffers are reused for the new state.
_train_step_jit = nnx.jit(_train_step, static_argnames=("max_norm", "max_norm_params"),
                          donate_argnames=("model", "optimizer"))
_eval_step_jit = nnx.jit(_eval_step)


def make_steps(config):
    """``train_step(model, optimizer, batch, key, step) -> metrics`` and ``eval_step(model, batch) -> sums``, both
    jitted, with ``config.train.max_norm`` (0: off) applied to ``config.train.max_norm_params`` after each update."""
    t = config.train
    max_norm = float(t.max_norm)
    targets = t.max_norm_params
    targets = targets if isinstance(targets, str) else tuple(targets)

    def train_step(model, optimizer, batch, key, step):
        return _train_step_jit(model, optimizer, batch, key, step, max_norm=max_norm, max_norm_params=targets)

    return train_step, _eval_step_jit


def make_spec(config, vocab_size: int, num_classes: int) -> tuple:
    """The hashable ``spec`` of :func:`_create`: ``(model config items, vocab_size, num_classes, optax
    transformation, sparse embedding settings or None)``."""
    return (tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.model.items())),
            int(vocab_size), int(num_classes), make_optimizer(config.train), sparse_embedding_settings(config))


def _create(key, spec, pretrained=None):
    """Model and optimizer from ``spec`` (:func:`make_spec`): an ``nnx.Optimizer`` over every Param, or a
    :class:`SparseEmbeddingAdadelta` when the spec's sparse settings are not None."""
    model_items, vocab_size, num_classes, tx, sparse = spec
    model = build_model({"model": dict(model_items)}, vocab_size, num_classes, rngs=nnx.Rngs(params=key),
                        pretrained=pretrained)
    if sparse is not None:
        lr, rho, eps = sparse
        return model, SparseEmbeddingAdadelta(model, tx, learning_rate=lr, rho=rho, eps=eps)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


_create_jit = nnx.jit(_create, static_argnames=("spec",))


def _batch_arrays(batch) -> dict[str, np.ndarray]:
    return {"tokens": batch.tokens, "labels": batch.labels, "weights": batch.weights}


def evaluate(eval_step, model, batches, mesh) -> dict[str, float]:
    """Loss and accuracy over all real rows of ``batches`` (a :class:`jaxconv.data.BucketedBatches`, fixed order)."""
    outs = [eval_step(model, mesh_lib.shard_batch(_batch_arrays(b), mesh)) for b in batches.epoch(0)]
    outs = jax.device_get(outs)
    loss = correct = count = 0.0
    for o in outs:  # float64 sums in a fixed order: the same numbers every run
        loss += float(o["loss_sum"])
        correct += float(o["correct"])
        count += float(o["count"])
    return {"loss": loss / max(count, 1.0), "accuracy": correct / max(count, 1.0), "examples": int(count)}


@dataclasses.dataclass
class _Window:
    """Train metrics accumulated since the last train record (kept in checkpoints so a resume logs the same)."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    steps: int = 0
    start: float = dataclasses.field(default_factory=time.time)

    def add(self, m: dict) -> None:
        self.loss_sum += float(m["loss_sum"])
        self.correct += float(m["correct"])
        self.count += float(m["count"])
        self.steps += 1

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum, "correct": self.correct, "count": self.count, "steps": self.steps}


# ======================================================================================================================
# train_and_evaluate
# ======================================================================================================================

def train_and_evaluate(config, workdir: str | os.PathLike) -> dict[str, Any]:  # noqa: C901
    """Train ``config.model`` on ``config.data`` with ``config.train``; return the final metrics.

    Returns:
      ``{"test_accuracy", "test_loss", "dev_accuracy", "best_step", "best_epoch", "step", "epochs_completed",
      "stopped_early", "wall_time_s", "train_time_s", "epoch_time_s", "num_params", "vocab_size", ...}``, also
      written to ``workdir/final_metrics.json``.

    Raises:
      NonFiniteLossError: the loss became nan/inf (the message names the step and the last good checkpoint).
      ValueError: a bad config value (the message names the key).
    """
    t0 = time.time()
    # ------------------------------------------------------------------------------------------ setup
    show_info_logs()
    check_complete(config, reference_config(config), config.model.name)
    mesh_lib.maybe_initialize_distributed(config)
    primary = mesh_lib.is_primary()
    workdir = prepare_workdir(workdir, create=primary)
    tc = config.train
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(int(tc.batch_size), mesh, "config.train.batch_size")
    if int(tc.eval_batch_size):
        mesh_lib.check_batch_size(int(tc.eval_batch_size), mesh, "config.train.eval_batch_size")
    epochs, cap = int(tc.epochs), int(tc.steps)
    log_every, ckpt_every = max(int(tc.log_every_steps), 0), max(int(tc.checkpoint_every_steps), 0)
    patience = int(tc.patience)
    ckpts = Checkpoints(workdir / "checkpoints", keep=int(tc.keep))
    if ckpts.latest_step() is not None:  # before anything is written: is this the same experiment?
        _check_same_run(config, ckpts.restore_meta("latest"), workdir)

    # ------------------------------------------------------------------------------------------ data
    data: DataPipeline = build_data(config, min_length=max(config.model.widths))
    if primary:
        data.vocab.save(workdir / "vocab.json")
        write_run_info(workdir, data)
    steps_per_epoch = data.train.steps_per_epoch
    _info(primary, f"data {data.name}: {data.sizes} examples, {data.num_classes} classes, vocab {len(data.vocab)}, "
                   f"buckets {data.train.bucket_lengths}, {steps_per_epoch} steps/epoch, {jax.device_count()} "
                   f"device(s) on {jax.process_count()} process(es)")

    # ------------------------------------------------------------------------------------------ model, optimizer
    root = jax.random.key(int(config.seed))
    params_key, dropout_root = jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)
    pretrained = None
    if config.model.vectors:
        pretrained, found = load_word_vectors(config.model.vectors, data.vocab, int(config.model.embed_dim),
                                              seed=int(config.seed))
        _info(primary, f"word vectors: {found} of {len(data.vocab)} vocabulary words found in {config.model.vectors}")
    spec = make_spec(config, len(data.vocab), data.num_classes)
    # One compiled program (cached per model spec) instead of one per initialiser op; eager with a host table to embed.
    model, optimizer = (_create(params_key, spec, pretrained) if pretrained is not None
                        else _create_jit(params_key, spec=spec))
    nnx.update(model, mesh_lib.replicate(nnx.state(model), mesh))
    nnx.update(optimizer, mesh_lib.replicate(nnx.state(optimizer), mesh))
    dropout_root = mesh_lib.replicate(dropout_root, mesh)
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))

    train_step, eval_step = make_steps(config)
    traces = TRACES

    # ------------------------------------------------------------------------------------------ checkpoints: resume
    meta: dict[str, Any] = {"step": 0, "epoch": 0, "step_in_epoch": 0, "best_dev_accuracy": -1.0,
                            "best_dev_loss": math.inf, "best_step": None,
                            "best_epoch": None, "epochs_without_improvement": 0, "stopped_early": False,
                            "train_time_s": 0.0, "wall_time_s": 0.0, "epoch_times": [], "window": None}
    if ckpts.latest_step() is not None:
        restored, saved = ckpts.restore("latest", {"model": nnx.state(model), "optimizer": nnx.state(optimizer)})
        nnx.update(model, restored["model"])
        nnx.update(optimizer, restored["optimizer"])
        meta.update({k: v for k, v in saved.items() if k in meta})
        _info(primary, f"resumed from {ckpts.path('latest')}/{meta['step']} (epoch {meta['epoch'] + 1}, step "
                       f"{meta['step_in_epoch']} of {steps_per_epoch} in it)")
    if primary:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    wall_before = float(meta["wall_time_s"])  # spent by earlier invocations of this run (before a kill / resume)
    metrics = MetricsWriter(workdir, enabled=primary, resume_step=meta["step"] if ckpts.latest_step() is not None
                            else None, tensorboard=bool(config.tensorboard))

    def meta_now(window: _Window) -> dict:
        return dict(meta, window=window.state(), wall_time_s=wall_before + time.time() - t0,
                    config=config.to_json_best_effort())

    def save(kind: str, window: _Window):
        state = {"model": nnx.state(model)} if kind == "best" else {"model": nnx.state(model),
                                                                     "optimizer": nnx.state(optimizer)}
        ckpts.save(kind, meta["step"], state, meta_now(window))

    # ------------------------------------------------------------------------------------------ training loop
    step, epoch, sie = meta["step"], meta["epoch"], meta["step_in_epoch"]
    total = min(cap, epochs * steps_per_epoch) if cap else epochs * steps_per_epoch
    done = meta["stopped_early"] or epoch >= epochs or (cap and step >= cap)
    window = _Window(**(meta["window"] or {}))
    pending: list[tuple[int, int, dict]] = []   # (step, epoch, device metrics) not yet checked / logged
    progress = ProgressBar(total, enabled=bool(config.progress) and primary, start=step)
    last_rate = None

    def drain():
        """Fetch pending step metrics, stop on a non-finite loss, add them to the window."""
        nonlocal pending
        fetched = jax.device_get([m for _, _, m in pending])
        for (s, e, _), m in zip(pending, fetched):
            loss = float(m["loss"])
            if not math.isfinite(loss):
                pending = []
                raise NonFiniteLossError(loss, s, e + 1, ckpts.latest_step(), ckpts.path("latest"))
            window.add(m)
        pending = []

    def log_train():
        nonlocal window, last_rate
        drain()
        if window.steps == 0:
            return
        elapsed = max(time.time() - window.start, 1e-9)
        last_rate = window.count / elapsed
        rec = metrics.write("train", step, epoch + 1, loss=window.loss_sum / max(window.count, 1.0),
                            accuracy=window.correct / max(window.count, 1.0), examples_per_sec=last_rate,
                            steps=window.steps)
        progress.update(step, loss=rec["loss"], rate=last_rate)
        window = _Window()

    def eval_point(epoch_done: bool, epoch_start: float, trace_base: dict) -> dict:
        """Dev evaluation at the end of an epoch (or of a capped run); best checkpoint; early-stopping state."""
        dev = evaluate(eval_step, model, data.dev, mesh)
        # Better dev accuracy, or the same accuracy with a lower dev loss (a saturated dev set still picks a model).
        improved = (dev["accuracy"] > meta["best_dev_accuracy"]
                    or (dev["accuracy"] == meta["best_dev_accuracy"] and dev["loss"] < meta["best_dev_loss"]))
        if improved:
            meta.update(best_dev_accuracy=dev["accuracy"], best_dev_loss=dev["loss"], best_step=step,
                        best_epoch=epoch + 1, epochs_without_improvement=0)
        elif epoch_done:
            meta["epochs_without_improvement"] += 1
        epoch_time = time.time() - epoch_start
        compiles = {k: traces[k] - trace_base[k] for k in trace_base}
        metrics.write("dev", step, epoch + 1, loss=dev["loss"], accuracy=dev["accuracy"],
                      best_accuracy=meta["best_dev_accuracy"], compiles=compiles["train"] + compiles["eval"],
                      train_compiles=compiles["train"], eval_compiles=compiles["eval"], epoch_time_s=epoch_time)
        _info(primary, f"epoch {epoch + 1}/{epochs} step {step}: dev loss {dev['loss']:.4f} acc {dev['accuracy']:.4f} "
                       f"(best {meta['best_dev_accuracy']:.4f} at epoch {meta['best_epoch']}), {epoch_time:.1f}s, "
                       f"{compiles['train']}+{compiles['eval']} compiles", progress)
        if improved:
            save("best", window)
        return dev

    try:
        while not done:
            epoch_start, trace_base = time.time(), dict(traces)
            train_start = time.time()
            for batch in data.train.epoch(epoch, start_step=sie):
                step_arr = jnp.asarray(step, jnp.uint32)
                pending.append((step + 1, epoch, train_step(model, optimizer, mesh_lib.shard_batch(
                    _batch_arrays(batch), mesh), dropout_root, step_arr)))
                step, sie = step + 1, sie + 1
                meta.update(step=step, epoch=epoch, step_in_epoch=sie)
                progress.update(step)
                if log_every and step % log_every == 0:
                    log_train()
                if cap and step >= cap:
                    break
                if ckpt_every and step % ckpt_every == 0 and sie < steps_per_epoch:
                    drain()  # never save a state that came from a non-finite step
                    meta["train_time_s"] += time.time() - train_start
                    train_start = time.time()
                    save("latest", window)
            log_train()
            meta["train_time_s"] += time.time() - train_start
            epoch_done = sie >= steps_per_epoch
            eval_point(epoch_done, epoch_start, trace_base)
            if epoch_done:
                meta["epoch_times"] = meta["epoch_times"] + [time.time() - epoch_start]
                epoch, sie = epoch + 1, 0
                meta.update(epoch=epoch, step_in_epoch=0)
            if patience and meta["epochs_without_improvement"] >= patience:
                meta["stopped_early"] = True
                _info(primary, f"early stop: no dev improvement for {patience} epochs (best epoch "
                               f"{meta['best_epoch']})", progress)
            done = meta["stopped_early"] or epoch >= epochs or (cap and step >= cap)
            save("latest", window)
    finally:
        progress.close()
        metrics.flush()

    # ------------------------------------------------------------------------------------------ final evaluation
    final_step = ckpts.latest_step("best")
    if final_step is not None:
        restored, _ = ckpts.restore("best", {"model": nnx.state(model)})
        nnx.update(model, restored["model"])
    test = evaluate(eval_step, model, data.test, mesh) if data.test is not None else {"loss": float("nan"),
                                                                                      "accuracy": float("nan")}
    dev = evaluate(eval_step, model, data.dev, mesh)
    metrics.write("test", meta["step"], meta["epoch"], loss=test["loss"], accuracy=test["accuracy"],
                  checkpoint_step=final_step, dev_accuracy=dev["accuracy"])
    epoch_times = meta["epoch_times"]
    result = {
        "dataset": data.name, "label_names": data.label_names, "seed": int(config.seed),
        "fold": data.info.get("cv_fold"),
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "dev_accuracy": dev["accuracy"],
        "dev_loss": dev["loss"], "best_step": final_step, "best_epoch": meta["best_epoch"], "step": meta["step"],
        "epochs_completed": meta["epoch"], "stopped_early": meta["stopped_early"],
        "train_time_s": meta["train_time_s"], "epoch_time_s": float(np.mean(epoch_times)) if epoch_times else None,
        "wall_time_s": wall_before + time.time() - t0, "num_params": num_params, "vocab_size": len(data.vocab),
        "sizes": data.sizes, "buckets": list(data.train.bucket_lengths), "devices": jax.device_count(),
        "workdir": str(workdir),
    }
    if primary:
        (workdir / "final_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    result["tensorboard"] = metrics.tensorboard_dir is not None
    _info(primary, f"test accuracy {test['accuracy']:.4f} (model of step {final_step}, dev accuracy "
                   f"{dev['accuracy']:.4f}); outputs in {workdir}")
    metrics.close()
    ckpts.close()
    return result


#: Config fields that may change when a run is continued (how long, how often, where, how it is shown).
RESUMABLE_CHANGES = ("train.epochs", "train.steps", "train.patience", "train.log_every_steps",
                     "train.checkpoint_every_steps", "train.keep", "data.path", "progress", "tensorboard",
                     "distributed")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _check_same_run(config, saved_meta: dict | None, workdir) -> None:
    """Raise ValueError if the workdir's checkpoints come from a run with a different model, data or optimizer."""
    if not saved_meta or "config" not in saved_meta:
        return
    old = _flat(json.loads(saved_meta["config"]))
    new = _flat(json.loads(config.to_json_best_effort()))
    # Runs saved before train.sparse_embedding existed used the dense update: resumable unless this run is sparse.
    unchanged = {"train.sparse_embedding"} if sparse_embedding_settings(config) is None else set()
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES and not (k in unchanged and k not in old)]
    if diff:
        raise ValueError(f"{workdir} holds checkpoints of a run with a different config ({'; '.join(diff[:6])}"
                         f"{'; ...' if len(diff) > 6 else ''}); resuming it would mix two experiments. Use a new "
                         f"--workdir, or delete {workdir / 'checkpoints'} to start over.")


def _info(primary: bool, message: str, progress: ProgressBar | None = None) -> None:
    if primary and (progress is None or not progress.log(message)):
        logger.info(message)
