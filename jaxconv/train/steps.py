"""The loss, the train and eval steps, and the compiled programs that run them.

:func:`train_step` is the one definition of an update (NNX modules, in place): forward with dropout, loss over the
real rows, gradients, the optimizer (the row-sparse embedding Adadelta when configured), max-norm. The trainer
never calls it on modules at dispatch time; it runs it inside compiled programs over flat arrays
(:class:`~jaxconv.train.state.TrainState`), where the NNX graph is rebuilt only while tracing:

- :func:`train_calls` runs ``K`` consecutive steps of one bucket with ``lax.scan`` (unrolled on CPU:
  :class:`StepSettings`): the batches are gathered on the
  device from the bucket's resident token matrix by the epoch's row indices, so a dispatch sends four int32
  numbers (which call of the bucket, the step number of its first batch, and the range ``[lo, hi)`` of its
  steps that are applied). A step outside ``[lo, hi)`` is masked: it leaves every array bit for bit as it was (the
  dense leaves are selected, the row-sparse update writes no row), so a bucket's last, shorter run, a resume in
  the middle of a run and a step cap all use the same program. It returns the per-step sums by name
  (:data:`jaxconv.train.tasks.SUMS`: ``loss_sum``, ``correct``, ``count``, each ``(K,)``; zeros for masked steps),
  which stay on the device until the trainer reads them (every ``log_every_steps``, before a checkpoint, at the
  end of an epoch).
- :func:`eval_batch`: the sums of one evaluation batch.
- :class:`Programs` jits both (``jax.vmap`` ped over a leading run axis for a stack of runs,
  :mod:`jaxconv.train.stacked`), compiles them ahead of time per bucket shape, several compilations in parallel
  threads, and keeps the executables for every run of the process with the same :class:`StepSettings`.

Compilations are counted by :mod:`jaxconv.train.compiles` (``jax.monitoring``): the programs are named
:data:`TRAIN_PROGRAM` and :data:`EVAL_PROGRAM`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv.nn.constraints import apply_max_norm
from jaxconv.train.optim import NOT_EMBEDDING, SparseEmbeddingAdadelta
from jaxconv.train.state import StateDefs
from jaxconv.train.tasks import SUMS

__all__ = ["loss_terms", "train_step", "eval_step", "make_steps", "StepSettings", "step_settings", "train_calls",
           "eval_batch", "Programs", "programs_for", "Call", "TRAIN_PROGRAM", "EVAL_PROGRAM"]

#: Names of the compiled programs (``fun_name`` of their ``jax.monitoring`` compile events).
TRAIN_PROGRAM, EVAL_PROGRAM = "jaxconv_train_calls", "jaxconv_eval_batch"


# ======================================================================================================================
# Loss and the steps on NNX modules
# ======================================================================================================================

def loss_terms(logits, labels, weights):
    """Cross-entropy and accuracy sums over the labelled positions of a batch.

    A classifier: logits ``(B, K)``, labels int ``(B,)``; a language model: logits ``(B, T, V)``, labels ``(B, T)``
    (the next token at each position). ``weights`` is ``(B,)`` (a row's weight applies to each of its labels) or
    ``labels``' shape. Returns the per-label loss (``labels``' shape) and the sums of
    :data:`jaxconv.train.tasks.SUMS` ``{"loss_sum", "correct", "count"}`` (float32 scalars over every weighted
    label: rows or positions of weight 0 count for nothing), so ``loss_sum / count`` is the mean loss per label
    either way."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)  # labels' shape
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)                     # labels' shape
    w = jnp.broadcast_to(weights.reshape(weights.shape + (1,) * (ce.ndim - weights.ndim)), ce.shape)
    sums = {"loss_sum": jnp.sum(ce * w), "correct": jnp.sum(correct * w), "count": jnp.sum(w)}
    return ce, sums


