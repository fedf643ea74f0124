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
  resumed from a checkpoint replays exactly what the uninterrupted run would have done.
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
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv.models import build_model, load_word_vectors
from jaxconv.nn.constraints import apply_max_norm
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.input_pipeline import DataPipeline, build_data
from jaxconv.train.metrics import MetricsWriter, ProgressBar

__all__ = ["train_and_evaluate", "NonFiniteLossError", "make_optimizer", "make_steps", "evaluate", "OPTIMIZERS",
           "TRACES"]

logger = logging.getLogger("jaxconv.train")

OPTIMIZERS = ("adadelta", "adam", "sgd")


class NonFiniteLossError(FloatingPointError):
    """The training loss became nan or inf. Attributes: ``step`` (1-based update number), ``epoch`` (1-based),
    ``value``, ``checkpoint_step`` (the last good saved step, or None) and ``checkpoint_dir``."""

    def __init__(self, value: float, step: int, epoch: int, checkpoint_step: int | None, checkpoint_dir: pathlib.Path):
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
    """``config.train`` -> optax: Kim's Adadelta (``learning_rate`` 1.0, ``rho`` 0.95, ``eps`` 1e-6) by default,
    ``"adam"`` (``learning_rate``, ``eps``) or ``"sgd"`` (``learning_rate``, ``momentum``).

    The same settings give the same transformation object, so a second run in one process (kim2014.py) has an equal
    optimizer graph and reuses the compiled train step.
    """
    name = train_config.get("optimizer", "adadelta")
    if name not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer={name!r} is not known; expected one of "
                         f"{', '.join(map(repr, OPTIMIZERS))}.")
    return _optimizer(name, float(train_config.get("learning_rate", 1.0)), float(train_config.get("rho", 0.95)),
                      float(train_config.get("eps", 1e-6)), float(train_config.get("momentum", 0.0)))


@functools.lru_cache(maxsize=32)
def _optimizer(name: str, lr: float, rho: float, eps: float, momentum: float) -> optax.GradientTransformation:
    if name == "adadelta":
        return optax.adadelta(learning_rate=lr, rho=rho, eps=eps)
    if name == "adam":
        return optax.adam(learning_rate=lr, eps=eps)
    return optax.sgd(learning_rate=lr, momentum=momentum or None)


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
    max_norm = float(t.get("max_norm", 3.0))
    targets = t.get("max_norm_params", "classifier/kernel")
    targets = targets if isinstance(targets, str) else tuple(targets)

    def train_step(model, optimizer, batch, key, step):
        return _train_step_jit(model, optimizer, batch, key, step, max_norm=max_norm, max_norm_params=targets)

    return train_step, _eval_step_jit


def _create(key, spec, pretrained=None):
    """Model and optimizer from ``spec = (model config items, vocab_size, num_classes, optax transformation)``."""
    model_items, vocab_size, num_classes, tx = spec
    model = build_model({"model": dict(model_items)}, vocab_size, num_classes, rngs=nnx.Rngs(params=key),
                        pretrained=pretrained)
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

def train_and_evaluate(config, workdir: str | pathlib.Path) -> dict[str, Any]:
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
    mesh_lib.maybe_initialize_distributed(config)
    primary = mesh_lib.is_primary()
    workdir = pathlib.Path(workdir).absolute()
    tc = config.train
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(int(tc.batch_size), mesh, "config.train.batch_size")
    if int(tc.get("eval_batch_size", 0) or 0):
        mesh_lib.check_batch_size(int(tc.eval_batch_size), mesh, "config.train.eval_batch_size")
    epochs, cap = int(tc.epochs), int(tc.get("steps", 0) or 0)
    log_every = max(int(tc.get("log_every_steps", 50) or 0), 0)
    ckpt_every = max(int(tc.get("checkpoint_every_steps", 0) or 0), 0)
    patience = int(tc.get("patience", 0) or 0)
    ckpts = Checkpoints(workdir / "checkpoints", keep=int(tc.get("keep", 2)))
    if ckpts.latest_step() is not None:  # before anything is written: is this the same experiment?
        _check_same_run(config, ckpts.restore_meta("latest"), workdir)

    # ------------------------------------------------------------------------------------------ data
    widths = tuple(config.model.get("widths", (3, 4, 5)))
    data: DataPipeline = build_data(config, min_length=max(widths))
    if primary:
        data.vocab.save(workdir / "vocab.json")
    steps_per_epoch = data.train.steps_per_epoch
    _info(primary, f"data {data.name}: {data.sizes} examples, {data.num_classes} classes, vocab {len(data.vocab)}, "
                   f"buckets {data.train.bucket_lengths}, {steps_per_epoch} steps/epoch, {jax.device_count()} "
                   f"device(s) on {jax.process_count()} process(es)")

    # ------------------------------------------------------------------------------------------ model, optimizer
    root = jax.random.key(int(config.seed))
    params_key, dropout_root = jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)
    pretrained = None
    if config.model.get("vectors", ""):
        pretrained, found = load_word_vectors(config.model.vectors, data.vocab, int(config.model.embed_dim),
                                              seed=int(config.seed))
        _info(primary, f"word vectors: {found} of {len(data.vocab)} vocabulary words found in {config.model.vectors}")
    spec = (tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.model.items())),
            len(data.vocab), data.num_classes, make_optimizer(tc))
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
                            else None, tensorboard=bool(config.get("tensorboard", True)))

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
    progress = ProgressBar(total, enabled=bool(config.get("progress", True)) and primary, start=step)
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
        "dataset": data.name, "seed": int(config.seed), "fold": data.info.get("cv_fold"),
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


def _check_same_run(config, saved_meta: dict | None, workdir: pathlib.Path) -> None:
    """Raise ValueError if the workdir's checkpoints come from a run with a different model, data or optimizer."""
    if not saved_meta or "config" not in saved_meta:
        return
    old = _flat(json.loads(saved_meta["config"]))
    new = _flat(json.loads(config.to_json_best_effort()))
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES]
    if diff:
        raise ValueError(f"{workdir} holds checkpoints of a run with a different config ({'; '.join(diff[:6])}"
                         f"{'; ...' if len(diff) > 6 else ''}); resuming it would mix two experiments. Use a new "
                         f"--workdir, or delete {workdir / 'checkpoints'} to start over.")


def _info(primary: bool, message: str, progress: ProgressBar | None = None) -> None:
    if not primary:
        return
    if progress is not None and progress.active:
        progress.log(message)
    else:
        logger.info(message)