def train_step(model, optimizer, batch, key, step, *, max_norm: float, max_norm_params, active=None) -> dict:
    """One update of ``model`` and ``optimizer`` in place on ``batch`` (tokens int ``(B, L)``, labels int ``(B,)``,
    weights ``(B,)``), with the dropout masks of ``fold_in(key, step)``; returns ``{"loss_sum", "correct",
    "count", "loss"}`` (device scalars; ``loss`` is the mean over the real rows).

    ``max_norm > 0`` projects ``max_norm_params`` after the update (Kim: each class's weight vector to norm <= 3).
    ``active`` (a boolean scalar, or None): passed to the row-sparse embedding update, which writes nothing when it
    is false; the caller selects the other arrays (:func:`train_calls`).
    """
    dropout_key = jax.random.fold_in(key, step)

    def loss_of(logits):
        _, sums = loss_terms(logits, batch["labels"], batch["weights"])
        return sums["loss_sum"] / jnp.maximum(sums["count"], 1.0), sums                    # mean over real rows

    if isinstance(optimizer, SparseEmbeddingAdadelta):
        # Gradients w.r.t. every Param but the table, and w.r.t. the looked-up vectors (B, L, D) for the table's rows.
        model.check_tokens(batch["tokens"])
        tokens = model.ids_in_range(batch["tokens"])                                         # as embed reads them
        x = model.embed(tokens)                                                              # (B, L, D)
        (loss, sums), (grads, grad_x) = nnx.value_and_grad(
            lambda m, x: loss_of(m.logits_from_vectors(x, deterministic=False, dropout_key=dropout_key)),
            argnums=(nnx.DiffState(0, NOT_EMBEDDING), 1), has_aux=True)(model, x)
        t = optimizer.dense.step[...]                                                       # updates applied so far
        optimizer.dense.update(model, grads)
        optimizer.update_embedding(model, tokens, grad_x, t, active)
    else:
        (loss, sums), grads = nnx.value_and_grad(
            lambda m: loss_of(m(batch["tokens"], deterministic=False, dropout_key=dropout_key)), has_aux=True)(model)
        optimizer.update(model, grads)
    if max_norm > 0:  # Kim: each class's weight vector (column of the (in, K) kernel) to L2 norm <= 3
        apply_max_norm(model, max_norm_params, max_norm, axis=0)
    return dict(sums, loss=loss)


def eval_step(model, batch) -> dict:
    """Sums over the real rows of ``batch``: ``loss_sum``, ``correct``, ``count`` (filler rows have weight 0)."""
    logits = model(batch["tokens"])                                                          # (B, K)
    return loss_terms(logits, batch["labels"], batch["weights"])[1]


def _max_norm_settings(train_config) -> tuple[float, Any]:
    targets = train_config.max_norm_params
    return float(train_config.max_norm), targets if isinstance(targets, str) else tuple(targets)


_train_step_nnx = nnx.jit(train_step, static_argnames=("max_norm", "max_norm_params"),
                          donate_argnames=("model", "optimizer"))
_eval_step_nnx = nnx.jit(eval_step)


def make_steps(config):
    """``train_step(model, optimizer, batch, key, step) -> metrics`` and ``eval_step(model, batch) -> sums`` on NNX
    modules, each an ``nnx.jit`` of :func:`train_step` / :func:`eval_step` with ``config.train``'s max-norm: for
    notebooks and tests. The trainer runs the same step through :class:`Programs` instead."""
    max_norm, targets = _max_norm_settings(config.train)

    def step(model, optimizer, batch, key, step):
        return _train_step_nnx(model, optimizer, batch, key, step, max_norm=max_norm, max_norm_params=targets)

    return step, _eval_step_nnx


# ======================================================================================================================
# Pure programs over flat arrays
# ======================================================================================================================

@dataclasses.dataclass(frozen=True)
class StepSettings:
    """Everything static about a run's compiled steps (hashable: runs with equal settings share executables).

    Attributes:
      defs: the model's and optimizer's :class:`~jaxconv.train.state.StateDefs`.
      max_norm, max_norm_params: ``config.train``'s max-norm (0: off).
      batch_sharding: how a gathered batch is split over the devices (rows over the mesh's ``"data"`` axis), or
        None on one device.
      unroll: unroll the ``K`` steps of a call instead of looping over them (on CPU: XLA:CPU runs a convolution inside
        a ``while`` loop many times slower than the same convolution outside one, 25x measured with jax 0.10; a
        partly unrolled loop is as slow; unrolled, compiling takes about ``K`` times longer).
    """

    defs: StateDefs
    max_norm: float
    max_norm_params: Any
    batch_sharding: NamedSharding | None = None
    unroll: bool = False


def step_settings(config, defs: StateDefs, mesh=None) -> StepSettings:
    """The :class:`StepSettings` of ``config.train`` for a state of ``defs`` on ``mesh`` (None: one device)."""
    max_norm, targets = _max_norm_settings(config.train)
    sharding = NamedSharding(mesh, P(mesh.axis_names[0])) if mesh is not None and mesh.devices.size > 1 else None
    return StepSettings(defs, max_norm, targets, sharding, unroll=jax.default_backend() == "cpu")


def _constrain(settings: StepSettings, batch: dict) -> dict:
    if settings.batch_sharding is None:
        return batch
    return {k: jax.lax.with_sharding_constraint(v, settings.batch_sharding) for k, v in batch.items()}


def _step_arrays(settings: StepSettings, model, opt, batch, key, step, active):
    """:func:`train_step` on flat arrays: ``(model leaves, opt leaves, {sum name: scalar})``; a masked step
    (``active`` false) returns the arrays it was given."""
    d = settings.defs
    model_m = nnx.merge(d.model_def, jax.tree.unflatten(d.model_tree, model))
    opt_m = nnx.merge(d.opt_def, jax.tree.unflatten(d.opt_tree, opt))
    sums = train_step(model_m, opt_m, batch, key, step, max_norm=settings.max_norm,
                      max_norm_params=settings.max_norm_params, active=active)
    new_model = jax.tree.leaves(nnx.state(model_m))
    new_opt = jax.tree.leaves(nnx.state(opt_m))
    # The row-sparse update masked its own writes; every other array is selected.
    keep = lambda new, old, sparse: new if sparse else jnp.where(active, new, old)
    new_model = [keep(n, o, s) for n, o, s in zip(new_model, model, d.model_sparse)]
    new_opt = [keep(n, o, s) for n, o, s in zip(new_opt, opt, d.opt_sparse)]
    return new_model, new_opt, {k: sums[k] for k in SUMS}


class Call(NamedTuple):
    """One dispatch of :func:`train_calls`, on the host: run call ``slot`` of the bucket's plan, its batch ``j``
    being update ``base + j``, applied when ``lo <= j < hi``. The device gets it packed (:meth:`array`)."""

    slot: int
    base: int
    lo: int
    hi: int

    def array(self) -> np.ndarray:
        """int32 ``(4,)``: ``[slot, base, lo, hi]``."""
        return np.asarray(self, np.int32)


def train_calls(settings: StepSettings, model: list, opt: list, data: dict, plan: dict, call, key):
    """One dispatch: up to ``K`` consecutive train steps of one bucket.

    Args:
      settings: :class:`StepSettings`.
      model, opt: the :class:`~jaxconv.train.state.TrainState` arrays (donated).
      data: the bucket's resident examples ``{"tokens": int32 (N, L), "labels": int32 (N,)}``.
      plan: the epoch's calls of this bucket ``{"rows": int32 (C, K, B), "weights": float32 (C, K, B)}``: rows of
        ``data`` per batch, weight 0 for filler rows.
      call: int32 ``(4,)``, a :class:`Call` packed: ``[slot, base, lo, hi]``: run call ``slot`` of ``plan``;
        batch ``j`` is update number ``base + j`` (its dropout masks come from ``fold_in(key, base + j)``),
        applied when ``lo <= j < hi``.
      key: the run's dropout key.

    Returns:
      ``(model, opt, sums)``: the new arrays and the per-step sums by name, float32 ``(K,)`` each (zeros for
      masked steps).
    """
    slot, base, lo, hi = (call[i] for i in range(len(Call._fields)))
    rows_c, weights_c = plan["rows"][slot], plan["weights"][slot]                           # (K, B) each

    def body(carry, j):
        model, opt = carry
        rows = rows_c[j]                                                                     # (B,)
        batch = _constrain(settings, {"tokens": data["tokens"][rows], "labels": data["labels"][rows],
                                      "weights": weights_c[j]})                             # (B, L), (B,), (B,)
        active = (j >= lo) & (j < hi)
        model, opt, sums = _step_arrays(settings, model, opt, batch, key, (base + j).astype(jnp.uint32), active)
        return (model, opt), {k: jnp.where(active, v, 0.0) for k, v in sums.items()}

    if rows_c.shape[0] == 1:  # one step: no loop (XLA compiles the straight-line step several times faster)
        (model, opt), sums = body((model, opt), jnp.int32(0))
        return model, opt, {k: v[None] for k, v in sums.items()}
    (model, opt), sums = jax.lax.scan(body, (model, opt), jnp.arange(rows_c.shape[0]), unroll=settings.unroll)
    return model, opt, sums                                                                  # ..., {name: (K,)}


def eval_batch(settings: StepSettings, model: list, batch: dict) -> dict:
    """The sums of ``batch`` (tokens ``(B, L)``, labels, weights ``(B,)``) under the model arrays ``model`` (dropout
    off), by name: float32 scalars."""
    d = settings.defs
    model_m = nnx.merge(d.model_def, jax.tree.unflatten(d.model_tree, model))
    return eval_step(model_m, _constrain(settings, batch))


def _named(fn, name: str):
    def program(*args):
        return fn(*args)

    program.__name__ = program.__qualname__ = name
    return program


class Programs:
    """The jitted train and eval programs of one :class:`StepSettings`, for one run or a stack of runs.

    ``stacked``: every argument has a leading run axis ``R`` (``jax.vmap``): ``call`` is ``(R, 4)``, each sum
    ``(R, K)``. Executables are compiled ahead of time per argument signature (:meth:`executable`); use
    :func:`programs_for` to share them between the runs of a process.
    """

    def __init__(self, settings: StepSettings, stacked: bool):
        train, evaluate = functools.partial(train_calls, settings), functools.partial(eval_batch, settings)
        if stacked:
            train, evaluate = jax.vmap(train), jax.vmap(evaluate)
        self.settings, self.stacked = settings, stacked
        self.jitted = {"train": jax.jit(_named(train, TRAIN_PROGRAM), donate_argnums=(0, 1)),
                       "eval": jax.jit(_named(evaluate, EVAL_PROGRAM))}
        self._compiled: dict = {}
        self._lock = threading.Lock()

    @staticmethod
    def signature(kind: str, args: tuple) -> tuple:
        leaves, tree = jax.tree.flatten(args)
        return kind, tree, tuple((tuple(x.shape), str(x.dtype), getattr(x, "sharding", None)) for x in leaves)

    def executable(self, kind: str, args: tuple):
        """The compiled ``kind`` (``"train"``: :func:`train_calls`' arguments after ``settings``; ``"eval"``:
        :func:`eval_batch`'s) for arguments like ``args``, compiled on first use."""
        return self.compile([(kind, args)])[0]

    def compile(self, jobs: list[tuple[str, tuple]]) -> list:
        """Executables for ``[(kind, args), ...]``: the missing ones are traced here, then compiled by XLA in
        parallel threads (tracing holds Python's lock; XLA's compiler does not)."""
        keys = [self.signature(kind, args) for kind, args in jobs]
        todo = {}
        with self._lock:
            for key, (kind, args) in zip(keys, jobs):
                if key not in self._compiled and key not in todo:
                    todo[key] = self.jitted[kind].lower(*args)
        if todo:
            workers = max(1, min(len(todo), os.cpu_count() or 1))
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                done = dict(zip(todo, pool.map(lambda lowered: lowered.compile(), todo.values())))
            with self._lock:
                self._compiled.update(done)
        return [self._compiled[key] for key in keys]


@functools.lru_cache(maxsize=64)
def programs_for(settings: StepSettings, stacked: bool) -> Programs:
    """The process's :class:`Programs` for ``settings`` (one per settings and stacking: their executables are
    reused by every later run of that shape)."""
    return Programs(settings, stacked)
